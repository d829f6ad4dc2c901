"""The GIMP 2.10 entry, unmodified, driven through the gimpfu shim as gimpfu drives it.

The entry and the host module are copied into a plug-ins folder as the installer puts
them; the worker is this interpreter (the package is installed in editable mode) talking to
the fake WisGate server over real HTTP. What is checked is what a user would see: the
layers, their places, masks and pixels, the message, and what is left in the temp folder.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from gpt_image_edit.geometry import Box, letterbox, plan_region, request_size
from tests import host_policies as policies
from tests.fake_wisgate import DEFAULT_KEY
from tests.worker_jobs import worker_failure_sentence

REPO = Path(__file__).resolve().parent.parent
ENTRY = REPO / "plugin" / "gpt-image-edit-gimp2.py"
HOST = REPO / "plugin" / "gpt-image-edit" / "gpt_image_edit_host.py"
LIB = REPO / "plugin" / "gpt-image-edit-gimp2-lib"
CORE = REPO / "plugin" / "gpt-image-edit" / "gpt_image_edit_core.py"
GEOMETRY = REPO / "plugin" / "gpt_image_edit" / "geometry.py"
PRICING = REPO / "plugin" / "gpt_image_edit" / "pricing.py"
SHIM = Path(__file__).resolve().parent / "gimpfu_shim"
PROCEDURE = "python-fu-gpt-image-edit"
PROMPT = "replace the sky with a stormy sunset over the hills and the river"
NAME = "GPT edit: replace the sky with a stormy sunset\u2026"  # cut at a word
NOT_INSTALLED = ("The GPT Image Edit worker is not set up: run 'python3 install/install.py' "
                 "from the plug-in's download, then restart GIMP.")
FAILURES = ("unauthorized", "quota", "server_error", "unavailable", "html_502", "moderation",
            "too_large", "forbidden", "truncated", "bad_json", "bad_base64", "fewer", "slow")

sys.path.insert(0, str(SHIM))  # the shim's modules, as GIMP 2.10 would provide them
import gimp  # noqa: E402
import gimpenums  # noqa: E402
import gimpfu  # noqa: E402

# -- set-up ---------------------------------------------------------------------------

class Entry:
    """The loaded entry and the way gimpfu calls its procedure."""

    def __init__(self, module, folder: Path):
        self.module = module
        self.folder = folder
        self.worker_file = folder / "gpt-image-edit-gimp2-lib" / "gpt-image-edit-worker.json"

    def run(self, image, drawable, prompt=PROMPT, model="gpt-image-2", size="auto",
            quality=3, variants=1, use_selection=True, blend=2, reference=None):
        """The plain edit (blend 2: none) unless a test asks for another blend."""
        run = gimp.shim_main[-1]["run"]
        params = (gimpenums.RUN_NONINTERACTIVE, image, drawable, prompt, model, size,
                  quality, variants, use_selection, blend, reference)
        return run(PROCEDURE, params)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """TMPDIR for the entry and the worker, to prove nothing is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def lay_out_plug_ins(plug_ins: Path) -> Path:
    """The entry, and its helper modules in their own folder, as the installer puts them
    (install/plugin_entries.py)."""
    lib = plug_ins / "gpt-image-edit-gimp2-lib"
    shutil.copytree(LIB, lib)
    shutil.copy(ENTRY, plug_ins / ENTRY.name)
    for module in (HOST, CORE):
        shutil.copy(module, lib / module.name)
    shutil.copy(GEOMETRY, lib / "gpt_image_edit_geometry.py")
    shutil.copy(PRICING, lib / "gpt_image_edit_pricing.py")
    return plug_ins


@pytest.fixture
def entry(tmp_path, monkeypatch, private_tmp) -> Entry:
    plug_ins = lay_out_plug_ins(tmp_path / "plug-ins")
    monkeypatch.setattr(sys, "path", list(sys.path))  # the entry adds its own folder
    for module in ("gpt_image_edit_host", "gpt_image_edit_core", "gpt_image_edit_geometry",
                   "gpt_image_edit_settings2", "gpt_image_edit_cost2"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setenv("GPT_IMAGE_EDIT_WORKER", sys.executable)
    gimp.shim_reset()
    gimpfu._registered_plugins_.clear()
    spec = importlib.util.spec_from_file_location("gpt_image_edit_gimp2",
                                                  plug_ins / ENTRY.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(gimp.shim_main) == 1, "the entry must call main() once, as gimpfu wants"
    return Entry(module, plug_ins)


def pattern(size: tuple[int, int], seed: int = 7) -> Image.Image:
    """Smooth random detail everywhere (features about 8 pixels across): it survives the
    worker's resampling within 2 levels, yet a shift by one pixel changes it a lot."""
    chooser = random.Random(seed)

    def field(step):
        cells = (max(2, size[0] // step), max(2, size[1] // step))
        small = Image.new("L", cells)
        small.putdata([chooser.randrange(256) for _ in range(cells[0] * cells[1])])
        return small.resize(size, Image.BICUBIC)

    return Image.merge("RGB", (field(8), field(15), field(5)))


def make_image(canvas, layer_size, offsets, mode="RGB"):
    """An image with a background, the source layer at `offsets`, and a layer above it."""
    image = gimp.Image(canvas[0], canvas[1], gimpenums.RGB)
    background = gimp.Layer(image, "background", canvas[0], canvas[1], gimpenums.RGB_IMAGE,
                            100, gimpenums.NORMAL_MODE)
    background.shim_set_pixels(Image.new("RGB", canvas, (40, 90, 160)))
    layer_type = gimpenums.RGBA_IMAGE if mode == "RGBA" else gimpenums.RGB_IMAGE
    source = gimp.Layer(image, "source", layer_size[0], layer_size[1], layer_type, 100,
                        gimpenums.NORMAL_MODE)
    pixels = pattern(layer_size).convert(mode)
    if mode == "RGBA":
        pixels.putalpha(Image.linear_gradient("L").resize(layer_size))
    source.shim_set_pixels(pixels)
    above = gimp.Layer(image, "above", 10, 10, gimpenums.RGBA_IMAGE, 100,
                       gimpenums.NORMAL_MODE)
    for layer in (background, source, above):
        gimp.pdb.gimp_image_insert_layer(image, layer, None, 0)
    gimp.pdb.gimp_layer_set_offsets(source, *offsets)
    image.shim_forget_undo()
    return image, source


def select_ellipse(image, box, feather=0):
    selection = Image.new("L", (image.width, image.height))
    ImageDraw.Draw(selection).ellipse(box, fill=255)
    if feather:
        selection = selection.filter(ImageFilter.GaussianBlur(feather))
    image.selection.pixels = selection
    return selection


def new_layers(image, before_ids):
    return [layer for layer in image.layers if layer.ID not in before_ids]


def max_difference(first: Image.Image, second: Image.Image) -> int:
    assert first.size == second.size and first.mode == second.mode
    extrema = ImageChops.difference(first, second).getextrema()
    return extrema[1] if len(first.getbands()) == 1 else max(high for _, high in extrema)


def assert_same_picture(first: Image.Image, second: Image.Image) -> None:
    """Equal up to the worker's resampling (the API answers at another size): small
    everywhere, and on average far below what a shift by one pixel gives (about 10)."""
    assert max_difference(first, second) <= 8
    assert max(ImageStat.Stat(ImageChops.difference(first, second)).mean) < 1.0


def changes(image):
    return [entry for entry in image.undo_log if entry[0] == "change"]


def assert_one_undo_step(image):
    log = image.undo_log
    assert log[0] == ("group-start",) and log[-1] == ("group-end",), log
    assert [e for e in log if e[0] != "change"] == [("group-start",), ("group-end",)], log
    assert changes(image) and all(inside for _, _, inside in changes(image)), log
    assert image.undo_depth == 0


def assert_unchanged(image, before, private_tmp):
    assert image.shim_snapshot() == before
    assert changes(image) == [], "the failed call changed the image"
    assert image.undo_depth == 0, "an undo group was left open"
    assert gimp.shim_images == [image], "a scratch image was not deleted"
    assert list(private_tmp.iterdir()) == [], "temporary files were left behind"


def capture_job_pictures(folder: Path) -> dict:
    """The raw pictures of the job in `folder` ("source", "selection"), read while the
    worker runs, as the job file describes them."""
    sent = {}

    def read_once():
        for job_path in folder.glob("gpt-image-edit-*/job.json"):
            job = json.loads(job_path.read_text())
            size = (job["source"]["width"], job["source"]["height"])
            for name, mode in (("source", job["source"]["pixels"]), ("selection", "L")):
                if name not in sent and job.get(name):
                    data = (job_path.parent / job[name]["path"]).read_bytes()
                    sent[name] = Image.frombytes(mode, size, data)

    gimp.shim_on_progress.append(read_once)
    return sent


def planned_region(layer_size, selection_in_layer) -> dict:
    """The region an edit sends for a selection (the shared geometry), in layer coordinates."""
    return plan_region(layer_size[0], layer_size[1],
                       Box.from_bounds(*selection_in_layer)).as_dict()


def worker_sentence(server, scenario, folder: Path, key=DEFAULT_KEY, timeout=None,
                    variants=1) -> str:
    """What the worker itself says for a scenario, with the key in the environment."""
    env = dict(os.environ, GPT_IMAGE_EDIT_BASE_URL=server.url_for(scenario),
               GPT_IMAGE_EDIT_API_KEY=key, GPT_IMAGE_EDIT_CONFIG=str(folder / "none.json"))
    if timeout:
        env["GPT_IMAGE_EDIT_TIMEOUT"] = str(timeout)
    return worker_failure_sentence(env, folder / ("job-" + scenario), PROMPT, variants)


# -- registration ---------------------------------------------------------------------

def test_registration_matches_the_spec(entry):
    record = gimpfu._registered_plugins_[PROCEDURE]
    label, imagetypes, params, results, function, menu = (record[5], record[6], record[8],
                                                          record[9], record[10], record[11])
    assert (label, menu, imagetypes, results) == ("GPT Image Edit...", "<Image>/Filters/AI",
                                                  "*", [])
    assert function is entry.module.gpt_image_edit
    assert [(p[0], p[1], p[3]) for p in params] == [
        (gimpfu.PF_IMAGE, "image", None), (gimpfu.PF_DRAWABLE, "drawable", None),
        (gimpfu.PF_TEXT, "prompt", ""), (gimpfu.PF_STRING, "model", "gpt-image-2"),
        (gimpfu.PF_STRING, "size", "auto"), (gimpfu.PF_OPTION, "quality", 3),
        (gimpfu.PF_SPINNER, "variants", 1), (gimpfu.PF_TOGGLE, "use-selection", True),
        (gimpfu.PF_OPTION, "blend", 0), (gimpfu.PF_DRAWABLE, "reference", None)]
    assert params[5][4] == ("Auto", "Low", "Medium", "High")  # default 3 is "High"
    # Seamless first: the default, and what GIMP gives a script that leaves blend out.
    assert [label.split(":")[0] for label in params[8][4]] == ["Seamless", "Feather", "None"]
    assert params[9][2] == "_Reference (the edited layer itself: none)"
    assert params[6][4] == (1, 10, 1)

    gimp.shim_main[-1]["query"]()  # what GIMP 2.10 puts in its PDB
    installed = gimp.shim_installed[PROCEDURE]
    assert [p[1] for p in installed["params"]] == [
        "run-mode", "image", "drawable", "prompt", "model", "size", "quality", "variants",
        "use-selection", "blend", "reference"]
    assert gimp.shim_menus[PROCEDURE] == "<Image>/Filters/AI"
    # The dialogs' Help opens the manual installed in the helper folder (checked in real
    # GIMP 2.10 by tests/test_gimp2_dialog.py).
    help_folder = entry.folder / "gpt-image-edit-gimp2-lib" / "help"
    assert gimp.shim_help_domains == {"gpt-image-edit": help_folder.as_uri()}


# -- edits ----------------------------------------------------------------------------

def test_whole_layer_edit_lands_directly_above_the_source(entry, wisgate_env, private_tmp):
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    source_pixels = source.pixels.copy()
    ids = {layer.ID for layer in image.layers}

    entry.run(image, source)

    assert gimp.shim_messages == []
    [layer] = new_layers(image, ids)
    assert [item.name for item in image.layers] == ["above", NAME, "source", "background"]
    assert layer.offsets == (40, 30) and (layer.width, layer.height) == (200, 150)
    assert layer.mask is None
    assert_same_picture(layer.pixels.convert("RGB"), source_pixels)
    assert source.pixels.tobytes() == source_pixels.tobytes()  # the source is untouched
    assert image.active_layer is layer  # the result is the selected layer
    assert_one_undo_step(image)
    assert gimp.shim_images == [image] and list(private_tmp.iterdir()) == []
    assert any(event[0] == "init" and event[1].startswith(
        "GPT Image Edit: preparing (estimate $0.") for event in gimp.shim_progress)
    assert any(event[0] == "update" for event in gimp.shim_progress)
    assert gimp.shim_progress[-1] == ("end",)


def test_large_layer_is_sent_at_the_size_the_api_gets(entry, wisgate_env, private_tmp,
                                                      fake_wisgate):
    """The layer goes to the worker at full size and raw; the worker scales it down to the
    request's content size and the one result back up to the layer's place and size: GIMP
    scales nothing."""
    wisgate_env("echo")
    image, source = make_image((3000, 2000), (3000, 2000), (0, 0))
    source.shim_set_pixels(source.pixels.resize((300, 200)).resize((3000, 2000),
                                                                   Image.BICUBIC))
    ids = {layer.ID for layer in image.layers}
    sent = capture_job_pictures(private_tmp)
    entry.run(image, source)
    assert gimp.shim_messages == []
    canvas = request_size(3000, 2000, "gpt-image-2")
    content = letterbox(3000, 2000, *canvas)
    assert sent["source"].size == (3000, 2000) and sent["source"].mode == "RGB"
    assert fake_wisgate.requests[0].fields["size"] == f"{canvas[0]}x{canvas[1]}"
    uploaded = Image.open(io.BytesIO(fake_wisgate.requests[0].files["image"][0]))
    assert uploaded.size == canvas and content.width < 3000
    assert not [entry for entry in changes(image) if "scale" in entry[1]]
    [layer] = new_layers(image, ids)
    assert layer.offsets == (0, 0) and (layer.width, layer.height) == (3000, 2000)
    difference = ImageChops.difference(layer.pixels.convert("RGB"), source.pixels)
    assert max(ImageStat.Stat(difference).mean) < 1.5
    assert_one_undo_step(image)


def test_an_unexpected_failure_is_a_sentence_not_a_traceback(entry, wisgate_env, private_tmp,
                                                             monkeypatch, capsys):
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    before = image.shim_snapshot()

    def broken(*arguments):
        raise ValueError("a GIMP surprise")

    monkeypatch.setitem(gimp._PROCEDURES, "gimp_image_get_precision", broken)
    entry.run(image, source)
    assert gimp.shim_messages == [policies.UNEXPECTED]
    assert "ValueError: a GIMP surprise" in capsys.readouterr().err
    assert_unchanged(image, before, private_tmp)


def test_parasite_records_how_the_layer_was_made(entry, wisgate_env):
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    entry.run(image, source, quality=2)
    parasite = image.layers[1].parasite_find("gpt-image-edit")
    assert parasite is not None and parasite.flags & gimpenums.PARASITE_PERSISTENT
    record = json.loads(parasite.data)
    assert (record["prompt"], record["model"], record["quality"], record["variant"]) == (
        PROMPT, "gpt-image-2", "medium", 1)
    assert "x" in record["size"]  # the size actually requested, e.g. 1536x1024
    assert isinstance(record["usage"], dict) and record["usage"]


@pytest.mark.parametrize("feather", [0, 12])
def test_selection_on_a_large_image_is_masked_and_placed(entry, wisgate_env, private_tmp,
                                                         fake_wisgate, feather):
    wisgate_env("invert")
    offsets, layer_size = (350, 250), (2400, 1600)
    image, source = make_image((3000, 2000), layer_size, offsets)
    ellipse = (1500, 900, 1900, 1200)  # image coordinates, far from the layer's corner
    selection = select_ellipse(image, ellipse, feather)
    before_source = source.pixels.copy()
    ids = {layer.ID for layer in image.layers}
    sent = capture_job_pictures(private_tmp)

    entry.run(image, source)

    assert gimp.shim_messages == []
    # The job carried only the region around the selection (small enough to go at its own
    # size) and the selection over exactly its pixels.
    x1, y1, x2, y2 = selection.getbbox()
    region = planned_region(layer_size, (x1 - offsets[0], y1 - offsets[1],
                                         x2 - offsets[0], y2 - offsets[1]))
    in_layer = (region["x"], region["y"], region["x"] + region["width"],
                region["y"] + region["height"])
    assert sent["source"].mode == "RGB"
    assert sent["source"].tobytes() == before_source.crop(in_layer).tobytes()
    in_image = (in_layer[0] + offsets[0], in_layer[1] + offsets[1],
                in_layer[2] + offsets[0], in_layer[3] + offsets[1])
    assert sent["selection"].tobytes() == selection.crop(in_image).tobytes()

    [layer] = new_layers(image, ids)
    assert layer.offsets == (offsets[0] + region["x"], offsets[1] + region["y"])
    assert (layer.width, layer.height) == (region["width"], region["height"])
    assert (layer.width, layer.height) != layer_size  # only the region was sent

    left, top = layer.offsets
    box = (left, top, left + layer.width, top + layer.height)
    # GIMP 2.10 keeps a perceptual image's selection as Y' u8 but its layer masks as
    # linear Y u8 (as "Add Layer Mask: Selection" does): the mask holds the selection's
    # values through the sRGB curve, so a soft edge keeps its look.
    selected = selection.crop(box)
    expected_mask = selected.point(gimp._srgb_lut(True))
    assert layer.mask is not None
    assert max_difference(layer.mask.pixels, expected_mask) == 0
    if feather:
        assert sum(layer.mask.pixels.histogram()[1:255]) > 100

    # What the user sees over the source: the result through its mask.
    under = before_source.crop((box[0] - offsets[0], box[1] - offsets[1],
                                box[2] - offsets[0], box[3] - offsets[1]))
    seen = Image.composite(layer.pixels.convert("RGB"), under, layer.mask.pixels)
    fully = selected.point(lambda v: 255 if v == 255 else 0)
    outside = selected.point(lambda v: 255 if v == 0 else 0)
    assert fully.histogram()[255] > 1000 and outside.histogram()[255] > 1000
    inverted = ImageChops.invert(under)
    # A pixel or two in from the edge: the API's answer is resampled back to the region,
    # which blends the inverted and the untouched sides of the edge.
    inside = fully.filter(ImageFilter.MinFilter(5))
    assert_same_picture(Image.composite(seen, inverted, inside), inverted)
    assert max_difference(Image.composite(seen, under, outside), under) == 0

    # The API was told to change the selected area only: the fake inverts where the mask
    # it received is transparent, so the result itself, a few pixels out from the
    # selection's edge (resampling), is the source.
    far_outside = outside.filter(ImageFilter.MinFilter(7))
    assert_same_picture(Image.composite(layer.pixels.convert("RGB"), under, far_outside),
                        under)
    assert [item.name for item in image.layers] == ["above", NAME, "source", "background"]
    assert source.pixels.tobytes() == before_source.tobytes()
    assert image.selection.pixels.tobytes() == selection.tobytes()
    assert_one_undo_step(image)
    assert gimp.shim_images == [image] and list(private_tmp.iterdir()) == []


def test_layer_over_the_canvas_edge_sends_no_selection_outside_the_canvas(entry, wisgate_env,
                                                                        fake_wisgate):
    """Where the layer hangs over the canvas there is no selection: the API must not be
    told to change it (GIMP fills that part with the background colour, white by default)."""
    wisgate_env("invert")
    image, source = make_image((300, 200), (200, 150), (-60, -40))
    select_ellipse(image, (0, 0, 160, 110))
    ids = {layer.ID for layer in image.layers}
    entry.run(image, source)
    assert gimp.shim_messages == []
    [layer] = new_layers(image, ids)
    left, top = layer.offsets
    off_canvas = [(x, y) for x in range(layer.width) for y in range(layer.height)
                  if left + x < -4 or top + y < -4]  # past the edge's resampling
    assert off_canvas, "the region should reach past the canvas edge"
    under = source.pixels.crop((left + 60, top + 40, left + 60 + layer.width,
                                top + 40 + layer.height)).convert("RGB")
    result = layer.pixels.convert("RGB")
    assert all(max(abs(a - b) for a, b in zip(result.getpixel(p), under.getpixel(p))) <= 8
               for p in off_canvas)


def test_use_selection_off_edits_the_whole_layer(entry, wisgate_env):
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    select_ellipse(image, (130, 90, 210, 150))
    entry.run(image, source, use_selection=False)
    layer = image.layers[1]
    assert layer.name == NAME and layer.offsets == (40, 30)
    assert (layer.width, layer.height) == (200, 150) and layer.mask is None


def test_variants_arrive_as_a_group_of_named_layers(entry, wisgate_env, private_tmp):
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    entry.run(image, source, variants=3, quality=1)
    group = image.layers[1]
    assert gimp.pdb.gimp_item_is_group(group) and group.name == NAME
    assert [child.name for child in group.children] == ["variant 1", "variant 2", "variant 3"]
    for number, child in enumerate(group.children, start=1):
        assert child.offsets == (40, 30) and (child.width, child.height) == (200, 150)
        record = json.loads(child.parasite_find("gpt-image-edit").data)
        assert record["variant"] == number and record["quality"] == "low"
    assert [item.name for item in image.layers] == ["above", NAME, "source", "background"]
    assert_one_undo_step(image)
    assert list(private_tmp.iterdir()) == []


def test_source_inside_a_group_gets_its_result_inside_the_group(entry, wisgate_env):
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    group = gimp.pdb.gimp_layer_group_new(image)
    gimp.pdb.gimp_image_insert_layer(image, group, None, 0)
    other = gimp.Layer(image, "other", 20, 20, gimpenums.RGB_IMAGE, 100, gimpenums.NORMAL_MODE)
    inner = gimp.Layer(image, "inner", 50, 40, gimpenums.RGB_IMAGE, 100, gimpenums.NORMAL_MODE)
    inner.shim_set_pixels(pattern((50, 40)))
    gimp.pdb.gimp_image_insert_layer(image, inner, group, 0)
    gimp.pdb.gimp_image_insert_layer(image, other, group, 0)
    gimp.pdb.gimp_layer_set_offsets(inner, 7, 9)
    image.shim_forget_undo()
    entry.run(image, inner, prompt="sky")
    assert [child.name for child in group.children] == ["other", "GPT edit: sky", "inner"]
    assert group.children[1].offsets == (7, 9)


def test_layer_with_alpha_keeps_its_alpha(entry, wisgate_env):
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30), mode="RGBA")
    entry.run(image, source)
    layer = image.layers[1]
    assert layer.has_alpha
    assert max_difference(layer.pixels.getchannel("A"), source.pixels.getchannel("A")) <= 1


def test_layer_mask_as_drawable_edits_its_layer(entry, wisgate_env):
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    select_ellipse(image, (0, 0, 320, 240))
    gimp.pdb.gimp_layer_add_mask(source, gimp.pdb.gimp_layer_create_mask(
        source, gimpenums.ADD_SELECTION_MASK))
    image.selection.pixels = Image.new("L", (320, 240))
    image.shim_forget_undo()
    entry.run(image, source.mask)
    assert image.layers[1].name == NAME and image.layers[2] is source


# -- refusals and failures ------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(policies.REFUSALS))
def test_refusals_say_why_and_change_nothing(entry, wisgate_env, fake_wisgate, private_tmp,
                                             case):
    """The same cases and sentences as tests/test_core.py (the fake host) and
    tests/test_gimp3.py (real GIMP 3)."""
    wisgate_env("echo")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    drawable, arguments = source, dict(policies.REFUSAL_ARGUMENTS.get(case, {}))
    if case == "layer_group":
        drawable = gimp.pdb.gimp_layer_group_new(image)
        gimp.pdb.gimp_image_insert_layer(image, drawable, None, 0)
        image.shim_forget_undo()
    elif case == "selection_beside":
        select_ellipse(image, (250, 190, 300, 230))
    before = image.shim_snapshot()
    entry.run(image, drawable, **arguments)
    assert gimp.shim_messages == [policies.REFUSALS[case]]
    assert_unchanged(image, before, private_tmp)
    assert fake_wisgate.requests == []


@pytest.mark.parametrize("case", FAILURES)
def test_failure_leaves_the_image_as_it_was_with_the_workers_sentence(
        entry, wisgate_env, fake_wisgate, private_tmp, tmp_path, case, monkeypatch):
    scenario = "echo" if case == "unauthorized" else case
    timeout = 1 if case == "slow" else None
    variants = 2 if case == "fewer" else 1
    wisgate_env(scenario, timeout=timeout)
    key = "not-the-key" if case == "unauthorized" else DEFAULT_KEY
    monkeypatch.setenv("GPT_IMAGE_EDIT_API_KEY", key)
    image, source = make_image((320, 240), (200, 150), (40, 30))
    select_ellipse(image, (130, 90, 210, 150))
    before = image.shim_snapshot()

    entry.run(image, source, variants=variants)

    assert_unchanged(image, before, private_tmp)
    assert fake_wisgate.requests, "the worker never reached the server"
    expected = worker_sentence(fake_wisgate, scenario, tmp_path, key=key, timeout=timeout,
                               variants=variants)
    assert gimp.shim_messages == [expected]


def test_missing_worker_is_explained(entry, wisgate_env, private_tmp, tmp_path, monkeypatch):
    wisgate_env("echo")
    monkeypatch.setenv("GPT_IMAGE_EDIT_WORKER", str(tmp_path / "no-such-python"))
    image, source = make_image((320, 240), (200, 150), (40, 30))
    before = image.shim_snapshot()
    entry.run(image, source)
    assert gimp.shim_messages == [NOT_INSTALLED]
    assert_unchanged(image, before, private_tmp)


def test_worker_described_by_the_installer_file_is_used(entry, wisgate_env, monkeypatch):
    """Without GPT_IMAGE_EDIT_WORKER, gpt-image-edit-worker.json in the entry's helper
    folder names it."""
    wisgate_env("echo")
    monkeypatch.delenv("GPT_IMAGE_EDIT_WORKER")
    entry.worker_file.write_text(json.dumps(
        {"python": sys.executable, "pythonpath": [str(REPO / "plugin")]}))
    image, source = make_image((320, 240), (200, 150), (40, 30))
    entry.run(image, source)
    assert gimp.shim_messages == [] and image.layers[1].name == NAME


def worker_processes() -> list[int]:
    """This process's children running a worker job."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next(line.split()[1] for line in status.splitlines()
                      if line.startswith("PPid:"))
        if int(parent) == os.getpid() and b"gpt_image_edit" in command and b"job" in command:
            found.append(int(entry.name))
    return found


def test_killed_worker_leaves_the_image_unchanged(entry, wisgate_env, fake_wisgate,
                                                  private_tmp):
    """GIMP 2.10 gives gimpfu no cancel callback; a worker that dies mid-request (killed by
    the user or the system) must still leave the image as it was."""
    wisgate_env("slow")
    image, source = make_image((320, 240), (200, 150), (40, 30))
    before = image.shim_snapshot()
    killed = []

    def kill_once_the_request_is_out():
        if killed or not fake_wisgate.requests:
            return
        for pid in worker_processes():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    gimp.shim_on_progress.append(kill_once_the_request_is_out)
    entry.run(image, source)

    assert killed, "the worker was never seen"
    assert len(gimp.shim_messages) == 1
    assert gimp.shim_messages[0].startswith("The GPT Image Edit worker stopped unexpectedly")
    assert_unchanged(image, before, private_tmp)


def test_gimp_killing_the_plug_in_stops_the_worker(wisgate_env, fake_wisgate, tmp_path,
                                                   private_tmp):
    """GIMP 2.10's Cancel on a plug-in's progress kills the plug-in process; its worker
    must not keep running (and spending credits) after it, and the job folder the killed
    plug-in can no longer remove must go with it."""
    env = wisgate_env("slow")
    plug_ins = lay_out_plug_ins(tmp_path / "plug-ins")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(env, GPT_IMAGE_EDIT_WORKER=sys.executable,
               PYTHONPATH=os.pathsep.join([str(SHIM), str(REPO), str(REPO / "plugin")]))
    plug_in = subprocess.Popen([sys.executable, str(driver), str(plug_ins / ENTRY.name)],
                               env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not fake_wisgate.requests and time.monotonic() < deadline:
            assert plug_in.poll() is None, "the plug-in ended before its request arrived"
            time.sleep(0.1)
        assert fake_wisgate.requests, "the worker's request never arrived"
        workers = [pid for pid in _children_of(plug_in.pid)]
        assert workers, "no worker process found"
        plug_in.kill()
        plug_in.wait()
        for pid in workers:
            assert _ends(pid, within=60), "the worker kept running after its plug-in died"
        assert list(private_tmp.iterdir()) == []
    finally:
        if plug_in.poll() is None:
            plug_in.kill()
            plug_in.wait()


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"PPid:\t{pid}\n" in status:
                children.append(int(entry.name))
    return children


def _ends(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return True
        if "State:\tZ" in state:  # ended; only its (dead) parent could reap it
            return True
        time.sleep(0.1)
    return False


DRIVER = '''
import importlib.util, sys
import gimp, gimpenums
from PIL import Image
spec = importlib.util.spec_from_file_location("entry", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
image = gimp.Image(64, 48, gimpenums.RGB)
layer = gimp.Layer(image, "source", 64, 48, gimpenums.RGB_IMAGE, 100, gimpenums.NORMAL_MODE)
layer.shim_set_pixels(Image.new("RGB", (64, 48), "gray"))
gimp.pdb.gimp_image_insert_layer(image, layer, None, 0)
gimp.shim_main[-1]["run"]("python-fu-gpt-image-edit",
                          (gimpenums.RUN_NONINTERACTIVE, image, layer, "sky", "gpt-image-2",
                           "auto", 3, 1, 1, 2, None))
'''


def test_the_shim_refuses_what_it_does_not_model():
    with pytest.raises(AttributeError, match="pdb.gimp_edit_fill is not implemented"):
        gimp.pdb.gimp_edit_fill(None, gimpenums.FILL_WHITE)
    with pytest.raises(AttributeError, match="gimp.image_list is not implemented"):
        gimp.image_list()
    image = gimp.Image(10, 10, gimpenums.RGB)
    layer = gimp.Layer(image, "l", 10, 10, gimpenums.RGB_IMAGE, 100, gimpenums.NORMAL_MODE)
    with pytest.raises(NotImplementedError, match="mask type 0"):
        gimp.pdb.gimp_layer_create_mask(layer, gimpenums.ADD_WHITE_MASK)
    with pytest.raises(NotImplementedError, match="shadow buffer"):
        layer.get_pixel_rgn(0, 0, 10, 10, True, True)
    with pytest.raises(TypeError):  # the wrong number of arguments, as in GIMP 2.10
        gimp.pdb.file_png_save(image, layer, "x.png", "x.png")


BROKEN_RESULT_WORKER = '''
import json, os, sys
from PIL import Image
job_path = sys.argv[sys.argv.index("job") + 1]
folder = os.path.join(os.path.dirname(job_path), "results")
os.mkdir(folder)
with open(os.path.join(folder, "variant-1.rgba"), "wb") as handle:
    handle.write(Image.new("RGBA", (20, 10), "red").tobytes())
with open(os.path.join(folder, "variant-2.rgba"), "wb") as handle:
    handle.write(b"\\xff" * (20 * 10 * 4 - 1))  # cut short
with open(os.path.join(folder, "manifest.json"), "w") as handle:
    json.dump({"protocol": 2, "ok": True,
               "placement": {"x": 0, "y": 0, "width": 20, "height": 10},
               "results": [{"path": "variant-1.rgba", "variant": 1, "pixels": "RGBA"},
                           {"path": "variant-2.rgba", "variant": 2, "pixels": "RGBA"}],
               "request": {"size": "1024x1024"}, "usage": {}}, handle)
'''


def test_a_result_gimp_cannot_read_changes_nothing(entry, private_tmp, tmp_path, monkeypatch):
    """A worker (here a stand-in found through the installer's file) whose second result is
    cut short: nothing is inserted, the loaded first one is thrown away."""
    standin = tmp_path / "standin" / "gpt_image_edit"
    standin.mkdir(parents=True)
    (standin / "__init__.py").write_text("")
    (standin / "__main__.py").write_text(BROKEN_RESULT_WORKER)
    monkeypatch.delenv("GPT_IMAGE_EDIT_WORKER")
    entry.worker_file.write_text(json.dumps(
        {"python": sys.executable, "pythonpath": [str(standin.parent)]}))
    image, source = make_image((320, 240), (200, 150), (40, 30))
    before = image.shim_snapshot()
    entry.run(image, source, variants=2)
    assert gimp.shim_messages == [
        "GPT Image Edit could not read a result of the worker: try again."]
    assert_unchanged(image, before, private_tmp)
    # not even an empty undo group: in real GIMP 2.10 that leaves the image dirty
    assert image.undo_log == []  # every result is loaded before the first change
    assert "gimp_item_delete" in gimp.shim_calls  # the first, loaded result
