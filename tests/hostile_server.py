"""A hostile OpenAI-compatible server on loopback, for the red-team tests.

Unlike the strict stand-in (fake_wisgate.py), it answers whatever a test scripts for a path:
addresses meant to be misread, compression bombs, endless or trickling answers, endless
rate limits, more pictures than asked for. It records every request it gets (method, path,
headers, the body), so a test can assert what reached which host. Two instances on two
ports are two origins: "the endpoint" and "another host".
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from PIL import Image

Behaviour = Callable[["HostileHandler", "Received"], None]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)


class HostileServer:
    def __init__(self, host: str = "127.0.0.1"):
        self._server = ThreadingHTTPServer((host, 0), HostileHandler)
        self._server.daemon_threads = True
        self._server.hostile = self
        # A client that hangs up mid-answer is what these tests provoke: not an error here.
        self._server.handle_error = lambda request, address: None
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._routes: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.sent_bytes = 0

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def authority(self) -> str:
        return self.origin.split("://", 1)[1]

    def url(self, path: str) -> str:
        return self.origin + path

    def route(self, path: str, behaviour: Behaviour) -> None:
        """Answer requests for `path` (exact, query ignored) with `behaviour`."""
        self._routes[path] = behaviour

    def behaviour_for(self, path: str) -> Behaviour | None:
        return self._routes.get(path.split("?", 1)[0])

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def count_sent(self, size: int) -> None:
        with self._lock:
            self.sent_bytes += size

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        hostile: HostileServer = self.server.hostile
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = Received(method, self.path, {name.lower(): value
                                                for name, value in self.headers.items()}, body)
        hostile.record(received)
        behaviour = hostile.behaviour_for(self.path)
        try:
            if behaviour is None:
                self.send_body(404, b'{"error": {"message": "no such route"}}')
            else:
                behaviour(self, received)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True

    # -- building blocks for behaviours -------------------------------------------------
    def send_body(self, status: int, body: bytes, content_type: str = "application/json",
                  headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.write(body)

    def write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.server.hostile.count_sent(len(data))

    def log_message(self, format: str, *args) -> None:
        pass


# -- behaviours ----------------------------------------------------------------------------
def picture_png(width: int = 64, height: int = 48, colour=(20, 120, 220)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def requested_size(received: Received) -> tuple[int, int]:
    """The `size` field of a multipart edit request (64x48 when it has none)."""
    marker = b'name="size"\r\n\r\n'
    start = received.body.find(marker)
    if start < 0:
        return 64, 48
    text = received.body[start + len(marker):].split(b"\r\n", 1)[0].decode()
    width, _, height = text.partition("x")
    return int(width), int(height)


def pictures(count: int) -> Behaviour:
    """A well-formed answer with `count` pictures of the requested size, whatever n was."""
    def answer(handler: HostileHandler, received: Received) -> None:
        size = requested_size(received)
        data = [{"b64_json": base64.b64encode(picture_png(*size, colour=(10 * number, 99, 7))
                                              ).decode()} for number in range(count)]
        handler.send_body(200, json.dumps({"data": data, "usage": {}}).encode())
    return answer


def url_answer(url: str) -> Behaviour:
    def answer(handler: HostileHandler, received: Received) -> None:
        handler.send_body(200, json.dumps({"data": [{"url": url}]}).encode())
    return answer


def redirect(location: str) -> Behaviour:
    def answer(handler: HostileHandler, received: Received) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def png_file(width: int = 64, height: int = 48) -> Behaviour:
    def answer(handler: HostileHandler, received: Received) -> None:
        handler.send_body(200, picture_png(width, height), "image/png")
    return answer


def compression_bomb(inflated: int, encoding: str = "gzip") -> Behaviour:
    """A JSON answer whose body inflates to `inflated` bytes (about a thousandth of that on
    the wire): one long base64 string of 'A's."""
    body = _bomb(inflated, encoding)

    def answer(handler: HostileHandler, received: Received) -> None:
        handler.send_body(200, body, headers={"Content-Encoding": encoding})
    return answer


_bombs: dict[tuple[int, str], bytes] = {}


def _bomb(inflated: int, encoding: str) -> bytes:
    if (inflated, encoding) not in _bombs:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
        head = b'{"data": [{"b64_json": "'
        block = b"A" * (1024 * 1024)
        parts = [packer.compress(head)]
        for _ in range((inflated - len(head)) // len(block)):
            parts.append(packer.compress(block))
        parts.append(packer.compress(b'"}]}'))
        parts.append(packer.flush())
        _bombs[(inflated, encoding)] = b"".join(parts)
    return _bombs[(inflated, encoding)]


def endless_base64(declared: int | None) -> Behaviour:
    """A base64 picture that never ends: `declared` bytes announced (or chunked when None),
    streamed until the client hangs up."""
    def answer(handler: HostileHandler, received: Received) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if declared is None:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(declared))
        handler.end_headers()
        block = b"QUFB" * 16384
        first = b'{"data": [{"b64_json": "'
        sent = 0
        while declared is None or sent < declared:
            piece = first + block if sent == 0 else block
            if declared is None:
                handler.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                handler.write(piece)
            sent += len(piece)
    return answer


def trickle(interval: float = 1.0) -> Behaviour:
    """A valid-looking answer sent one byte every `interval` seconds, for ever."""
    def answer(handler: HostileHandler, received: Received) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "4096")
        handler.end_headers()
        handler.wfile.flush()
        while True:
            handler.write(b" ")
            time.sleep(interval)
    return answer


def rate_limited(headers: dict[str, str]) -> Behaviour:
    def answer(handler: HostileHandler, received: Received) -> None:
        handler.send_body(429, json.dumps({"error": {"message": "Rate limit reached",
                                                     "type": "rate_limit"}}).encode(),
                          headers=headers)
    return answer


def hold(seconds: float, then: Behaviour) -> Behaviour:
    def answer(handler: HostileHandler, received: Received) -> None:
        time.sleep(seconds)
        then(handler, received)
    return answer


def before(action: Callable[[], None], then: Behaviour) -> Behaviour:
    """Run `action` (say, fill the disk) and then answer as `then`."""
    def answer(handler: HostileHandler, received: Received) -> None:
        action()
        then(handler, received)
    return answer


# -- server-sent event streams (stream=true) -------------------------------------------------
def _start_events(handler: HostileHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()


def _chunk(handler: HostileHandler, data: bytes) -> None:
    handler.write(b"%x\r\n%s\r\n" % (len(data), data))


def event(kind: str, payload: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


def endless_events(interval: float = 0.0, comments: bool = False) -> Behaviour:
    """An event stream that never ends: partial images for ever (`comments`: keep-alive
    comment lines only), one every `interval` seconds, until the client hangs up."""
    preview = event("image_edit.partial_image", {
        "type": "image_edit.partial_image", "partial_image_index": 0,
        "b64_json": base64.b64encode(picture_png()).decode("ascii")})
    def answer(handler: HostileHandler, received: Received) -> None:
        _start_events(handler)
        block = b": keep-alive\n\n" if comments else preview * 64
        while True:
            _chunk(handler, block)
            if interval:
                time.sleep(interval)
    return answer


def huge_event() -> Behaviour:
    """One `image_edit.completed` event whose base64 never ends."""
    def answer(handler: HostileHandler, received: Received) -> None:
        _start_events(handler)
        _chunk(handler, b'event: image_edit.completed\ndata: {"type": '
                        b'"image_edit.completed", "b64_json": "')
        while True:
            _chunk(handler, b"QUFB" * 16384)
    return answer


def events(*payloads: bytes) -> Behaviour:
    """These events, then the end of the stream."""
    def answer(handler: HostileHandler, received: Received) -> None:
        _start_events(handler)
        for payload in payloads:
            _chunk(handler, payload)
        _chunk(handler, b"")
    return answer
