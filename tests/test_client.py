"""The images client against the fake WisGate server (a real HTTP server, no mocks)."""

from __future__ import annotations

import io
import os
import socket
import time
import zlib

import pytest
from PIL import Image
from requests.structures import CaseInsensitiveDict

from gpt_image_edit import client as client_module
from gpt_image_edit import logs
from gpt_image_edit.client import (
    EditRequest,
    ImagesClient,
    Origin,
    RetryPolicy,
    _retry_after,
)
from gpt_image_edit.errors import (
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
)
from gpt_image_edit.settings import Settings, load_settings
from tests.fake_wisgate import INSECURE_HOST

SETTINGS_MENU = "Filters > AI > GPT Image Settings..."
FAST = RetryPolicy(max_retries=2, backoff=0.01, backoff_max=0.05)
# Linux on loopback buffers at most a few MB of a connection nobody reads (tcp_wmem's 4 MB
# send buffer plus the untouched receive window).
UPLOAD_LARGER_THAN_SOCKET_BUFFERS = 16 * 1024 * 1024


@pytest.fixture(autouse=True)
def started_by_gimp(monkeypatch):
    """The sentences as a GIMP host gets them: it names its settings menu to the worker
    (tests/test_job.py checks the command line's own wording)."""
    monkeypatch.setenv("GPT_IMAGE_EDIT_SETTINGS_PLACE", SETTINGS_MENU)


def png(width=48, height=32, mode="RGB", color=(200, 30, 60)) -> bytes:
    buffer = io.BytesIO()
    picture = Image.new(mode, (width, height), color)
    picture.putpixel((1, 1), (0, 0, 0) if mode == "RGB" else (0, 0, 0, 255))
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def noisy_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def api_mask(width=48, height=32) -> bytes:
    """Opaque, with a transparent (editable) left half."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def padded_png(size: int) -> bytes:
    """png() grown to `size` bytes by a private ancillary chunk, which decoders skip."""
    picture = png()
    filler = b"\0" * (size - len(picture) - 12)
    chunk = (len(filler).to_bytes(4, "big") + b"prVt" + filler
             + zlib.crc32(b"prVt" + filler).to_bytes(4, "big"))
    end = picture.rindex(b"IEND") - 4
    return picture[:end] + chunk + picture[end:]


def edit_request(**changes) -> EditRequest:
    values = dict(image=png(), prompt="make the sky stormy", model="gpt-image-2",
                  size="auto", quality="high")
    values.update(changes)
    return EditRequest(**values)


class Events(list):
    def __call__(self, stage: str, message: str) -> None:
        self.append((stage, message))

    def stages(self) -> list[str]:
        return [stage for stage, _ in self]


@pytest.fixture
def make_client(fake_wisgate):
    made = []

    def make(scenario="echo", key=None, timeout=30.0, retry=FAST, key_source="settings file",
             events=None):
        settings = Settings(api_key=fake_wisgate.key if key is None else key,
                            base_url=fake_wisgate.url_for(scenario), timeout=timeout,
                            key_source=key_source)
        client = ImagesClient(settings, retry=retry, on_event=events)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def assert_key_hidden(error: Exception, key: str) -> None:
    assert key not in str(error)
    assert key not in repr(error)


def edit_paths(fake_wisgate) -> list[str]:
    return [r.path for r in fake_wisgate.requests if r.path.endswith("/images/edits")]


# -- the request -----------------------------------------------------------------------------
def test_edit_sends_the_multipart_request_the_api_expects(fake_wisgate, make_client):
    image, mask = png(), api_mask()
    response = make_client().edit(edit_request(image=image, mask=mask, n=2, size="1024x1024"))

    (sent,) = fake_wisgate.requests
    assert sent.path == "/scenario/echo/v1/images/edits"
    assert sent.headers["authorization"] == f"Bearer {fake_wisgate.key}"
    assert sent.headers["user-agent"] == "gpt-image-edit/0.1.0"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert sent.fields == {"prompt": "make the sky stormy", "model": "gpt-image-2", "n": "2",
                           "size": "1024x1024", "quality": "high", "background": "opaque",
                           "output_format": "png"}
    assert sent.files == {"image": [image], "mask": [mask]}
    assert sent.file_parts == {"image": [("image.png", "image/png")],
                               "mask": [("mask.png", "image/png")]}
    assert response.images == [image, image]  # the bytes exactly as the server sent them
    assert response.usage["total_tokens"] == (response.usage["input_tokens"]
                                              + response.usage["output_tokens"]) > 0


def test_input_fidelity_and_other_choices_are_sent_only_when_set(fake_wisgate, make_client):
    make_client().edit(edit_request(model="gpt-image-1", input_fidelity="high",
                                    background="transparent", output_format="webp",
                                    quality="low", size="1024x1024"))
    fields = fake_wisgate.requests[0].fields
    assert (fields["input_fidelity"], fields["background"], fields["output_format"],
            fields["quality"]) == ("high", "transparent", "webp", "low")
    assert "mask" not in fake_wisgate.requests[0].files


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2-2026-04-21",
                                   "gpt-image-2.5-preview"])
def test_input_fidelity_is_never_sent_to_the_2x_family(model):
    fields = edit_request(model=model, input_fidelity="high").form_fields()
    assert "input_fidelity" not in fields
    assert fields["model"] == model


def test_progress_reports_upload_then_one_wait(make_client):
    events = Events()
    make_client(events=events).edit(edit_request())
    assert events.stages() == ["upload", "wait"]
    assert events[0][1].startswith("Sending ") and events[0][1].endswith(" to gpt-image-2")
    assert events[1][1] == "Waiting for gpt-image-2"


def test_settings_from_the_environment_reach_the_fake(fake_wisgate, wisgate_env):
    wisgate_env("invert", timeout=20)
    settings = load_settings()
    assert settings.timeout == 20.0
    with ImagesClient(settings) as client:
        picture = Image.open(io.BytesIO(client.edit(edit_request()).images[0]))
    assert picture.convert("RGB").getpixel((5, 5)) == (55, 225, 195)
    assert fake_wisgate.requests[0].scenario == "invert"


def test_result_of_another_size_is_passed_on_as_it_came(make_client):
    result = make_client("resize").edit(edit_request(image=png(64, 36))).images[0]
    assert Image.open(io.BytesIO(result)).size == (1024, 1024)


# -- answers by address ----------------------------------------------------------------------
def test_url_answer_on_another_host_is_fetched_without_the_key(fake_wisgate, make_client):
    image = png()
    events = Events()
    response = make_client("url", events=events).edit(edit_request(image=image, n=2))

    assert response.images == [image, image]
    assert fake_wisgate.requests[0].headers["authorization"] == f"Bearer {fake_wisgate.key}"
    assert len(fake_wisgate.downloads) == 2
    for download in fake_wisgate.downloads:
        assert download.headers["host"].startswith("localhost:")
        assert "authorization" not in download.headers
        assert fake_wisgate.key not in str(download.headers)
    assert events.stages() == ["upload", "wait", "download", "download"]
    assert events[-1][1] == "Downloading result 2 of 2"


def test_plain_http_url_to_another_computer_is_refused(fake_wisgate, make_client):
    with pytest.raises(BadResponseError) as raised:
        make_client("insecure_url").edit(edit_request())
    assert str(raised.value) == (
        f"WisGate pointed to its result at an address that is not secure (http://{INSECURE_HOST}"
        "), so it was not fetched: try again.")
    assert fake_wisgate.downloads == []


def test_origins_compare_scheme_host_and_port():
    assert Origin.of("https://API.wisgate.ai/v1") == Origin.of("https://api.wisgate.ai:443/x")
    assert Origin.of("https://api.wisgate.ai/v1") != Origin.of("http://api.wisgate.ai/v1")
    assert Origin.of("http://127.0.0.1:8000/v1") != Origin.of("http://127.0.0.1:8001/v1")
    assert Origin.of("http://localhost/x").is_safe
    assert Origin.of("http://127.9.0.1/x").is_safe
    assert Origin.of("http://[::1]:80/x").is_safe
    assert not Origin.of("http://example.com/x").is_safe
    assert not Origin.of("ftp://example.com/x").is_safe


# -- retries ---------------------------------------------------------------------------------
def test_rate_limit_with_retry_after_succeeds_on_the_retry(fake_wisgate, make_client):
    events = Events()
    started = time.monotonic()
    response = make_client("rate_limit", events=events).edit(edit_request())
    assert time.monotonic() - started >= 1.0
    assert response.images == [png()]
    assert len(fake_wisgate.requests) == 2
    assert ("retry", "Rate limited, trying again in 1 s") in events
    assert events.stages() == ["upload", "wait", "retry", "upload", "wait"]


def test_rate_limit_with_retry_after_ms_is_honoured(fake_wisgate, make_client):
    events = Events()
    started = time.monotonic()
    make_client("rate_limit_ms", events=events).edit(edit_request())
    assert time.monotonic() - started >= 1.2
    assert ("retry", "Rate limited, trying again in 1.2 s") in events
    assert len(fake_wisgate.requests) == 2


def test_retry_after_beyond_the_policy_fails_at_once_with_the_rate_limit_sentence(
        fake_wisgate, make_client):
    """A server asking for a longer wait than an edit may wait is not waited for at all."""
    events = Events()
    started = time.monotonic()
    with pytest.raises(RateLimitError) as raised:
        make_client("rate_limit", retry=RetryPolicy(retry_after_max=0.2),
                    events=events).edit(edit_request())
    assert time.monotonic() - started < 1.0
    assert "retry" not in events.stages()
    assert str(raised.value).startswith("WisGate is rate limiting your requests and asks to "
                                        "wait 1 s more")
    assert (raised.value.kind, raised.value.exit_code) == ("rate_limit", 3)
    assert len(fake_wisgate.requests) == 1


def test_endless_503_fails_after_the_allowed_retries(fake_wisgate, make_client):
    events = Events()
    with pytest.raises(ServerError) as raised:
        make_client("unavailable", retry=RetryPolicy(max_retries=3, backoff=0.01),
                    events=events).edit(edit_request())
    assert len(edit_paths(fake_wisgate)) == 4
    assert events.stages().count("retry") == 3
    assert str(raised.value) == (
        "The WisGate server or its gateway is having trouble (HTTP 503: The engine is currently "
        "overloaded, please try again later) after 4 tries: try again in a few minutes.")
    assert (raised.value.kind, raised.value.exit_code) == ("server", 4)


def test_html_gateway_page_is_described_not_shown(fake_wisgate, make_client):
    with pytest.raises(ServerError) as raised:
        make_client("html_502").edit(edit_request())
    assert str(raised.value) == ("The WisGate server or its gateway is having trouble "
                                 "(HTTP 502) after 3 tries: try again in a few minutes.")
    assert len(edit_paths(fake_wisgate)) == 3


def test_500_is_retried_then_reported(fake_wisgate, make_client):
    with pytest.raises(ServerError, match=r"HTTP 500: The server had an error"):
        make_client("server_error").edit(edit_request())
    assert len(edit_paths(fake_wisgate)) == 3


def test_connection_dropped_during_the_upload_is_retried(fake_wisgate, make_client):
    # Larger than the loopback socket buffers hold, so the upload cannot finish before the
    # server hangs up after reading the headers.
    image = padded_png(UPLOAD_LARGER_THAN_SOCKET_BUFFERS)
    events = Events()
    response = make_client("drop_upload_once", events=events).edit(edit_request(image=image))
    assert response.images == [image]
    assert len(edit_paths(fake_wisgate)) == 2
    assert events.stages() == ["upload", "retry", "upload", "wait"]
    assert events[1][1].startswith("Connection failed, trying again")


def test_connection_dropped_after_the_upload_is_not_retried(fake_wisgate, make_client):
    events = Events()
    with pytest.raises(NetworkError) as raised:
        make_client("drop_once", events=events).edit(edit_request())
    assert str(raised.value) == (
        "The connection to 127.0.0.1 dropped while WisGate was working on the edit, which may "
        "still have been billed: try again.")
    assert len(edit_paths(fake_wisgate)) == 1
    assert "retry" not in events.stages()


def test_refused_connection_is_retried_then_reported():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    events = Events()
    client = ImagesClient(Settings("test-key-1234", f"http://127.0.0.1:{port}/v1", 5.0),
                          retry=FAST, on_event=events)
    with pytest.raises(NetworkError) as raised:
        client.edit(edit_request())
    assert str(raised.value) == (
        f"Could not reach 127.0.0.1 after 3 tries: check the internet connection and the "
        f"endpoint in {SETTINGS_MENU}, then try again.")
    assert events.stages().count("retry") == 2


def test_read_timeout_is_not_retried_and_says_how_to_wait_longer(fake_wisgate, make_client):
    with pytest.raises(RequestTimeoutError) as raised:
        make_client("slow", timeout=1).edit(edit_request())
    assert str(raised.value) == (
        "WisGate did not answer within 1 s: raise the timeout (GPT_IMAGE_EDIT_TIMEOUT or "
        f"{SETTINGS_MENU}) and try again.")
    assert (raised.value.kind, raised.value.exit_code) == ("timeout", 4)
    assert len(edit_paths(fake_wisgate)) == 1


def test_backoff_grows_with_jitter_and_stays_bounded():
    policy = RetryPolicy(backoff=0.5, backoff_max=8.0, retry_after_max=60.0)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (6, 8.0)]:
        delays = {policy.delay(retry) for _ in range(20)}
        assert all(0.75 * ceiling <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jitter
    assert policy.delay(0, retry_after=3.0) == 3.0
    assert policy.delay(0, retry_after=600.0) == 600.0  # the client refuses to wait that long


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert _retry_after(CaseInsensitiveDict({"Retry-After": "2"})) == 2.0
    assert _retry_after(CaseInsensitiveDict({"retry-after-ms": "1500", "Retry-After": "9"})) \
        == 1.5
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 50 <= _retry_after(CaseInsensitiveDict({"Retry-After": in_a_minute})) <= 61
    assert _retry_after(CaseInsensitiveDict({"Retry-After": "soon"})) is None
    assert _retry_after(CaseInsensitiveDict()) is None


# -- refusals: never retried -----------------------------------------------------------------
@pytest.mark.parametrize("scenario, error_class, sentence", [
    ("quota", QuotaError, "Your WisGate balance or quota is used up: top it up on wisgate.ai, "
                          "then try again."),
    ("moderation", ModerationError, "WisGate's safety system refused this edit: change the "
                                    "prompt or the picture and try again."),
    ("too_large", TooLargeError, "WisGate refused the upload as too large: select a smaller "
                                 "area or scale the layer down, then try again."),
    ("forbidden", PermissionDeniedError, "WisGate refused this request for your API key (This "
                                         "token has been disabled): check the key and your "
                                         "account on wisgate.ai, or choose another model."),
])
def test_refusals_fail_after_one_request(fake_wisgate, make_client, scenario, error_class,
                                         sentence):
    with pytest.raises(error_class) as raised:
        make_client(scenario).edit(edit_request())
    assert str(raised.value) == sentence
    assert raised.value.exit_code == 3
    assert len(fake_wisgate.requests) == 1


def test_wrong_key_fails_fast_and_names_where_to_set_it(fake_wisgate, make_client):
    wrong = "sk-wrong-key-987654321"
    with pytest.raises(AuthenticationError) as raised:
        make_client(key=wrong).edit(edit_request())
    assert str(raised.value) == (f"WisGate did not accept the API key: check it in "
                                 f"{SETTINGS_MENU} (or GPT_IMAGE_EDIT_API_KEY).")
    assert (raised.value.kind, raised.value.exit_code) == ("authentication", 3)
    assert len(fake_wisgate.requests) == 1
    assert_key_hidden(raised.value, wrong)


def test_wrong_key_from_an_environment_variable_names_that_variable(make_client):
    with pytest.raises(AuthenticationError) as raised:
        make_client(key="sk-wrong-key-55555", key_source="WISDOM_GATE_KEY").check()
    assert str(raised.value) == (
        "WisGate did not accept the API key set in WISDOM_GATE_KEY: correct or unset it (the "
        f"key in {SETTINGS_MENU} is used only when no such variable is set).")


def test_missing_key_sends_nothing(fake_wisgate, make_client):
    with pytest.raises(MissingKeyError) as raised:
        make_client(key="").edit(edit_request())
    assert str(raised.value) == (f"No API key is set: enter it in {SETTINGS_MENU} or set "
                                 "GPT_IMAGE_EDIT_API_KEY.")
    assert fake_wisgate.requests == []


def test_invalid_request_names_the_setting_and_is_not_retried(fake_wisgate, make_client):
    with pytest.raises(BadRequestError) as raised:
        make_client().edit(edit_request(quality="ultra"))
    assert str(raised.value) == (
        "WisGate refused the request (Invalid value: 'ultra'. Supported values are: 'low', "
        "'medium', 'high', 'auto'): check the Quality setting and try again.")
    assert len(fake_wisgate.requests) == 1


@pytest.mark.parametrize("changes, what", [
    ({"n": 11}, "the Variants setting"),
    ({"size": "1000x1000"}, "the Size setting"),
    ({"model": "gpt-image-9"}, "the Model setting"),
    ({"prompt": "x" * 32001}, "the Prompt"),
    ({"mask": png(width=10, height=10, mode="RGBA")}, "the layer or the selection"),
    ({"image": b"not a picture"}, "the layer or the selection"),
    ({"background": "white"}, "the prompt, model, size and quality"),
])
def test_refused_field_is_named_as_the_retoucher_sees_it(make_client, changes, what):
    with pytest.raises(BadRequestError) as raised:
        make_client().edit(edit_request(**changes))
    assert str(raised.value).endswith(f": check {what} and try again.")
    assert "background" not in str(raised.value).rpartition(": check ")[2]


def test_plain_http_endpoint_on_another_computer_is_refused():
    with pytest.raises(BadInputError, match=r"^The endpoint http://example.com/v1 is not a "
                                            r"secure https:// address"):
        ImagesClient(Settings("test-key-1234", "http://example.com/v1", 5.0))


def test_endpoint_without_the_images_api_is_explained(fake_wisgate):
    client = ImagesClient(Settings(fake_wisgate.key, fake_wisgate.origin + "/nothing/v1", 5.0))
    with pytest.raises(BadRequestError) as raised:
        client.edit(edit_request())
    assert str(raised.value) == (
        f"{fake_wisgate.origin}/nothing/v1 does not offer the images API (HTTP 404): check the "
        f"endpoint in {SETTINGS_MENU} (it usually ends in /v1).")


# -- broken answers: never retried (the edit ran) ----------------------------------------------
@pytest.mark.parametrize("scenario, sentence", [
    ("truncated", "WisGate's answer was cut off before it was complete: try again."),
    ("bad_json", "WisGate's answer was incomplete or not valid JSON: try again in a few minutes."),
    ("bad_base64", "WisGate sent a picture that could not be decoded (invalid base64): try "
                   "again."),
    ("fewer", "WisGate sent back only 2 of the 3 pictures asked for: try again, perhaps with "
              "fewer variants."),
])
def test_broken_answers(fake_wisgate, make_client, scenario, sentence):
    with pytest.raises(BadResponseError) as raised:
        make_client(scenario).edit(edit_request(n=3))
    assert str(raised.value) == sentence
    assert (raised.value.kind, raised.value.exit_code) == ("bad_response", 4)
    assert len(fake_wisgate.requests) == 1


def test_answer_without_data(fake_wisgate, make_client):
    with pytest.raises(BadResponseError) as raised:
        make_client("no_data").edit(edit_request())
    assert str(raised.value) == "WisGate's answer held no pictures: try again in a few minutes."
    assert len(fake_wisgate.requests) == 1


def test_download_larger_than_the_limit_is_refused(monkeypatch, make_client):
    monkeypatch.setattr(client_module, "MAX_DOWNLOAD_BYTES", 2000)
    with pytest.raises(BadResponseError) as raised:
        make_client("url").edit(edit_request(image=noisy_png(100, 100)))
    assert str(raised.value) == ("WisGate's result is larger than 2 KB, so it was not fetched: "
                                 "try again with a smaller size.")


def test_large_upload_arrives_intact(fake_wisgate, make_client):
    image = noisy_png(1200, 900)
    assert len(image) > 3_000_000
    events = Events()
    response = make_client(events=events).edit(edit_request(image=image))
    assert response.images == [image]
    assert fake_wisgate.requests[0].files["image"] == [image]
    assert events.stages() == ["upload", "wait"]
    assert events[0][1] == f"Sending {len(image) / 1e6:.1f} MB to gpt-image-2"


def test_no_picture_at_all(make_client):
    with pytest.raises(BadResponseError, match="^WisGate sent back no picture asked for"):
        make_client("fewer").edit(edit_request(n=1))


# -- check -----------------------------------------------------------------------------------
def test_check_spends_no_image_credits(fake_wisgate, make_client):
    assert make_client().check() == "Connected to 127.0.0.1: the API key is accepted."
    (sent,) = fake_wisgate.requests
    assert sent.path == "/scenario/echo/v1/models"
    assert sent.headers["authorization"] == f"Bearer {fake_wisgate.key}"


def test_check_reports_a_refused_key(fake_wisgate, make_client):
    with pytest.raises(AuthenticationError):
        make_client(key="sk-not-the-key-000").check()
    assert len(fake_wisgate.requests) == 1


# -- the key stays secret ------------------------------------------------------------------------
FAILING = ["quota", "moderation", "too_large", "forbidden", "unavailable", "html_502",
           "truncated", "bad_json", "bad_base64", "fewer", "insecure_url"]


@pytest.mark.parametrize("scenario", FAILING)
def test_key_appears_in_no_error_and_no_log_line(fake_wisgate, make_client, scenario):
    log_file = logs.setup_logging()
    with pytest.raises(EditError) as raised:
        make_client(scenario).edit(edit_request(n=2))
    assert_key_hidden(raised.value, fake_wisgate.key)
    text = log_file.read_text(encoding="utf-8")
    assert "upload: Sending" in text  # the log does record the run
    assert fake_wisgate.key not in text


def test_key_echoed_by_the_server_is_redacted(fake_wisgate, make_client):
    log_file = logs.setup_logging()
    with pytest.raises(BadRequestError) as raised:
        make_client().edit(edit_request(model=f"model-{fake_wisgate.key}"))
    assert "model-[redacted]" in str(raised.value)
    assert_key_hidden(raised.value, fake_wisgate.key)
    assert fake_wisgate.key not in log_file.read_text(encoding="utf-8")


def test_interrupt_propagates(make_client):
    def interrupt(stage, message):
        if stage == "wait":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_client(events=interrupt).edit(edit_request())
