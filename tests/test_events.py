"""The server-sent events parser (plugin/gpt_image_edit/events.py): the WHATWG rules the
images API relies on, blocks split anywhere, and the cap on one event."""

from __future__ import annotations

import pytest

from gpt_image_edit.events import Event, EventParser, EventTooLarge

STREAM = (b": keep-alive\r\n\r\n"
          b"event: image_edit.partial_image\r\ndata: {\"a\":\r\ndata:  1}\r\n\r\n"
          b"event: image_edit.completed\rdata:{\"b\": 2}\r\r"
          b"id: 7\nretry: 10\ndata: plain\n\n"
          b"data: no end")


def parse(blocks) -> list[Event]:
    parser = EventParser(max_event=1000)
    events = []
    for block in blocks:
        events += parser.feed(block)
    return events


EXPECTED = [Event("image_edit.partial_image", b'{"a":\n 1}'),
            Event("image_edit.completed", b'{"b": 2}'),
            Event("message", b"plain")]


def test_line_ends_fields_and_comments():
    assert parse([STREAM]) == EXPECTED  # the unfinished last event is not dispatched


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_blocks_split_anywhere_give_the_same_events(size):
    blocks = [STREAM[start:start + size] for start in range(0, len(STREAM), size)]
    assert parse(blocks) == EXPECTED


def test_an_event_past_its_limit_is_refused_while_it_arrives():
    parser = EventParser(max_event=100)
    parser.feed(b"data: " + b"A" * 60 + b"\n")
    with pytest.raises(EventTooLarge):
        parser.feed(b"data: " + b"A" * 60)  # not even a whole line yet
    with pytest.raises(EventTooLarge):
        EventParser(max_event=100).feed(b"data: " + b"B" * 200)


def test_many_small_events_never_add_up_to_one():
    parser = EventParser(max_event=100)
    for _ in range(50):
        assert parser.feed(b"data: " + b"C" * 60 + b"\n\n") == [Event("message", b"C" * 60)]
