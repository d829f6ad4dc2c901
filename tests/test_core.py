"""The host core through the fake host: every policy both GIMPs share, in milliseconds
where no worker is needed, and end to end through the real worker and the fake WisGate
server where the job matters. tests/test_gimp3.py and tests/test_gimp2.py run the same
cases (tests/host_policies.py) in real GIMP 3 and through GIMP 2.10's gimpfu.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from gpt_image_edit import pricing
from gpt_image_edit.geometry import (
    Box,
    exact_scale,
    letterbox,
    plan_region,
    request_size,
    scaled_size,
)
from tests import host_policies as policies
from tests.fake_host import FakeDocument, FakeImage, Item, core, layer, mask_of, scaled_by_area

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


def run(image, drawables, gives_previews=False, **arguments):
    values = {"prompt": PROMPT, "model": "gpt-image-2", "size": "auto", "quality": "high",
              "variants": 1, "use-selection": True, **arguments}
    document = FakeDocument(image, drawables, values)
    document.gives_previews = gives_previews
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
    outcome, document = run(image, [source], blend="none")  # the result as sent, unmasked
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
    assert document.progress[0][1].startswith("GPT Image Edit: preparing (estimate $0.")
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


@pytest.mark.parametrize("size, model", [
    ((6000, 4000), "gpt-image-2"), ((4000, 6000), "gpt-image-2"), ((4032, 3024), "gpt-image-2"),
    ((6000, 4000), "gpt-image-1"), ((2400, 1600), "gpt-image-2"), ((3000, 2000), "dall-e-2"),
    ((1920, 1080), "gpt-image-1"), ((8256, 5504), "gpt-image-1.5")])
def test_preview_tiles_ask_gimp_for_one_exact_scale(size, model):
    """Each tile, computed as GIMP computes a sub-thumbnail (the smaller of the two ratios,
    the origin times it rounded, either way of rounding a half), is the scaled picture's
    own pixels at the exact factor, inside GIMP's limits, and together they cover it."""
    width, height = size
    canvas = request_size(width, height, model)
    export = core.scaled_export(width, height, canvas)
    numerator, denominator = exact_scale(width, height, *canvas)
    assert (export.scale, export.size) == ((numerator, denominator),
                                           scaled_size(width, height, numerator, denominator))
    assert export.size[0] == canvas[0] or export.size[1] == canvas[1]
    assert export.size[0] <= canvas[0] and export.size[1] <= canvas[1]
    covered = Image.new("L", export.size)
    for tile in export.tiles:
        src_x, src_y, src_width, src_height = tile.src
        dest_width, dest_height = tile.dest
        assert 1 <= dest_width <= 1024 and 1 <= dest_height <= 1024
        assert 0 <= src_x and src_x + src_width <= width
        assert 0 <= src_y and src_y + src_height <= height
        scale = min(dest_width / src_width, dest_height / src_height)
        assert scale == numerator / denominator
        for origin, at in ((src_x, tile.at[0]), (src_y, tile.at[1])):
            assert round(origin * scale) == math.floor(origin * scale + 0.5) == at
        assert tile.at[0] + dest_width <= export.size[0]
        assert tile.at[1] + dest_height <= export.size[1]
        covered.paste(255, (*tile.at, tile.at[0] + dest_width, tile.at[1] + dest_height))
    assert covered.getextrema() == (255, 255)


def test_no_preview_tiles_where_gimp_cannot_scale_exactly():
    # 1552/3999: the exact factor needs more than the 1024 pixels a preview may have.
    assert core.scaled_export(5999, 3999, request_size(5999, 3999, "gpt-image-2")) is None
    # Sent at its own size: nothing to scale.
    assert core.scaled_export(1024, 1024, (1024, 1024)) is None


def test_a_large_opaque_layer_goes_out_as_gimps_previews(private_tmp, wisgate_env,
                                                         fake_wisgate):
    """GIMP scales the layer down itself (its previews) and the worker sends the picture as
    it is: the request's content is exactly the layer scaled by the one factor, and the
    result comes back at full size in the layer's place."""
    wisgate_env("echo")
    image, source = scene(canvas=(3000, 2000), size=(3000, 2000), offsets=(0, 0))
    outcome, document = run(image, [source], gives_previews=True)
    assert outcome.status == "success", outcome.message
    assert "layer_pixels" not in document.calls and len(document.preview_calls) == 6
    canvas = request_size(3000, 2000, "gpt-image-2")
    numerator, denominator = exact_scale(3000, 2000, *canvas)
    size = scaled_size(3000, 2000, numerator, denominator)
    [request] = fake_wisgate.requests
    sent = Image.open(io.BytesIO(request.files["image"][0])).convert("RGB")
    top = (canvas[1] - size[1]) // 2
    expected = scaled_by_area(source.pixels, numerator / denominator, size)
    assert sent.crop((0, top, *size[:1], top + size[1])).tobytes() == expected.tobytes()
    result = image.layers[1]
    assert result.size == (3000, 2000) and result.offsets == (0, 0)
    difference = ImageChops.difference(result.pixels.convert("RGB"), source.pixels)
    assert max(ImageStat.Stat(difference).mean) < 1.5
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("kind", ["alpha", "selection"])
def test_a_layer_with_alpha_or_a_selection_goes_out_at_full_size(private_tmp, wisgate_env,
                                                                  kind):
    wisgate_env("echo")
    image, source = scene(canvas=(3000, 2000), size=(3000, 2000), offsets=(0, 0))
    if kind == "alpha":
        source.pixels = source.pixels.convert("RGBA")
    else:
        select_ellipse(image, (100, 100, 2900, 1900))
    outcome, document = run(image, [source], gives_previews=True)
    assert outcome.status == "success", outcome.message
    assert "layer_pixels" in document.calls and document.preview_calls == []


def test_a_selection_sends_its_region_and_masks_the_result(private_tmp, wisgate_env,
                                                          fake_wisgate):
    wisgate_env("invert")
    image, source = scene(canvas=(3000, 2000), size=(2400, 1600), offsets=(350, 250))
    select_ellipse(image, (1500, 900, 1900, 1200))
    outcome, document = run(image, [source], blend="none")
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

    outcome, _ = run_pending(image, [source], clear_selection_and_add_a_layer, blend="none")
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


# -- live previews -------------------------------------------------------------------------
def test_previews_arrive_before_the_result_small_and_where_it_lands(private_tmp, wisgate_env):
    wisgate_env("spaced")
    image, source = scene()
    select_ellipse(image, (60, 40, 160, 120))
    outcome, document = run(image, [source])
    assert outcome.status == "success", outcome.message
    shown = [entry for entry in document.previews if entry[0] == "show"]
    assert len(shown) == 2 and document.previews[-1][0] == "clear"
    result = next(item for item in image.layers if item.name.startswith("GPT edit: "))
    placement = {"x": result.offsets[0], "y": result.offsets[1],
                 "width": result.pixels.width, "height": result.pixels.height}
    for _, picture, where, _, names in shown:
        assert where == placement and result.name not in names
        # Never larger than where it lands: nothing is scaled up for a preview.
        assert picture.width <= placement["width"] and picture.height <= placement["height"]
    assert document.previews[-1][1] >= shown[-1][3]


def test_a_failure_after_a_preview_takes_it_away_and_changes_nothing(private_tmp,
                                                                     wisgate_env):
    wisgate_env("stream_error")
    image, source = scene()
    before = image.names()
    outcome, document = run(image, [source])
    assert outcome.status == "error"
    assert "stopped the edit before it was finished" in outcome.message
    assert [entry[0] for entry in document.previews] == ["show", "clear"]
    assert image.names() == before
    assert list(private_tmp.iterdir()) == []


class OwnWaitDocument(FakeDocument):
    """An adapter that runs the worker elsewhere (GIMP 3's wait procedure): the core asks
    it for the manifest and places what it returns."""

    def __init__(self, *arguments, ending=None):
        FakeDocument.__init__(self, *arguments)
        self.ending = ending
        self.watches_worker = False

    def run_worker(self, worker, job):
        if self.ending is not None:
            raise self.ending
        return core.watch_worker(self, worker, job)


@pytest.mark.parametrize("ending, status", [(core.Cancelled(), "cancel"),
                                            (core.host.HostError("It broke: try again."),
                                             "error")])
def test_an_adapter_running_the_worker_elsewhere_ends_the_edit_cleanly(
        ending, status, private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    before = image.names()
    document = OwnWaitDocument(image, [source], {"prompt": PROMPT}, ending=ending)
    outcome = core.edit(document, "/nonexistent-entry-dir")
    assert outcome.status == status
    assert image.names() == before and list(private_tmp.iterdir()) == []


def test_a_document_that_shows_no_previews_asks_for_none(private_tmp, wisgate_env,
                                                         fake_wisgate):
    wisgate_env("echo")
    image, source = scene()
    document = FakeDocument(image, [source], {"prompt": PROMPT})
    document.shows_previews = False  # GIMP 2.10, or a script's non-interactive call
    outcome = core.edit(document, "/nonexistent-entry-dir")
    assert outcome.status == "success", outcome.message
    assert "stream" not in fake_wisgate.requests[-1].fields  # a plain request: no previews
    assert document.previews == []


# -- cost: the estimate before, the cost after, the spending limit -----------------------

def expected_estimate(size, quality="high", variants=1, previews=2, prompt=PROMPT,
                      model="gpt-image-2"):
    """pricing's estimate for a region of `size` as the API gets it."""
    width, height = request_size(*size, model, "auto")
    return pricing.estimate(model, width, height, quality, variants, previews, len(prompt))


def test_the_progress_carries_the_estimate_and_the_note_the_cost(private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    outcome, document = run(image, [source])
    assert outcome.status == "success", outcome.message
    estimate = pricing.format_usd(expected_estimate((200, 150))["cost_usd"])
    assert estimate.startswith("$0.")
    assert document.progress[0] == ("start", f"GPT Image Edit: preparing (estimate {estimate})")
    waiting = [entry[1] for entry in document.progress if entry[0] == "update"][:-1]
    assert waiting and all(text.endswith(f" s, estimate {estimate})") for text in waiting)
    record = json.loads(image.layers[1].parasites["gpt-image-edit"])
    cost = pricing.cost_of(record["usage"], "gpt-image-2")
    assert cost is not None and record["cost_usd"] == cost
    assert document.notes == [f"GPT Image Edit: 1 result placed, cost "
                              f"{pricing.format_usd(cost)} (estimate {estimate})."]


def test_an_unpriced_model_says_cost_unknown_before_and_after(private_tmp, wisgate_env):
    wisgate_env("echo")
    image, source = scene()
    outcome, document = run(image, [source], model="dall-e-2")
    assert outcome.status == "success", outcome.message
    assert document.progress[0] == ("start", "GPT Image Edit: preparing (cost unknown)")
    assert json.loads(image.layers[1].parasites["gpt-image-edit"])["cost_usd"] is None
    assert document.notes == ["GPT Image Edit: 1 result placed, cost unknown."]


def test_a_failed_edit_shows_no_cost(private_tmp, wisgate_env):
    wisgate_env("moderation")
    image, source = scene()
    outcome, document = run(image, [source])
    assert outcome.status == "error" and document.notes == []


@pytest.mark.parametrize("confirm", [False, True, "cancel"])
def test_above_the_limit_asks_once_and_sends_only_when_confirmed(private_tmp, wisgate_env,
                                                                  fake_wisgate, monkeypatch,
                                                                  confirm):
    wisgate_env("echo")
    monkeypatch.setenv("GPT_IMAGE_EDIT_MAX_COST", "0.01")
    image, source = scene()
    before = image.snapshot()
    values = {"prompt": PROMPT, "variants": 2}
    document = FakeDocument(image, [source], values)
    document.confirm = confirm
    starts = []
    start = core.host.WorkerRun.__init__

    def counted_start(run, *args, **kwargs):
        starts.append(run)
        start(run, *args, **kwargs)

    monkeypatch.setattr(core.host.WorkerRun, "__init__", counted_start)
    outcome = core.edit(document, "/x")
    assert len(starts) == (2 if confirm is True else 1)  # one more start, only to send
    [question] = document.cost_questions
    assert question == policies.above_limit(
        expected_estimate((200, 150), variants=2)["cost_usd"], 0.01,
        os.environ["GPT_IMAGE_EDIT_CONFIG"])
    if confirm is True:
        assert outcome.status == "success", outcome.message
        assert len(fake_wisgate.requests) == 1 and len(image.layers) == 4
        assert document.notes[0].startswith("GPT Image Edit: 2 results placed, cost $0.")
    else:  # a non-interactive run fails with the sentence; a user who said no, silently
        assert (outcome.status, outcome.message) == (
            ("error", question) if confirm is False else ("cancel", ""))
        assert image.snapshot() == before and fake_wisgate.requests == []
        assert document.notes == [] and list(private_tmp.iterdir()) == []


def dialog_line(image, source, settings=None, **values):
    document = FakeDocument(image, [source], None)
    return core.dialog_estimate(document, {"prompt": "", "model": "gpt-image-2",
                                           "size": "auto", "quality": "high", "variants": 1,
                                           "use-selection": True, **values},
                                settings or core.host.CostSettings())


def test_the_dialog_estimate_follows_variants_quality_previews_and_the_selection():
    image, source = scene()
    one = expected_estimate((200, 150), prompt="")["cost_usd"]
    size = "x".join(map(str, request_size(200, 150, "gpt-image-2", "auto")))
    assert dialog_line(image, source) == (
        f"Estimated cost: {pricing.format_usd(one)} ({size}, high, 1 variant, 2 previews).")
    three = expected_estimate((200, 150), variants=3, prompt="")["cost_usd"]
    assert three > one
    assert dialog_line(image, source, variants=3) == (
        f"Estimated cost: {pricing.format_usd(three)} ({size}, high, 3 variants, 2 previews).")
    low = expected_estimate((200, 150), quality="low", prompt="")["cost_usd"]
    assert low < one
    assert dialog_line(image, source, quality="low") == (
        f"Estimated cost: {pricing.format_usd(low)} ({size}, low, 1 variant, 2 previews).")
    none = expected_estimate((200, 150), previews=0, prompt="")["cost_usd"]
    assert dialog_line(image, source, core.host.CostSettings(partial_images=0)) == (
        f"Estimated cost: {pricing.format_usd(none)} ({size}, high, 1 variant).")
    square = expected_estimate((1024, 1024), prompt="")["cost_usd"]
    assert dialog_line(image, source, size="1024x1024").startswith(
        f"Estimated cost: {pricing.format_usd(square)} (1024x1024,")
    select_ellipse(image, (60, 50, 100, 80))  # a small selection sends a smaller region
    region = plan_region(200, 150, Box.from_bounds(20, 20, 60, 50))
    small = expected_estimate((region.width, region.height), prompt="")["cost_usd"]
    assert dialog_line(image, source).startswith(f"Estimated cost: {pricing.format_usd(small)} (")
    assert dialog_line(image, source, **{"use-selection": False}).startswith(
        f"Estimated cost: {pricing.format_usd(one)} (")


def test_the_dialog_says_the_limit_unknown_costs_and_what_other_models_miss():
    image, source = scene()
    above = dialog_line(image, source, core.host.CostSettings(max_cost_usd=0.01), variants=4)
    assert above.split("\n")[1] == ("Above your spending limit of $0.01: you will be asked "
                                    "before it is sent.")
    assert "\n" not in dialog_line(image, source, core.host.CostSettings(max_cost_usd=5.0))
    assert dialog_line(image, source, core.host.CostSettings(max_cost_usd=5.0),
                       model="dall-e-2", size="256x256").split("\n")[:2] == [
        "Estimated cost: unknown (no price for dall-e-2 in the price table).",
        "Your spending limit of $5.00 cannot be checked without a price: you will be asked "
        "before it is sent."]
    assert dialog_line(image, source, model="dall-e-2", size="256x256").split("\n") == [
        "Estimated cost: unknown (no price for dall-e-2 in the price table).",
        "dall-e-2 gets no live previews and no reference pictures: only the GPT image models "
        "(gpt-image-2, gpt-image-1.5, gpt-image-1) send them."]
    priced = core.host.CostSettings(prices={"dall-e-2": {"text_input": 1, "image_input": 1,
                                                         "image_output": 1}})
    assert dialog_line(image, source, priced, model="dall-e-2", size="256x256").startswith(
        "Estimated cost: $0.0")  # priced by the setting, and no previews counted
    broken = core.host.CostSettings(prices={"gpt-image-2": {"image_output": "cheap"}})
    assert dialog_line(image, source, broken) == (
        "Estimated cost: unknown (the prices setting is not usable).")
    # What the edit would refuse, the line says already.
    assert dialog_line(image, source, size="100x100").startswith(
        "gpt-image-2 does not take the size 100x100")
    assert dialog_line(image, source, variants=0) == core.BAD_VARIANTS


# -- the cost settings, read in the host without the worker and without the key ----------

def test_cost_settings_are_the_workers_and_never_hold_the_key(tmp_path, monkeypatch):
    from gpt_image_edit import settings as worker_settings

    config = tmp_path / "settings.json"
    monkeypatch.setenv("GPT_IMAGE_EDIT_CONFIG", str(config))
    assert vars(core.host.cost_settings()) == {"partial_images": 2, "prices": None,
                                                "max_cost_usd": None}
    stored = {"api_key": "sk-secret-key", "partial_images": 1, "max_cost_usd": 0.25,
              "prices": {"gpt-image-2": {"image_output": 20}}}
    config.write_text(json.dumps(stored))
    config.chmod(0o600)
    read = core.host.cost_settings()
    assert "sk-secret-key" not in repr(vars(read))
    worker = worker_settings.load_settings()
    assert (read.partial_images, read.max_cost_usd) == (worker.partial_images,
                                                       worker.max_cost_usd) == (1, 0.25)
    monkeypatch.setenv("GPT_IMAGE_EDIT_PARTIAL_IMAGES", " 3 ")
    monkeypatch.setenv("GPT_IMAGE_EDIT_MAX_COST", "1.5")
    read, worker = core.host.cost_settings(), worker_settings.load_settings()
    assert (read.partial_images, read.max_cost_usd) == (worker.partial_images,
                                                       worker.max_cost_usd) == (3, 1.5)
    config.write_text(json.dumps({"prices": {"gpt-image-2": {"image_output": 20}}}))
    assert pricing.merged_prices(core.host.cost_settings().prices) == (
        worker_settings.load_settings().prices)
    # A value the worker refuses counts as not set: the job says what is wrong with it.
    monkeypatch.setenv("GPT_IMAGE_EDIT_PARTIAL_IMAGES", "7")
    monkeypatch.setenv("GPT_IMAGE_EDIT_MAX_COST", "-1")
    assert (core.host.cost_settings().partial_images,
            core.host.cost_settings().max_cost_usd) == (2, None)
    config.write_text("{not json")
    assert vars(core.host.cost_settings())["prices"] is None


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
@pytest.mark.parametrize("environ", [{}, {"XDG_CONFIG_HOME": "/x/config",
                                          "APPDATA": "/x/appdata"},
                                     {"GPT_IMAGE_EDIT_CONFIG": "/y/mine.json"}])
def test_the_host_finds_the_settings_file_where_the_worker_does(platform, environ):
    from gpt_image_edit import settings as worker_settings

    assert core.host.settings_path(environ, platform, "/home/u") == str(
        worker_settings.config_path(environ, platform, Path("/home/u")))


# -- blending and references (issue 13) -----------------------------------------------------
def mask_under_selection(image, result) -> Image.Image:
    x, y = result.offsets
    return image.selection.crop((x, y, x + result.size[0], y + result.size[1]))


def test_the_default_blend_is_seamless_its_mask_soft_inside_the_selection(private_tmp,
                                                                         wisgate_env):
    """A script that knows only the older arguments gets seamless: the worker's mask, soft
    inside the selection's edge and nothing beyond it, on a paintable layer mask."""
    wisgate_env("cast_square")
    image, source = scene()
    select_ellipse(image, (80, 60, 180, 140))
    outcome, _ = run(image, [source])
    assert outcome.status == "success", outcome.message
    result = image.layers[1]
    selection = mask_under_selection(image, result)
    assert ImageChops.subtract(result.mask, selection).getextrema()[1] == 0  # never beyond
    inside = selection.point(lambda value: 255 if value == 255 else 0)
    soft = ImageStat.Stat(result.mask.point(lambda value: 255 if 0 < value < 255 else 0),
                          inside).mean[0]
    assert soft > 0 and result.mask.tobytes() != selection.tobytes()
    record = json.loads(result.parasites["gpt-image-edit"])
    assert (record["blend"], record["reference"]) == ("seamless", None)


def test_blend_none_masks_with_the_selection_as_it_was(private_tmp, wisgate_env):
    wisgate_env("cast_square")
    image, source = scene()
    select_ellipse(image, (80, 60, 180, 140))
    outcome, _ = run(image, [source], blend="none")
    assert outcome.status == "success", outcome.message
    result = image.layers[1]
    assert result.mask.tobytes() == mask_under_selection(image, result).tobytes()
    assert json.loads(result.parasites["gpt-image-edit"])["blend"] == "none"


def test_a_bad_blend_is_refused_before_anything_is_sent(private_tmp, fake_wisgate):
    image, source = scene()
    before = image.snapshot()
    outcome, document = run(image, [source], blend="smooth")
    assert (outcome.status, outcome.message) == (
        "error", "The blend must be none, feather or seamless: choose one and try again.")
    assert image.snapshot() == before and "layer_pixels" not in document.calls
    assert fake_wisgate.requests == []


def test_a_reference_layer_of_another_image_goes_as_the_second_picture(private_tmp,
                                                                       wisgate_env,
                                                                       fake_wisgate):
    wisgate_env("echo")
    image, source = scene()
    other = FakeImage((60, 40), background=None)
    look = other.add_layer(layer("sunset look", Image.new("RGBA", (60, 40), (250, 120, 20,
                                                                              255))))
    outcome, document = run(image, [source], reference=look)
    assert outcome.status == "success", outcome.message
    [request] = fake_wisgate.requests
    assert "image" not in request.files and len(request.files["image[]"]) == 2
    sent = Image.open(io.BytesIO(request.files["image[]"][1]))
    assert sent.size == (60, 40) and sent.convert("RGB").getpixel((30, 20)) == (250, 120, 20)
    record = json.loads(image.layers[1].parasites["gpt-image-edit"])
    assert record["reference"] == "sunset look"
    assert other.layers == [look] and list(private_tmp.iterdir()) == []
    # The estimate counts the reference's input tokens, as the worker's does.
    width, height = request_size(200, 150, "gpt-image-2", "auto")
    with_reference = pricing.estimate("gpt-image-2", width, height, "high", 1, 2, len(PROMPT),
                                      [(60, 40)])["cost_usd"]
    assert with_reference > expected_estimate((200, 150))["cost_usd"]
    assert document.progress[0] == (
        "start", f"GPT Image Edit: preparing (estimate {pricing.format_usd(with_reference)})")


@pytest.mark.parametrize("chosen", ["itself", "its_mask", "none"])
def test_the_edited_layer_as_reference_means_no_reference(private_tmp, wisgate_env,
                                                          fake_wisgate, chosen):
    """GIMP 2.10's dialog has no empty choice for a drawable: choosing the edited layer (or
    its mask) says "no reference", on both GIMPs alike."""
    wisgate_env("echo")
    image, source = scene()
    reference = {"itself": source, "its_mask": mask_of(source), "none": None}[chosen]
    outcome, _ = run(image, [source], reference=reference)
    assert outcome.status == "success", outcome.message
    [request] = fake_wisgate.requests
    assert len(request.files.get("image[]", request.files.get("image"))) == 1
    assert json.loads(image.layers[1].parasites["gpt-image-edit"])["reference"] is None


@pytest.mark.parametrize("kind", ["group", "channel"])
def test_a_reference_that_is_no_layer_is_refused(private_tmp, fake_wisgate, kind):
    image, source = scene()
    before = image.snapshot()
    outcome, _ = run(image, [source], reference=Item(kind, kind, Image.new("RGBA", (4, 4))))
    assert (outcome.status, outcome.message) == (
        "error", "The reference must be a layer, not a layer group or a channel: choose one "
                 "layer, or no reference, and try again.")
    assert image.snapshot() == before and fake_wisgate.requests == []
