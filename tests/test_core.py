"""The host core through the fake host: every policy both GIMPs share, in milliseconds
where no worker is needed, and end to end through the real worker and the fake WisGate
server where the job matters. tests/test_gimp3.py and tests/test_gimp2.py run the same
cases (tests/host_policies.py) in real GIMP 3 and through GIMP 2.10's gimpfu.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from gpt_image_edit.geometry import Box, letterbox, plan_region, request_size
from tests import host_policies as policies
from tests.fake_host import FakeDocument, FakeImage, Item, core, layer, mask_of

PROMPT = "replace the sky with a stormy sunset over the hills and the river"
NAME = "GPT edit: replace the sky with a stormy sunset\u2026"


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("GPT_IMAGE_EDIT_WORKER", sys.executable)
    return folder


def smooth(size) -> Image.Image:
    small = Image.new("RGB", (8, 6))
    small.putdata([(30 * x % 256, 40 * y % 256, (x * y * 13) % 256) for y in range(6)
                   for x in range(8)])
    return small.resize(size, Image.BICUBIC)


def scene(canvas=(320, 240), size=(200, 150), offsets=(40, 30)):
    image = FakeImage(canvas)
    source = image.add_layer(layer("source", smooth(size), offsets))
    image.add_layer(layer("above", Image.new("RGB", (10, 10), "white")))
    image.selected = [source]
    return image, source


def run(image, drawables, **arguments):
    values = {"prompt": PROMPT, "model": "gpt-image-2", "size": "auto", "quality": "high",
              "variants": 1, "use-selection": True, **arguments}
    document = FakeDocument(image, drawables, values)
    return core.edit(document, "/nonexistent-entry-dir"), document


def select_ellipse(image, box):
    ImageDraw.Draw(image.selection).ellipse(box, fill=255)


# -- refusals: the same sentences on both GIMPs ------------------------------------------

@pytest.mark.parametrize("case", sorted(policies.REFUSALS))
def test_refusals_say_why_and_change_nothing(case, private_tmp, fake_wisgate):
    image, source = scene()
    drawable = source
    if case == "layer_group":
        drawable = image.add_layer(Item("group", "group", Image.new("RGBA", (1, 1))))
    if case == "selection_beside":
        select_ellipse(image, (250, 190, 300, 230))
    before = image.snapshot()
    outcome, document = run(image, [drawable], **policies.REFUSAL_ARGUMENTS.get(case, {}))
    assert (outcome.status, outcome.message) == ("error", policies.REFUSALS[case])
    assert image.snapshot() == before and image.undo_log == []
    assert "layer_pixels" not in document.calls
    assert fake_wisgate.requests == []
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("chosen,sentence", [
    ("none", policies.NO_LAYER), ("two", policies.NO_LAYER), ("channel", policies.NOT_A_LAYER)])
def test_one_layer_is_needed(chosen, sentence, private_tmp):
    image, source = scene()
    drawables = {"none": [], "two": [source, image.layers[0]],
                 "channel": [Item("channel", "alpha copy", Image.new("L", (5, 5)))]}[chosen]
    outcome, _ = run(image, drawables)
    assert (outcome.status, outcome.message) == ("error", sentence)


def test_cancelled_dialog_changes_nothing(private_tmp):
    image, source = scene()
    before = image.snapshot()
    outcome = core.edit(FakeDocument(image, [source], None), "/nowhere")
    assert outcome.status == "cancel" and image.snapshot() == before


def test_a_bug_gives_a_sentence_not_a_traceback(private_tmp, wisgate_env, capsys):
    wisgate_env("echo")
    image, source = scene()
    before = image.snapshot()
    values = {"prompt": PROMPT}
    outcome = core.edit(FakeDocument(image, [source], values, crash_on="layer_pixels"), "/x")
    assert (outcome.status, outcome.message) == ("error", policies.UNEXPECTED)
    assert "ZeroDivisionError" in capsys.readouterr().err  # for the report, on the console
    assert image.snapshot() == before and list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("step", ["layer_pixels", "selection_pixels"])
def test_a_failed_export_is_said(step, private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    select_ellipse(image, (60, 50, 120, 90))
    before = image.snapshot()
    outcome = core.edit(FakeDocument(image, [source], {"prompt": PROMPT}, fail_on=step), "/x")
    assert (outcome.status, outcome.message) == ("error", policies.NOT_EXPORTED)
    assert image.snapshot() == before and list(private_tmp.iterdir()) == []


def test_a_failed_result_layer_leaves_nothing_behind(private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    before = image.snapshot()
    outcome = core.edit(FakeDocument(image, [source], {"prompt": PROMPT, "variants": 2},
                                     fail_on="new_layer"), "/x")
    assert (outcome.status, outcome.message) == ("error", policies.UNREADABLE_RESULT)
    assert image.snapshot() == before and image.undo_log == []
    assert list(private_tmp.iterdir()) == []


# -- edits through the real worker -----------------------------------------------------

def test_whole_layer_lands_above_the_source_selected_in_one_undo_step(private_tmp,
                                                                      wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    outcome, document = run(image, [source])
    assert outcome.status == "success", outcome.message
    assert image.names() == ["above", NAME, "source", "background"]
    result = image.layers[1]
    assert result.offsets == (40, 30) and result.size == (200, 150) and result.mask is None
    assert image.selected == [result]
    record = json.loads(result.parasites["gpt-image-edit"])
    assert (record["prompt"], record["variant"]) == (PROMPT, 1)
    log = image.undo_log
    assert log[0] == ("group-start",) and log[-1] == ("group-end",)
    assert all(entry[2] for entry in log[1:-1]) and image.undo_depth == 0
    assert document.progress[0] == ("start", "GPT Image Edit: preparing")
    assert document.progress[-1] == ("end",)
    assert list(private_tmp.iterdir()) == []


def test_a_chosen_layer_mask_edits_its_layer(private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    outcome, _ = run(image, [mask_of(source)])
    assert outcome.status == "success", outcome.message
    assert image.names() == ["above", NAME, "source", "background"]


def test_a_large_layer_is_sent_at_the_size_the_api_gets(private_tmp, wisgate_env,
                                                        fake_wisgate):
    """Handed over raw at full size, scaled down and back up once by the worker: GIMP
    scales nothing."""
    wisgate_env("echo")
    image, source = scene(canvas=(3000, 2000), size=(3000, 2000), offsets=(0, 0))
    outcome, document = run(image, [source])
    assert outcome.status == "success", outcome.message
    canvas = request_size(3000, 2000, "gpt-image-2")
    content = letterbox(3000, 2000, *canvas)
    assert document.exported["source"].size == (3000, 2000)
    [request] = fake_wisgate.requests
    assert request.fields["size"] == f"{canvas[0]}x{canvas[1]}"
    sent = Image.open(io.BytesIO(request.files["image"][0]))
    assert sent.size == canvas and sent.crop(content.bounds()).getbbox() is not None
    result = image.layers[1]
    assert result.size == (3000, 2000) and result.offsets == (0, 0)
    difference = ImageChops.difference(result.pixels.convert("RGB"), source.pixels)
    assert max(ImageStat.Stat(difference).mean) < 1.5


def test_a_selection_sends_its_region_and_masks_the_result(private_tmp, wisgate_env,
                                                          fake_wisgate):
    wisgate_env("invert")
    image, source = scene(canvas=(3000, 2000), size=(2400, 1600), offsets=(350, 250))
    select_ellipse(image, (1500, 900, 1900, 1200))
    outcome, document = run(image, [source])
    assert outcome.status == "success", outcome.message
    x1, y1, x2, y2 = image.selection.getbbox()
    region = plan_region(2400, 1600, Box.from_bounds(x1 - 350, y1 - 250, x2 - 350, y2 - 250))
    result = image.layers[1]
    assert result.offsets == (350 + region.x, 250 + region.y)
    assert result.size == (region.width, region.height)
    assert document.exported["selection"].size == document.exported["source"].size
    box = (result.offsets[0], result.offsets[1], result.offsets[0] + result.size[0],
           result.offsets[1] + result.size[1])
    assert result.mask.tobytes() == image.selection.crop(box).tobytes()


def test_variants_arrive_as_a_group(private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    outcome, _ = run(image, [source], variants=3, quality="low")
    assert outcome.status == "success", outcome.message
    group = image.layers[1]
    assert group.kind == "group" and group.name == NAME
    assert [child.name for child in group.children] == ["variant 1", "variant 2", "variant 3"]
    # One clean result on the canvas: the first variant shows and is the selected layer.
    assert [child.visible for child in group.children] == [True, False, False]
    assert group.visible and image.selected == [group.children[0]]


def test_a_failed_insert_leaves_nothing_behind(private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    before = image.snapshot()
    document = FakeDocument(image, [source], {"prompt": PROMPT, "variants": 2},
                            fail_on="attach_parasite")
    outcome = core.edit(document, "/x")
    assert (outcome.status, outcome.message) == ("error", policies.NOT_INSERTED)
    assert image.snapshot()[0] == before[0] and image.undo_depth == 0
    assert list(private_tmp.iterdir()) == []


def test_no_key_is_said_by_the_job_with_the_settings_menu(private_tmp, wisgate_env,
                                                          monkeypatch, fake_wisgate):
    """No separate settings check: the one worker start reports the missing key, and the
    host has told it where its user sets one."""
    wisgate_env("echo")
    monkeypatch.delenv("GPT_IMAGE_EDIT_API_KEY")
    image, source = scene()
    before = image.snapshot()
    outcome, _ = run(image, [source])
    assert (outcome.status, outcome.message) == ("error", policies.NO_KEY)
    assert image.snapshot() == before and fake_wisgate.requests == []


# -- interactive use: captured at OK, placed as asked (issue #11) -------------------------
def run_pending(image, drawables, while_waiting, **arguments):
    """An edit during which the user does `while_waiting(document)`."""
    values = {"prompt": PROMPT, "variants": 1, **arguments}
    document = FakeDocument(image, drawables, values, interactive=True)
    document.while_waiting = while_waiting
    return core.edit(document, "/x"), document


def test_the_selection_is_the_one_at_ok_whatever_happens_meanwhile(private_tmp, wisgate_env):
    wisgate_env("invert")
    image, source = scene()
    select_ellipse(image, (80, 60, 180, 140))
    asked = image.selection.copy()

    def clear_selection_and_add_a_layer(document):
        image.selection = Image.new("L", image.size)
        image.add_layer(layer("painted meanwhile", Image.new("RGB", (5, 5))), None, 0)

    outcome, _ = run_pending(image, [source], clear_selection_and_add_a_layer)
    assert outcome.status == "success", outcome.message
    result = image.layers[2]
    assert image.names()[:3] == ["painted meanwhile", "above", NAME]
    x, y = result.offsets
    assert result.mask.tobytes() == asked.crop((x, y, x + result.size[0],
                                                y + result.size[1])).tobytes()
    assert result.mask.getextrema() == (0, 255)


def test_a_deleted_source_puts_the_result_on_top(private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()

    def delete_source(document):
        image.layers.remove(source)

    outcome, _ = run_pending(image, [source], delete_source)
    assert outcome.status == "success", outcome.message
    assert image.names() == [NAME, "above", "background"]
    assert image.layers[0].offsets == (40, 30) and image.selected == [image.layers[0]]


def test_a_closed_image_gives_a_new_image_with_the_result(private_tmp, wisgate_env):
    wisgate_env("invert")
    image, source = scene()
    select_ellipse(image, (80, 60, 180, 140))

    def close_image(document):
        image.open = False

    outcome, document = run_pending(image, [source], close_image)
    assert outcome.status == "success", outcome.message
    assert [len(new.layers) for new in document.new_images] == [1]
    new = document.new_images[0]
    assert document.shown == [new] and new.size == image.size
    assert new.layers[0].name == NAME and new.layers[0].mask.getextrema() == (0, 255)
    assert image.names() == ["above", "source", "background"]


def test_a_second_edit_lands_above_the_first(private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    assert run(image, [source])[0].status == "success"
    first = image.layers[1]
    image.selected = [source]
    assert run(image, [source], variants=2)[0].status == "success"
    assert image.names() == ["above", NAME, NAME, "source", "background"]
    second = image.layers[1]
    assert second.kind == "group" and image.layers[2] is first
    record = json.loads(second.children[0].parasites["gpt-image-edit"])
    assert record["source"] == {"name": "source", "tattoo": source.tattoo}
    # An edit of another layer is not placed above the source's results.
    other = image.add_layer(layer("other", smooth((50, 50))), None, 4)
    image.selected = [other]
    assert run(image, [other])[0].status == "success"
    assert image.names()[3:6] == ["source", NAME, "other"]


def test_no_key_opens_the_settings_and_the_edit_goes_on(private_tmp, wisgate_env,
                                                        monkeypatch, fake_wisgate, tmp_path):
    env = wisgate_env("echo")
    monkeypatch.delenv("GPT_IMAGE_EDIT_API_KEY")
    image, source = scene()
    document = FakeDocument(image, [source], {"prompt": PROMPT}, interactive=True)

    def save_a_key():
        settings = tmp_path / "settings" / "settings.json"
        settings.parent.mkdir(exist_ok=True)
        settings.write_text(json.dumps({"api_key": fake_wisgate.key,
                                        "base_url": env["GPT_IMAGE_EDIT_BASE_URL"]}))
        return True

    document.on_settings = save_a_key
    outcome = core.edit(document, "/x")
    assert outcome.status == "success", outcome.message
    assert document.settings_offered == [core.NO_KEY_REASON]
    assert image.names() == ["above", NAME, "source", "background"]
    assert len(fake_wisgate.requests) == 1


def test_no_key_and_settings_cancelled_fails_with_the_sentence(private_tmp, wisgate_env,
                                                               monkeypatch):
    wisgate_env("echo")
    monkeypatch.delenv("GPT_IMAGE_EDIT_API_KEY")
    image, source = scene()
    before = image.snapshot()
    document = FakeDocument(image, [source], {"prompt": PROMPT}, interactive=True)
    document.on_settings = lambda: False
    outcome = core.edit(document, "/x")
    assert (outcome.status, outcome.message) == ("error", policies.NO_KEY)
    assert len(document.settings_offered) == 1 and image.snapshot() == before


def test_every_result_is_kept_in_the_history(private_tmp, wisgate_env, fake_wisgate,
                                             tmp_path):
    from gpt_image_edit import history

    wisgate_env("echo")
    image, source = scene()
    image.name = "holiday.xcf"
    assert run(image, [source], variants=2)[0].status == "success"
    kept = history.entries()
    assert [(entry["image"], entry["prompt"], entry["variant"]) for entry in kept] == [
        ("holiday.xcf", PROMPT, 1), ("holiday.xcf", PROMPT, 2)]
    # What was paid for, byte for byte: the echo server answers with the uploaded picture.
    (sent,) = [r.files["image"][0] for r in fake_wisgate.requests
               if r.path.endswith("/images/edits")]
    for entry in kept:
        path = Path(entry["path"])
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert path.read_bytes() == sent


def test_a_result_mask_from_the_worker_becomes_the_layer_mask(private_tmp, monkeypatch):
    """A manifest result with a `mask` (a blended edit, docs/job-protocol.md) gets that
    mask, raw at the placement's size, instead of the selection."""
    image, source = scene()
    select_ellipse(image, (60, 50, 160, 120))
    result = Image.new("RGB", (200, 150), "orange")
    mask = Image.linear_gradient("L").resize((200, 150))

    def worker_answers(document, worker, job, first_run=None):
        with open(job.path) as handle:
            sent = json.load(handle)
        assert sent["result_pixels"] == "raw" and sent["selection"]["pixels"] == "L"
        region = sent["source"]
        result_path = job.result_path({"path": "variant-1.rgb"})
        Path(result_path).parent.mkdir()
        Path(result_path).write_bytes(result.tobytes())
        Path(job.result_path({"path": "variant-1-mask.gray"})).write_bytes(mask.tobytes())
        return {"protocol": 2, "ok": True, "results": [
            {"path": "variant-1.rgb", "variant": 1, "pixels": "RGB",
             "mask": "variant-1-mask.gray"}],
            "placement": {"x": 40 + region["x"], "y": 30 + region["y"], "width": 200,
                          "height": 150}}

    monkeypatch.setattr(core.host, "find_worker", lambda entry_dir: None)
    monkeypatch.setattr(core, "new_run", lambda *arguments, **options: nullcontext())
    monkeypatch.setattr(core, "run_worker", worker_answers)
    outcome, document = run(image, [source])
    assert outcome.status == "success", outcome.message
    placed = image.layers[1]
    assert placed.pixels.tobytes() == result.tobytes() and placed.mask.tobytes() == mask.tobytes()
    assert list(private_tmp.iterdir()) == []
