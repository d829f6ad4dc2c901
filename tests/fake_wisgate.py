"""A strict stand-in for the WisGate images API, on 127.0.0.1.

A real HTTP server that validates edits as strictly as the real API and answers the way a
scenario says. The base URL selects the scenario, so a process that can only set an
endpoint (GIMP under test) chooses one too:

    http://127.0.0.1:PORT/v1                    the default scenario (echo)
    http://127.0.0.1:PORT/scenario/invert/v1    the invert scenario

An edit sent with `stream=true` is answered as the real API streams: server-sent events,
`partial_images` `image_edit.partial_image` events per picture, then
`image_edit.completed` with the picture and its `usage`. In the `spaced` scenario (an echo)
and `stream_error` each event comes STREAM_SPACING seconds after the one before, as a model
takes its time; other scenarios stream without pauses, so the suite stays fast.
`stream_error` sends one preview, then an `error` event; `plain_router` ignores `stream`
and answers plain JSON, as some routers do. `held_previews` (an invert) streams its
previews at once and keeps the completed picture back until the test sets `held`, so a
test can look at a preview on the canvas for as long as it needs (a plain request is held
before any answer, like `held`).

By hand:  python3 -m tests.fake_wisgate --port 8765 --key test-key --scenario echo

Besides the API it serves GET /_fake/requests (what it received, as JSON), POST /_fake/reset,
and GET /_fake/download/<id>.png (the pictures of `url` answers, on the host name
"localhost" so that it differs from the API's 127.0.0.1).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import itertools
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image, ImageChops, ImageDraw, ImageFilter

DEFAULT_KEY = "test-key"
MODELS = ("gpt-image-2", "gpt-image-1.5", "gpt-image-1", "gpt-image-1-mini", "dall-e-2")
FIXED_SIZES = {
    "gpt-image-1.5": ("1024x1024", "1536x1024", "1024x1536"),
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536"),
    "gpt-image-1-mini": ("1024x1024", "1536x1024", "1024x1536"),
    "gpt-image-2": ("1024x1024", "1536x1024", "1024x1536"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
}
GPT_IMAGE_2_LONG_SIDE = 3840
GPT_IMAGE_2_PIXELS = 3840 * 2160
GPT_IMAGE_2_MIN_PIXELS = 655360
QUALITIES = ("low", "medium", "high", "auto")
BACKGROUNDS = ("transparent", "opaque", "auto")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
INPUT_FIDELITIES = ("low", "high")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
KNOWN_FIELDS = {"image", "image[]", "mask", "prompt", "model", "n", "size", "quality",
                "background", "output_format", "output_compression", "input_fidelity",
                "stream", "partial_images", "user", "moderation", "response_format"}
MAX_PROMPT = 32000
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_MASK_BYTES = 4 * 1024 * 1024
MAX_BODY_BYTES = 200 * 1024 * 1024
SLOW_SECONDS = 600.0
STREAM_SPACING = 0.5
SPACED_SCENARIOS = ("spaced", "stream_error")
PARTIAL_IMAGE_TOKENS = 100
RESIZED = (1024, 1024)
INSECURE_HOST = "images.wisgate.invalid"
# What the stand-in "model" of the picture scenarios does, in this order: paints the asked-for
# change (a square of SQUARE_COLOUR: the middle half of the editable area with a mask, else a
# centred square a quarter of the shorter side), softens everything (a Gaussian blur of
# BLUR_RADIUS) and shifts every colour, per channel value -> gain * value + offset, as models
# drift.
MODEL_EFFECTS = {"cast": ("cast",), "blur": ("blur",), "square": ("square",),
                 "cast_square": ("square", "cast"), "drift": ("square", "blur", "cast")}
CAST = ((0.96, 16.0), (1.0, -8.0), (1.05, -2.0))
SQUARE_COLOUR = (200, 30, 60)
BLUR_RADIUS = 2.0

SCENARIOS = ("echo", "invert", "url", "resize", "rate_limit", "rate_limit_ms", "quota",
             "server_error", "unavailable", "html_502", "moderation", "too_large", "forbidden",
             "truncated", "bad_json", "bad_base64", "fewer", "slow", "drop_once",
             "drop_upload_once", "insecure_url", "no_data", "cast", "blur", "square",
             "cast_square", "drift", "held", "held_previews", "stream_error", "plain_router",
             "spaced")
# Scenarios about the server or the account, not about one edit: /models answers the same way.
SERVER_WIDE = {"server_error", "unavailable", "html_502", "forbidden", "slow"}

ROUTE = re.compile(r"^(?:/scenario/(?P<scenario>[a-z0-9_]+))?"
                   r"/v1/(?P<endpoint>images/edits|models)$")
DOWNLOAD = re.compile(r"^/_fake/download/(?P<id>[0-9a-f]+)\.png$")

HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n")
HTML_413 = (b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
            b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr>"
            b"<center>nginx</center>\r\n</body>\r\n</html>\r\n")


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    scenario: str | None
    headers: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[bytes]] = field(default_factory=dict)
    # (filename, content type) of each uploaded file, in the order of `files`
    file_parts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    time: float = field(default_factory=time.monotonic)
    # (event type, time.monotonic() when sent) of a streamed answer, in order
    events: list[tuple[str, float]] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"method": self.method, "path": self.path, "scenario": self.scenario,
                "headers": self.headers, "fields": self.fields,
                "files": {name: [dict(describe_file(data), filename=filename,
                                      content_type=content_type)
                                 for data, (filename, content_type)
                                 in zip(parts, self.file_parts[name])]
                          for name, parts in self.files.items()}}


class ApiError(Exception):
    """An error answer in the real API's shape."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": error_type, "param": param,
                               "code": code}}


class FakeWisGate:
    """The server, its recordings and its state. Use as a context manager or start/stop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, key: str = DEFAULT_KEY,
                 default_scenario: str = "echo", log=None):
        if default_scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {default_scenario!r}")
        self.key = key
        self.default_scenario = default_scenario
        self.log = log
        self.stopping = threading.Event()
        # `held` answers wait for this (a test releases them when its user is done) and
        # then answer as `invert`.
        self.held = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._downloads: list[RecordedRequest] = []
        self._seen_bodies: set[str] = set()
        self._generation = 0  # counts resets: a request begun before one is not recorded
        self._stored: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def url_for(self, scenario: str) -> str:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        return f"{self.origin}/scenario/{scenario}/v1"

    def start(self) -> FakeWisGate:
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        name="fake-wisgate", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # ends the waits of `slow` answers
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeWisGate:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- recordings --------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def downloads(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._downloads)

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._requests.clear()
            self._downloads.clear()
            self._seen_bodies.clear()
            self._stored.clear()

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def record(self, request: RecordedRequest, generation: int, download: bool = False) -> None:
        """Keep `request` unless the recordings were reset since it began (a late request
        from an earlier test's process must not show up in the next test's recordings)."""
        with self._lock:
            if generation == self._generation:
                (self._downloads if download else self._requests).append(request)

    def first_time(self, fingerprint: str) -> bool:
        """True the first time a request with this fingerprint arrives."""
        with self._lock:
            if fingerprint in self._seen_bodies:
                return False
            self._seen_bodies.add(fingerprint)
            return True

    def store(self, data: bytes) -> str:
        with self._lock:
            ident = f"{next(self._ids):08x}"
            self._stored[ident] = data
            return ident

    def stored(self, ident: str) -> bytes | None:
        with self._lock:
            return self._stored.get(ident)


def _handler_for(server: FakeWisGate):
    class Handler(WisGateHandler):
        fake = server

    return Handler


class WisGateHandler(BaseHTTPRequestHandler):
    fake: FakeWisGate
    server_version = "fake-wisgate/1"
    # HTTP/1.1 as real servers speak it: http.server answers "Expect: 100-continue" (curl
    # sends it for large uploads) only then, and connections stay open between requests, so
    # every answer carries its Content-Length and closes the connection when it must.
    protocol_version = "HTTP/1.1"

    # -- routing -----------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionResetError:
            self.close_connection = True  # the client dropped a connection kept open

    def parse_request(self) -> bool:
        # A request begins with its request line, whatever came before on the connection.
        self.generation = self.fake.generation
        self.body_read = False
        return super().parse_request()

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/_fake/requests" and method == "GET":
                self._send_json(200, [r.as_json() for r in self.fake.requests]
                                + [dict(r.as_json(), download=True) for r in self.fake.downloads])
            elif path == "/_fake/reset" and method == "POST":
                self.fake.reset()
                self._send_json(200, {"ok": True})
            elif DOWNLOAD.match(path) and method == "GET":
                self._download(DOWNLOAD.match(path)["id"])
            elif ROUTE.match(path):
                self._api(method, ROUTE.match(path))
            else:
                raise ApiError(404, f"Invalid URL ({method} {path})", code="unknown_url")
        except ApiError as error:
            self._send_json(error.status, error.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (a timeout, a cancel)

    def _api(self, method: str, route: re.Match) -> None:
        scenario = route["scenario"] or self.fake.default_scenario
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = RecordedRequest(method, self.path, scenario, headers)
        if (scenario == "drop_upload_once" and route["endpoint"] == "images/edits"
                and self.fake.first_time(scenario)):
            # Gone after the headers, the body unread: the client's upload breaks off.
            self.fake.record(request, self.generation)
            self.close_connection = True
            return
        body = self._read_body()
        form, form_error = None, None
        if method == "POST" and route["endpoint"] == "images/edits":
            try:
                form = _parse_form(headers.get("content-type", ""), body)
                request.fields, request.files = form.fields, form.files
                request.file_parts = form.file_parts
            except ApiError as error:
                form_error = error  # answered after the key check, as the real API does
        self.fake.record(request, self.generation)
        self.recorded = request
        if scenario not in SCENARIOS:
            raise ApiError(404, f"Unknown fake scenario {scenario!r}", code="unknown_url")
        self._check_key(headers.get("authorization", ""))
        expected = "GET" if route["endpoint"] == "models" else "POST"
        if method != expected:
            raise ApiError(405, f"Method {method} not allowed here", code="method_not_allowed")
        if form_error is not None:
            raise form_error
        if route["endpoint"] == "models":
            self._models(scenario)
        else:
            self._edit(scenario, validate_edit(form), form)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command == "POST":
                raise ApiError(411, "Length required", code="length_required")
            return b""
        if int(length) > MAX_BODY_BYTES:
            raise ApiError(413, "Request body too large", code="request_too_large")
        body = self.rfile.read(int(length))
        self.body_read = True
        return body

    def _body_unread(self) -> bool:
        """True when the request's body is still on the connection, where the next request
        would be read from: the connection must then close after the answer."""
        if self.body_read:
            return False
        length = self.headers.get("Content-Length", "0")
        return ("Transfer-Encoding" in self.headers
                or not length.isdigit() or int(length) > 0)

    def _check_key(self, authorization: str) -> None:
        if authorization != f"Bearer {self.fake.key}":
            raise ApiError(401, "Invalid Token", code="invalid_api_key")

    # -- answers -----------------------------------------------------------------------
    def _models(self, scenario: str) -> None:
        if scenario == "slow" and self._wait_long():
            return
        if scenario in SERVER_WIDE - {"slow"}:
            self._fail(scenario)
            return
        self._send_json(200, {"object": "list", "data": [
            {"id": model, "object": "model", "owned_by": "openai", "created": 1700000000}
            for model in MODELS]})

    def _edit(self, scenario: str, edit: Edit, form: Form) -> None:
        if scenario == "drop_upload_once":
            scenario = "echo"
        self.scenario = scenario
        if scenario == "plain_router":
            edit.stream = False
        if scenario in SPACED_SCENARIOS + ("plain_router",):
            scenario = "echo"
        if scenario in ("rate_limit", "rate_limit_ms", "drop_once"):
            if self.fake.first_time(scenario + form.fingerprint()):
                self._first_attempt(scenario)
                return
            scenario = "echo"
        if scenario == "slow":
            if self._wait_long():
                return
            scenario = "echo"
        if scenario == "held" or (scenario == "held_previews" and not edit.stream):
            if not self._wait_for_release():
                return
            scenario = "invert"
        if scenario == "held_previews":  # held in _send_events, after the previews
            scenario = "invert"
        answer = ANSWERS.get(scenario)
        if answer is None:
            self._fail(scenario)
            return
        answer(self, edit)

    def _wait_long(self) -> bool:
        """Wait longer than any test's timeout; True when the server stops meanwhile (the
        connection then closes without an answer)."""
        stopped = self.fake.stopping.wait(SLOW_SECONDS)
        if stopped:
            self.close_connection = True
        return stopped

    def _wait_for_release(self) -> bool:
        """Wait until the test sets `held` (True), or the server stops (False)."""
        while not self.fake.held.wait(0.1):
            if self.fake.stopping.is_set():
                self.close_connection = True
                return False
        return True

    def _first_attempt(self, scenario: str) -> None:
        if scenario == "drop_once":
            self.close_connection = True  # no answer at all: the client sees a reset
            return
        header = ("Retry-After", "1") if scenario == "rate_limit" else ("retry-after-ms", "1200")
        self._send_json(429, _error_body("Rate limit reached for requests, please try again "
                                         "later.", "rate_limit_exceeded", "requests"),
                        extra_headers=[header])

    def _fail(self, scenario: str) -> None:
        status, body, content_type = FAILURES[scenario]
        if isinstance(body, dict):
            self._send_json(status, body)
        else:
            self._send(status, body, content_type)

    def _download(self, ident: str) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.fake.record(RecordedRequest("GET", self.path, None, headers), self.generation,
                         download=True)
        data = self.fake.stored(ident)
        if data is None:
            self._send(404, b"Not found", "text/plain")
        else:
            self._send(200, data, "image/png")

    # -- sending -----------------------------------------------------------------------
    def send_images(self, edit: Edit, images: list[bytes], as_url: bool = False) -> None:
        if edit.stream:
            self._send_events(edit, images)
            return
        if as_url:
            data = [{"url": f"http://localhost:{self.fake.port}/_fake/download/"
                            f"{self.fake.store(image)}.png"} for image in images]
        else:
            data = [{"b64_json": base64.b64encode(image).decode("ascii")} for image in images]
        self._send_json(200, edit.answer(data))

    def _send_events(self, edit: Edit, images: list[bytes]) -> None:
        """The answer as the real API streams it, one event every stream_spacing seconds;
        the connection closes at its end."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        answer = edit.answer([{"b64_json": ""}])
        common = {key: answer[key] for key in ("size", "quality", "output_format",
                                               "background")}
        for image in images:
            for index in range(edit.partial_images):
                self._event(edit, "image_edit.partial_image", dict(
                    common, b64_json=base64.b64encode(_partial(image, index)).decode("ascii"),
                    partial_image_index=index, created_at=int(time.time())))
                if self.scenario == "stream_error":
                    self._event(edit, "error", {"type": "error", "error": {
                        "type": "server_error", "code": "server_error", "param": None,
                        "message": "The server had an error while processing your request."}})
                    return
            if self.scenario == "held_previews" and not self._wait_for_release():
                return
            self._event(edit, "image_edit.completed", dict(
                common, b64_json=base64.b64encode(image).decode("ascii"),
                created_at=int(time.time()), usage=answer["usage"]))

    def _event(self, edit: Edit, kind: str, payload: dict) -> None:
        spacing = STREAM_SPACING if self.scenario in SPACED_SCENARIOS else 0.0
        if self.fake.stopping.wait(spacing):
            return
        self.wfile.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()
        if self.recorded is not None:
            self.recorded.events.append((kind, time.monotonic()))

    def _send_json(self, status: int, payload, extra_headers=()) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json",
                   extra_headers)

    def _send(self, status: int, body: bytes, content_type: str, extra_headers=(),
              declared_length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(declared_length or len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        if self.close_connection or self._body_unread():
            self.send_header("Connection", "close")  # sets close_connection too
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, format: str, *args) -> None:
        if self.fake.log is not None:
            print(f"fake-wisgate: {self.address_string()} {format % args}", file=self.fake.log,
                  flush=True)


# -- the request ---------------------------------------------------------------------------
@dataclass
class Form:
    fields: dict[str, str]
    files: dict[str, list[bytes]]
    file_parts: dict[str, list[tuple[str, str]]]

    def fingerprint(self) -> str:
        """The same for two requests with the same content, whatever their boundaries."""
        digest = hashlib.sha256()
        for name in sorted(self.fields):
            digest.update(f"{name}={self.fields[name]}\0".encode())
        for name in sorted(self.files):
            for data in self.files[name]:
                digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()


def _parse_form(content_type: str, body: bytes) -> Form:
    """multipart/form-data with the standard library's email parser (the cgi module is gone
    in Python 3.13)."""
    multipart = content_type.lower().startswith("multipart/form-data")
    if not multipart or "boundary=" not in content_type:
        raise ApiError(400, "Invalid content type: the request must be multipart/form-data.",
                       code="invalid_content_type")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        raise ApiError(400, "Could not parse the multipart form.", code="invalid_multipart")
    fields: dict[str, str] = {}
    files: dict[str, list[bytes]] = {}
    file_parts: dict[str, list[tuple[str, str]]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if name is None:
            raise ApiError(400, "A form part has no name.", code="invalid_multipart")
        if part.get_filename() is not None:
            files.setdefault(name, []).append(data)
            file_parts.setdefault(name, []).append((part.get_filename(),
                                                    part.get_content_type()))
        else:
            fields[name] = data.decode("utf-8")
    return Form(fields, files, file_parts)


@dataclass
class Edit:
    """A validated edit request."""

    images: list[bytes]
    pictures: list[Image.Image]
    mask: Image.Image | None
    prompt: str
    model: str
    n: int
    size: str
    quality: str
    background: str
    output_format: str
    stream: bool = False
    partial_images: int = 0

    def answer(self, data: list[dict]) -> dict:
        width, height = self.pictures[0].size
        size = f"{width}x{height}" if self.size == "auto" else self.size
        output_tokens = (OUTPUT_TOKENS.get(self.quality, 4160)
                         + (PARTIAL_IMAGE_TOKENS * self.partial_images if self.stream else 0)
                         ) * len(data)
        image_tokens = 65 + 129 * sum(_tiles(p.size) for p in self.pictures)
        text_tokens = max(1, len(self.prompt) // 4)
        return {"created": int(time.time()), "data": data,
                "usage": {"input_tokens": image_tokens + text_tokens,
                          "output_tokens": output_tokens,
                          "total_tokens": image_tokens + text_tokens + output_tokens,
                          "input_tokens_details": {"text_tokens": text_tokens,
                                                   "image_tokens": image_tokens}},
                "size": size, "quality": "high" if self.quality == "auto" else self.quality,
                "output_format": self.output_format,
                "background": "opaque" if self.background == "auto" else self.background}


OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 4160}


def _tiles(size: tuple[int, int]) -> int:
    return max(1, -(-size[0] // 512) * -(-size[1] // 512))


def validate_edit(form: Form) -> Edit:
    """Refuse what the real API refuses, with its kind of message."""
    unknown = sorted((set(form.fields) | set(form.files)) - KNOWN_FIELDS)
    if unknown:
        raise ApiError(400, f"Unknown parameter: '{unknown[0]}'.", unknown[0], "unknown_parameter")
    fields = form.fields
    prompt = fields.get("prompt")
    if not prompt:
        raise ApiError(400, "Missing required parameter: 'prompt'.", "prompt",
                       "missing_required_parameter")
    if len(prompt) > MAX_PROMPT:
        raise ApiError(400, f"Invalid 'prompt': string too long. Expected a string with maximum "
                            f"length {MAX_PROMPT}, but got a string with length {len(prompt)} "
                            "instead.", "prompt", "string_above_max_length")
    model = fields.get("model", "gpt-image-2")
    family = model_family(model)
    if family is None:
        raise ApiError(400, f"Invalid value for 'model': '{model}' is not a known image model.",
                       "model", "invalid_value")
    if "image" in form.files and "image[]" in form.files:
        raise ApiError(400, "Send the pictures either as 'image' or as repeated 'image[]', not "
                            "both.", "image", "invalid_value")
    if len(form.files.get("image", [])) > 1:
        raise ApiError(400, "Several pictures must be sent as repeated 'image[]' parts.",
                       "image", "invalid_value")
    images = form.files.get("image", []) + form.files.get("image[]", [])
    if not images:
        raise ApiError(400, "Missing required parameter: 'image'.", "image",
                       "missing_required_parameter")
    if len(images) > 16:
        raise ApiError(400, "Too many images: at most 16.", "image", "invalid_value")
    pictures = [_open_image(data, index + 1) for index, data in enumerate(images)]
    mask = _validated_mask(form.files.get("mask"), pictures[0])
    n = _integer(fields.get("n", "1"), "n", 1, 10)
    if "output_compression" in fields:
        _integer(fields["output_compression"], "output_compression", 0, 100)
    quality = _choice(fields, "quality", QUALITIES, "auto")
    background = _choice(fields, "background", BACKGROUNDS, "auto")
    output_format = _choice(fields, "output_format", OUTPUT_FORMATS, "png")
    fidelity = _choice(fields, "input_fidelity", INPUT_FIDELITIES, "low")
    if "input_fidelity" in fields and family == "gpt-image-2":
        raise ApiError(400, "input_fidelity is not supported for this model.",
                       "input_fidelity", "unsupported_parameter")
    if fidelity == "high" and family == "gpt-image-1-mini":
        raise ApiError(400, "input_fidelity is not supported for gpt-image-1-mini.",
                       "input_fidelity", "invalid_value")
    if background == "transparent" and output_format == "jpeg":
        raise ApiError(400, "Transparent background requires png or webp output.",
                       "background", "invalid_value")
    size = fields.get("size", "auto")
    _check_size(size, family)
    stream = _choice(fields, "stream", ("true", "false"), "false") == "true"
    partial_images = _integer(fields.get("partial_images", "0"), "partial_images", 0, 3)
    if stream and model == "dall-e-2":
        raise ApiError(400, "Streaming is not supported for dall-e-2.", "stream",
                       "invalid_value")
    return Edit(images, pictures, mask, prompt, model, n, size, quality, background,
                output_format, stream, partial_images)


def _open_image(data: bytes, number: int) -> Image.Image:
    invalid = ApiError(400, f"Invalid image file or mode for image {number}, please check your "
                            "image file.", "image", "invalid_image_file")
    if len(data) > MAX_IMAGE_BYTES:
        raise ApiError(400, f"Image {number} is larger than 50 MB.", "image", "image_too_large")
    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()
    except Exception:
        raise invalid from None
    if picture.format not in IMAGE_FORMATS:
        raise invalid
    return picture


def _validated_mask(parts: list[bytes] | None, image: Image.Image) -> Image.Image | None:
    if not parts:
        return None
    data = parts[0]
    if len(parts) > 1 or len(data) > MAX_MASK_BYTES:
        raise ApiError(400, "Invalid mask: one PNG under 4 MB.", "mask", "invalid_value")
    try:
        mask = Image.open(io.BytesIO(data))
        mask.load()
    except Exception:
        mask = None
    if mask is None or mask.format != "PNG":
        raise ApiError(400, "Invalid mask image format - mask must be a PNG file.", "mask",
                       "invalid_image_format")
    if "A" not in mask.getbands() and "transparency" not in mask.info:
        raise ApiError(400, "Invalid mask: the mask must have an alpha channel.", "mask",
                       "invalid_image_format")
    if mask.size != image.size:
        raise ApiError(400, "Invalid mask image format - mask size does not match image size",
                       "mask", "invalid_image_format")
    return mask


def _integer(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"Invalid type for '{name}': expected an integer, but got "
                            f"'{text}' instead.", name, "invalid_type") from None
    if not low <= value <= high:
        relation = "below minimum" if value < low else "above maximum"
        bound = low if value < low else high
        raise ApiError(400, f"{value} is {relation} value for '{name}' ({bound}).", name,
                       "integer_below_min_value" if value < low else "integer_above_max_value")
    return value


def _choice(fields: dict, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = fields.get(name, default)
    if value not in allowed:
        options = ", ".join(f"'{option}'" for option in allowed)
        raise ApiError(400, f"Invalid value: '{value}'. Supported values are: {options}.",
                       name, "invalid_value")
    return value


def model_family(model: str) -> str | None:
    """The known model `model` is, or a dated snapshot ("gpt-image-2-2026-04-21") or later
    version ("gpt-image-2.5-preview") of; None for a model the API does not know."""
    if model in MODELS:
        return model
    if model.startswith("gpt-image-2-") or model.startswith("gpt-image-2."):
        return "gpt-image-2"
    return None


def _check_size(size: str, model: str) -> None:
    if size == "auto" or size in FIXED_SIZES[model]:
        return
    if model == "gpt-image-2" and _valid_gpt_image_2_size(size):
        return
    allowed = ", ".join(f"'{s}'" for s in FIXED_SIZES[model] + ("auto",))
    extra = (" or WIDTHxHEIGHT in multiples of 16, ratio within 1:3 to 3:1, at most 3840 on the "
             "long side, 655360 to 3840x2160 pixels" if model == "gpt-image-2" else "")
    raise ApiError(400, f"Invalid value: '{size}'. Supported values are: {allowed}{extra}.",
                   "size", "invalid_value")


def _valid_gpt_image_2_size(size: str) -> bool:
    match = re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", size)
    if not match:
        return False
    width, height = int(match[1]), int(match[2])
    return (width % 16 == 0 and height % 16 == 0 and width * height >= GPT_IMAGE_2_MIN_PIXELS
            and max(width, height) <= 3 * min(width, height)
            and max(width, height) <= GPT_IMAGE_2_LONG_SIDE
            and width * height <= GPT_IMAGE_2_PIXELS)


# -- scenario answers ----------------------------------------------------------------------
def _partial(image: bytes, index: int) -> bytes:
    """A partial image: the final picture coarser the earlier it comes (a mosaic)."""
    picture = Image.open(io.BytesIO(image)).convert("RGB")
    block = 2 ** (4 - index)
    small = picture.resize((max(1, picture.width // block), max(1, picture.height // block)))
    return _png(small.resize(picture.size, Image.Resampling.NEAREST))


def _echo(handler: WisGateHandler, edit: Edit) -> None:
    # The bytes exactly as uploaded: no decoding, no re-encoding.
    handler.send_images(edit, [edit.images[0]] * edit.n)


def _invert(handler: WisGateHandler, edit: Edit) -> None:
    picture = edit.pictures[0].convert("RGBA")
    red, green, blue, alpha = picture.split()
    inverted = ImageChops.invert(Image.merge("RGB", (red, green, blue)))
    inverted.putalpha(alpha)
    if edit.mask is not None:
        editable = edit.mask.convert("RGBA").getchannel("A").point(lambda a: 255 if a == 0 else 0)
        picture.paste(inverted, (0, 0), editable)
        result = picture
    else:
        result = inverted
    handler.send_images(edit, [_png(result)] * edit.n)


def _url(handler: WisGateHandler, edit: Edit) -> None:
    handler.send_images(edit, [edit.images[0]] * edit.n, as_url=True)


def _resize(handler: WisGateHandler, edit: Edit) -> None:
    picture = edit.pictures[0]
    size = RESIZED if picture.size != RESIZED else (1536, 1024)
    handler.send_images(edit, [_png(picture.convert("RGBA").resize(size))] * edit.n)


def _fewer(handler: WisGateHandler, edit: Edit) -> None:
    handler.send_images(edit, [edit.images[0]] * (edit.n - 1))


def _bad_base64(handler: WisGateHandler, edit: Edit) -> None:
    handler._send_json(200, edit.answer([{"b64_json": "this is %% not base64!"}] * edit.n))


def _bad_json(handler: WisGateHandler, edit: Edit) -> None:
    handler._send(200, b'{"created": 1713833628, "data": [{"b64_json": "iVBORw0KGgo',
                  "application/json")


def _truncated(handler: WisGateHandler, edit: Edit) -> None:
    body = json.dumps(edit.answer([{"b64_json": base64.b64encode(edit.images[0]).decode()}]))
    body = body.encode()
    handler.close_connection = True
    handler._send(200, body[: len(body) // 2], "application/json", declared_length=len(body))


def _no_data(handler: WisGateHandler, edit: Edit) -> None:
    answer = edit.answer([])
    del answer["data"]
    handler._send_json(200, answer)


def _insecure_url(handler: WisGateHandler, edit: Edit) -> None:
    # Plain http to a host that is not this computer (and never resolves): must be refused.
    handler._send_json(200, edit.answer([
        {"url": f"http://{INSECURE_HOST}:{handler.fake.port}/_fake/download/"
                f"{handler.fake.store(edit.images[0])}.png"}] * edit.n))


def square_box(size: tuple[int, int], mask: Image.Image | None) -> tuple[int, int, int, int]:
    """Where the picture scenarios paint their square, in the request canvas (x1, y1, x2, y2
    exclusive)."""
    if mask is not None:
        editable = mask.convert("RGBA").getchannel("A").point(lambda a: 255 if a == 0 else 0)
        left, top, right, bottom = editable.getbbox() or (0, 0) + size
        width, height = right - left, bottom - top
        return (left + width // 4, top + height // 4, right - width // 4, bottom - height // 4)
    side = min(size) // 4
    left, top = (size[0] - side) // 2, (size[1] - side) // 2
    return left, top, left + side, top + side


def cast_table(mode: str) -> list[int]:
    table = []
    for gain, offset in CAST:
        table += [min(255, max(0, round(gain * value + offset))) for value in range(256)]
    return table + list(range(256)) * (len(mode) - 3)


def _model(handler: WisGateHandler, edit: Edit, effects: tuple[str, ...]) -> None:
    picture = edit.pictures[0].convert("RGB")
    if "square" in effects:
        x1, y1, x2, y2 = square_box(picture.size, edit.mask)
        ImageDraw.Draw(picture).rectangle((x1, y1, x2 - 1, y2 - 1), fill=SQUARE_COLOUR)
    if "blur" in effects:
        picture = picture.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    if "cast" in effects:
        picture = picture.point(cast_table(picture.mode))
    handler.send_images(edit, [_png(picture)] * edit.n)


ANSWERS = {"echo": _echo, "invert": _invert, "url": _url, "resize": _resize, "fewer": _fewer,
           "bad_base64": _bad_base64, "bad_json": _bad_json, "truncated": _truncated,
           "insecure_url": _insecure_url, "no_data": _no_data,
           **{name: (lambda handler, edit, effects=effects: _model(handler, edit, effects))
              for name, effects in MODEL_EFFECTS.items()}}


def _error_body(message: str, code: str | None, error_type: str,
                param: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


FAILURES = {
    "quota": (429, _error_body("You exceeded your current quota, please check your plan and "
                               "billing details.", "insufficient_quota", "insufficient_quota"),
              None),
    "server_error": (500, _error_body("The server had an error while processing your request. "
                                      "Sorry about that!", None, "server_error"), None),
    "unavailable": (503, _error_body("The engine is currently overloaded, please try again "
                                     "later.", None, "server_error"), None),
    "html_502": (502, HTML_502, "text/html"),
    "moderation": (400, _error_body("Your request was rejected as a result of our safety "
                                    "system. Your request may contain content that is not "
                                    "allowed by our safety system.", "moderation_blocked",
                                    "image_generation_user_error"), None),
    "too_large": (413, HTML_413, "text/html"),
    "forbidden": (403, _error_body("This token has been disabled.", "token_disabled",
                                   "new_api_error"), None),
}


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def describe_file(data: bytes) -> dict:
    """Size, sha256 and (for a PNG) pixel size: what /_fake/requests shows of a file."""
    description = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        description["png_size"] = [int.from_bytes(data[16:20], "big"),
                                   int.from_bytes(data[20:24], "big")]
    return description


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.fake_wisgate",
                                     description="A strict local stand-in for the WisGate "
                                                 "images API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", default=DEFAULT_KEY)
    parser.add_argument("--scenario", default="echo", choices=SCENARIOS,
                        help="what {base}/v1 does; /scenario/NAME/v1 picks another")
    args = parser.parse_args(argv)
    fake = FakeWisGate(args.host, args.port, args.key, args.scenario, log=sys.stderr)
    print(f"Fake WisGate on {fake.base_url} (scenario {args.scenario}, key {args.key!r})",
          flush=True)
    print(f"  GPT_IMAGE_EDIT_BASE_URL={fake.base_url} GPT_IMAGE_EDIT_API_KEY={args.key}",
          flush=True)
    print(f"  other scenarios: {fake.origin}/scenario/NAME/v1 with NAME one of "
          f"{', '.join(SCENARIOS)}", flush=True)
    try:
        fake.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stopping.set()
        fake.httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
