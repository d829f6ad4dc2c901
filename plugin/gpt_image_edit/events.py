"""Server-sent events (the `text/event-stream` format), read incrementally and bounded.

A short parser of our own rather than a library: the images API uses only `event:` and
`data:` lines, one JSON object an event, and what matters here is what the libraries we
looked at (sseclient-py, httpx-sse, requests-sse) leave to the caller: a cap on one event's
size counted while it arrives (an event holds a whole base64 picture), working on the
decoded blocks that transport.bounded_blocks already caps in total and bounds in time. The
format rules followed are the WHATWG HTML standard's ("Parsing an event stream"): lines end
in CR LF, LF or CR; a blank line ends an event; `data:` lines are joined with LF; a line
starting with a colon is a comment; one space after the colon is dropped; other fields
(`id:`, `retry:`) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass


class EventTooLarge(Exception):
    """One event grew past its limit."""


@dataclass(frozen=True)
class Event:
    """One dispatched event: its `event:` name ("message" without one) and its data."""

    name: str
    data: bytes


class EventParser:
    """Feed decoded blocks as they arrive; each feed returns the events they completed.
    An event (its data and the line being read) larger than `max_event` bytes raises
    EventTooLarge at once, before more of it is kept."""

    def __init__(self, max_event: int):
        self.max_event = max_event
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._data_size = 0
        self._name = ""
        self._skip_lf = False  # the last block ended in CR: a LF next is the same line end

    def feed(self, block: bytes) -> list[Event]:
        events: list[Event] = []
        buffer = self._buffer
        start = len(buffer)
        buffer += block
        if self._skip_lf and buffer[:1] == b"\n":
            del buffer[:1]
            start = 0
        self._skip_lf = False
        line_start = 0
        position = start
        while True:
            end = _line_end(buffer, position)
            if end < 0:
                break
            line = bytes(buffer[line_start:end])
            step = 1
            if buffer[end:end + 1] == b"\r":
                if end + 1 == len(buffer):
                    self._skip_lf = True
                elif buffer[end + 1:end + 2] == b"\n":
                    step = 2
            line_start = position = end + step
            event = self._line(line)
            if event is not None:
                events.append(event)
        del buffer[:line_start]
        if self._data_size + len(buffer) > self.max_event:
            raise EventTooLarge()
        return events

    def _line(self, line: bytes) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self.max_event:
                raise EventTooLarge()
        elif name == b"event":
            self._name = value.decode("utf-8", "replace")
        return None

    def _dispatch(self) -> Event | None:
        data, name = self._data, self._name or "message"
        self._data, self._data_size, self._name = [], 0, ""
        if not data:
            return None
        return Event(name, b"\n".join(data))


def _line_end(buffer: bytearray, start: int) -> int:
    """Where the first CR or LF at or after `start` is, -1 without one."""
    newline = buffer.find(b"\n", start)
    carriage = buffer.find(b"\r", start, newline if newline >= 0 else len(buffer))
    return carriage if carriage >= 0 else newline
