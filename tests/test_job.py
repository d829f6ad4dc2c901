"""The worker job protocol (docs/job-protocol.md): the worker run as the hosts run it."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from gpt_image_edit import job as job_module
from gpt_image_edit.errors import EXIT_CRASHED
from gpt_image_edit.geometry import exact_scale, letterbox, request_size, scaled_size
from gpt_image_edit.job import run_job
from tests.fake_host import scaled_by_area
from tests.test_imaging import psnr, scene

WORKER = [sys.executable, "-m", "gpt_image_edit", "job"]


def write_job(folder: Path, picture: Image.Image, selection_image: Image.Image | None = None,
              layer=None, source_xy=(0, 0), **overrides) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    picture.save(folder / "source.png")
    if selection_image is not None:
        selection_image.save(folder / "selection.png")
    layer = layer or {"width": picture.width, "height": picture.height,
                      "offset_x": 0, "offset_y": 0}
    job = {"protocol": 1, "prompt": "invert it", "model": "gpt-image-2", "size": "auto",
           "quality": "high", "variants": 1, "layer": layer,
           "source": {"path": "source.png", "x": source_xy[0], "y": source_xy[1]},
           "selection": {"path": "selection.png"} if selection_image is not None else None,
           "output_dir": "results"}
    job.update(overrides)
    path = folder / "job.json"
    path.write_text(json.dumps(job))
    return path


def run_worker(job_path: Path, env: dict, timeout: float = 60):
    finished = subprocess.run(WORKER + [str(job_path)], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=job_path.parent)
    events = [json.loads(line) for line in finished.stdout.splitlines()]
    return finished, events


def manifest_of(job_path: Path) -> dict:
    return json.loads((job_path.parent / "results" / "manifest.json").read_text())


def leftovers(job_path: Path) -> list[str]:
    """Everything in the results folder but the manifest and the live previews (the host
    deletes the whole job folder; tests/test_stream.py checks the previews)."""
    return sorted(name for name in os.listdir(job_path.parent / "results")
                  if name != "manifest.json" and not name.startswith("preview-"))


def rgba_with_alpha(width: int, height: int) -> Image.Image:
    picture = scene(width, height).convert("RGBA")
    alpha = Image.new("L", picture.size, 255)
    alpha.paste(90, (0, 0, width // 4, height))
    picture.putalpha(alpha)
    return picture


def test_success_manifest_places_results_in_image_coordinates(tmp_path, wisgate_env):
    picture = rgba_with_alpha(500, 300)
    selection = Image.new("L", picture.size, 0)
    selection.paste(255, (300, 150, 400, 230))
    layer = {"width": 900, "height": 700, "offset_x": 15, "offset_y": -7}
    job_path = write_job(tmp_path / "job", picture, selection, layer=layer,
                         source_xy=(120, 200), variants=2)
    finished, events = run_worker(job_path, wisgate_env("invert"))
    assert finished.returncode == 0, finished.stderr
    manifest = manifest_of(job_path)
    # Region in the source: the selection grown by 64 pixels of context on each side.
    assert manifest["placement"] == {"x": 15 + 120 + 236, "y": -7 + 200 + 86,
                                     "width": 228, "height": 208}
    assert manifest["ok"] is True and manifest["protocol"] == 1
    assert manifest["results"] == [{"path": "variant-1.png", "variant": 1},
                                   {"path": "variant-2.png", "variant": 2}]
    assert manifest["request"]["n"] == 2 and manifest["request"]["model"] == "gpt-image-2"
    assert manifest["usage"]["output_tokens"] == 2 * (4160 + 2 * 100)  # two previews each
    assert leftovers(job_path) == ["variant-1.png", "variant-2.png"]
    region = picture.crop((236, 86, 236 + 228, 86 + 208))
    for entry in manifest["results"]:
        result = Image.open(job_path.parent / "results" / entry["path"])
        assert result.size == (228, 208) and result.mode == "RGBA"
        # The source's alpha, not the selection: the host adds the selection as a layer mask.
        assert result.getchannel("A").tobytes() == region.getchannel("A").tobytes()
        inside = result.getpixel((350 - 236, 190 - 86))[:3]
        expected = tuple(255 - value for value in picture.getpixel((350, 190))[:3])
        assert inside == pytest.approx(expected, abs=6)
    assert events[-1] == {"event": "done", "ok": True, "manifest": "results/manifest.json"}
    stages = [event["stage"] for event in events[:-1] if event["event"] == "progress"]
    previews = [event["index"] for event in events if event["event"] == "preview"]
    assert previews == [1, 2, 3, 4]  # two of each picture, by default
    assert stages[0] == "prepare" and "upload" in stages and stages[-1] == "finish"
    assert stages.count("prepare") == 1


def test_whole_layer_without_selection(tmp_path, wisgate_env):
    picture = scene(320, 200).convert("RGBA")
    layer = {"width": 320, "height": 200, "offset_x": 40, "offset_y": 50}
    job_path = write_job(tmp_path / "job", picture, layer=layer)
    finished, _ = run_worker(job_path, wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    manifest = manifest_of(job_path)
    assert manifest["placement"] == {"x": 40, "y": 50, "width": 320, "height": 200}
    result = Image.open(job_path.parent / "results" / "variant-1.png")
    assert psnr(result, picture) >= 35


def test_opaque_result_at_the_regions_size_is_written_as_received(tmp_path, wisgate_env):
    picture = scene(1024, 768)
    job_path = write_job(tmp_path / "job", picture, size="1024x768")
    finished, _ = run_worker(job_path, wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    source = (job_path.parent / "source.png").read_bytes()
    # Uploaded as the file itself and echoed: the result file is those very bytes (RGB).
    assert (job_path.parent / "results" / "variant-1.png").read_bytes() == source
    assert manifest_of(job_path)["placement"] == {"x": 0, "y": 0, "width": 1024, "height": 768}


def test_result_of_a_layer_with_alpha_is_encoded_as_rgba(tmp_path, wisgate_env):
    picture = rgba_with_alpha(1024, 768)
    job_path = write_job(tmp_path / "job", picture, size="1024x768")
    finished, _ = run_worker(job_path, wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    result = Image.open(job_path.parent / "results" / "variant-1.png")
    assert result.mode == "RGBA"
    assert result.getchannel("A").tobytes() == picture.getchannel("A").tobytes()


def test_region_never_grows_beyond_an_exported_crop(tmp_path, wisgate_env, capsys):
    """A host may export only the planned region: the worker must keep to it."""
    wisgate_env("echo")
    crop = scene(228, 208).convert("RGBA")  # `plan` for a 100x80 selection at 900,500
    selection = Image.new("L", crop.size, 0)
    selection.paste(255, (64, 64, 164, 144))
    layer = {"width": 1200, "height": 800, "offset_x": 5, "offset_y": 6}
    job_path = write_job(tmp_path / "job", crop, selection, layer=layer, source_xy=(836, 436))
    code, _ = run_in_process(job_path, capsys)
    assert code == 0
    assert manifest_of(job_path)["placement"] == {"x": 841, "y": 442, "width": 228,
                                                  "height": 208}


@pytest.mark.parametrize("scenario, kind, code", [
    ("forbidden", "permission", 3),
    ("moderation", "moderation", 3),
    ("quota", "quota", 3),
    ("too_large", "too_large", 3),
    ("server_error", "server", 4),
    ("html_502", "server", 4),
    ("bad_json", "bad_response", 4),
    ("bad_base64", "bad_response", 4),
    ("truncated", "bad_response", 4),
    ("fewer", "bad_response", 4),
])
def test_failure_kinds_write_a_failure_manifest(tmp_path, wisgate_env, fake_wisgate,
                                                scenario, kind, code):
    job_path = write_job(tmp_path / "job", scene(64, 48).convert("RGBA"), variants=2)
    env = wisgate_env(scenario)
    finished, events = run_worker(job_path, env)
    assert finished.returncode == code
    manifest = manifest_of(job_path)
    assert manifest["ok"] is False and manifest["error"]["kind"] == kind
    message = manifest["error"]["message"]
    assert message.endswith(".") and "\n" not in message
    assert fake_wisgate.key not in finished.stdout + finished.stderr + message
    assert leftovers(job_path) == []
    assert events[-1] == {"event": "done", "ok": False, "manifest": "results/manifest.json"}


def test_wrong_key_is_an_authentication_failure(tmp_path, wisgate_env):
    env = dict(wisgate_env("echo"), GPT_IMAGE_EDIT_API_KEY="wrong-key-0123456789")
    job_path = write_job(tmp_path / "job", scene(64, 48).convert("RGBA"))
    finished, _ = run_worker(job_path, env)
    assert finished.returncode == 3
    error = manifest_of(job_path)["error"]
    assert error["kind"] == "authentication" and "GPT_IMAGE_EDIT_API_KEY" in error["message"]
    assert "wrong-key-0123456789" not in finished.stdout + finished.stderr + error["message"]


def test_missing_key_is_bad_input(tmp_path, wisgate_env):
    env = wisgate_env("echo")
    del env["GPT_IMAGE_EDIT_API_KEY"]
    job_path = write_job(tmp_path / "job", scene(64, 48).convert("RGBA"))
    finished, _ = run_worker(job_path, env)
    assert finished.returncode == 2
    assert manifest_of(job_path)["error"]["kind"] == "missing_key"


def test_timeout_and_unreachable_are_network_failures(tmp_path, wisgate_env, fake_wisgate):
    job_path = write_job(tmp_path / "slow", scene(64, 48).convert("RGBA"))
    finished, events = run_worker(job_path, wisgate_env("slow", timeout=2))
    assert finished.returncode == 4
    assert manifest_of(job_path)["error"]["kind"] == "timeout"
    assert any(event.get("stage") == "wait" and event["message"].startswith(
        "Waiting for gpt-image-2: ") for event in events)

    unreachable = write_job(tmp_path / "closed", scene(64, 48).convert("RGBA"))
    env = dict(wisgate_env("echo"), GPT_IMAGE_EDIT_BASE_URL="http://127.0.0.1:9/v1")
    finished, _ = run_worker(unreachable, env)
    assert finished.returncode == 4
    assert manifest_of(unreachable)["error"]["kind"] == "network"


def close_lifeline_mid_request(job_path: Path, env: dict) -> int:
    """Start the worker as a host would, close its stdin once the request is out."""
    worker = subprocess.Popen(WORKER + [str(job_path)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              cwd=job_path.parent.parent)
    try:
        for line in worker.stdout:  # wait until the request is out
            if json.loads(line).get("stage") == "wait":
                break
        worker.stdin.close()
        return worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()


def test_lifeline_closed_stops_the_worker_without_a_manifest(tmp_path, wisgate_env):
    job_path = write_job(tmp_path / "job", scene(64, 48).convert("RGBA"))
    code = close_lifeline_mid_request(job_path, wisgate_env("slow", timeout=120))
    assert code == job_module.EXIT_HOST_GONE
    assert not (job_path.parent / "results" / "manifest.json").exists()
    assert leftovers(job_path) == []


def test_lifeline_closed_removes_the_hosts_job_folder(tmp_path, wisgate_env):
    """A host killed mid-edit cannot clean up; its private folder must not stay behind."""
    job_path = write_job(tmp_path / "gpt-image-edit-k2j4", scene(64, 48).convert("RGBA"))
    (job_path.parent / job_module.JOB_FOLDER_MARKER).touch()
    code = close_lifeline_mid_request(job_path, wisgate_env("slow", timeout=120))
    assert code == job_module.EXIT_HOST_GONE
    assert not job_path.parent.exists()


def test_lifeline_closed_keeps_a_folder_the_host_did_not_mark(tmp_path, wisgate_env):
    """A job run by hand from the user's own folder: nothing of theirs may go."""
    job_path = write_job(tmp_path / "gpt-image-edit-my-project", scene(64, 48).convert("RGBA"))
    notes = job_path.parent / "notes.txt"
    notes.write_text("mine")
    code = close_lifeline_mid_request(job_path, wisgate_env("slow", timeout=120))
    assert code == job_module.EXIT_HOST_GONE
    assert notes.read_text() == "mine"


def start_ahead(job_path: Path, env: dict) -> subprocess.Popen:
    """A worker started as the hosts start it, before its job is written."""
    return subprocess.Popen(WORKER + [str(job_path), "--wait-for-start"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=job_path.parent)


def test_a_worker_started_ahead_reads_its_job_once_told(tmp_path, wisgate_env):
    folder = tmp_path / "job"
    folder.mkdir()
    worker = start_ahead(folder / "job.json", wisgate_env("echo"))
    try:
        # A second later it still waits: without waiting it would have failed on the
        # missing job file by now.
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=1.0)
        job_path = write_raw_job(folder, scene(120, 80))
        worker.stdin.write(b"start\n")
        worker.stdin.flush()
        events = [json.loads(line) for line in worker.stdout]
        assert worker.wait(timeout=30) == 0, worker.stderr.read()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        for stream in (worker.stdin, worker.stdout, worker.stderr):
            stream.close()
    assert events[-1] == {"event": "done", "ok": True, "manifest": "results/manifest.json"}
    assert manifest_of(job_path)["ok"] is True


def test_a_worker_waiting_for_its_start_stops_when_the_host_dies(tmp_path, wisgate_env):
    folder = tmp_path / "gpt-image-edit-w8t1"
    folder.mkdir()
    (folder / job_module.JOB_FOLDER_MARKER).touch()
    worker = start_ahead(folder / "job.json", wisgate_env("echo"))
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=1.0)
        worker.stdin.close()
        assert worker.wait(timeout=30) == job_module.EXIT_HOST_GONE
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()
        worker.stderr.close()
    assert not folder.exists()


def write_raw_job(folder: Path, picture: Image.Image, selection_image=None, region=None,
                  mode="RGBA", **overrides) -> Path:
    """A protocol 2 job as the GIMP 3 host writes it: the region's raw pixels at full size,
    results asked for raw."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y, width, height = region or (0, 0, *picture.size)
    (folder / "source.raw").write_bytes(
        picture.convert(mode).crop((x, y, x + width, y + height)).tobytes())
    selection = None
    if selection_image is not None:
        (folder / "selection.gray").write_bytes(
            selection_image.crop((x, y, x + width, y + height)).tobytes())
        selection = {"path": "selection.gray", "pixels": "L"}
    job = {"protocol": 2, "prompt": "invert it", "model": "gpt-image-2", "size": "auto",
           "quality": "high", "variants": 1,
           "layer": {"width": picture.width, "height": picture.height, "offset_x": 5,
                     "offset_y": 7},
           "source": {"path": "source.raw", "pixels": mode, "x": x, "y": y,
                      "width": width, "height": height},
           "selection": selection, "output_dir": "results", "result_pixels": "raw"}
    job.update(overrides)
    path = folder / "job.json"
    path.write_text(json.dumps(job))
    return path


def raw_result(job_path: Path, entry: dict, size) -> Image.Image:
    data = (job_path.parent / "results" / entry["path"]).read_bytes()
    return Image.frombytes(entry["pixels"], size, data)


def test_raw_pixels_both_ways_scaled_by_the_worker(tmp_path, wisgate_env, fake_wisgate):
    """Protocol 2: the host hands over the region at full size; the worker sends it at the
    size the API gets and writes the result back raw at the region's full size."""
    picture = scene(2400, 1600)
    job_path = write_raw_job(tmp_path / "job", picture)
    finished, _ = run_worker(job_path, wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    manifest = manifest_of(job_path)
    assert manifest["protocol"] == 2
    assert manifest["placement"] == {"x": 5, "y": 7, "width": 2400, "height": 1600}
    [entry] = manifest["results"]
    assert entry == {"path": "variant-1.rgba", "variant": 1, "pixels": "RGBA"}
    [request] = fake_wisgate.requests
    sent = Image.open(io.BytesIO(request.files["image"][0]))
    assert sent.size == tuple(int(side) for side in request.fields["size"].split("x"))
    assert sent.size == (2336, 1568)
    result = raw_result(job_path, entry, (2400, 1600))
    assert psnr(result, picture.convert("RGBA")) >= 30
    assert leftovers(job_path) == ["variant-1.rgba"]


@pytest.mark.parametrize("blend", ["none", "seamless"])
def test_an_opaque_rgb_source_comes_back_rgb_unless_blending_needs_alpha(tmp_path, wisgate_env,
                                                                        blend):
    picture = scene(320, 240)
    job_path = write_raw_job(tmp_path / "job", picture, mode="RGB", blend=blend)
    finished, _ = run_worker(job_path, wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    [entry] = manifest_of(job_path)["results"]
    mode = "RGB" if blend == "none" else "RGBA"
    assert (entry["pixels"], entry["path"]) == (mode, f"variant-1.{mode.lower()}")
    assert psnr(raw_result(job_path, entry, (320, 240)), picture.convert(mode)) >= 35


def test_raw_selection_edit_gets_a_raw_mask_when_blended(tmp_path, wisgate_env):
    picture = scene(640, 480)
    selection = Image.new("L", picture.size, 0)
    selection.paste(255, (300, 200, 420, 300))
    job_path = write_raw_job(tmp_path / "job", picture, selection, region=(200, 100, 320, 300),
                             blend="feather", variants=2)
    finished, _ = run_worker(job_path, wisgate_env("invert"))
    assert finished.returncode == 0, finished.stderr
    manifest = manifest_of(job_path)
    placement = manifest["placement"]
    assert (placement["width"], placement["height"]) == (320, 300)
    first, second = manifest["results"]
    assert first["mask"] == second["mask"] == "variant-1-mask.gray"
    mask = Image.frombytes("L", (320, 300),
                           (job_path.parent / "results" / first["mask"]).read_bytes())
    assert mask.getpixel((160, 150)) == 255 and mask.getpixel((5, 5)) == 0
    inverted = raw_result(job_path, first, (320, 300)).getpixel((160, 150))[:3]
    expected = tuple(255 - value for value in picture.getpixel((360, 250))[:3])
    assert inverted == pytest.approx(expected, abs=8)
    assert leftovers(job_path) == ["variant-1-mask.gray", "variant-1.rgba", "variant-2.rgba"]


def test_a_scaled_png_source_can_ask_for_raw_results_at_full_size(tmp_path, wisgate_env):
    picture = scene(600, 400)
    job_path = write_job(tmp_path / "job", picture.resize((300, 200)), protocol=2,
                         layer={"width": 600, "height": 400, "offset_x": 0, "offset_y": 0},
                         source={"path": "source.png", "x": 0, "y": 0, "width": 600,
                                 "height": 400},
                         result_pixels="raw")
    finished, _ = run_worker(job_path, wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    [entry] = manifest_of(job_path)["results"]
    assert psnr(raw_result(job_path, entry, (600, 400)), picture.convert("RGBA")) >= 25


def stripes(width: int, height: int) -> Image.Image:
    """Soft diagonal stripes 60 px apart over the scene: a result placed a pixel off shows."""
    wave = Image.new("L", (width, height))
    wave.putdata([round(127.5 + 127.5 * math.sin(2 * math.pi * (x + y) / 60))
                  for y in range(height) for x in range(width)])
    return Image.merge("RGB", [ImageChops.add(channel.point(lambda v: v // 2), wave.point(
        lambda v: v // 2)) for channel in scene(width, height).split()])


def write_scaled_job(folder: Path, picture: Image.Image, **overrides) -> tuple[Path, tuple]:
    """A job as GIMP 3 writes it for an opaque whole layer its previews scale down: the
    layer scaled by the exact factor (by area, the last row repeated), raw RGB."""
    canvas = request_size(*picture.size, "gpt-image-2")
    numerator, denominator = exact_scale(*picture.size, *canvas)
    size = scaled_size(*picture.size, numerator, denominator)
    scaled = scaled_by_area(picture, numerator / denominator, size)
    path = write_raw_job(folder, picture, mode="RGB", **overrides)
    (folder / "source.raw").write_bytes(scaled.tobytes())
    job = json.loads(path.read_text())
    job["source"]["scale"] = [numerator, denominator]
    path.write_text(json.dumps(job))
    return path, (numerator, denominator)


@pytest.mark.parametrize("blend", ["none", "seamless"])
def test_a_scaled_source_comes_back_at_full_size_exactly_in_place(tmp_path, wisgate_env,
                                                                  fake_wisgate, blend):
    """GIMP's previews hand over the layer scaled by one exact factor: the worker sends it
    unscaled and maps the result back onto the whole layer, not a pixel off."""
    picture = stripes(3000, 2000)
    job_path, (numerator, denominator) = write_scaled_job(tmp_path / "job", picture,
                                                          blend=blend)
    finished, _ = run_worker(job_path, wisgate_env("echo"))
    assert finished.returncode == 0, finished.stderr
    manifest = manifest_of(job_path)
    assert manifest["placement"] == {"x": 5, "y": 7, "width": 3000, "height": 2000}
    [entry] = manifest["results"]
    assert entry["pixels"] == "RGB" and ("mask" in entry) == (blend == "seamless")
    [request] = fake_wisgate.requests
    sent = Image.open(io.BytesIO(request.files["image"][0]))
    assert sent.size == (2336, 1568) and (numerator, denominator) == (292, 375)
    result = raw_result(job_path, entry, (3000, 2000))
    assert psnr(result, picture) >= 30
    # The same answer mapped as if the picture were the region exactly (its last, partly
    # covered row stretched over the layer) lands up to a pixel off, and shows it.
    content = letterbox(3000, 2000, 2336, 1568)
    stretched = Image.open(io.BytesIO(request.files["image"][0])).resize(
        (3000, 2000), Image.Resampling.LANCZOS,
        box=(0, content.y, 2336, content.y + scaled_size(3000, 2000, 292, 375)[1]))
    assert psnr(result, picture) >= psnr(stretched, picture) + 3
    assert psnr(result.crop((0, 1900, 3000, 2000)), picture.crop((0, 1900, 3000, 2000))) >= 30


def test_a_scaled_source_of_the_wrong_size_is_refused(tmp_path, wisgate_env, fake_wisgate):
    picture = scene(2400, 1600)
    job_path, _ = write_scaled_job(tmp_path / "job", picture)
    (tmp_path / "job" / "source.raw").write_bytes(picture.tobytes())  # full size, not scaled
    finished, _ = run_worker(job_path, wisgate_env("echo"))
    assert finished.returncode != 0 and fake_wisgate.requests == []
    assert "start the edit again" in manifest_of(job_path)["error"]["message"]


# -- bad jobs, in process (the worker's own code path, without a process start each) -------
def run_in_process(job_path: Path, capsys) -> tuple[int, list[dict]]:
    code = run_job(job_path)
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("change, words", [
    ({"protocol": 3}, "protocol 3"),
    ({"source": {"path": "source.png", "pixels": "RGBA"}, "protocol": 2},
     "raw pixels without"),
    ({"source": {"path": "source.png", "pixels": "RGB16", "width": 64, "height": 48},
      "protocol": 2}, "'source.pixels' is not RGBA or RGB"),
    ({"source": {"path": "source.png", "pixels": "RGBA", "width": 64, "height": 48},
      "protocol": 2}, "not the 12288 of 64x48 RGBA pixels"),
    ({"result_pixels": "jpeg", "protocol": 2}, "'result_pixels' is neither"),
    ({"prompt": " "}, "The prompt is empty"),
    ({"variants": 11}, "between 1 and 10"),
    ({"variants": "2"}, "'variants' is not a whole number"),
    ({"quality": "best"}, "not one of auto"),
    ({"size": "1000x1000"}, "multiples of 16"),
    ({"layer": {"width": 10, "height": 10, "offset_x": 0, "offset_y": 0}}, "does not fit"),
    ({"layer": "big"}, "'layer' is not an object"),
    ({"source": {"path": "nowhere.png", "x": 0, "y": 0}}, "does not exist"),
    ({"source": {"path": "source.png", "x": -1, "y": 0}}, "'x' is not a whole number"),
    ({"selection": {"path": "small.png"}}, "not the size of the exported layer"),
    ({"selection": "yes"}, "'selection' is neither null nor an object"),
])
def test_bad_jobs_fail_with_bad_input(tmp_path, wisgate_env, fake_wisgate, capsys,
                                      change, words):
    wisgate_env("echo")
    job_path = write_job(tmp_path / "job", scene(64, 48).convert("RGBA"), **change)
    Image.new("L", (10, 10), 255).save(tmp_path / "job" / "small.png")
    code, events = run_in_process(job_path, capsys)
    assert code == 2
    error = manifest_of(job_path)["error"]
    assert error["kind"] == "bad_input" and words in error["message"]
    assert events[-1]["ok"] is False
    assert fake_wisgate.requests == []
    assert leftovers(job_path) == []


def test_unreadable_job_files_fail_without_a_manifest(tmp_path, wisgate_env, capsys):
    wisgate_env("echo")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert run_in_process(broken, capsys)[0] == 2
    no_output = write_job(tmp_path / "job", scene(8, 8), output_dir="")
    code, events = run_in_process(no_output, capsys)
    assert code == 2 and events[-1] == {"event": "done", "ok": False, "manifest": None}
    assert run_in_process(tmp_path / "missing.json", capsys)[0] == 2
    assert not (tmp_path / "job" / "results").exists()


def test_manifest_is_written_after_every_complete_result(tmp_path, wisgate_env, capsys,
                                                         monkeypatch):
    wisgate_env("echo")
    job_path = write_job(tmp_path / "job", scene(64, 48).convert("RGBA"), variants=3)
    renames = []
    real_replace = os.replace

    def watched_replace(source, target):
        target = Path(target)
        if target.name == "manifest.json":
            # At this moment every result must already be complete under its final name.
            for number in (1, 2, 3):
                with Image.open(target.parent / f"variant-{number}.png") as result:
                    result.load()
        if tmp_path / "job" in target.parents:  # not the results history's files
            renames.append(target.name)
        real_replace(source, target)

    monkeypatch.setattr(job_module.os, "replace", watched_replace)
    code, _ = run_in_process(job_path, capsys)
    assert code == 0
    # The live previews (two per picture by default) come first, as they arrived.
    assert renames == [f"preview-{number}.png" for number in range(1, 7)] + [
        "variant-1.png", "variant-2.png", "variant-3.png", "manifest.json"]


def test_unexpected_failure_leaves_a_manifest_pointing_to_the_log(tmp_path, wisgate_env,
                                                                  capsys, monkeypatch):
    wisgate_env("echo")
    job_path = write_job(tmp_path / "job", scene(64, 48).convert("RGBA"), variants=2)
    real_replace = job_module.replace_atomically
    calls = []

    def failing_second_time(path, write, **options):
        calls.append(path.name)
        if len(calls) == 2:
            raise RuntimeError("simulated bug while writing the second result")
        real_replace(path, write, **options)

    monkeypatch.setattr(job_module, "replace_atomically", failing_second_time)
    code, events = run_in_process(job_path, capsys)
    assert code == EXIT_CRASHED
    error = manifest_of(job_path)["error"]
    log_file = tmp_path / "settings" / "gpt-image-edit.log"
    assert error == {"kind": "internal",
                     "message": f"The worker failed unexpectedly: see the log at {log_file}."}
    assert "simulated bug" in log_file.read_text() and "Traceback" in log_file.read_text()
    assert leftovers(job_path) == []  # the first result, already written, was removed
    assert events[-1]["ok"] is False
