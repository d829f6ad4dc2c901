"""The command-line tool, run as users run it: `python -m gpt_image_edit` in a subprocess
against the fake WisGate server."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw

from gpt_image_edit import cli, pricing
from gpt_image_edit.client import RetryPolicy
from gpt_image_edit.edit import EditParams
from gpt_image_edit.logs import setup_logging
from tests.test_imaging import psnr, scene

TOOL = [sys.executable, "-m", "gpt_image_edit"]


def run_tool(*arguments, env: dict, cwd: Path | None = None, timeout: float = 120):
    return subprocess.run(TOOL + [str(argument) for argument in arguments], env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def save(picture: Image.Image, path: Path) -> Path:
    picture.save(path)
    return path


def pngs(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.suffix == ".png")


# -- the "Done when" ---------------------------------------------------------------
@pytest.mark.parametrize("size", [(512, 512), (640, 360), (200, 600), (37, 23)],
                         ids=["square", "16:9", "1:3", "tiny"])
def test_echo_returns_the_input(tmp_path, wisgate_env, size):
    picture = save(scene(*size), tmp_path / "photo.png")
    finished = run_tool("edit", picture, "--prompt", "leave it as it is",
                        env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    output = tmp_path / "photo-edit.png"
    assert finished.stdout.strip() == str(output)
    result = Image.open(output)
    assert result.size == size and result.mode == "RGB"
    assert psnr(result, Image.open(picture)) >= 35


def test_whole_opaque_png_goes_both_ways_as_bytes(tmp_path, wisgate_env, fake_wisgate):
    # Asked for at its own size, the input is uploaded as the file itself, and the answer,
    # which already is the whole picture, is written as received.
    # With --blend none: blending would composite the answer onto the input.
    path = save(scene(1024, 768), tmp_path / "photo.png")
    finished = run_tool("edit", path, "--prompt", "same", "--size", "1024x768", "--blend",
                        "none", env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    assert fake_wisgate.requests[-1].files["image"][0] == path.read_bytes()
    assert (tmp_path / "photo-edit.png").read_bytes() == path.read_bytes()


def test_png_with_an_alpha_channel_is_uploaded_encoded_again(tmp_path, wisgate_env,
                                                            fake_wisgate):
    path = save(scene(1024, 768).convert("RGBA"), tmp_path / "photo.png")  # opaque, with alpha
    finished = run_tool("edit", path, "--prompt", "same", "--size", "1024x768", "--blend",
                        "none", env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    sent = fake_wisgate.requests[-1].files["image"][0]
    assert sent != path.read_bytes() and Image.open(io.BytesIO(sent)).mode == "RGB"
    # The echoed answer is the whole picture already: written as received.
    assert (tmp_path / "photo-edit.png").read_bytes() == sent


def test_answer_at_another_size_is_placed_and_encoded(tmp_path, wisgate_env):
    path = save(scene(1024, 768), tmp_path / "photo.png")
    finished = run_tool("edit", path, "--prompt", "same", "--size", "1024x768",
                        env=wisgate_env("resize"))  # answers 1024x1024
    assert finished.returncode == 0, finished.stderr
    result = Image.open(tmp_path / "photo-edit.png")
    assert result.size == (1024, 768) and result.mode == "RGB"
    assert psnr(result, Image.open(path)) >= 30


def test_answer_for_a_selection_is_composited_even_at_the_pictures_size(tmp_path, wisgate_env):
    picture = scene(1024, 768)
    path = save(picture, tmp_path / "photo.png")
    selection = Image.new("L", picture.size, 0)
    # Half selected, as a feathered edge is; its region is the whole picture.
    ImageDraw.Draw(selection).ellipse((20, 20, 1004, 748), fill=128)
    area = save(selection, tmp_path / "area.png")
    finished = run_tool("edit", path, "--prompt", "invert", "--selection", area, "--size",
                        "1024x768", env=wisgate_env("invert"))
    assert finished.returncode == 0, finished.stderr
    result = Image.open(tmp_path / "photo-edit.png").convert("RGB")
    outside = selection.point(lambda value: 255 if value == 0 else 0)
    assert Image.composite(result, picture, outside).tobytes() == picture.tobytes()
    # Inside: half the input, half the inverted answer.
    assert result.getpixel((512, 384)) == pytest.approx((127.5,) * 3, abs=1)


def selection_and_mask(size) -> tuple[Image.Image, Image.Image]:
    selection = Image.new("L", size, 0)
    ImageDraw.Draw(selection).ellipse((420, 180, 560, 300), fill=255)
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.putalpha(ImageChops.invert(selection))
    return selection, mask


@pytest.mark.parametrize("option", ["--selection", "--mask"])
def test_only_the_selected_area_changes(tmp_path, wisgate_env, fake_wisgate, option):
    picture = scene(640, 360)
    save(picture, tmp_path / "photo.png")
    selection, mask = selection_and_mask(picture.size)
    area = save(selection if option == "--selection" else mask, tmp_path / "area.png")
    finished = run_tool("edit", tmp_path / "photo.png", "--prompt", "invert", option, area,
                        env=wisgate_env("invert"))
    assert finished.returncode == 0, finished.stderr
    result = Image.open(tmp_path / "photo-edit.png").convert("RGB")
    outside = ImageChops.invert(selection)
    # Outside the selection: exactly the input.
    assert Image.composite(result, picture, outside).tobytes() == picture.tobytes()
    # Inside: inverted (within resampling error).
    inside = Image.new("L", picture.size, 0)
    ImageDraw.Draw(inside).ellipse((440, 200, 540, 280), fill=255)
    expected = ImageChops.invert(picture)
    assert psnr(Image.composite(result, expected, inside), expected) >= 35
    # Only the region around the selection was sent, with a mask of its size.
    sent = fake_wisgate.requests[-1]
    image = Image.open(io.BytesIO(sent.files["image"][0]))
    assert Image.open(io.BytesIO(sent.files["mask"][0])).size == image.size


def test_exif_orientation_is_applied(tmp_path, wisgate_env):
    picture = scene(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(tmp_path / "phone.png", exif=exif)
    finished = run_tool("edit", tmp_path / "phone.png", "--prompt", "same",
                        env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    result = Image.open(tmp_path / "phone-edit.png")
    assert result.size == (40, 80)
    assert psnr(result, picture.transpose(Image.Transpose.ROTATE_270)) >= 35


def test_variants_output_folder_and_no_overwrite(tmp_path, wisgate_env):
    save(scene(64, 64), tmp_path / "a.png")
    out = tmp_path / "out"
    env = wisgate_env("echo")
    first = run_tool("edit", tmp_path / "a.png", "--prompt", "x", "-n", "2", "-o", out, env=env)
    assert first.returncode == 0, first.stderr
    assert pngs(out) == ["a-edit-1.png", "a-edit-2.png"]
    before = (out / "a-edit-1.png").read_bytes()
    again = run_tool("edit", tmp_path / "a.png", "--prompt", "x", "-n", "2", "-o", out, env=env)
    assert again.returncode == 0, again.stderr
    assert pngs(out) == ["a-edit-1.png", "a-edit-2.png", "a-edit2-1.png", "a-edit2-2.png"]
    assert (out / "a-edit-1.png").read_bytes() == before
    assert again.stdout.split() == [str(out / "a-edit2-1.png"), str(out / "a-edit2-2.png")]


def test_json_output(tmp_path, wisgate_env):
    save(scene(64, 48), tmp_path / "a.png")
    finished = run_tool("edit", tmp_path / "a.png", "--prompt", "x", "--json", "-n", "2",
                        "--quality", "low", env=wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    lines = [json.loads(line) for line in finished.stdout.splitlines()]
    assert [line["variant"] for line in lines] == [1, 2]
    assert lines[0]["ok"] is True and lines[0]["input"] == str(tmp_path / "a.png")
    assert lines[0]["region"] == {"x": 0, "y": 0, "width": 64, "height": 48}
    assert lines[0]["request"] == {"model": "gpt-image-2", "size": "1168x880",
                                   "quality": "low", "n": 2, "partial_images": 2}
    # Each picture's tokens and its two previews' (the setting's default), priced.
    assert lines[0]["usage"]["output_tokens"] == 2 * (272 + 200)
    details = lines[0]["usage"]["input_tokens_details"]
    assert lines[0]["cost_usd"] == (details["text_tokens"] * 5 + details["image_tokens"] * 8
                                    + lines[0]["usage"]["output_tokens"] * 30) / 1e6


# -- batches -------------------------------------------------------------------------------
def test_batch_with_rate_limits_succeeds(tmp_path, wisgate_env, fake_wisgate):
    inputs = [save(scene(48 + 8 * number, 48), tmp_path / f"p{number}.png")
              for number in range(3)]
    finished = run_tool("edit", *inputs, "--prompt", "x", "--jobs", "2",
                        env=wisgate_env("rate_limit"))
    assert finished.returncode == 0, finished.stderr
    assert pngs(tmp_path) == ["p0-edit.png", "p0.png", "p1-edit.png", "p1.png", "p2-edit.png",
                              "p2.png"]
    assert len(fake_wisgate.requests) == 6  # every input was refused once, then accepted


def test_batch_slows_down_when_rate_limits_outlast_the_client_retries(tmp_path, wisgate_env,
                                                                      fake_wisgate):
    wisgate_env("rate_limit")
    inputs = [save(scene(40 + 8 * number, 40), tmp_path / f"p{number}.png")
              for number in range(2)]
    out, err = io.StringIO(), io.StringIO()
    code = cli.run_batch(inputs, EditParams("x"), jobs=2, retry=RetryPolicy(max_retries=0),
                         stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert "rate limited; pausing 1 s and sending fewer edits at once." in err.getvalue()
    assert sorted(out.getvalue().split()) == [str(tmp_path / "p0-edit.png"),
                                              str(tmp_path / "p1-edit.png")]
    assert len(fake_wisgate.requests) == 4


def test_throttle_halves_and_pauses():
    throttle = cli.Throttle(4)
    throttle.slow_down(0.0)
    assert throttle.limit == 2
    throttle.slow_down(0.0)
    throttle.slow_down(0.0)
    assert throttle.limit == 1
    throttle.acquire()
    throttle.release()


def test_batch_lists_failures_and_exits_with_the_first(tmp_path, wisgate_env):
    good = save(scene(40, 40), tmp_path / "good.png")
    (tmp_path / "broken.png").write_text("not a picture")
    finished = run_tool("edit", tmp_path / "missing.png", good, tmp_path / "broken.png",
                        "--prompt", "x", env=wisgate_env("echo"))
    assert finished.returncode == 2
    assert finished.stderr.splitlines()[-3:] == [
        "2 of 3 edits failed:",
        f"  {tmp_path / 'missing.png'} does not exist: check the file name.",
        f"  {tmp_path / 'broken.png'}: broken.png cannot be read as a picture: save it as PNG "
        "or JPEG and try again."]
    assert pngs(tmp_path) == ["broken.png", "good-edit.png", "good.png"]


# -- failures ------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario, code, words", [
    ("moderation", 3, "safety system"),
    ("forbidden", 3, "refused this request"),
    ("quota", 3, "quota"),
    ("server_error", 4, "having trouble"),
    ("bad_base64", 4, "base64"),
])
def test_exit_codes_per_failure(tmp_path, wisgate_env, fake_wisgate, scenario, code, words):
    picture = save(scene(40, 40), tmp_path / "a.png")
    finished = run_tool("edit", picture, "--prompt", "x", env=wisgate_env(scenario))
    assert finished.returncode == code
    assert words in finished.stderr
    # The sentence is the last line (retries may have been reported above it).
    assert words in finished.stderr.strip().splitlines()[-1]
    assert "Traceback" not in finished.stderr
    assert fake_wisgate.key not in finished.stdout + finished.stderr
    assert pngs(tmp_path) == ["a.png"]


@pytest.mark.parametrize("arguments, words", [
    (["--prompt", " "], "The prompt is empty"),
    (["--prompt", "x", "--size", "1000x1000"], "multiples of 16"),
    (["--prompt", "x", "--jobs", "0"], "--jobs 0"),
    (["--prompt", "x", "-n", "11"], "between 1 and 10"),
    (["--prompt", "x", "--selection", "black.png"], "all black"),
    (["--prompt", "x", "--mask", "opaque.png"], "no transparent pixels"),
    (["--prompt", "x", "--selection", "small.png"], "must be the same size"),
])
def test_bad_input_exits_2_with_a_sentence(tmp_path, wisgate_env, fake_wisgate, arguments,
                                           words):
    save(scene(40, 40), tmp_path / "a.png")
    save(Image.new("L", (40, 40), 0), tmp_path / "black.png")
    save(Image.new("RGB", (40, 40)), tmp_path / "opaque.png")
    save(Image.new("L", (20, 20), 255), tmp_path / "small.png")
    finished = run_tool("edit", "a.png", *arguments, env=wisgate_env("echo"), cwd=tmp_path)
    assert finished.returncode == 2
    assert words in finished.stderr and "Traceback" not in finished.stderr
    assert fake_wisgate.requests == []


def test_usage_errors_exit_2(tmp_path, wisgate_env):
    env = wisgate_env("echo")
    assert run_tool("edit", "a.png", env=env).returncode == 2  # no --prompt
    assert run_tool("edit", "a.png", "--prompt", "x", "--mask", "m.png", "--selection",
                    "s.png", env=env).returncode == 2
    assert run_tool(env=env).returncode == 2


def test_missing_key(tmp_path, wisgate_env):
    env = wisgate_env("echo")
    del env["GPT_IMAGE_EDIT_API_KEY"]
    save(scene(40, 40), tmp_path / "a.png")
    finished = run_tool("edit", tmp_path / "a.png", "--prompt", "x", env=env)
    assert finished.returncode == 2
    assert "No API key is set" in finished.stderr


def test_check_ok_and_refused_key(wisgate_env, fake_wisgate):
    env = wisgate_env("echo")
    accepted = run_tool("check", env=env)
    assert accepted.returncode == 0
    assert "the API key is accepted" in accepted.stdout
    assert fake_wisgate.key not in accepted.stdout + accepted.stderr
    wrong = "sk-wrong-key-0123456789"
    refused = run_tool("check", env=dict(env, GPT_IMAGE_EDIT_API_KEY=wrong))
    assert refused.returncode == 3
    assert "GPT_IMAGE_EDIT_API_KEY" in refused.stderr
    assert wrong not in refused.stdout + refused.stderr
    assert all(request.path.endswith("/models") for request in fake_wisgate.requests)


def test_check_tests_a_typed_key_given_on_stdin(wisgate_env, fake_wisgate):
    """The settings dialog checks a key before saving it, whatever the environment holds."""
    env = dict(wisgate_env("echo"), GPT_IMAGE_EDIT_API_KEY="sk-stale-key-in-environment",
               GPT_IMAGE_EDIT_SETTINGS_PLACE="Filters > AI > GPT Image Settings...")
    argv = TOOL + ["check", "--key-from-stdin"]
    accepted = subprocess.run(argv, env=env, input=fake_wisgate.key + "\n",
                              capture_output=True, text=True, timeout=120)
    assert accepted.returncode == 0
    assert "the API key is accepted" in accepted.stdout
    typed = "sk-typed-but-wrong-0123456789"
    refused = subprocess.run(argv, env=env, input=typed + "\n", capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 3
    assert refused.stderr.strip() == ("WisGate did not accept the API key: check it in "
                                      "Filters > AI > GPT Image Settings... "
                                      "(or GPT_IMAGE_EDIT_API_KEY).")
    assert [request.headers["authorization"] for request in fake_wisgate.requests] == [
        f"Bearer {fake_wisgate.key}", f"Bearer {typed}"]


def test_settings_are_shown_without_the_key_and_saved_privately(wisgate_env, tmp_path):
    """GIMP's settings dialog reads and saves through this command: the worker is the one
    writer of the settings file."""
    env = {name: value for name, value in wisgate_env("echo").items()
           if not name.startswith(("GPT_IMAGE_EDIT_API_KEY", "GPT_IMAGE_EDIT_BASE_URL"))}
    config = tmp_path / "private" / "settings.json"
    env["GPT_IMAGE_EDIT_CONFIG"] = str(config)
    argv = TOOL + ["settings"]
    empty = json.loads(run_tool("settings", env=env).stdout)
    assert empty == {"path": str(config), "base_url": "https://api.wisgate.ai/v1",
                     "default_base_url": "https://api.wisgate.ai/v1", "timeout": 300.0,
                     "api_key_stored": False, "api_key_available": False, "problem": None,
                     "effective": {
                         "base_url": {"value": "https://api.wisgate.ai/v1",
                                      "source": "default"},
                         "timeout": {"value": 300.0, "source": "default"},
                         "api_key": {"set": False, "source": None},
                         "partial_images": {"value": 2, "source": "default"},
                         "max_cost_usd": {"value": None, "source": "default"},
                         "prices": {"value": pricing.merged_prices(), "source": "default"}}}
    key = "sk-saved-through-stdin-0123456789"
    changes = {"api_key": key, "base_url": "http://127.0.0.1:9/v1", "timeout": 120}
    saved = subprocess.run(argv + ["--update-from-stdin"], env=env, input=json.dumps(changes),
                           capture_output=True, text=True, timeout=120)
    assert saved.returncode == 0, saved.stderr
    assert key not in saved.stdout + saved.stderr
    assert json.loads(saved.stdout)["api_key_stored"] is True
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == changes
    removed = subprocess.run(argv + ["--update-from-stdin"], env=env,
                             input='{"base_url": null}', capture_output=True, text=True,
                             timeout=120)
    summary = json.loads(removed.stdout)
    assert summary["base_url"] == "https://api.wisgate.ai/v1"
    assert summary["api_key_available"] is True and summary["timeout"] == 120.0
    assert summary["effective"] == {
        "base_url": {"value": "https://api.wisgate.ai/v1", "source": "default"},
        "timeout": {"value": 120.0, "source": f"settings file {config}"},
        "api_key": {"set": True, "source": f"settings file {config}"},
        "partial_images": {"value": 2, "source": "default"},
        "max_cost_usd": {"value": None, "source": "default"},
        "prices": {"value": pricing.merged_prices(), "source": "default"}}
    from_environment = json.loads(run_tool("settings", env=dict(
        env, GPT_IMAGE_EDIT_BASE_URL="http://127.0.0.1:7/v1",
        WISDOM_GATE_KEY="sk-from-environment-0123456789")).stdout)
    assert from_environment["effective"]["base_url"] == {
        "value": "http://127.0.0.1:7/v1",
        "source": "environment variable GPT_IMAGE_EDIT_BASE_URL"}
    assert from_environment["effective"]["api_key"] == {
        "set": True, "source": "environment variable WISDOM_GATE_KEY"}
    assert "sk-from-environment" not in json.dumps(from_environment)
    refused = subprocess.run(argv + ["--update-from-stdin"], env=env, input='{"colour": 1}',
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("The settings to save must be a JSON object with "
                                      "base_url, api_key, timeout, partial_images, "
                                      "max_cost_usd or prices.")


# -- version, progress ----------------------------------------------------------------------
def test_sentences_name_the_settings_file_on_the_command_line(wisgate_env, tmp_path):
    """No GIMP menu on the command line: the settings file and the command that shows it."""
    env = {name: value for name, value in wisgate_env("echo").items()
           if not name.startswith(("GPT_IMAGE_EDIT_API_KEY", "WISDOM_GATE"))}
    env["GPT_IMAGE_EDIT_CONFIG"] = str(tmp_path / "none" / "settings.json")
    refused = run_tool("check", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"No API key is set: enter it in {tmp_path / 'none' / 'settings.json'} "
        "(gpt-image-edit settings shows it) or set GPT_IMAGE_EDIT_API_KEY.")
    assert "Filters" not in refused.stderr


def test_there_is_no_plan_command_any_more(wisgate_env):
    """The GIMP hosts work out the region themselves (the shared geometry module)."""
    assert run_tool("plan", "--layer-size", "300x200", env=wisgate_env("echo")).returncode == 2


def test_version(wisgate_env):
    finished = run_tool("--version", env=wisgate_env("echo"))
    assert finished.returncode == 0 and finished.stdout.strip() == "gpt-image-edit 0.1.0"


def test_progress_lines_while_waiting(monkeypatch):
    monkeypatch.setattr(cli, "LOG_TICK", 0.05)
    out, err = io.StringIO(), io.StringIO()
    reporter = cli.Reporter(out, err, "gpt-image-2", as_json=False)
    reporter.start()
    reporter.started(Path("photo.png"))
    while "Waiting" not in err.getvalue():
        reporter._stopped.wait(0.05)
    reporter.finished(Path("photo.png"))
    reporter.stop()
    assert err.getvalue().splitlines()[0] == "Waiting for gpt-image-2: photo.png 0 s"
    assert out.getvalue() == ""


def test_unexpected_failure_in_a_batch_points_to_the_log(tmp_path, wisgate_env, monkeypatch):
    wisgate_env("echo")
    inputs = [save(scene(40, 30), tmp_path / "photo.png")]

    def failing_save(*arguments):
        raise RuntimeError("simulated bug while saving")

    monkeypatch.setattr(cli, "save_outputs", failing_save)
    setup_logging()  # as run_edit_command does
    out, err = io.StringIO(), io.StringIO()
    code = cli.run_batch(inputs, EditParams("x"), as_json=True, stdout=out, stderr=err)
    log_file = tmp_path / "settings" / "gpt-image-edit.log"
    message = f"gpt-image-edit failed unexpectedly: see the log at {log_file}."
    assert code == 1
    assert json.loads(out.getvalue())["error"] == {"kind": "internal", "message": message}
    assert err.getvalue().strip() == f"{inputs[0]}: {message}"  # names its input
    assert "simulated bug" in log_file.read_text()


def test_a_failed_edit_takes_away_the_folders_it_made(tmp_path, wisgate_env, fake_wisgate):
    picture = save(scene(40, 40), tmp_path / "a.png")
    (tmp_path / "kept").mkdir()
    for output in (tmp_path / "new" / "deeper", tmp_path / "kept" / "new"):
        finished = run_tool("edit", picture, "--prompt", "x", "-o", output,
                            env=wisgate_env("moderation"))
        assert finished.returncode == 3
        assert finished.stderr.strip().splitlines()[-1].startswith(f"{picture}: ")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.png", "kept", "settings"]
    assert list((tmp_path / "kept").iterdir()) == []
    assert len(fake_wisgate.requests) == 2


@pytest.mark.parametrize("command", [[], ["edit"]])
def test_help_shows_examples_and_every_exit_code(command):
    shown = subprocess.run(TOOL + command + ["--help"], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0
    assert "examples:" in shown.stdout
    assert 'gpt-image-edit edit photo.png --prompt "make the sky stormy"' in shown.stdout
    for code, meaning in [("0", "done"), ("1", "an unexpected failure"),
                          ("2", "usage, input or local file error"), ("3", "the API refused"),
                          ("4", "network or server failure"), ("5", "the job's host went away"),
                          ("130", "interrupted (Ctrl-C)"), ("143", "terminated (SIGTERM)")]:
        assert any(line.split(None, 1) == [code, meaning] or
                   (line.split(None, 1)[0] == code and line.split(None, 1)[1].startswith(meaning))
                   for line in shown.stdout.splitlines() if line.strip())
