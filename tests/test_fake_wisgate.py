"""The fake WisGate server is as strict as the real API, with plain requests calls."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.fake_wisgate import FakeWisGate

REPOSITORY = Path(__file__).resolve().parents[1]


def png(width=64, height=48, mode="RGB", color=(10, 100, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_png(width=64, height=48, editable=(0, 0, 32, 48), mode="RGBA") -> bytes:
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), editable)
    buffer = io.BytesIO()
    mask.convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def post(fake_wisgate):
    def send(scenario="echo", key="default", image=None, mask=None, files=None, **fields):
        form = {"prompt": "a stormy sky", "model": "gpt-image-2", "n": "1", "size": "auto",
                "quality": "high"}
        form.update({name: str(value) for name, value in fields.items()})
        form = {name: value for name, value in form.items() if value != "None"}
        if files is None:
            files = {"image": ("image.png", png() if image is None else image, "image/png")}
            if mask is not None:
                files["mask"] = ("mask.png", mask, "image/png")
        key = fake_wisgate.key if key == "default" else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.post(f"{fake_wisgate.url_for(scenario)}/images/edits", data=form,
                             files=files, headers=headers, timeout=30)

    return send


def assert_refused(response, status, param=None, code=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


# -- the key ---------------------------------------------------------------------------------
def test_missing_key_is_refused(post):
    error = assert_refused(post(key=None), 401, code="invalid_api_key")
    assert error["message"] == "Invalid Token"


def test_wrong_key_is_refused_on_edits_and_models(post, fake_wisgate):
    assert_refused(post(key="not-it"), 401, code="invalid_api_key")
    models = requests.get(f"{fake_wisgate.base_url}/models",
                          headers={"Authorization": "Bearer not-it"}, timeout=10)
    assert_refused(models, 401, code="invalid_api_key")


def test_models_lists_the_image_models(fake_wisgate):
    answer = requests.get(f"{fake_wisgate.base_url}/models",
                          headers={"Authorization": f"Bearer {fake_wisgate.key}"}, timeout=10)
    assert answer.status_code == 200
    assert "gpt-image-2" in [model["id"] for model in answer.json()["data"]]


# -- the fields ------------------------------------------------------------------------------
@pytest.mark.parametrize("fields, param", [
    ({"prompt": None}, "prompt"),
    ({"prompt": "x" * 32001}, "prompt"),
    ({"model": "gpt-image-9"}, "model"),
    ({"quality": "ultra"}, "quality"),
    ({"quality": "standard"}, "quality"),
    ({"n": 11}, "n"),
    ({"n": 0}, "n"),
    ({"n": "two"}, "n"),
    ({"background": "white"}, "background"),
    ({"output_format": "gif"}, "output_format"),
    ({"background": "transparent", "output_format": "jpeg"}, "background"),
    ({"input_fidelity": "high", "model": "gpt-image-1-mini"}, "input_fidelity"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_fields_are_refused(post, fields, param):
    assert_refused(post(**fields), 400, param=param)


def test_prompt_of_the_largest_size_is_accepted(post):
    assert post(prompt="x" * 32000).status_code == 200


@pytest.mark.parametrize("model, size, accepted", [
    ("gpt-image-2", "1024x1024", True),
    ("gpt-image-2", "1536x1024", True),
    ("gpt-image-2", "3840x2160", True),
    ("gpt-image-2", "2160x3840", True),
    ("gpt-image-2", "1024x3072", True),   # exactly 1:3
    ("gpt-image-2", "1024x640", True),    # the fewest pixels: 655,360
    ("gpt-image-2-2026-04-21", "1536x864", True),  # a dated snapshot: the family's rules
    ("gpt-image-2", "1008x576", False),   # fewer than 655,360 pixels
    ("gpt-image-2", "1000x1000", False),  # not multiples of 16
    ("gpt-image-2", "1024x3088", False),  # beyond 1:3
    ("gpt-image-2", "4096x2304", False),  # long side over 3840
    ("gpt-image-2", "3840x2176", False),  # more pixels than 3840x2160
    ("gpt-image-2", "big", False),
    ("gpt-image-1", "1536x1024", True),
    ("gpt-image-1", "auto", True),
    ("gpt-image-1", "1024x768", False),
    ("gpt-image-1", "2048x2048", False),
    ("gpt-image-1-mini", "1008x576", False),
    ("dall-e-2", "512x512", True),
    ("dall-e-2", "1536x1024", False),
])
def test_sizes_follow_each_models_rules(post, model, size, accepted):
    response = post(model=model, size=size)
    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert_refused(response, 400, param="size")


# -- the pictures ----------------------------------------------------------------------------
def test_missing_image_is_refused(post):
    assert_refused(post(files={"other": ("x.png", png(), "image/png")}), 400)
    assert_refused(post(files={}), 400)


def test_undecodable_image_is_refused(post):
    error = assert_refused(post(image=b"\x89PNG\r\n\x1a\n but not really"), 400, param="image")
    assert error["code"] == "invalid_image_file"


def test_mask_of_another_size_is_refused(post):
    error = assert_refused(post(mask=mask_png(32, 48, (0, 0, 16, 48))), 400, param="mask")
    assert "mask size does not match image size" in error["message"]


def test_mask_that_is_not_png_is_refused(post):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buffer, format="JPEG")
    assert_refused(post(mask=buffer.getvalue()), 400, param="mask")


def test_mask_without_alpha_is_refused(post):
    assert_refused(post(mask=mask_png(mode="L")), 400, param="mask")


def test_mask_of_the_same_size_is_accepted(post):
    assert post(mask=mask_png()).status_code == 200


# -- scenarios -------------------------------------------------------------------------------
def test_echo_returns_the_uploaded_bytes_n_times(post, fake_wisgate):
    image = png(40, 30)
    answer = post(image=image, n=3, quality="medium").json()
    assert [base64.b64decode(item["b64_json"]) for item in answer["data"]] == [image] * 3
    assert (answer["size"], answer["quality"], answer["output_format"], answer["background"]) \
        == ("40x30", "medium", "png", "opaque")
    usage = answer["usage"]
    assert usage["output_tokens"] == 3 * 1056
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_invert_changes_only_where_the_mask_is_transparent(post):
    answer = post("invert", mask=mask_png(editable=(0, 0, 32, 48))).json()
    result = Image.open(io.BytesIO(base64.b64decode(answer["data"][0]["b64_json"])))
    result = result.convert("RGB")
    assert result.getpixel((5, 5)) == (245, 155, 55)     # inside the mask: inverted
    assert result.getpixel((40, 5)) == (10, 100, 200)    # outside: as sent


def test_invert_without_a_mask_changes_everything(post):
    answer = post("invert").json()
    result = Image.open(io.BytesIO(base64.b64decode(answer["data"][0]["b64_json"])))
    assert result.convert("RGB").getcolors() == [(64 * 48, (245, 155, 55))]


def test_url_answer_is_served_on_localhost_and_recorded(post, fake_wisgate):
    image = png()
    url = post("url").json()["data"][0]["url"]
    assert url.startswith(f"http://localhost:{fake_wisgate.port}/_fake/download/")
    download = requests.get(url, headers={"X-Probe": "1"}, timeout=10)
    assert download.content == image
    assert fake_wisgate.downloads[0].headers["x-probe"] == "1"


def test_rate_limit_refuses_the_first_attempt_of_each_request(post):
    first = post("rate_limit", prompt="one")
    assert_refused(first, 429)
    assert first.headers["Retry-After"] == "1"
    assert post("rate_limit", prompt="one").status_code == 200   # another boundary, same content
    assert post("rate_limit", prompt="two").status_code == 429


def test_rate_limit_ms_sends_only_retry_after_ms(post):
    first = post("rate_limit_ms")
    assert first.status_code == 429
    assert first.headers["retry-after-ms"] == "1200"
    assert "Retry-After" not in first.headers


@pytest.mark.parametrize("scenario, status, code", [
    ("quota", 429, "insufficient_quota"),
    ("server_error", 500, None),
    ("unavailable", 503, None),
    ("moderation", 400, "moderation_blocked"),
    ("forbidden", 403, None),
])
def test_failure_scenarios_answer_in_the_apis_shape(post, scenario, status, code):
    error = assert_refused(post(scenario), status, code=code)
    if scenario == "moderation":
        assert error["type"] == "image_generation_user_error"


@pytest.mark.parametrize("scenario, status", [("html_502", 502), ("too_large", 413)])
def test_gateway_failures_answer_with_a_web_page(post, scenario, status):
    response = post(scenario)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith("<html>")


def test_fewer_returns_one_picture_less(post):
    assert len(post("fewer", n=3).json()["data"]) == 2


def test_bad_answers(post):
    with pytest.raises(ValueError):
        post("bad_json").json()
    item = post("bad_base64").json()["data"][0]["b64_json"]
    with pytest.raises(ValueError):
        base64.b64decode(item, validate=True)


def test_truncated_answer_stops_before_its_declared_length(fake_wisgate):
    body, content_type = _multipart_body()
    connection = http.client.HTTPConnection("127.0.0.1", fake_wisgate.port, timeout=10)
    connection.request("POST", "/scenario/truncated/v1/images/edits", body=body,
                       headers={"Content-Type": content_type,
                                "Authorization": f"Bearer {fake_wisgate.key}"})
    response = connection.getresponse()
    assert response.getheader("Connection") == "close"
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    connection.close()


def test_expect_100_continue_is_answered_before_the_body(fake_wisgate):
    # curl sends "Expect: 100-continue" for large uploads and holds the body back until the
    # server says "100 Continue" (or a second has passed).
    body, content_type = _multipart_body()
    with socket.create_connection(("127.0.0.1", fake_wisgate.port), timeout=10) as connection:
        connection.sendall(
            f"POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {fake_wisgate.key}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        reader = connection.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 100")
        assert reader.readline() == b"\r\n"
        connection.sendall(body)
        assert reader.readline().startswith(b"HTTP/1.1 200")
    assert len(fake_wisgate.requests) == 1


def test_connection_is_kept_open_between_requests(fake_wisgate):
    body, content_type = _multipart_body()
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {fake_wisgate.key}"}
    connection = http.client.HTTPConnection("127.0.0.1", fake_wisgate.port, timeout=10)
    try:
        ports = []
        for path in ("/v1/images/edits", "/v1/images/edits", "/scenario/url/v1/images/edits"):
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            assert answer.status == 200 and answer.getheader("Connection") is None
            ports.append(connection.sock.getsockname()[1])
        url = json.loads(data)["data"][0]["url"]
        connection.request("GET", url.split(str(fake_wisgate.port), 1)[1])
        download = connection.getresponse()
        assert download.status == 200 and download.read() == png()
        assert len(set(ports)) == 1  # one connection for all of them
    finally:
        connection.close()
    assert len(fake_wisgate.requests) == 3 and len(fake_wisgate.downloads) == 1


def test_answer_before_the_body_was_read_closes_the_connection(fake_wisgate):
    # The unread body would otherwise be taken for the next request.
    connection = http.client.HTTPConnection("127.0.0.1", fake_wisgate.port, timeout=10)
    try:
        connection.request("POST", "/v1/no-such-endpoint", body=b"x" * 5000)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 404 and answer.getheader("Connection") == "close"
    finally:
        connection.close()
    assert requests.get(f"{fake_wisgate.origin}/_fake/requests", timeout=10).status_code == 200


def test_slow_answer_ends_when_the_server_stops():
    server = FakeWisGate().start()
    outcome = []

    def call():
        try:
            requests.post(f"{server.url_for('slow')}/images/edits", timeout=120,
                          headers={"Authorization": f"Bearer {server.key}"},
                          data={"prompt": "p"}, files={"image": ("image.png", png())})
        except requests.RequestException as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    while not server.requests:
        time.sleep(0.05)
    server.stop()
    caller.join(30)
    assert not caller.is_alive()
    assert isinstance(outcome[0], requests.ConnectionError)  # closed without an answer


# -- recordings ------------------------------------------------------------------------------
def test_requests_are_served_as_json_and_reset(post, fake_wisgate):
    image = png(64, 48)
    post(prompt="recorded", image=image)
    recorded = requests.get(f"{fake_wisgate.origin}/_fake/requests", timeout=10).json()
    (entry,) = recorded
    assert entry["fields"]["prompt"] == "recorded"
    assert entry["headers"]["authorization"] == f"Bearer {fake_wisgate.key}"
    assert entry["files"]["image"] == [{"size": len(image),
                                        "sha256": hashlib.sha256(image).hexdigest(),
                                        "png_size": [64, 48], "filename": "image.png",
                                        "content_type": "image/png"}]
    assert requests.post(f"{fake_wisgate.origin}/_fake/reset", timeout=10).status_code == 200
    assert requests.get(f"{fake_wisgate.origin}/_fake/requests", timeout=10).json() == []


def test_unknown_scenario_is_a_404(fake_wisgate):
    answer = requests.get(f"{fake_wisgate.origin}/scenario/no_such_scenario/v1/models",
                          headers={"Authorization": f"Bearer {fake_wisgate.key}"}, timeout=10)
    assert_refused(answer, 404)


def test_started_by_hand_it_prints_its_base_url():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_wisgate", "--port", "0", "--key", "hand-key",
         "--scenario", "invert"], cwd=REPOSITORY, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    try:
        first_line = process.stdout.readline()
        base_url = first_line.split()[3]
        assert first_line.startswith("Fake WisGate on http://127.0.0.1:")
        answer = requests.post(f"{base_url}/images/edits", timeout=10,
                               headers={"Authorization": "Bearer hand-key"},
                               data={"prompt": "p"}, files={"image": ("image.png", png())})
        result = Image.open(io.BytesIO(base64.b64decode(answer.json()["data"][0]["b64_json"])))
        assert result.convert("RGB").getpixel((0, 0)) == (245, 155, 55)  # the invert scenario
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


def _multipart_body() -> tuple[bytes, str]:
    prepared = requests.Request("POST", "http://127.0.0.1/", data={"prompt": "p"},
                                files={"image": ("image.png", png(), "image/png")}).prepare()
    return prepared.body, prepared.headers["Content-Type"]


# -- several pictures (references) --------------------------------------------------------------
def test_pictures_go_as_image_or_repeated_image_brackets_up_to_sixteen(post, fake_wisgate):
    part = ("image.png", png(), "image/png")
    accepted = post(files=[("image[]", part)] * 16 + [("mask", ("m.png", mask_png(), "image/png"))])
    assert accepted.status_code == 200, accepted.text
    assert len(fake_wisgate.requests[-1].files["image[]"]) == 16
    assert_refused(post(files=[("image[]", part)] * 17), 400, param="image")
    assert_refused(post(files=[("image", part), ("image[]", part)]), 400, param="image")
    assert_refused(post(files=[("image", part), ("image", part)]), 400, param="image")
    # The mask is the first picture's size, whatever the others are.
    other = ("other.png", png(32, 32), "image/png")
    assert post(files=[("image[]", part), ("image[]", other),
                       ("mask", ("m.png", mask_png(), "image/png"))]).status_code == 200
    assert_refused(post(files=[("image[]", other), ("image[]", part),
                               ("mask", ("m.png", mask_png(), "image/png"))]), 400,
                   param="mask")
