"""Live previews and cost (issue 12), as users meet them: the command line and the worker
job in subprocesses against the streaming stand-in server, the client in-process, and the
host core through the fake host."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from gpt_image_edit.client import EditRequest, ImagesClient
from gpt_image_edit.errors import ServerError
from gpt_image_edit.settings import load_settings
from tests.fake_host import FakeDocument
from tests.test_cli import run_tool, save
from tests.test_core import run as run_core
from tests.test_core import scene as core_scene
from tests.test_imaging import psnr, scene
from tests.test_job import manifest_of, run_worker, write_job

GPT_IMAGE_2 = (5, 8, 30)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The host core's job folders in a folder of this test's own (as tests/test_core.py)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("GPT_IMAGE_EDIT_WORKER", sys.executable)
    return folder


def expected_cost(usage: dict, prices=GPT_IMAGE_2) -> float:
    details = usage["input_tokens_details"]
    text, image, output = prices
    return (details["text_tokens"] * text + details["image_tokens"] * image
            + usage["output_tokens"] * output) / 1e6


class FolderWatch:
    """When each file first appeared in a folder, polled every 20 ms from a thread."""

    def __init__(self, *folders: Path):
        self.folders = folders
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(0.02):
            self._poll()
        # A file written in the tool's last 20 ms (it ends at once once its files are
        # written) is seen here, at most one poll late.
        self._poll()

    def _poll(self):
        for folder in self.folders:
            if folder.is_dir():
                for path in folder.iterdir():
                    self.seen.setdefault(path.name, time.monotonic())


# -- the command line ------------------------------------------------------------------------
def test_previews_arrive_in_order_well_before_the_result(tmp_path, wisgate_env, fake_wisgate):
    picture = save(scene(640, 480), tmp_path / "photo.png")
    previews = tmp_path / "previews"
    with FolderWatch(tmp_path, previews) as watch:
        finished = run_tool("edit", picture, "--prompt", "stormy sky", "--save-previews",
                            previews, "--json", env=wisgate_env("spaced"))
    assert finished.returncode == 0, finished.stderr
    request = fake_wisgate.requests[-1]
    assert (request.fields["stream"], request.fields["partial_images"]) == ("true", "2")
    assert sorted(p.name for p in previews.iterdir()) == ["photo-preview-1.png",
                                                          "photo-preview-2.png"]
    first, second = watch.seen["photo-preview-1.png"], watch.seen["photo-preview-2.png"]
    result = watch.seen["photo-edit.png"]
    assert first < second < result
    assert result - second >= 0.3 and result - first >= 0.3
    # Each preview is the picture with the partial image in place; the result is the
    # completed picture (the echo), not a preview.
    for name in ("photo-preview-1.png", "photo-preview-2.png"):
        assert Image.open(previews / name).size == (640, 480)
    assert psnr(Image.open(tmp_path / "photo-edit.png"), Image.open(picture)) >= 35
    assert psnr(Image.open(previews / "photo-preview-1.png"), Image.open(picture)) < 35
    line = json.loads(finished.stdout)
    assert line["usage"]["output_tokens"] == 4160 + 2 * 100
    assert line["cost_usd"] == expected_cost(line["usage"])
    assert line["request"]["partial_images"] == 2
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name or p.name.startswith(".")]


@pytest.mark.parametrize("option,sent", [([], ("true", "2")), (["--partial-images", "3"],
                                                               ("true", "3")),
                                         (["--partial-images", "0"], (None, None))])
def test_stream_and_partial_images_are_sent_as_set(tmp_path, wisgate_env, fake_wisgate,
                                                   option, sent):
    picture = save(scene(320, 240), tmp_path / "photo.png")
    finished = run_tool("edit", picture, "--prompt", "x", *option, env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    fields = fake_wisgate.requests[-1].fields
    assert (fields.get("stream"), fields.get("partial_images")) == sent


def test_the_setting_and_its_environment_variable_set_the_previews(tmp_path, wisgate_env,
                                                                   fake_wisgate):
    picture = save(scene(320, 240), tmp_path / "photo.png")
    env = dict(wisgate_env("echo"), GPT_IMAGE_EDIT_PARTIAL_IMAGES="1")
    assert run_tool("edit", picture, "--prompt", "x", env=env).returncode == 0
    assert fake_wisgate.requests[-1].fields["partial_images"] == "1"
    shown = json.loads(run_tool("settings", env=env).stdout)["effective"]["partial_images"]
    assert shown == {"value": 1, "source": "environment variable "
                                           "GPT_IMAGE_EDIT_PARTIAL_IMAGES"}
    env["GPT_IMAGE_EDIT_PARTIAL_IMAGES"] = "7"
    refused = run_tool("edit", picture, "--prompt", "x", env=env)
    assert refused.returncode == 2
    assert "GPT_IMAGE_EDIT_PARTIAL_IMAGES ('7') is not a number of live previews" in \
        refused.stderr


def test_a_router_answering_plain_json_still_works(tmp_path, wisgate_env, fake_wisgate):
    picture = save(scene(320, 240), tmp_path / "photo.png")
    previews = tmp_path / "previews"
    finished = run_tool("edit", picture, "--prompt", "x", "--json", "--save-previews",
                        previews, env=wisgate_env("plain_router"))
    assert finished.returncode == 0, finished.stderr
    assert fake_wisgate.requests[-1].fields["stream"] == "true"
    assert fake_wisgate.requests[-1].events == []  # answered as plain JSON
    line = json.loads(finished.stdout)
    assert line["cost_usd"] == expected_cost(line["usage"])
    assert psnr(Image.open(tmp_path / "photo-edit.png"), Image.open(picture)) >= 35
    assert list(previews.iterdir()) == [] if previews.exists() else True


def test_an_error_mid_stream_is_one_sentence_and_leaves_no_file(tmp_path, wisgate_env):
    picture = save(scene(320, 240), tmp_path / "photo.png")
    previews = tmp_path / "previews"
    env = wisgate_env("stream_error")
    before = sorted(os.listdir(tmp_path)) + ["settings"]  # the log's folder
    finished = run_tool("edit", picture, "--prompt", "x", "--save-previews", previews,
                        env=env)
    assert finished.returncode == 4
    assert finished.stderr.strip().splitlines()[-1] == (
        f"{picture}: WisGate stopped the edit before it was finished (The server had an "
        "error while processing your request), so nothing was saved: try again.")
    assert "Traceback" not in finished.stderr
    assert sorted(os.listdir(tmp_path)) == before  # no result, no previews folder


def test_without_json_each_edit_prints_its_cost(tmp_path, wisgate_env):
    first = save(scene(320, 240), tmp_path / "one.png")
    second = save(scene(240, 320), tmp_path / "two.png")
    finished = run_tool("edit", first, second, "--prompt", "x", env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    costs = [line for line in finished.stderr.splitlines() if ": cost $" in line]
    assert sorted(line.split(":")[0] for line in costs) == [str(first), str(second)]
    unknown = run_tool("edit", first, "--prompt", "x", "--model", "dall-e-2",
                       env=wisgate_env("echo"))
    assert unknown.returncode == 0, unknown.stderr
    assert f"{first}: cost unknown" in unknown.stderr.splitlines()


# -- estimate and spending limit -------------------------------------------------------------
def estimate(tmp_path, env, *options) -> dict:
    picture = save(scene(640, 480), tmp_path / "photo.png")
    finished = run_tool("edit", picture, "--prompt", "stormy sky", "--estimate", "--json",
                        *options, env=env)
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout)


def test_estimate_sends_nothing_and_follows_variants_quality_and_previews(
        tmp_path, wisgate_env, fake_wisgate):
    env = wisgate_env("echo")
    env.pop("GPT_IMAGE_EDIT_API_KEY")  # no key needed: nothing is sent
    low = estimate(tmp_path, env, "--quality", "low")
    high = estimate(tmp_path, env, "--quality", "high")
    two = estimate(tmp_path, env, "--quality", "high", "-n", "2")
    quiet = estimate(tmp_path, env, "--quality", "high", "--partial-images", "0")
    assert fake_wisgate.requests == []
    assert low["cost_usd"] < high["cost_usd"] < two["cost_usd"]
    assert quiet["cost_usd"] < high["cost_usd"]
    assert high["output_tokens"] - quiet["output_tokens"] == 2 * 100
    assert (high["model"], high["size"], high["quality"], high["n"]) == (
        "gpt-image-2", "1168x880", "high", 1)
    assert high["region"] == {"x": 0, "y": 0, "width": 640, "height": 480}


def test_estimate_in_words(tmp_path, wisgate_env, fake_wisgate):
    first = save(scene(640, 480), tmp_path / "one.png")
    second = save(scene(640, 480), tmp_path / "two.png")
    finished = run_tool("edit", first, second, "--prompt", "x", "--estimate",
                        env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].startswith(f"{first}: would send gpt-image-2 at 1168x880, quality high, "
                               "1 variant, 2 previews each, region 640x480 at 0,0: "
                               "estimated $0.")
    assert lines[2].startswith("Estimated for all 2 edits: $0.")
    assert fake_wisgate.requests == []


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_run_above_the_spending_limit_is_refused_before_sending(tmp_path, wisgate_env,
                                                                  fake_wisgate, how):
    pictures = [save(scene(640, 480), tmp_path / f"p{n}.png") for n in range(3)]
    env = wisgate_env("echo")
    one = estimate(tmp_path, env)["cost_usd"]
    limit = f"{one * 2.5:.4f}"  # two edits fit, the run of three does not
    options = ["--max-cost", limit] if how == "option" else []
    if how == "environment":
        env["GPT_IMAGE_EDIT_MAX_COST"] = limit
    refused = run_tool("edit", *pictures, "--prompt", "stormy sky", *options, env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"These 3 edits would cost about ${3 * one:.2f}, above the spending limit of "
        f"${float(limit):.2f}: nothing was sent; send fewer variants or a lower quality, or "
        "raise the limit with --max-cost.")
    assert fake_wisgate.requests == []
    allowed = run_tool("edit", *pictures[:2], "--prompt", "stormy sky", *options, env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert len(fake_wisgate.requests) == 2


def test_an_unknown_cost_cannot_keep_a_limit(tmp_path, wisgate_env, fake_wisgate):
    picture = save(scene(320, 240), tmp_path / "photo.png")
    refused = run_tool("edit", picture, "--prompt", "x", "--model", "dall-e-2",
                       "--max-cost", "1", env=wisgate_env("echo"))
    assert refused.returncode == 2
    assert "The cost of dall-e-2 is unknown" in refused.stderr
    assert fake_wisgate.requests == []


# -- model families ----------------------------------------------------------------------------
def test_a_dated_snapshot_gets_the_familys_sizes_and_no_input_fidelity(tmp_path, wisgate_env,
                                                                      fake_wisgate):
    picture = save(scene(900, 300), tmp_path / "photo.png")
    finished = run_tool("edit", picture, "--prompt", "x", "--model", "gpt-image-2-2026-04-21",
                        "--json", env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    fields = fake_wisgate.requests[-1].fields
    assert fields["model"] == "gpt-image-2-2026-04-21"
    assert fields["size"] == json.loads(finished.stdout)["request"]["size"] == "1776x592"
    assert "input_fidelity" not in fields
    refused = run_tool("edit", picture, "--prompt", "x", "--model", "gpt-image-2.5-preview",
                       "--size", "1024x512", env=wisgate_env("echo"))
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "gpt-image-2.5-preview does not take the size 1024x512 (it must have at least 655360 "
        "pixels, 1024x640 for example): use auto or a size such as 1536x1024.")
    assert len(fake_wisgate.requests) == 1


# -- models outside the GPT image families ---------------------------------------------------
def test_dall_e_2_gets_a_plain_request(tmp_path, wisgate_env, fake_wisgate):
    picture = save(scene(320, 240), tmp_path / "photo.png")
    finished = run_tool("edit", picture, "--prompt", "x", "--model", "dall-e-2",
                        env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    fields = fake_wisgate.requests[-1].fields
    assert "stream" not in fields and "partial_images" not in fields


@pytest.mark.parametrize("option,sentence", [
    (["--partial-images", "2"], "dall-e-2 sends no live previews (only the GPT image models "
                                "do): set the previews to 0, or choose gpt-image-2."),
    (["--reference", "REF"], "dall-e-2 takes no reference pictures (only the GPT image "
                             "models do): leave them out, or choose gpt-image-2."),
])
def test_dall_e_2_is_told_what_it_cannot_do(tmp_path, wisgate_env, fake_wisgate, option,
                                            sentence):
    picture = save(scene(320, 240), tmp_path / "photo.png")
    reference = save(scene(100, 100), tmp_path / "ref.png")
    option = [str(reference) if part == "REF" else part for part in option]
    refused = run_tool("edit", picture, "--prompt", "x", "--model", "dall-e-2", *option,
                       env=wisgate_env("echo"))
    assert refused.returncode == 2
    assert refused.stderr.strip() == sentence
    assert fake_wisgate.requests == []


# -- the client ------------------------------------------------------------------------------
def test_client_hands_on_previews_and_returns_only_the_completed_picture(wisgate_env,
                                                                         fake_wisgate):
    wisgate_env("spaced")
    image = scene(256, 256)
    data = io.BytesIO()
    image.save(data, "PNG")
    arrived = []
    with ImagesClient(load_settings()) as client:
        response = client.edit(EditRequest(image=data.getvalue(), prompt="x",
                                           model="gpt-image-2", size="1024x1024",
                                           quality="low", n=2, partial_images=2),
                               on_preview=lambda number, png: arrived.append(
                                   (number, time.monotonic(), png)))
    assert [number for number, _, _ in arrived] == [1, 2, 3, 4]
    assert response.images == [data.getvalue()] * 2  # the completed pictures, exactly
    assert all(png != data.getvalue() for _, _, png in arrived)
    sent = [when for kind, when in fake_wisgate.requests[-1].events]
    assert all(later - earlier >= 0.4 for earlier, later in zip(sent, sent[1:]))
    # Usage of both pictures added up.
    assert response.usage["output_tokens"] == 2 * (272 + 200)


def test_client_stream_error_is_a_server_error(wisgate_env):
    wisgate_env("stream_error")
    with ImagesClient(load_settings()) as client, pytest.raises(ServerError) as raised:
        client.edit(EditRequest(image=_png(), prompt="x", model="gpt-image-2",
                                size="1024x1024", quality="low", partial_images=2))
    assert "stopped the edit before it was finished" in str(raised.value)


def _png() -> bytes:
    data = io.BytesIO()
    scene(64, 64).save(data, "PNG")
    return data.getvalue()


# -- the job and the host ------------------------------------------------------------------
def test_job_writes_previews_and_announces_them(tmp_path, wisgate_env):
    picture = scene(640, 480)
    job_path = write_job(tmp_path / "job", picture)
    finished, events = run_worker(job_path, wisgate_env("spaced"))
    assert finished.returncode == 0, finished.stderr
    previews = [event for event in events if event.get("event") == "preview"]
    assert [event["index"] for event in previews] == [1, 2]
    manifest = manifest_of(job_path)
    for event in previews:
        assert event["path"] == f"results/preview-{event['index']}.png"
        assert event["placement"] == manifest["placement"]
        # Never larger than the region (nor than the model's picture): cheap to write.
        assert (event["width"], event["height"]) == picture.size
        assert Image.open(job_path.parent / event["path"]).size == picture.size
    assert manifest["cost_usd"] == expected_cost(manifest["usage"])
    assert manifest["request"]["partial_images"] == 2


def test_job_refuses_an_edit_above_the_limit(tmp_path, wisgate_env, fake_wisgate):
    job_path = write_job(tmp_path / "job", scene(640, 480))
    # Started by GIMP, whose settings dialog has no spending limit: the sentence names
    # where the limit is set, not that dialog.
    env = dict(wisgate_env("echo"), GPT_IMAGE_EDIT_MAX_COST="0.001",
               GPT_IMAGE_EDIT_SETTINGS_PLACE="Filters > AI > GPT Image Settings...")
    finished, _ = run_worker(job_path, env)
    assert finished.returncode == 2
    error = manifest_of(job_path)["error"]
    assert error["kind"] == "cost_limit"
    assert error["message"].startswith("This edit would cost about $0.")
    assert error["message"].endswith(f"raise the limit (max_cost_usd in "
                                     f"{env['GPT_IMAGE_EDIT_CONFIG']}, or "
                                     f"GPT_IMAGE_EDIT_MAX_COST).")
    assert fake_wisgate.requests == []
    raw = json.loads(job_path.read_text())
    job_path.write_text(json.dumps(dict(raw, cost_confirmed=True)))
    finished, _ = run_worker(job_path, env)
    assert finished.returncode == 0, finished.stderr
    assert len(fake_wisgate.requests) == 1


def test_core_shows_previews_before_placing_and_records_the_cost(private_tmp, wisgate_env):
    wisgate_env("spaced")
    image, source = core_scene()
    outcome, document = run_core(image, [source])
    assert outcome.status == "success", outcome.message
    shown = [entry for entry in document.previews if entry[0] == "show"]
    assert len(shown) == 2 and document.previews[-1][0] == "clear"
    result = next(item for item in image.layers if item.name.startswith("GPT edit: "))
    for _, picture, placement, _, names in shown:
        assert placement == {"x": 40, "y": 30, "width": 200, "height": 150}
        assert picture.size[0] / picture.size[1] == pytest.approx(200 / 150, rel=0.02)
        assert result.name not in names  # shown while the result was not placed yet
    record = json.loads(result.parasites["gpt-image-edit"])
    assert record["cost_usd"] == expected_cost(record["usage"])


@pytest.mark.parametrize("confirm", [False, True])
def test_core_asks_before_sending_above_the_limit(private_tmp, wisgate_env, fake_wisgate,
                                                  monkeypatch, confirm):
    wisgate_env("echo")
    monkeypatch.setenv("GPT_IMAGE_EDIT_MAX_COST", "0.001")
    image, source = core_scene()
    before = image.snapshot()
    original = FakeDocument.__init__

    def answering(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.confirm = confirm

    monkeypatch.setattr(FakeDocument, "__init__", answering)
    outcome, document = run_core(image, [source])
    assert len(document.cost_questions) == 1
    assert document.cost_questions[0].startswith("This edit would cost about $0.")
    if confirm:
        assert outcome.status == "success", outcome.message
        assert len(fake_wisgate.requests) == 1
    else:
        assert (outcome.status, outcome.message) == ("error", document.cost_questions[0])
        assert image.snapshot() == before and fake_wisgate.requests == []


# -- settings --------------------------------------------------------------------------------
def test_the_new_settings_are_saved_shown_and_checked(tmp_path, wisgate_env, fake_wisgate):
    env = wisgate_env("echo")
    config = Path(env["GPT_IMAGE_EDIT_CONFIG"])
    saved = subprocess.run(
        [sys.executable, "-m", "gpt_image_edit", "settings", "--update-from-stdin"], env=env,
        input=json.dumps({"partial_images": 0, "max_cost_usd": 0.5,
                          "prices": {"gpt-image-2": {"image_output": 20}}}),
        capture_output=True, text=True, timeout=120)
    assert saved.returncode == 0, saved.stderr
    effective = json.loads(saved.stdout)["effective"]
    assert effective["partial_images"] == {"value": 0, "source": f"settings file {config}"}
    assert effective["max_cost_usd"] == {"value": 0.5, "source": f"settings file {config}"}
    assert effective["prices"]["value"]["gpt-image-2"]["image_output"] == 20
    picture = save(scene(320, 240), tmp_path / "photo.png")
    finished = run_tool("edit", picture, "--prompt", "x", "--json", env=env)
    assert finished.returncode == 0, finished.stderr
    assert "stream" not in fake_wisgate.requests[-1].fields  # 0 previews: a plain request
    line = json.loads(finished.stdout)
    assert line["cost_usd"] == expected_cost(line["usage"], (5, 8, 20))
    refused = subprocess.run(
        [sys.executable, "-m", "gpt_image_edit", "settings", "--update-from-stdin"], env=env,
        input='{"partial_images": 5}', capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("partial_images (5) is not a number of live previews "
                                      "from 0 to 3: set it to, for example, 2 (0 turns them "
                                      "off).")
    config.write_text(json.dumps({"prices": {"my-model": {"text_input": 1}}}))
    broken = run_tool("edit", picture, "--prompt", "x", env=env)
    assert broken.returncode == 2
    assert broken.stderr.strip() == (
        f"The setting 'prices' in {config} is not usable (the price of 'my-model' lacks "
        "image_input, image_output): give each model name prefix text_input, image_input and "
        "image_output in USD per million tokens.")
