"""The WisGate images client: one edit request built in one place, retries, answers.

Retries are a small loop of our own with the policy as data (RetryPolicy), not urllib3's
Retry: urllib3 knows neither `retry-after-ms` nor quota errors hidden in a 429's body, and
cannot report each retry to the user as it happens.

The API key goes only to the endpoint: API calls never follow redirects, and pictures
answered as `url` are fetched by a separate session that carries the key only when the
picture is on the endpoint's own scheme, host and port, as urllib3 reads them to connect
(transport.py). Every request has a total deadline of 4 times the timeout, and every answer
is read with a limit on its decoded size that follows what was asked for.

An edit asked with `partial_images` is streamed (`stream=true`): the answer is server-sent
events (events.py), read as they arrive under the same total deadline and the same cap on
decoded bytes; each partial image goes to the caller's `on_preview` at once, and only the
`image_edit.completed` pictures are results. A router that ignores `stream` and answers
plain JSON is read as a plain answer (told apart by its content type).

Waiting before a retry is bounded per edit (WaitBudget): at most 60 s a wait and 120 s in
all, shared with the command line's batch throttle; a server that asks for more gets the
rate-limit sentence instead of a stalled edit.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import io
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import requests
from urllib3.exceptions import ReadTimeoutError

from . import __version__
from .errors import (
    AuthenticationError,
    BadInputError,
    BadRequestError,
    BadResponseError,
    EditError,
    MissingKeyError,
    ModerationError,
    NetworkError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TooLargeError,
    endpoint_has_userinfo,
    settings_place,
)
from .events import EventParser, EventTooLarge
from .geometry import is_gpt_image, takes_input_fidelity
from .logs import redact, register_secret
from .settings import FILE_SOURCE, Settings
from .transport import (
    CutOff,
    Deadline,
    Origin,
    TooLarge,
    UnsafeURL,
    bounded_blocks,
    check_unambiguous,
    follow,
    read_bounded,
    session,
)

log = logging.getLogger(__name__)

USER_AGENT = f"gpt-image-edit/{__version__}"
CONNECT_TIMEOUT = 10.0
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 5
# No request lasts longer than this many times the timeout (the longest wait for a byte).
DEADLINE_FACTOR = 4
# Error answers, model lists and the like are small; only pictures are large.
MAX_SMALL_ANSWER = 1024 * 1024
# An answer holds n pictures of the requested size: at most 4 bytes a pixel uncompressed
# (PNG adds a filter byte a row and a little framing), 4/3 for base64, then a margin for
# pictures a little larger than asked and the JSON around them.
ANSWER_BYTES_PER_PIXEL = 4
ANSWER_MARGIN_FACTOR = 1.25
ANSWER_MARGIN_BYTES = 2 * 1024 * 1024
# Retry-After is honoured up to this long a wait, and this long in all for one edit.
MAX_WAIT = 60.0
MAX_WAITS_PER_EDIT = 120.0
DETAIL_LENGTH = 300
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
QUOTA_WORDS = ("quota", "balance", "insufficient", "credit")
# The API's name of a refused field -> what the retoucher sees in the dialog.
SETTING_OF_PARAM = {"n": "the Variants setting", "size": "the Size setting",
                    "model": "the Model setting", "quality": "the Quality setting",
                    "prompt": "the Prompt", "image": "the layer or the selection",
                    "mask": "the layer or the selection"}

EventHandler = Callable[[str, str], None]
# on_preview(number, picture bytes): the number counts the previews of one edit from 1.
PreviewHandler = Callable[[int, bytes], None]
EVENT_STREAM = "text/event-stream"
PARTIAL_IMAGE_EVENT = "image_edit.partial_image"
COMPLETED_EVENT = "image_edit.completed"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a failed request again."""

    max_retries: int = 2
    backoff: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 60.0
    statuses: frozenset = RETRY_STATUSES

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 for the first): the server's
        wish when it said one (the caller refuses it above `retry_after_max`), else
        exponential backoff with jitter."""
        if retry_after is not None:
            return max(retry_after, 0.0)
        ceiling = min(self.backoff * 2 ** retry, self.backoff_max)
        return ceiling * (1.0 - 0.25 * random.random())


class WaitBudget:
    """The waiting one edit may do before trying again, wherever it waits (the client's
    retries, the command line's batch throttle): `per_wait` at most a wait and `total` in
    all. Thread-safe: a batch shares nothing but each edit's own budget."""

    def __init__(self, per_wait: float = MAX_WAIT, total: float = MAX_WAITS_PER_EDIT):
        self.per_wait = per_wait
        self.total = total
        self.spent = 0.0
        self._lock = threading.Lock()

    def spend(self, seconds: float) -> bool:
        """Take `seconds` from the budget; False (nothing taken) when it does not allow them."""
        with self._lock:
            if seconds > self.per_wait or self.spent + seconds > self.total:
                return False
            self.spent += seconds
            return True


@dataclass(frozen=True)
class EditRequest:
    """One edit: PNG bytes of the picture (and mask, alpha 0 where it may change)."""

    image: bytes = field(repr=False)
    prompt: str
    model: str
    size: str
    quality: str
    n: int = 1
    mask: bytes | None = field(default=None, repr=False)
    background: str = "opaque"
    output_format: str = "png"
    input_fidelity: str | None = None
    # PNG bytes of reference pictures, sent after the edited one (the mask applies to the
    # first only). With references every picture goes as a repeated `image[]` part.
    references: tuple[bytes, ...] = field(default=(), repr=False)
    # Partial images (live previews) per picture, 0-3: above 0 the answer is streamed.
    partial_images: int = 0

    @property
    def streams(self) -> bool:
        """Streamed with previews: asked for, and a GPT image model (dall-e-2 and other
        models get a plain request)."""
        return self.partial_images > 0 and is_gpt_image(self.model)

    def form_fields(self) -> dict[str, str]:
        fields = {"prompt": self.prompt, "model": self.model, "n": str(self.n),
                  "size": self.size, "quality": self.quality, "background": self.background,
                  "output_format": self.output_format}
        if self.input_fidelity and takes_input_fidelity(self.model):
            fields["input_fidelity"] = self.input_fidelity
        if self.streams:
            fields["stream"] = "true"
            fields["partial_images"] = str(self.partial_images)
        return fields

    def form_files(self) -> list[tuple[str, tuple[str, bytes, str]]]:
        if self.references:
            files = [("image[]", (f"image-{number}.png", data, "image/png"))
                     for number, data in enumerate((self.image, *self.references), start=1)]
        else:
            files = [("image", ("image.png", self.image, "image/png"))]
        if self.mask is not None:
            files.append(("mask", ("mask.png", self.mask, "image/png")))
        return files

    @property
    def upload_bytes(self) -> int:
        return len(self.image) + len(self.mask or b"") + sum(map(len, self.references))

    def answer_limit(self) -> int:
        """The most bytes (decoded) an answer to this request can need: n pictures of the
        requested size, uncompressed, in base64, plus a margin."""
        pictures = self.n * (1 + self.partial_images if self.streams else 1)
        return pictures * self.picture_limit() - (pictures - 1) * ANSWER_MARGIN_BYTES

    def picture_limit(self) -> int:
        """The most bytes (decoded) one picture of the requested size can take in base64,
        with the margin: the cap on one event of a streamed answer."""
        width, height = _size_of(self.size)
        picture = width * height * ANSWER_BYTES_PER_PIXEL + height
        return int(picture * 4 / 3 * ANSWER_MARGIN_FACTOR) + ANSWER_MARGIN_BYTES


@dataclass
class EditResponse:
    """The pictures as received (encoded bytes) and the API's `usage` ({} without one)."""

    images: list[bytes] = field(repr=False)
    usage: dict


@dataclass
class Answer:
    """An HTTP answer read whole (within its limit and the deadline)."""

    status_code: int
    headers: requests.structures.CaseInsensitiveDict
    content: bytes
    url: str
    method: str
    # A streamed answer, read as it arrived (its content then stays empty).
    streamed: EditResponse | None = None

    @property
    def is_redirect(self) -> bool:
        return "location" in self.headers and self.status_code in (301, 302, 303, 307, 308)


class ImagesClient:
    def __init__(self, settings: Settings, retry: RetryPolicy = RetryPolicy(),
                 on_event: EventHandler | None = None, waits: WaitBudget | None = None):
        self.settings = settings
        self.retry = retry
        self.waits = waits or WaitBudget(per_wait=retry.retry_after_max)
        self._on_event = on_event
        register_secret(settings.api_key)
        self.base_url = usable_endpoint(settings.base_url)
        self.origin = Origin.of(self.base_url)
        self._api = session(USER_AGENT)
        self._downloads = session(USER_AGENT)  # never given the key: pictures may live elsewhere

    def close(self) -> None:
        self._api.close()
        self._downloads.close()

    def __enter__(self) -> ImagesClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the two calls -----------------------------------------------------------------
    def edit(self, request: EditRequest,
             on_preview: PreviewHandler | None = None) -> EditResponse:
        """The edit's pictures and usage. With `request.streams`, `on_preview(number, png)`
        hears each partial image as it arrives (number from 1 in arrival order)."""
        authorization = self._authorization()
        url = f"{self.base_url}/images/edits"
        size = _megabytes(request.upload_bytes)
        limit = request.answer_limit()
        response = self._with_retries(
            lambda: self._post_edit(url, request, authorization, size, limit, on_preview),
            "edit")
        if response.streamed is not None:
            return response.streamed
        answer = self._json(response)
        del response  # the answer's bytes: only the parsed pictures are kept from here on
        images = self._images(answer, request.n)
        usage = answer.get("usage")
        return EditResponse(images, usage if isinstance(usage, dict) else {})

    def check(self) -> str:
        """Is the endpoint reachable and the key accepted? Spends no image credits."""
        authorization = self._authorization()
        url = f"{self.base_url}/models"
        response = self._with_retries(lambda: self._fetch(
            self._api, "GET", url, authorization, MAX_SMALL_ANSWER), "check")
        self._json(response)
        return f"Connected to {self.origin.host}: the API key is accepted."

    # -- the request -------------------------------------------------------------------
    def _authorization(self) -> dict[str, str]:
        if not self.settings.api_key:
            raise MissingKeyError()
        return {"Authorization": f"Bearer {self.settings.api_key}"}

    def _timeouts(self) -> tuple[float, float]:
        return (min(CONNECT_TIMEOUT, self.settings.timeout), self.settings.timeout)

    def _post_edit(self, url: str, request: EditRequest, authorization: dict,
                   size: str, limit: int, on_preview: PreviewHandler | None) -> Answer:
        prepared = self._api.prepare_request(requests.Request(
            "POST", url, headers=authorization, data=request.form_fields(),
            files=request.form_files()))
        # The body is handed over as a stream so that reaching its end tells us the upload
        # is complete (Content-Length stays the one requests computed).
        body = _UploadBody(prepared.body, lambda: self._event(
            "wait", f"Waiting for {request.model}"))
        prepared.body = body
        self._event("upload", f"Sending {size} to {request.model}")
        stream = None
        if request.streams:
            stream = _StreamedEdit(request, on_preview)
        try:
            return self._send(self._api, prepared, limit, stream=stream)
        except requests.exceptions.ConnectionError as error:
            if body.sent and not _is_read_timeout(error):
                raise _DroppedAfterUpload() from error
            raise

    def _fetch(self, http: requests.Session, method: str, url: str, headers: dict,
               limit: int, too_large: Callable[[], EditError] | None = None) -> Answer:
        prepared = http.prepare_request(requests.Request(method, url, headers=headers))
        return self._send(http, prepared, limit, too_large)

    def _send(self, http: requests.Session, prepared: requests.PreparedRequest,
              limit: int, too_large: Callable[[], EditError] | None = None,
              stream: _StreamedEdit | None = None) -> Answer:
        """Send and read the whole answer within the total deadline: at most `limit`
        decoded bytes of a successful answer, a little of an error, nothing of a
        redirect. A successful event stream goes to `stream` as it arrives."""
        # Session.send, unlike Session.request, does not read proxies and CA bundles from
        # the environment by itself.
        environment = http.merge_environment_settings(prepared.url, {}, True, None, None)
        with Deadline(DEADLINE_FACTOR * self.settings.timeout) as deadline:
            try:
                response = http.send(prepared, timeout=self._timeouts(), allow_redirects=False,
                                     **environment)
            except requests.exceptions.RequestException:
                if deadline.expired:
                    raise _OutOfTime() from None
                raise
            with response:
                answer = Answer(response.status_code, response.headers, b"", response.url,
                                prepared.method or "")
                if answer.is_redirect:
                    return answer
                wanted = limit if response.status_code < 400 else MAX_SMALL_ANSWER
                try:
                    if (stream is not None and response.status_code < 400
                            and _is_event_stream(response)):
                        answer.streamed = stream.read(bounded_blocks(response, wanted,
                                                                     promptly=True))
                    else:
                        answer.content = read_bounded(response, wanted)
                except TooLarge:
                    if deadline.expired:
                        raise _OutOfTime() from None
                    if response.status_code >= 400:
                        answer.content = b""  # an oversized error page says nothing useful
                    else:
                        raise _AnswerTooLarge((too_large or _answer_too_large)()) from None
                except CutOff as cut:
                    if deadline.expired:
                        raise _OutOfTime() from None
                    if cut.timed_out:
                        raise requests.exceptions.ReadTimeout() from None
                    raise requests.exceptions.ChunkedEncodingError() from None
            if deadline.expired:
                raise _OutOfTime()
        return answer

    def _with_retries(self, attempt: Callable[[], Answer], what: str,
                      error_for: Callable[[Answer], EditError] | None = None) -> Answer:
        """Run `attempt` until it answers below 400 (redirects are the caller's to judge),
        retrying what the policy allows, waiting only what the edit's WaitBudget allows.
        `error_for` turns an error answer into its error."""
        retries = 0
        while True:
            outcome = self._attempt(attempt, error_for or self._error_for)
            if not isinstance(outcome, Failure):
                return outcome
            log.info("%s failed: %s", what, outcome.error)
            if not outcome.retryable or retries >= self.retry.max_retries:
                raise _with_tries(outcome.error, retries + 1) if retries else outcome.error
            delay = self.retry.delay(retries, outcome.retry_after)
            if delay > self.retry.retry_after_max or not self.waits.spend(delay):
                raise waited_enough(outcome.error, delay)
            self._event("retry", f"{outcome.reason}, trying again in {_seconds(delay)}")
            time.sleep(delay)
            retries += 1

    def _attempt(self, attempt: Callable[[], Answer],
                 error_for: Callable[[Answer], EditError]) -> Answer | Failure:
        try:
            response = attempt()
        except _OutOfTime:
            # Not retried: the edit may have run (and been billed) all the same.
            return Failure(self._out_of_time())
        except _AnswerTooLarge as too_large:
            return Failure(too_large.error)
        except requests.exceptions.SSLError:
            return Failure(NetworkError(
                f"The secure connection to {self.origin.host} could not be verified: check "
                f"the endpoint in {settings_place()} and the computer's date and time."))
        except requests.exceptions.ConnectTimeout:
            return Failure(self._unreachable(), retryable=True, reason="Connection failed")
        except requests.exceptions.ReadTimeout:
            # Not retried: the edit may have run (and been billed) all the same.
            return Failure(self._timed_out())
        except requests.exceptions.ChunkedEncodingError:
            return Failure(BadResponseError("WisGate's answer was cut off before it was "
                                            "complete: try again."))
        except _DroppedAfterUpload:
            # Not retried, like a read timeout: the edit may have run (and been billed).
            return Failure(NetworkError(
                f"The connection to {self.origin.host} dropped while WisGate was working on "
                "the edit, which may still have been billed: try again."))
        except requests.exceptions.ConnectionError as error:
            if _is_read_timeout(error):
                return Failure(self._timed_out())
            # Refused, or dropped before the request was completely sent: nothing ran.
            return Failure(self._unreachable(), retryable=True, reason="Connection failed")
        except requests.exceptions.RequestException as error:
            return Failure(NetworkError(redact(
                f"The request to {self.origin.host} failed ({type(error).__name__}): check "
                f"the endpoint in {settings_place()}.")))
        log.info("%s %s: HTTP %d", response.method, response.url, response.status_code)
        if response.status_code < 400:
            return response
        error = error_for(response)
        return Failure(error, retryable=(response.status_code in self.retry.statuses
                                         and not isinstance(error, QuotaError)),
                       retry_after=getattr(error, "retry_after", None),
                       reason=("Rate limited" if isinstance(error, RateLimitError)
                               else f"WisGate is having trouble (HTTP {response.status_code})"))

    def _unreachable(self) -> NetworkError:
        return NetworkError(f"Could not reach {self.origin.host}: check the internet connection "
                            f"and the endpoint in {settings_place()}, then try again.")

    def _out_of_time(self) -> RequestTimeoutError:
        total = DEADLINE_FACTOR * self.settings.timeout
        return RequestTimeoutError(
            f"WisGate's answer did not arrive within {total:g} s ({DEADLINE_FACTOR} times the "
            f"timeout of {self.settings.timeout:g} s): raise the timeout "
            f"(GPT_IMAGE_EDIT_TIMEOUT or {settings_place()}) and try again.")

    def _timed_out(self) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"WisGate did not answer within {self.settings.timeout:g} s: raise the timeout "
            f"(GPT_IMAGE_EDIT_TIMEOUT or {settings_place()}) and try again.")

    # -- errors ------------------------------------------------------------------------
    def _error_for(self, response: Answer) -> EditError:
        status = response.status_code
        message, code, kind, param = _error_details(response)
        detail = _detail(message)
        if status == 401:
            return self._key_refused()
        if status == 403:
            return PermissionDeniedError(redact(
                f"WisGate refused this request for your API key{detail}: check the key and "
                "your account on wisgate.ai, or choose another model."))
        if status == 404 or status == 405:
            return BadRequestError(redact(
                f"{self.base_url} does not offer the images API (HTTP {status}): check the "
                f"endpoint in {settings_place()} (it usually ends in /v1)."))
        if status == 413:
            return TooLargeError()
        if status == 429:
            return self._too_many(response, message, code, kind)
        if status >= 500 or status in (408, 409):
            words = _server_words(message)
            return ServerError(redact(
                f"The WisGate server or its gateway is having trouble (HTTP {status}"
                f"{': ' + words if words else ''}): try again in a few minutes."))
        return _refusal(message, code, param)

    def _key_refused(self) -> AuthenticationError:
        source = self.settings.key_source
        if source and source != FILE_SOURCE:
            return AuthenticationError(
                f"WisGate did not accept the API key set in {source}: correct or unset it "
                f"(the key in {settings_place()} is used only when no such variable is set).")
        return AuthenticationError()

    def _too_many(self, response, message, code, kind) -> EditError:
        text = " ".join(str(part) for part in (message, code, kind) if part).lower()
        if code == "insufficient_quota" or any(word in text for word in QUOTA_WORDS):
            return QuotaError()
        return RateLimitError(retry_after=_retry_after(response.headers))

    # -- the answer --------------------------------------------------------------------
    def _json(self, response: Answer) -> dict:
        if response.is_redirect:
            raise BadInputError(redact(
                f"The endpoint {self.base_url} redirects elsewhere: set the endpoint to its "
                f"final address in {settings_place()}."))
        try:
            answer = json.loads(response.content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if _looks_like_html(response):
                raise ServerError("The WisGate server or its gateway is having trouble (it "
                                  "answered with a web page instead of data): try again in "
                                  "a few minutes.")
            raise BadResponseError("WisGate's answer was incomplete or not valid JSON: "
                                   "try again in a few minutes.")
        return answer

    def _images(self, answer: dict, wanted: int) -> list[bytes]:
        data = answer.get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise BadResponseError("WisGate's answer held no pictures: try again in a few "
                                   "minutes.")
        if len(data) < wanted:
            got = "no picture" if not data else f"only {len(data)} of the {wanted} pictures"
            raise BadResponseError(f"WisGate sent back {got} asked for: try again, perhaps "
                                   "with fewer variants.")
        # Only what was asked for is used (and paid for); extra pictures are dropped unread.
        del data[wanted:]
        images = []
        for index, item in enumerate(data):
            images.append(self._image(item, index + 1, wanted))
            data[index] = None  # each base64 text goes as soon as its picture is decoded
        return images

    def _image(self, item: dict, number: int, count: int) -> bytes:
        if isinstance(item.get("b64_json"), str):
            return _decode_base64(item.pop("b64_json"))
        if isinstance(item.get("url"), str):
            self._event("download", f"Downloading result {number} of {count}")
            return self._download(item["url"])
        raise BadResponseError("WisGate's answer held neither a picture nor its address: "
                               "try again.")

    # -- pictures answered by address ----------------------------------------------------
    def _download(self, url: str) -> bytes:
        location = None
        for _ in range(MAX_REDIRECTS + 1):
            try:
                url = check_unambiguous(url) if location is None else follow(url, location)
            except UnsafeURL as reason:
                raise BadResponseError(f"WisGate pointed to its result at an address that "
                                       f"could be misread ({reason}), so it was not fetched: "
                                       "try again.") from None
            origin = Origin.of(url)
            if not origin.is_safe:
                raise BadResponseError(redact(
                    f"WisGate pointed to its result at an address that is not secure "
                    f"({origin.scheme}://{origin.host}), so it was not fetched: try again."))
            headers = self._authorization() if origin == self.origin else {}
            answer = self._with_retries(
                lambda url=url, headers=headers: self._fetch(
                    self._downloads, "GET", url, headers, MAX_DOWNLOAD_BYTES,
                    _too_big_download), "download", _download_failed)
            if not answer.is_redirect:
                return answer.content
            location = answer.headers["Location"]
        raise BadResponseError("The address of WisGate's result redirects too often: try again.")

    def _event(self, stage: str, message: str) -> None:
        log.info("%s: %s", stage, message)
        if self._on_event is not None:
            self._on_event(stage, message)


class _StreamedEdit:
    """An edit's server-sent events: previews handed on as they arrive, the completed
    pictures kept (only the first `n`), `usage` added up over them; an `error` event is the
    edit's failure."""

    def __init__(self, request: EditRequest, on_preview: PreviewHandler | None):
        self._request = request
        self._on_preview = on_preview
        self._previews = 0
        self._images: list[bytes] = []
        self._usage: dict = {}

    def read(self, blocks) -> EditResponse:
        parser = EventParser(self._request.picture_limit())
        try:
            for block in blocks:
                for event in parser.feed(block):
                    self._event(event)
        except EventTooLarge:
            raise TooLarge() from None
        wanted = self._request.n
        if len(self._images) < wanted:
            got = ("no picture" if not self._images
                   else f"only {len(self._images)} of the {wanted} pictures")
            raise BadResponseError(f"WisGate's stream ended with {got} asked for: try again.")
        return EditResponse(self._images, self._usage)

    def _event(self, event) -> None:
        if event.data.strip() == b"[DONE]":
            return
        try:
            payload = json.loads(event.data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise BadResponseError("WisGate's stream held an event that is not valid JSON: "
                                   "try again in a few minutes.")
        kind = payload.get("type") or event.name
        if kind == "error" or event.name == "error" or payload.get("error"):
            raise _stream_error(payload)
        if kind == PARTIAL_IMAGE_EVENT:
            self._preview(payload)
        elif kind == COMPLETED_EVENT:
            self._completed(payload)

    def _preview(self, payload: dict) -> None:
        # At most the previews asked for: an endless supply of them is only read past.
        if self._previews >= self._request.n * self._request.partial_images:
            return
        text = payload.get("b64_json")
        if not isinstance(text, str) or self._on_preview is None:
            return
        self._previews += 1
        self._on_preview(self._previews, _decode_base64(text))

    def _completed(self, payload: dict) -> None:
        if len(self._images) >= self._request.n:
            return  # only what was asked for is used
        text = payload.get("b64_json")
        if not isinstance(text, str):
            raise BadResponseError("WisGate's stream finished without the picture: try "
                                   "again.")
        self._images.append(_decode_base64(text))
        _add_usage(self._usage, payload.get("usage"))


def _stream_error(payload: dict) -> EditError:
    """The error an `error` event reports, in the API's error shape or flat."""
    error = payload.get("error") if isinstance(payload.get("error"), dict) else payload
    message, code = _text(error.get("message")), _text(error.get("code"))
    if code == "moderation_blocked" or "safety system" in (message or "").lower():
        return ModerationError()
    return ServerError(redact(f"WisGate stopped the edit before it was finished"
                              f"{_detail(message)}, so nothing was saved: try again."))


def _add_usage(total: dict, usage) -> None:
    """Add the counts of one picture's `usage` into `total` (nested objects alike)."""
    if not isinstance(usage, dict):
        return
    for name, value in usage.items():
        if isinstance(value, dict):
            _add_usage(total.setdefault(name, {}), value)
        elif isinstance(value, int) and not isinstance(value, bool):
            total[name] = total.get(name, 0) + value
        else:
            total.setdefault(name, value)


def _is_event_stream(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return content_type.split(";")[0].strip().lower() == EVENT_STREAM


@dataclass
class Failure:
    """One attempt that failed: the error to raise, and whether and when to try again."""

    error: EditError
    retryable: bool = False
    retry_after: float | None = None
    reason: str = ""


class _DroppedAfterUpload(requests.exceptions.ConnectionError):
    """The connection dropped after the whole edit request was sent."""


class _OutOfTime(Exception):
    """The request's total deadline passed."""


class _AnswerTooLarge(Exception):
    """A successful answer was larger than its limit; `error` says so."""

    def __init__(self, error: EditError):
        super().__init__(str(error))
        self.error = error


def _answer_too_large() -> BadResponseError:
    return BadResponseError("WisGate's answer was far larger than the pictures asked for, so "
                            "it was not read: try again, and check the endpoint if it keeps "
                            "happening.")


class _UploadBody:
    """The request body read by urllib3 block by block; `on_sent` runs once at its end,
    when `sent` turns true."""

    def __init__(self, data: bytes, on_sent: Callable[[], None]):
        self._stream = io.BytesIO(data)
        self._on_sent = on_sent
        self.sent = False

    def read(self, size: int = -1) -> bytes:
        block = self._stream.read(size)
        if not block and not self.sent:
            self.sent = True
            self._on_sent()
        return block


def _download_failed(response: Answer) -> EditError:
    return BadResponseError(f"WisGate's result could not be fetched from its address "
                            f"(HTTP {response.status_code}): try again.")


def _too_big_download() -> BadResponseError:
    return BadResponseError(f"WisGate's result is larger than {_megabytes(MAX_DOWNLOAD_BYTES)}, "
                            "so it was not fetched: try again with a smaller size.")


def _error_details(response: Answer) -> tuple[str | None, str | None, str | None,
                                                          str | None]:
    """message, code, type and param of an error answer in the API's JSON shape."""
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return None, None, None, None
    if isinstance(error, str):
        return error, None, None, None
    if not isinstance(error, dict):
        return None, None, None, None
    return tuple(_text(error.get(name)) for name in ("message", "code", "type", "param"))


def _text(value) -> str | None:
    return str(value) if value not in (None, "") else None


def _refusal(message: str | None, code: str | None, param: str | None) -> EditError:
    """An error for a request the API refused as it was (HTTP 400 and the like)."""
    if code == "moderation_blocked" or "safety system" in (message or "").lower():
        return ModerationError()
    what = SETTING_OF_PARAM.get(param or "", "the prompt, model, size and quality")
    return BadRequestError(redact(f"WisGate refused the request{_detail(message)}: check "
                                  f"{what} and try again."))


def _server_words(message: str | None) -> str:
    """The server's message on one line and not too long ('' without one)."""
    text = " ".join((message or "").split()).rstrip(".")
    if len(text) > DETAIL_LENGTH:
        text = text[:DETAIL_LENGTH].rstrip() + "..."
    return text


def _detail(message: str | None) -> str:
    """' (the server's words)', or '' without any."""
    words = _server_words(message)
    return f" ({words})" if words else ""


def _looks_like_html(response: Answer) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def _retry_after(headers) -> float | None:
    """The server's wish in `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


def _is_read_timeout(error: requests.exceptions.ConnectionError) -> bool:
    """requests reports a timeout while reading a body as a ConnectionError."""
    return any(isinstance(arg, ReadTimeoutError)
               or isinstance(getattr(arg, "reason", None), ReadTimeoutError)
               for arg in error.args)


def usable_endpoint(base_url: str) -> str:
    """The endpoint without a trailing slash, or the BadInputError saying why it cannot be
    used. The sentence never repeats an address that holds user info: it may be a password."""
    try:
        check_unambiguous(base_url)
    except UnsafeURL as reason:
        if "user name" in str(reason):
            raise BadInputError(endpoint_has_userinfo()) from None
        raise BadInputError(f"The endpoint is not a usable address ({reason}): set it again "
                            f"in {settings_place()} (or GPT_IMAGE_EDIT_BASE_URL).") from None
    origin = Origin.of(base_url)
    if not origin.is_safe:
        raise BadInputError(
            f"The endpoint {redact(base_url)} is not a secure https:// address: set an "
            f"https:// endpoint in {settings_place()} (plain http only for this computer).")
    return base_url.rstrip("/")


def _decode_base64(text: str) -> bytes:
    """One picture from its base64 text. Answers normally carry no line breaks; only when
    they do is a copy without them made."""
    try:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            if not any(space in text for space in " \t\r\n"):
                raise
            return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadResponseError("WisGate sent a picture that could not be decoded "
                               "(invalid base64): try again.") from None


def waited_enough(error: EditError, delay: float) -> EditError:
    """The error for a retry that would wait longer than an edit may."""
    if isinstance(error, RateLimitError):
        return RateLimitError(
            f"WisGate is rate limiting your requests and asks to wait {_seconds(delay)} "
            f"more, longer than one edit waits (at most {MAX_WAIT:g} s a time, "
            f"{MAX_WAITS_PER_EDIT:g} s in all): wait a few minutes and try again, or send "
            "fewer edits at once.", retry_after=delay)
    return error


def _size_of(size: str) -> tuple[int, int]:
    """WIDTHxHEIGHT of a request; `auto` and the like count as the largest the API sends."""
    width, separator, height = size.partition("x")
    if separator and width.isdigit() and height.isdigit():
        return int(width), int(height)
    return 3840, 2160


def _with_tries(failure: EditError, tries: int) -> EditError:
    """The same error, its sentence saying how often it was tried."""
    head, separator, action = str(failure).rpartition(": ")
    if separator:
        failure.args = (f"{head} after {tries} tries: {action}",)
    return failure


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{max(size // 1000, 1)} KB"


def _seconds(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.0f} s"
    return f"{max(seconds, 0.1):.1f}".rstrip("0").rstrip(".") + " s"
