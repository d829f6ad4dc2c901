"""End to end in real GIMP 3.0.4 and 3.2.6: the plug-in, installed by install/install.py,
edits layers through the fake WisGate server.

Per GIMP version, one launch runs every edit case (tests/gimp3/run_cases.py) and writes a
report with PNGs of the pixels; the tests below judge it. Each case writes the settings
file the worker reads, which is how one launch reaches several fake-server scenarios.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from gpt_image_edit.geometry import (
    Box,
    exact_scale,
    letterbox,
    plan_region,
    request_size,
    scaled_size,
)
from tests import host_policies as policies
from tests import real_gimp
from tests import test_blend as blend_pictures
from tests.bench import photo
from tests.fake_wisgate import DEFAULT_KEY, SQUARE_COLOUR, square_box
from tests.worker_jobs import worker_failure_sentence

CANVAS = (320, 240)
OFFSETS = (40, 30)  # the source layer sits away from the canvas corner
LAYER = (200, 150)
ELLIPSE = (130, 90, 80, 60)  # image coordinates, away from the layer's top-left corner
EDGE_OFFSETS = (-60, -40)  # a layer hanging over the canvas's top-left corner
EDGE_ELLIPSE = (0, 0, 60, 50)  # in the canvas's corner: the region sent reaches beyond it
LARGE = (2800, 1800)  # sent scaled down to the request size, scaled back up in GIMP
LONG_PROMPT = "replace the sky with a stormy sunset over the hills and the river"
PLUGIN_NAME = "gpt-image-edit"
FAILURES = ("unauthorized", "moderation", "quota", "unavailable", "html_502", "bad_base64",
            "fewer", "truncated", "slow")


def source_pictures(folder: Path) -> dict[str, Path]:
    """An opaque picture with detail everywhere, and one with graded alpha."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = LAYER
    # Smooth, so that the worker's scaling to the request size and back keeps it nearly exact.
    picture = Image.new("RGB", LAYER)
    picture.putdata([(40 + x, 30 + y, 200 - (x + y) // 2) for y in range(height)
                     for x in range(width)])
    with_alpha = picture.convert("RGBA")
    with_alpha.putalpha(Image.linear_gradient("L").resize(LAYER))
    paths = {"opaque": folder / "opaque.png", "alpha": folder / "alpha.png",
             "large": folder / "large.png", "smooth": folder / "smooth.png",
             "photo": folder / "photo.png", "look": folder / "look.png",
             "large_photo": folder / "large-photo.png"}
    picture.save(paths["opaque"])
    with_alpha.save(paths["alpha"])
    picture.resize(LARGE, Image.BICUBIC).save(paths["large"])
    blend_pictures.smooth(*BLEND_CANVAS).save(paths["smooth"])
    photo(*PHOTO, seed=13).save(paths["photo"])
    photo(*LARGE_PHOTO, seed=13).save(paths["large_photo"], compress_level=1)
    Image.new("RGB", LOOK, LOOK_COLOUR).save(paths["look"])
    return paths


# -- blending, references and colour (issue 13) ----------------------------------------
BLEND_CANVAS = (480, 360)  # the smooth picture of tests/test_blend.py, a circle selected
CIRCLE_CENTRE, CIRCLE_RADIUS = (240, 180), 100
CIRCLE = (140, 80, 200, 200)
PHOTO = (960, 640)  # a whole-layer edit with detail everywhere
LARGE_PHOTO = (3600, 2400)  # the same, scaled down by GIMP's previews (a scaled source)
LOOK, LOOK_COLOUR = (90, 60), (250, 120, 20)
WIDE_GAMUT = "/usr/share/color/icc/ghostscript/a98.icc"  # Adobe RGB (1998), in every root
OTHER_SRGB = "/usr/share/color/icc/ghostscript/srgb.icc"  # sRGB, not GIMP's own profile file
COLOUR_CASES = {  # name -> how the image is made: another profile, linear or deep pixels
    "colour_a98_u8": {"profile": WIDE_GAMUT},
    "colour_a98_u16": {"profile": WIDE_GAMUT, "profile_precision": "U16_NON_LINEAR"},
    "colour_float_linear": {"mode": "float_linear"},
    "colour_u16_linear": {"mode": "u16_linear"},
}


def blend_cases(case) -> list[dict]:
    """The stand-in model's picture scenarios through each blend; every case its own
    prompt, by which its request is found among the server's."""
    on_smooth = {"picture": "smooth", "canvas": BLEND_CANVAS, "offsets": (0, 0),
                 "selection": {"ellipse": CIRCLE}}
    return [
        case("blend_default", "drift", prompt="blend default", blend=None, **on_smooth),
        case("blend_none", "drift", prompt="blend none", blend="none", **on_smooth),
        case("blend_feather", "cast", prompt="blend feather", blend="feather", **on_smooth),
        case("seamless_whole", "drift", prompt="seamless whole", blend=None, picture="photo",
             canvas=PHOTO, offsets=(0, 0)),
        case("seamless_whole_large", "drift", prompt="seamless whole large", blend=None,
             picture="large_photo", canvas=LARGE_PHOTO, offsets=(0, 0)),
        case("reference", prompt="with a reference",
             reference={"picture": "look", "canvas": LOOK, "offsets": (0, 0), "name": "look"}),
        # Filters > Repeat, handed a reference (the last values may hold one): none is sent.
        case("repeat_with_reference", prompt="repeated", run_mode="with-last-vals",
             reference={"picture": "look", "canvas": LOOK, "offsets": (0, 0), "name": "look"}),
    ]


def colour_cases(case) -> list[dict]:
    return [case(name, prompt=name, **spec) for name, spec in COLOUR_CASES.items()]


def edit_cases(server, pictures: dict[str, Path]) -> list[dict]:
    def settings(scenario, key=DEFAULT_KEY, timeout=None, limit=None):
        stored = {"base_url": server.url_for(scenario), "api_key": key}
        if limit is not None:
            stored["max_cost_usd"] = limit
        return dict(stored, timeout=timeout) if timeout else stored

    def image(mode="rgb", picture="opaque", above=False, offsets=OFFSETS, canvas=CANVAS,
              **colour):
        return {"source": str(pictures[picture]), "canvas": canvas, "offsets": offsets,
                "mode": mode, "above": above, **colour}

    def case(name, scenario="echo", prompt=LONG_PROMPT, selection=None, key=DEFAULT_KEY,
             timeout=None, drawables="layer", limit=None, blend="none", reference=None,
             run_mode=None, **spec):
        # The plain edit (blend none) unless a case is about blending; blend=None leaves
        # the argument out, as a script written before it did, for the default.
        arguments = {"prompt": prompt, **({"blend": blend} if blend else {}),
                     **spec.pop("arguments", {})}
        return {"name": name, "image": image(**spec), "selection": selection,
                "settings": settings(scenario, key, timeout, limit), "drawables": drawables,
                "arguments": arguments, "run_mode": run_mode,
                "reference": image(**reference) if reference else None}

    ellipse = {"ellipse": ELLIPSE}
    return [
        case("whole_echo", above=True),
        case("large_echo", picture="large", canvas=LARGE, offsets=(0, 0)),
        # A camera's file carries its own sRGB profile: GIMP's previews hold sRGB values still.
        case("large_srgb_profile", prompt="large, own sRGB profile", picture="large",
             canvas=LARGE, offsets=(0, 0), profile=OTHER_SRGB),
        case("large_wide_gamut", prompt="large, Adobe RGB", picture="large", canvas=LARGE,
             offsets=(0, 0), profile=WIDE_GAMUT),
        case("mask_chosen", drawables="mask"),
        case("selection_beside", selection={"ellipse": (250, 190, 50, 40)}),
        case("selection_invert", "invert", selection=ellipse),
        case("feathered_invert", "invert", selection=dict(ellipse, feather=12)),
        case("over_edge_invert", "invert", selection={"ellipse": EDGE_ELLIPSE},
             offsets=EDGE_OFFSETS),
        case("selection_ignored", "echo", selection=ellipse,
             arguments={"use-selection": False}),
        case("variants", arguments={"variants": 3, "quality": "medium"}),
        case("alpha", picture="alpha"),
        case("gray", mode="gray"),
        case("u16", mode="u16"),
        case("indexed", mode="indexed"),
        case("unauthorized", key="not-the-key", selection=ellipse),
        case("moderation", "moderation", selection=ellipse),
        case("quota", "quota"),
        case("unavailable", "unavailable"),
        case("html_502", "html_502"),
        case("bad_base64", "bad_base64"),
        case("fewer", "fewer", arguments={"variants": 2}),
        case("truncated", "truncated"),
        case("slow", "slow", timeout=1),
        case("empty_prompt", prompt="   "),
        case("bad_size", arguments={"size": "1000x1000"}),
        case("no_key", key=None),
        case("above_limit", limit=0.01),  # a script's run above the spending limit
        case("no_layer", drawables="none"),
        case("two_layers", drawables="two"),
        case("layer_group", drawables="group"),
        *blend_cases(case),
        *colour_cases(case),
    ]


@dataclass
class Installed:
    gimp: real_gimp.RealGimp
    home: Path


@dataclass
class Report:
    data: dict
    out: Path
    tmpdir: Path
    stderr: str
    requests: list = ()  # what the stand-in server received during the run

    def case(self, name: str) -> dict:
        result = self.data["cases"][name]
        assert "crash" not in result, result["crash"]
        return result

    def picture(self, case: str, name: str) -> Image.Image:
        return Image.open(self.out / case / name)


@pytest.fixture(scope="session", params=real_gimp.VERSIONS, ids=lambda v: f"gimp-{v}")
def installed(request, tmp_path_factory) -> Installed:
    """Real GIMP with the plug-in installed by the project's installer into a fresh user
    folder (inside the GIMP's root, so the root's python3 makes the worker's venv)."""
    gimp = real_gimp.provide(request.param)
    return Installed(gimp, real_gimp.installed_home(gimp, tmp_path_factory.mktemp))


def run_cases(installed: Installed, folder: Path, cases: list[dict],
              env: dict[str, str] | None = None, server=None) -> Report:
    out, tmpdir = folder / "out", folder / "tmp"
    out.mkdir(parents=True)
    tmpdir.mkdir()
    config = folder / "settings" / "settings.json"
    request_file = folder / "cases.json"
    request_file.write_text(json.dumps({"out": str(out), "config": str(config),
                                        "cases": cases}))
    environment = {"GIMP_TEST_CASES": str(request_file), "GPT_IMAGE_EDIT_CONFIG": str(config),
                   "TMPDIR": str(tmpdir), **(env or {})}
    earlier = len(server.requests) if server is not None else 0  # the session's server
    done = installed.gimp.run_script(real_gimp.SCRIPTS / "run_cases.py", home=installed.home,
                                     env=environment, binds=[folder])
    report = out / "report.json"
    assert report.exists(), f"GIMP wrote no report:\n{done.stdout}\n{done.stderr}"
    return Report(json.loads(report.read_text()), out, tmpdir, done.stderr,
                  server.requests[earlier:] if server is not None else [])


@pytest.fixture(scope="session")
def report(installed, fake_wisgate_server, tmp_path_factory) -> Report:
    folder = tmp_path_factory.mktemp(f"cases-{installed.gimp.version}")
    cases = edit_cases(fake_wisgate_server, source_pictures(folder / "pictures"))
    return run_cases(installed, folder, cases, server=fake_wisgate_server)


# -- helpers ----------------------------------------------------------------------------

def worker_sentence(server, scenario: str, tmp_path: Path, key=DEFAULT_KEY, timeout=None,
                    variants=1) -> str:
    """What the worker itself says for a scenario, with the key in the settings file as the
    GIMP cases have it."""
    settings = tmp_path / f"settings-{scenario}.json"
    settings.write_text(json.dumps({"base_url": server.url_for(scenario), "api_key": key,
                                    **({"timeout": timeout} if timeout else {})}))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("GPT_IMAGE_EDIT_", "WISDOM_GATE"))}
    env["GPT_IMAGE_EDIT_CONFIG"] = str(settings)
    return worker_failure_sentence(env, tmp_path / f"job-{scenario}", LONG_PROMPT, variants)


def planned_region(selection_in_layer: tuple[int, int, int, int]) -> dict:
    """The region an edit sends for a selection (the shared geometry), in layer coordinates."""
    return plan_region(LAYER[0], LAYER[1], Box.from_bounds(*selection_in_layer)).as_dict()


def unchanged(result: dict) -> None:
    before, after = result["before"], result["after"]
    assert after["layers"] == before["layers"]
    assert after["channels"] == before["channels"]
    assert after["images"] == before["images"]
    assert after["selection"] == before["selection"]
    assert after["selected"] == before["selected"]
    assert after["dirty"] is False, "the failed call left an undo step"


def max_difference(first: Image.Image, second: Image.Image) -> int:
    assert first.size == second.size
    extrema = ImageChops.difference(first, second).getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return max(high for _, high in bands)


def only_new_layer(result: dict) -> dict:
    assert result["status"] == "success", result["message"]
    assert len(result["new_layers"]) == 1, result["new_layers"]
    return result["new_layers"][0]


# -- the procedure ----------------------------------------------------------------------

def test_procedure_is_registered_with_the_spec_arguments(report):
    procedure = report.data["procedure"]
    assert procedure is not None, "plug-in-gpt-image-edit is not in the PDB"
    assert procedure["menu_paths"] == ["<Image>/Filters/AI"]
    assert procedure["menu_label"] == "GPT Image Edit..."
    assert procedure["settings"] is True
    assert [(a["name"], a.get("default")) for a in procedure["arguments"]] == [
        ("run-mode", None), ("image", None), ("drawables", None), ("prompt", ""),
        ("model", "gpt-image-2"), ("size", "auto"), ("quality", "high"), ("variants", 1),
        ("use-selection", True), ("blend", "seamless"), ("reference", None)]


def test_whole_layer_edit_lands_directly_above_the_source(report):
    result = report.case("whole_echo")
    layer = only_new_layer(result)
    assert layer["name"] == "GPT edit: replace the sky with a stormy sunset\u2026"
    assert layer["offsets"] == list(OFFSETS) and layer["size"] == list(LAYER)
    names = [item["name"] for item in result["after"]["layers"]]
    assert names == ["above", layer["name"], "source"]
    assert layer["mask"] is None
    pixels = report.picture("whole_echo", layer["pixels"]).convert("RGB")
    source = report.picture("whole_echo", "source-before.png").convert("RGB")
    assert max_difference(pixels, source) <= 2
    assert max_difference(report.picture("whole_echo", "source-after.png"), source) == 0
    assert result["before"]["selected"] == [result["source_id"]]
    assert result["after"]["selected"] == [layer["id"]]  # the result is the selected layer
    assert result["after"]["dirty"] is True
    assert result["after"]["images"] == result["before"]["images"]
    assert result["after"]["channels"] == result["before"]["channels"]


def test_large_layer_is_sent_scaled_and_placed_at_full_size(report):
    """A layer larger than the API takes goes out at the request size (GIMP scales it) and
    comes back at full size to exactly the layer's place and size."""
    layer = only_new_layer(report.case("large_echo"))
    assert layer["offsets"] == [0, 0] and layer["size"] == list(LARGE)
    pixels = report.picture("large_echo", layer["pixels"]).convert("RGB")
    source = report.picture("large_echo", "source-before.png").convert("RGB")
    assert max(ImageStat.Stat(ImageChops.difference(pixels, source)).mean) < 1.0
    assert max_difference(pixels, source) <= 8
    # It left GIMP already scaled, from the layer's previews: the worker got the picture at
    # the exact factor's size (docs/job-protocol.md, "A scaled source").
    assert sources_sent(report).count(scaled_size(*LARGE, *exact_scale(
        *LARGE, *request_size(*LARGE, "gpt-image-2")))) == 2  # this case, large_srgb_profile


def sources_sent(report) -> list[tuple[int, int]]:
    """The size of every source the worker read in this run, in order (its log)."""
    log = (report.out.parent / "settings" / "gpt-image-edit.log").read_text()
    return [(int(width), int(height))
            for width, height in re.findall(r"Job: .*, source (\d+)x(\d+) at ", log)]


def test_a_large_layer_of_another_srgb_profile_goes_scaled_too(report):
    """Many photos carry an sRGB profile of their own: GIMP's previews still hold the sRGB
    values, so the layer leaves GIMP scaled, and comes back as it was."""
    layer = only_new_layer(report.case("large_srgb_profile"))
    assert layer["offsets"] == [0, 0] and layer["size"] == list(LARGE)
    pixels = report.picture("large_srgb_profile", layer["pixels"]).convert("RGB")
    source = report.picture("large_srgb_profile", "source-before.png").convert("RGB")
    assert max(ImageStat.Stat(ImageChops.difference(pixels, source)).mean) < 1.0


def test_a_large_layer_of_a_wide_gamut_image_goes_at_full_size(report):
    """Adobe RGB stores other values than sRGB, which GIMP's previews hand out as they are:
    the layer is read at full size through GEGL's conversion instead."""
    layer = only_new_layer(report.case("large_wide_gamut"))
    assert layer["offsets"] == [0, 0] and layer["size"] == list(LARGE)
    assert sources_sent(report).count(LARGE) == 1
    sent = Image.open(io.BytesIO(request_of(report, "large, Adobe RGB").files["image"][0]))
    original = Image.open(report.out.parent / "pictures" / "large.png").convert("RGB")
    canvas = request_size(*LARGE, "gpt-image-2")
    shown = sent.convert("RGB").crop(letterbox(*LARGE, *canvas).bounds()).resize(
        (280, 180), Image.BOX)
    assert max(ImageStat.Stat(ImageChops.difference(
        shown, original.resize((280, 180), Image.BOX))).mean) < 1.5  # sRGB, not Adobe values


def test_a_chosen_layer_mask_edits_its_layer(report):
    result = report.case("mask_chosen")
    layer = only_new_layer(result)
    assert [item["name"] for item in result["after"]["layers"]] == [layer["name"], "source"]
    assert layer["offsets"] == list(OFFSETS) and layer["size"] == list(LAYER)


def test_parasite_records_how_the_layer_was_made(report):
    layer = only_new_layer(report.case("whole_echo"))
    assert layer["persistent"] is True
    record = json.loads(layer["parasite"])
    assert record["prompt"] == LONG_PROMPT
    assert record["model"] == "gpt-image-2"
    assert record["quality"] == "high"
    assert record["variant"] == 1
    assert "x" in record["size"]  # the size actually requested, e.g. 1536x1024
    assert isinstance(record["usage"], dict) and record["usage"]


def selection_in_layer() -> tuple[int, int, int, int]:
    x, y, width, height = ELLIPSE
    return x - OFFSETS[0], y - OFFSETS[1], x - OFFSETS[0] + width, y - OFFSETS[1] + height


@pytest.mark.parametrize("case", ["selection_invert", "feathered_invert"])
def test_selection_edit_is_masked_to_the_selection(report, case):
    result = report.case(case)
    layer = only_new_layer(result)
    _, x1, y1, x2, y2 = result["before"]["selection"]
    region = planned_region((x1 - OFFSETS[0], y1 - OFFSETS[1], x2 - OFFSETS[0], y2 - OFFSETS[1]))
    assert layer["offsets"] == [OFFSETS[0] + region["x"], OFFSETS[1] + region["y"]]
    assert layer["size"] == [region["width"], region["height"]]
    assert layer["size"] != list(LAYER)  # only the region around the selection was sent

    selection = report.picture(case, "selection-before.png").convert("L")
    left, top = layer["offsets"]
    expected_mask = selection.crop((left, top, left + layer["size"][0], top + layer["size"][1]))
    mask = report.picture(case, layer["mask"]).convert("L")
    assert max_difference(mask, expected_mask) == 0
    if case == "feathered_invert":
        partial = sum(mask.histogram()[1:255])
        assert partial > 100, "the feathered selection gave a hard-edged mask"

    before = report.picture(case, "visible-before.png").convert("RGB")
    after = report.picture(case, "visible.png").convert("RGB")
    inverted = ImageChops.invert(before)
    # Well inside: the worker scales the region to the request size and back, which blends
    # a pixel or two across the selection's edge.
    fully_selected = Image.eval(selection, lambda v: 255 if v == 255 else 0).filter(
        ImageFilter.MinFilter(5))
    unselected = Image.eval(selection, lambda v: 255 if v == 0 else 0)
    assert fully_selected.histogram()[255] > 1000 and unselected.histogram()[255] > 1000
    # Inside the selection the picture is inverted; outside, through the mask, untouched.
    assert max_difference(Image.composite(after, inverted, fully_selected), inverted) <= 2
    assert max_difference(Image.composite(after, before, unselected), before) == 0

    assert result["after"]["selection"] == result["before"]["selection"]
    assert max_difference(report.picture(case, "selection-after.png"), selection) == 0
    source = report.picture(case, "source-before.png")
    assert max_difference(report.picture(case, "source-after.png"), source) == 0


def test_nothing_beyond_the_canvas_counts_as_selected(report):
    """Where the region sent hangs over the canvas edge the selection is empty: the API must
    not be told to change layer pixels that only nobody sees yet."""
    result = report.case("over_edge_invert")
    layer = only_new_layer(result)
    left, top = (layer["offsets"][0] - EDGE_OFFSETS[0], layer["offsets"][1] - EDGE_OFFSETS[1])
    assert layer["offsets"][0] < 0 and layer["offsets"][1] < 0
    hidden = (0, 0, 40, 30)  # result pixels left of and above the canvas, away from the ellipse
    pixels = report.picture("over_edge_invert", layer["pixels"]).convert("RGB").crop(hidden)
    source = report.picture("over_edge_invert", "source-before.png").convert("RGB").crop(
        (left, top, left + hidden[2], top + hidden[3]))
    assert max_difference(pixels, source) <= 8  # resampled, never inverted


def test_use_selection_false_edits_the_whole_layer(report):
    layer = only_new_layer(report.case("selection_ignored"))
    assert layer["offsets"] == list(OFFSETS) and layer["size"] == list(LAYER)
    assert layer["mask"] is None


def test_variants_arrive_as_a_group_of_named_layers(report):
    result = report.case("variants")
    group = only_new_layer(result)
    assert group["is_group"] is True
    assert group["name"].startswith("GPT edit: replace the sky")
    assert [child["name"] for child in group["children"]] == [
        "variant 1", "variant 2", "variant 3"]
    for number, child in enumerate(group["children"], start=1):
        assert child["offsets"] == list(OFFSETS) and child["size"] == list(LAYER)
        record = json.loads(child["parasite"])
        assert record["variant"] == number and record["quality"] == "medium"
    assert [item["name"] for item in result["after"]["layers"]] == [group["name"], "source"]


def test_layer_with_alpha_keeps_its_alpha(report):
    layer = only_new_layer(report.case("alpha"))
    pixels = report.picture("alpha", layer["pixels"]).convert("RGBA")
    source = report.picture("alpha", "source-before.png").convert("RGBA")
    assert max_difference(pixels.getchannel("A"), source.getchannel("A")) <= 1
    assert source.getchannel("A").getextrema()[0] < 10  # the source really is transparent


@pytest.mark.parametrize("case,base,tolerance", [
    ("gray", "gray", 2), ("u16", "rgb", 2),
    ("indexed", "indexed", 12),  # GIMP maps the result to the nearest colours of the palette
])
def test_other_image_types_get_a_fitting_layer(report, case, base, tolerance):
    layer = only_new_layer(report.case(case))
    assert layer["base"] == base
    assert layer["offsets"] == list(OFFSETS) and layer["size"] == list(LAYER)
    pixels = report.picture(case, layer["pixels"]).convert("RGB")
    source = report.picture(case, "source-before.png").convert("RGB")
    assert max_difference(pixels, source) <= tolerance


# -- failures ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", FAILURES)
def test_failure_leaves_the_image_as_it_was_with_the_workers_sentence(
        report, case, fake_wisgate_server, tmp_path):
    result = report.case(case)
    assert result["status"] == "execution-error"
    unchanged(result)
    scenario = "echo" if case == "unauthorized" else case
    expected = worker_sentence(fake_wisgate_server, scenario, tmp_path,
                               key="not-the-key" if case == "unauthorized" else DEFAULT_KEY,
                               timeout=1 if case == "slow" else None,
                               variants=2 if case == "fewer" else 1)
    assert result["message"] == expected


@pytest.mark.parametrize("case,sentence", [
    # The refusals every host gives alike (tests/host_policies.py; GIMP 3's procedure
    # itself keeps variants within 1-10, so that case is GIMP 2.10's and the fake's).
    *[(case, policies.REFUSALS[case])
      for case in ("empty_prompt", "layer_group", "selection_beside", "bad_size")],
    ("no_key", policies.NO_KEY),
    ("no_layer", policies.NO_LAYER),
    ("two_layers", policies.NO_LAYER),
])
def test_refusals_say_why(report, case, sentence):
    result = report.case(case)
    assert result["status"] == "execution-error"
    assert result["message"] == sentence
    unchanged(result)


def test_a_script_above_the_spending_limit_is_refused_before_sending(report):
    result = report.case("above_limit")
    assert result["status"] == "execution-error"
    assert result["message"] == policies.above_limit(
        # A script's run shows no live previews, so it asks for (and counts) none.
        policies.estimated_cost(LAYER, LONG_PROMPT, previews=0), 0.01,
        report.tmpdir.parent / "settings" / "settings.json")
    unchanged(result)


def test_no_temporary_folder_is_left_behind(report):
    leftovers = [str(path) for path in report.tmpdir.rglob("*")
                 if PLUGIN_NAME in path.name or path.name.startswith("tmp")]
    assert leftovers == []
    # GIMP keeps its own "gimp" folder there; nothing else may remain.
    assert {path.name for path in report.tmpdir.iterdir()} <= {"gimp"}


def test_missing_worker_is_explained(installed, fake_wisgate_server, tmp_path):
    pictures = source_pictures(tmp_path / "run" / "pictures")
    cases = [case for case in edit_cases(fake_wisgate_server, pictures)
             if case["name"] == "whole_echo"]
    report = run_cases(installed, tmp_path / "run", cases,
                       env={"GPT_IMAGE_EDIT_WORKER": str(tmp_path / "no-such-python")})
    result = report.case("whole_echo")
    assert result["status"] == "execution-error"
    assert result["message"] == ("The GPT Image Edit worker is not set up: run 'python3 "
                                 "install/install.py' from the plug-in's download, then "
                                 "restart GIMP.")
    unchanged(result)


# -- blending, references and colour (issue 13) ----------------------------------------
# The checks take a report of either GIMP (this file's or tests/test_gimp2_real.py's): its
# `out` folder, its PNGs and the requests the stand-in server received during the run.

def request_of(report, prompt: str):
    """The one request of the case with this prompt."""
    [found] = [request for request in report.requests
               if request.fields.get("prompt") == prompt]
    return found


def srgb_of(report, case: str, name: str, size) -> Image.Image:
    """A drawable's pixels as its GIMP converts them to 8-bit sRGB (run_cases.dump_srgb)."""
    return Image.frombytes("RGBA", tuple(size), (report.out / case / name).read_bytes())


def composited(report, case: str) -> tuple[Image.Image, Image.Image]:
    """The image as the retoucher saw it before and sees it after (the projection: the
    result layer through its mask over the source)."""
    return (report.picture(case, "visible-before.png").convert("RGB"),
            report.picture(case, "visible.png").convert("RGB"))


def inside_circle(nearest: float, furthest: float) -> Image.Image:
    """The pixels `nearest` to `furthest` pixels inside the selected circle's edge."""
    return blend_pictures.ring(CIRCLE_RADIUS - furthest, CIRCLE_RADIUS - nearest,
                               BLEND_CANVAS, CIRCLE_CENTRE)


def mask_and_selection(report, case: str, layer: dict) -> tuple[Image.Image, Image.Image]:
    """The result's layer mask and the selection under it, as GIMP had them."""
    left, top = layer["offsets"]
    width, height = layer["size"]
    selection = report.picture(case, "selection-before.png").convert("L")
    mask = report.picture(case, layer["mask"]).convert("L")
    return mask, selection.crop((left, top, left + width, top + height))


def record_of(layer: dict) -> dict:
    return json.loads(layer["parasite"])


def check_seamless_default(report, case: str, layer: dict, prompt: str) -> None:
    """The model painted the square asked for, blurred everything and shifted its colours;
    the blend was left out, as by a script written before it."""
    assert (record_of(layer)["blend"], record_of(layer)["reference"]) == ("seamless", None)
    before, after = composited(report, case)
    selection = report.picture(case, "selection-before.png").convert("L")
    outside = selection.point(lambda value: 255 if value == 0 else 0)
    assert blend_pictures.largest_difference(after, before, outside) <= 2
    assert blend_pictures.largest_difference(after, before, inside_circle(6, 20)) <= 4
    square = blend_pictures.box_mask(before.size, blend_pictures.asked_square(
        selection.getbbox(), before.size), grow=-8)
    painted = Image.new("RGB", before.size, SQUARE_COLOUR)
    assert blend_pictures.largest_difference(after, painted, square) <= 4
    # Non-destructive: the blend lives in the layer mask, soft inside the selection's edge
    # and nothing beyond it, for the retoucher to paint.
    mask, under = mask_and_selection(report, case, layer)
    assert ImageChops.subtract(mask, under).getextrema()[1] == 0
    assert mask.tobytes() != under.tobytes()
    assert "image" in request_of(report, prompt).files  # one picture: no reference


def check_blend_none(report, case: str, layer: dict) -> None:
    assert record_of(layer)["blend"] == "none"
    before, after = composited(report, case)
    band = inside_circle(1, 20)
    expected = blend_pictures.cast_shift(before, band)
    assert max(abs(value) for value in expected) >= 8
    assert blend_pictures.mean_shift(after, before, band) == pytest.approx(expected, abs=1.5)
    mask, under = mask_and_selection(report, case, layer)
    assert max_difference(mask, under) <= 1  # the selection as it was: a hard edge


def check_blend_feather(report, case: str, layer: dict) -> None:
    assert record_of(layer)["blend"] == "feather"
    mask, under = mask_and_selection(report, case, layer)
    assert ImageChops.subtract(mask, under).getextrema()[1] <= 1
    row = CIRCLE_CENTRE[1] - layer["offsets"][1]
    first = next(x for x in range(mask.width) if under.getpixel((x, row)) == 255)
    profile = [mask.getpixel((x, row)) for x in range(first, first + 30)]
    assert len([value for value in profile if 13 <= value <= 242]) >= 3, profile
    assert profile[-1] == 255
    before, after = composited(report, case)
    outside = report.picture(case, "selection-before.png").convert("L").point(
        lambda value: 255 if value == 0 else 0)
    assert blend_pictures.largest_difference(after, before, outside) == 0


def check_seamless_whole(report, case: str, layer: dict, prompt: str, size=PHOTO) -> None:
    assert layer["mask"] is not None and record_of(layer)["blend"] == "seamless"
    before, after = composited(report, case)
    canvas = tuple(int(side) for side in request_of(report, prompt).fields["size"].split("x"))
    content = letterbox(*size, *canvas)
    x1, y1, x2, y2 = square_box(canvas, None)

    def to_layer(x, y):
        return ((x - content.x) * size[0] / content.width,
                (y - content.y) * size[1] / content.height)

    (left, top), (right, bottom) = to_layer(x1, y1), to_layer(x2, y2)
    square = (int(left), int(top), int(right + 0.999), int(bottom + 0.999))
    away = ImageChops.invert(blend_pictures.box_mask(before.size, square, grow=24))
    model = report.picture(case, layer["pixels"]).convert("RGB")
    assert blend_pictures.psnr_where(model, before, away) < 38  # what the model did
    assert blend_pictures.psnr_where(after, before, away) >= 38
    inner = blend_pictures.box_mask(before.size, square, grow=-8)
    painted = Image.new("RGB", before.size, SQUARE_COLOUR)
    assert blend_pictures.largest_difference(after, painted, inner) <= 4


def check_reference(report, layer: dict, prompt: str) -> None:
    assert record_of(layer)["reference"] == "look"
    request = request_of(report, prompt)
    assert "image" not in request.files and len(request.files["image[]"]) == 2
    second = Image.open(io.BytesIO(request.files["image[]"][1]))
    assert second.size == LOOK and second.convert("RGB").getpixel((45, 30)) == LOOK_COLOUR


def check_no_reference(report, layer: dict, prompt: str) -> None:
    assert record_of(layer)["reference"] is None
    assert "image" in request_of(report, prompt).files  # the picture edited, alone


def check_colour(report, case: str, layer: dict) -> None:
    """Another profile, linear light, 16 and 32 bits: the picture sent is the sRGB picture
    the image shows, and an unchanged answer comes back as the source (both read as the
    GIMP converts them to sRGB)."""
    original = Image.open(report.out.parent / "pictures" / "opaque.png").convert("RGB")
    sent = Image.open(io.BytesIO(request_of(report, case).files["image"][0])).convert("RGB")
    canvas = request_size(*LAYER, "gpt-image-2")
    assert sent.size == canvas
    shown = sent.crop(letterbox(*LAYER, *canvas).bounds()).resize(LAYER, Image.LANCZOS)
    assert max(ImageStat.Stat(ImageChops.difference(shown, original)).mean) < 1.0
    assert max_difference(shown, original) <= 4
    source = srgb_of(report, case, "source-before.rgba", LAYER).convert("RGB")
    result = srgb_of(report, case, f"layer-{layer['id']}.rgba", layer["size"]).convert("RGB")
    # The image holds the picture, converted into its profile (8 bits: a level or two more)
    assert max_difference(source, original) <= 4
    difference = ImageChops.difference(result, source)
    assert max(ImageStat.Stat(difference).mean) < 0.1
    # Within a level or two; an 8-bit image in a space wider than sRGB is quantised twice
    # (its own 8 bits, the model's 8 bits), which costs a few levels on a few pixels.
    assert max_difference(result, source) <= (4 if case == "colour_a98_u8" else 2)
    red, green, blue = difference.split()
    largest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    assert sum(largest.histogram()[3:]) <= 0.002 * LAYER[0] * LAYER[1]


def test_seamless_is_the_default_corrects_the_drift_and_keeps_the_change(report):
    check_seamless_default(report, "blend_default", only_new_layer(report.case(
        "blend_default")), "blend default")


def test_blend_none_keeps_the_models_cast_near_the_edge_and_a_hard_mask(report):
    check_blend_none(report, "blend_none", only_new_layer(report.case("blend_none")))


def test_blend_feather_has_a_soft_edge_of_3_px_or_more_inside_the_selection(report):
    check_blend_feather(report, "blend_feather", only_new_layer(report.case("blend_feather")))


def test_seamless_whole_layer_edit_keeps_full_detail_away_from_the_change(report):
    check_seamless_whole(report, "seamless_whole",
                         only_new_layer(report.case("seamless_whole")), "seamless whole")


def test_seamless_whole_layer_edit_of_a_scaled_source_keeps_full_detail_too(report):
    """The same through GIMP's previews (a layer larger than the API takes): away from the
    change the retoucher sees the layer's own full detail, not the model's scaled picture."""
    check_seamless_whole(report, "seamless_whole_large",
                         only_new_layer(report.case("seamless_whole_large")),
                         "seamless whole large", LARGE_PHOTO)


def test_a_reference_layer_of_another_image_goes_as_the_second_picture(report):
    check_reference(report, only_new_layer(report.case("reference")), "with a reference")


def test_filters_repeat_never_sends_a_reference(report):
    layer = only_new_layer(report.case("repeat_with_reference"))
    assert record_of(layer)["reference"] is None
    # Of the whole run, only the case that chose a reference sent two pictures.
    assert [request.fields["prompt"] for request in report.requests
            if "image[]" in request.files] == ["with a reference"]


@pytest.mark.parametrize("case", sorted(COLOUR_CASES))
def test_the_model_gets_srgb_and_the_result_returns_in_the_images_colours(report, case):
    check_colour(report, case, only_new_layer(report.case(case)))
