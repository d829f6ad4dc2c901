"""End to end in real GIMP 2.10.22 with Python-Fu: the plug-in, installed by
install/install.py into a fresh ~/.config/GIMP/2.10, edits layers through the PDB
(`pdb.python_fu_gpt_image_edit` from a python-fu-eval batch) and the fake WisGate server.

The scenarios of tests/test_gimp3.py, GIMP 2.10's way: one drawable, failures said through
gimp.message (printed by GIMP on its standard error, framed per case by
tests/gimp2/run_cases.py). One launch runs every case; the tests below judge its report.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFilter

from tests import host_policies as policies
from tests import real_gimp
from tests.fake_wisgate import DEFAULT_KEY
from tests.test_gimp3 import (
    CANVAS,
    COLOUR_CASES,
    EDGE_ELLIPSE,
    EDGE_OFFSETS,
    ELLIPSE,
    LAYER,
    LONG_PROMPT,
    OFFSETS,
    blend_cases,
    check_blend_feather,
    check_blend_none,
    check_colour,
    check_no_reference,
    check_reference,
    check_seamless_default,
    check_seamless_whole,
    colour_cases,
    max_difference,
    planned_region,
    source_pictures,
    worker_sentence,
)

SCRIPTS = Path(__file__).resolve().parent / "gimp2"
PROCEDURE = "python-fu-gpt-image-edit"
ENTRY = "GPT Image Edit"  # GIMP prints a plug-in's message after its menu label
NAME = "GPT edit: replace the sky with a stormy sunset\u2026"
NON_ASCII = "ciel d\u2019orage \u00e9t\u00e9 \u2014 ajoute des \u00e9clairs \u26a1"
MESSAGE = re.compile(r"^(?P<source>.+?)-(?:Warning|Message|Error): (?P<text>.*)$")
FAILURES = ("unauthorized", "moderation", "quota", "unavailable", "html_502", "bad_base64",
            "fewer", "truncated", "slow")
REFUSED = "refused_"  # the shared refusal cases' names, apart from the other cases'
SETTINGS_SENTENCE = ("GPT Image Settings can only be changed in its dialog: open Filters > AI > "
                     "GPT Image Settings....")


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
             timeout=None, drawables="layer", save_xcf=False, limit=None, blend="none",
             reference=None, **spec):
        # The plain edit (blend none) unless a case is about blending; blend=None is the
        # default, index 0 (Python-Fu and Script-Fu pass every argument: see below).
        arguments = {"prompt": prompt, "blend": blend or "seamless",
                     **spec.pop("arguments", {})}
        return {"name": name, "image": image(**spec), "selection": selection,
                "settings": settings(scenario, key, timeout, limit), "drawables": drawables,
                "arguments": arguments, "save_xcf": save_xcf,
                "reference": image(**reference) if isinstance(reference, dict) else reference}

    ellipse = {"ellipse": ELLIPSE}
    return [
        case("whole_echo", above=True, save_xcf=True),
        case("selection_invert", "invert", selection=ellipse),
        case("feathered_invert", "invert", selection=dict(ellipse, feather=12)),
        case("over_edge_invert", "invert", selection={"ellipse": EDGE_ELLIPSE},
             offsets=EDGE_OFFSETS),
        case("selection_ignored", "echo", selection=ellipse,
             arguments={"use-selection": False}),
        case("variants", arguments={"variants": 3, "quality": "medium"}, save_xcf=True),
        case("retry", "rate_limit"),
        case("url", "url"),
        case("non_ascii", prompt=NON_ASCII),
        case("mask_active", drawables="mask"),
        case("in_group", drawables="in_group"),
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
        # The refusals every host gives alike (tests/host_policies.py).
        *[case(REFUSED + name, **refusal_spec(name)) for name in policies.REFUSALS],
        case("no_key", key=None),
        case("above_limit", limit=0.01),  # a script's run above the spending limit
        case("channel", drawables="channel"),
        *blend_cases(case),
        case("reference_itself", prompt="the edited layer as reference", reference="itself"),
        case("reference_none", prompt="no reference at all", reference=None),
        case("older_script", prompt="older script", arguments={"older_script": True}),
        *colour_cases(case),
    ]


def refusal_spec(name: str) -> dict:
    """How the shared refusal case `name` is set up in GIMP 2.10."""
    if name == "selection_beside":
        return {"selection": {"ellipse": (0, 0, 30, 20)}}
    if name == "layer_group":
        return {"drawables": "group"}
    arguments = dict(policies.REFUSAL_ARGUMENTS[name])
    prompt = arguments.pop("prompt", LONG_PROMPT)
    return {"prompt": prompt, "arguments": arguments}


@dataclass
class Installed:
    gimp: real_gimp.RealGimp
    home: Path


@dataclass
class Report:
    data: dict
    out: Path
    tmpdir: Path
    stdout: str
    stderr: str
    requests: list = ()  # what the stand-in server received during the run

    def case(self, name: str) -> dict:
        result = self.data["cases"][name]
        assert "crash" not in result, result["crash"]
        return result

    def messages(self, name: str) -> list[tuple[str, str]]:
        """(source, text) of every gimp.message GIMP printed while the case ran."""
        begin = f"@@gpt-image-edit-case-begin {name}\n"
        end = f"@@gpt-image-edit-case-end {name}\n"
        assert begin in self.stderr and end in self.stderr, self.stderr[-3000:]
        framed = self.stderr.split(begin, 1)[1].split(end, 1)[0]
        return [(m["source"], m["text"]) for m in map(MESSAGE.match, framed.splitlines()) if m]

    def picture(self, case: str, name: str) -> Image.Image:
        return Image.open(self.out / case / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    gimp = real_gimp.provide(real_gimp.GIMP2)
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
    done = installed.gimp.run_script(SCRIPTS / "run_cases.py", home=installed.home,
                                     env=environment, binds=[folder])
    (folder / "gimp-stderr.txt").write_text(done.stderr)  # to read when a test fails
    report = out / "report.json"
    assert report.exists(), f"GIMP wrote no report:\n{done.stdout}\n{done.stderr}"
    return Report(json.loads(report.read_text()), out, tmpdir, done.stdout, done.stderr,
                  server.requests[earlier:] if server is not None else [])


@pytest.fixture(scope="module")
def report(installed, fake_wisgate_server, tmp_path_factory) -> Report:
    folder = tmp_path_factory.mktemp("cases-2.10")
    cases = edit_cases(fake_wisgate_server, source_pictures(folder / "pictures"))
    return run_cases(installed, folder, cases, server=fake_wisgate_server)


# -- helpers ----------------------------------------------------------------------------

def unchanged(result: dict) -> None:
    before, after = result["before"], result["after"]
    assert after["layers"] == before["layers"]
    assert after["channels"] == before["channels"]
    assert after["images"] == before["images"]
    assert after["selection"] == before["selection"]
    assert after["selected"] == before["selected"]
    assert after["dirty"] is False, "the failed call left an undo step"


def only_new_layer(report: Report, name: str) -> dict:
    result = report.case(name)
    assert result["status"] == "success", result["error"]
    assert report.messages(name) == []
    assert len(result["new_layers"]) == 1, result["new_layers"]
    return result["new_layers"][0]


def one_sentence(report: Report, name: str) -> str:
    """The one message the plug-in gave for a failed case, the image unchanged."""
    result = report.case(name)
    assert result["status"] == "success", result["error"]  # no traceback, no PDB error
    unchanged(result)
    messages = report.messages(name)
    assert [source for source, _ in messages] == [ENTRY], messages
    return messages[0][1]


# -- the procedures ---------------------------------------------------------------------

def test_it_is_real_gimp_2_10(report):
    assert report.data["version"][:2] == [2, 10]


def test_procedures_are_registered_in_the_filters_ai_menu(report, installed):
    procedure = report.data["procedure"]
    assert procedure is not None, "python-fu-gpt-image-edit is not in the PDB"
    assert procedure["arguments"] == ["run-mode", "image", "drawable", "prompt", "model",
                                      "size", "quality", "variants", "use-selection", "blend",
                                      "reference"]
    settings = report.data["settings_procedure"]
    assert settings is not None, "python-fu-gpt-image-edit-settings is not in the PDB"
    assert settings["arguments"] == ["run-mode"]  # the key is no argument
    pluginrc = (installed.home / ".config" / "GIMP" / "2.10" / "pluginrc").read_text("latin-1")
    for name, label in ((PROCEDURE, "GPT Image Edit..."),
                        (PROCEDURE + "-settings", "GPT Image Settings...")):
        block = pluginrc.split(f'(proc-def "{name}"', 1)[1].split("(proc-def", 1)[0]
        assert '(menu-path "<Image>/Filters/AI")' in block
        assert f'"{label}"' in block


def test_the_wait_procedure_has_no_menu_entry(report, installed):
    pluginrc = (installed.home / ".config" / "GIMP" / "2.10" / "pluginrc").read_text("latin-1")
    block = pluginrc.split(f'(proc-def "{PROCEDURE}-wait"', 1)[1].split("(proc-def", 1)[0]
    assert "menu-path" not in block


def test_a_script_asks_for_no_live_previews(report):
    """Previews cost output tokens, and a script's edit has no window to show them in."""
    sent = [request.fields for request in report.requests
            if request.path.endswith("/images/edits")]
    assert sent and all("stream" not in fields and "partial_images" not in fields
                        for fields in sent)


def test_settings_procedure_from_a_script_says_where_settings_are_made(report):
    assert report.messages("settings_from_a_script") == [("GPT Image Settings",
                                                          SETTINGS_SENTENCE)]


def test_whole_layer_edit_lands_directly_above_the_source(report):
    result = report.case("whole_echo")
    layer = only_new_layer(report, "whole_echo")
    assert layer["name"] == NAME
    assert layer["offsets"] == list(OFFSETS) and layer["size"] == list(LAYER)
    names = [item["name"] for item in result["after"]["layers"]]
    assert names == ["above", layer["name"], "source"]
    assert result["after"]["selected"] == [layer["id"]]  # the result is the selected layer
    assert layer["mask"] is None
    pixels = report.picture("whole_echo", layer["pixels"]).convert("RGB")
    source = report.picture("whole_echo", "source-before.png").convert("RGB")
    assert max_difference(pixels, source) <= 2
    assert max_difference(report.picture("whole_echo", "source-after.png"), source) == 0
    assert result["after"]["images"] == result["before"]["images"]
    assert result["after"]["channels"] == result["before"]["channels"]
    assert result["after"]["dirty"] is True


def test_parasite_is_plain_json_and_persistent(report):
    layer = only_new_layer(report, "whole_echo")
    assert layer["persistent"] is True
    assert layer["undoable"] is True  # else GIMP pushes a "Can't undo" step for it
    text = layer["parasite"]
    assert not text.endswith("\0")
    record = json.loads(text)  # a trailing NUL would make this fail too
    assert text == json.dumps(record, sort_keys=True)  # the bytes GIMP 3 writes
    assert record["prompt"] == LONG_PROMPT and record["model"] == "gpt-image-2"
    assert record["quality"] == "high" and record["variant"] == 1
    assert "x" in record["size"] and isinstance(record["usage"], dict) and record["usage"]


def selection_in_layer(result: dict) -> tuple[int, int, int, int]:
    _, x1, y1, x2, y2 = result["before"]["selection"]
    return x1 - OFFSETS[0], y1 - OFFSETS[1], x2 - OFFSETS[0], y2 - OFFSETS[1]


@pytest.mark.parametrize("case", ["selection_invert", "feathered_invert"])
def test_selection_edit_is_masked_to_the_selection(report, case):
    result = report.case(case)
    layer = only_new_layer(report, case)
    region = planned_region(selection_in_layer(result))
    assert layer["offsets"] == [OFFSETS[0] + region["x"], OFFSETS[1] + region["y"]]
    assert layer["size"] == [region["width"], region["height"]]
    assert layer["size"] != list(LAYER)  # only the region around the selection was sent

    selection = report.picture(case, "selection-before.png").convert("L")
    left, top = layer["offsets"]
    expected_mask = selection.crop((left, top, left + layer["size"][0], top + layer["size"][1]))
    mask = report.picture(case, layer["mask"]).convert("L")
    assert max_difference(mask, expected_mask) <= 1
    if case == "feathered_invert":
        assert sum(mask.histogram()[1:255]) > 100, "the feathered selection gave a hard mask"

    before = report.picture(case, "visible-before.png").convert("RGB")
    after = report.picture(case, "visible.png").convert("RGB")
    inverted = ImageChops.invert(before)
    fully_selected = Image.eval(selection, lambda v: 255 if v == 255 else 0).filter(
        ImageFilter.MinFilter(5))
    unselected = Image.eval(selection, lambda v: 255 if v == 0 else 0)
    assert fully_selected.histogram()[255] > 1000 and unselected.histogram()[255] > 1000
    assert max_difference(Image.composite(after, inverted, fully_selected), inverted) <= 2
    assert max_difference(Image.composite(after, before, unselected), before) == 0

    assert result["after"]["selection"] == result["before"]["selection"]
    assert max_difference(report.picture(case, "selection-after.png"), selection) == 0
    source = report.picture(case, "source-before.png")
    assert max_difference(report.picture(case, "source-after.png"), source) == 0


def test_nothing_beyond_the_canvas_counts_as_selected(report):
    layer = only_new_layer(report, "over_edge_invert")
    left, top = (layer["offsets"][0] - EDGE_OFFSETS[0], layer["offsets"][1] - EDGE_OFFSETS[1])
    assert layer["offsets"][0] < 0 and layer["offsets"][1] < 0
    hidden = (0, 0, 40, 30)  # result pixels left of and above the canvas, away from the ellipse
    pixels = report.picture("over_edge_invert", layer["pixels"]).convert("RGB").crop(hidden)
    source = report.picture("over_edge_invert", "source-before.png").convert("RGB").crop(
        (left, top, left + hidden[2], top + hidden[3]))
    assert max_difference(pixels, source) <= 8  # resampled, never inverted


def test_use_selection_false_edits_the_whole_layer(report):
    layer = only_new_layer(report, "selection_ignored")
    assert layer["offsets"] == list(OFFSETS) and layer["size"] == list(LAYER)
    assert layer["mask"] is None


def test_variants_arrive_as_a_group_of_named_layers(report):
    result = report.case("variants")
    group = only_new_layer(report, "variants")
    assert group["is_group"] is True and group["name"] == NAME
    assert [child["name"] for child in group["children"]] == [
        "variant 1", "variant 2", "variant 3"]
    for number, child in enumerate(group["children"], start=1):
        assert child["offsets"] == list(OFFSETS) and child["size"] == list(LAYER)
        record = json.loads(child["parasite"])
        assert record["variant"] == number and record["quality"] == "medium"
    assert [item["name"] for item in result["after"]["layers"]] == [group["name"], "source"]


@pytest.mark.parametrize("case", ["retry", "url", "mask_active"])
def test_retried_url_and_mask_edits_land_like_any_other(report, case):
    """A 429 with Retry-After is waited out; a `url` answer is downloaded; with the layer's
    mask active the layer itself is edited."""
    layer = only_new_layer(report, case)
    assert layer["offsets"] == list(OFFSETS) and layer["size"] == list(LAYER)
    pixels = report.picture(case, layer["pixels"]).convert("RGB")
    source = report.picture(case, "source-before.png").convert("RGB")
    assert max_difference(pixels, source) <= 2


def test_source_inside_a_group_gets_its_result_inside_the_group(report):
    result = report.case("in_group")
    assert result["status"] == "success" and report.messages("in_group") == []
    group = result["after"]["layers"][0]
    assert [child["name"] for child in group["children"]] == ["other", NAME, "source"]
    assert group["children"][1]["offsets"] == list(OFFSETS)


def test_non_ascii_prompt_names_the_layer_and_reaches_the_parasite(report):
    layer = only_new_layer(report, "non_ascii")
    assert layer["name"] == "GPT edit: " + NON_ASCII
    assert json.loads(layer["parasite"])["prompt"] == NON_ASCII


def test_layer_with_alpha_keeps_its_alpha(report):
    layer = only_new_layer(report, "alpha")
    pixels = report.picture("alpha", layer["pixels"]).convert("RGBA")
    source = report.picture("alpha", "source-before.png").convert("RGBA")
    assert max_difference(pixels.getchannel("A"), source.getchannel("A")) <= 1
    assert source.getchannel("A").getextrema()[0] < 10  # the source really is transparent


@pytest.mark.parametrize("case,base,tolerance", [
    ("gray", "gray", 2), ("u16", "rgb", 2),
    # GIMP maps the resampled result to the nearest colours of the palette (2.10's own way)
    ("indexed", "indexed", 16),
])
def test_other_image_types_get_a_fitting_layer(report, case, base, tolerance):
    layer = only_new_layer(report, case)
    assert layer["base"] == base
    assert layer["offsets"] == list(OFFSETS) and layer["size"] == list(LAYER)
    pixels = report.picture(case, layer["pixels"]).convert("RGB")
    source = report.picture(case, "source-before.png").convert("RGB")
    assert max_difference(pixels, source) <= tolerance


def test_high_bit_depth_image_stays_high_bit_depth(report):
    layer = only_new_layer(report, "u16")
    assert layer["precision"] != only_new_layer(report, "whole_echo")["precision"]


# -- failures ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", FAILURES)
def test_failure_leaves_the_image_as_it_was_with_the_workers_sentence(
        report, case, fake_wisgate_server, tmp_path):
    scenario = "echo" if case == "unauthorized" else case
    expected = worker_sentence(fake_wisgate_server, scenario, tmp_path,
                               key="not-the-key" if case == "unauthorized" else DEFAULT_KEY,
                               timeout=1 if case == "slow" else None,
                               variants=2 if case == "fewer" else 1)
    assert one_sentence(report, case) == expected


@pytest.mark.parametrize("case,sentence", [
    *[(REFUSED + name, sentence) for name, sentence in policies.REFUSALS.items()],
    ("no_key", policies.NO_KEY),
    ("channel", policies.NOT_A_LAYER),
])
def test_refusals_say_why(report, case, sentence):
    assert one_sentence(report, case) == sentence


def test_a_script_above_the_spending_limit_is_refused_before_sending(report):
    assert one_sentence(report, "above_limit") == policies.above_limit(
        # A script's run shows no live previews, so it asks for (and counts) none.
        policies.estimated_cost(LAYER, LONG_PROMPT, previews=0), 0.01,
        report.tmpdir.parent / "settings" / "settings.json")


def test_no_temporary_folder_is_left_behind(report):
    leftovers = [str(path) for path in report.tmpdir.rglob("*")
                 if "gpt-image-edit" in path.name or path.name.startswith("tmp")]
    assert leftovers == []
    assert {path.name for path in report.tmpdir.iterdir()} <= {"gimp"}


def test_the_key_appears_nowhere_in_gimps_files_or_output(report, installed):
    assert DEFAULT_KEY not in report.stdout and DEFAULT_KEY not in report.stderr
    for path in (installed.home / ".config" / "GIMP").rglob("*"):
        if path.is_file():
            assert DEFAULT_KEY.encode() not in path.read_bytes(), path
    for path in report.out.rglob("*.xcf"):
        assert DEFAULT_KEY.encode() not in path.read_bytes(), path


def test_missing_worker_is_explained(installed, fake_wisgate_server, tmp_path):
    pictures = source_pictures(tmp_path / "run" / "pictures")
    cases = [case for case in edit_cases(fake_wisgate_server, pictures)
             if case["name"] == "whole_echo"]
    report = run_cases(installed, tmp_path / "run", cases,
                       env={"GPT_IMAGE_EDIT_WORKER": str(tmp_path / "no-such-python")})
    assert one_sentence(report, "whole_echo") == (
        "The GPT Image Edit worker is not set up: run 'python3 install/install.py' from the "
        "plug-in's download, then restart GIMP.")


BROKEN_RESULT_WORKER = """
import json, os, sys
from PIL import Image
job_path = sys.argv[sys.argv.index("job") + 1]
folder = os.path.join(os.path.dirname(job_path), "results")
os.mkdir(folder)
Image.new("RGBA", (20, 10), "red").save(os.path.join(folder, "variant-1.png"))
with open(os.path.join(folder, "variant-2.png"), "wb") as handle:
    handle.write(b"\\x89PNG\\r\\n\\x1a\\n cut short")
with open(os.path.join(folder, "manifest.json"), "w") as handle:
    json.dump({"protocol": 1, "ok": True,
               "placement": {"x": 0, "y": 0, "width": 20, "height": 10},
               "results": [{"path": "variant-1.png", "variant": 1},
                           {"path": "variant-2.png", "variant": 2}],
               "request": {"size": "1024x1024"}, "usage": {}}, handle)
"""


def test_a_result_gimp_cannot_read_changes_nothing(installed, fake_wisgate_server, tmp_path):
    """A worker (here a stand-in run by the installed worker's Python) whose second result
    is not a picture: nothing is inserted, the loaded first one is thrown away."""
    described = installed.home / ".config" / "GIMP" / "2.10" / "plug-ins" / \
        "gpt-image-edit-gimp2-lib" / "gpt-image-edit-worker.json"
    python = json.loads(described.read_text())["python"]
    folder = tmp_path / "run"  # GIMP's root sees this folder
    folder.mkdir()
    standin = folder / "broken_worker.py"
    standin.write_text(BROKEN_RESULT_WORKER)
    launcher = folder / "python"
    launcher.write_text(f'#!/bin/sh\nexec {python} {standin} "$@"\n')
    launcher.chmod(0o755)
    pictures = source_pictures(folder / "pictures")
    cases = [dict(case, arguments=dict(case["arguments"], variants=2))
             for case in edit_cases(fake_wisgate_server, pictures)
             if case["name"] == "whole_echo"]
    report = run_cases(installed, folder, cases, env={"GPT_IMAGE_EDIT_WORKER": str(launcher)})
    assert one_sentence(report, "whole_echo") == (
        "GPT Image Edit could not read a result of the worker: try again.")
    assert [path.name for path in report.tmpdir.iterdir() if path.name != "gimp"] == []


# -- killed processes -------------------------------------------------------------------

def processes() -> dict[int, list[bytes]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
    return found


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def ended(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


class Killer(threading.Thread):
    """Waits for the workers of two slow cases as they start: kills the first worker
    itself, then the plug-in process (the worker's parent) of the second, as GIMP 2.10's
    Cancel on a plug-in's progress does. Only this run's workers (their job lies in its
    TMPDIR) and their plug-in: the machine is shared."""

    def __init__(self, server, tmpdir: Path):
        super().__init__(daemon=True)
        self.server = server
        self.job_prefix = str(tmpdir).encode() + b"/"
        self.killed: list[tuple[str, int]] = []
        self.orphan: int | None = None
        self.finish = threading.Event()

    def run(self) -> None:
        seen: set[int] = set()
        while len(self.killed) < 2 and not self.finish.wait(0.1):
            for pid, argv in processes().items():
                if pid not in seen and self.is_our_worker(argv):
                    seen.add(pid)
                    self.kill_when_the_request_is_out(pid)

    def is_our_worker(self, argv: list[bytes]) -> bool:
        return (argv[1:4] == [b"-m", b"gpt_image_edit", b"job"] and len(argv) > 4
                and argv[4].startswith(self.job_prefix))

    def kill_when_the_request_is_out(self, worker: int) -> None:
        requests = len(self.server.requests)
        deadline = time.monotonic() + 60
        while len(self.server.requests) == requests and time.monotonic() < deadline:
            time.sleep(0.1)
        if not self.killed:
            os.kill(worker, signal.SIGKILL)
            self.killed.append(("worker", worker))
        else:
            plug_in = parent(worker)
            assert any(arg.endswith(b"gpt-image-edit-gimp2.py")
                       for arg in processes().get(plug_in, [])), "not our plug-in"
            os.kill(plug_in, signal.SIGKILL)
            self.killed.append(("plug-in", plug_in))
            self.orphan = worker


@pytest.fixture(scope="module")
def killed(installed, fake_wisgate_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("killed")
    pictures = source_pictures(folder / "pictures")
    cases = [dict(case, name=name) for name in ("killed_worker", "killed_plug_in")
             for case in edit_cases(fake_wisgate_server, pictures) if case["name"] == "quota"]
    for case in cases:
        case["settings"]["base_url"] = fake_wisgate_server.url_for("slow")
    killer = Killer(fake_wisgate_server, folder / "tmp")
    killer.start()
    try:
        report = run_cases(installed, folder, cases)
    finally:
        killer.finish.set()
        killer.join()
    return report, killer


def test_killed_worker_leaves_the_image_unchanged(killed):
    report, killer = killed
    assert killer.killed[0][0] == "worker"
    assert one_sentence(report, "killed_worker").startswith(
        "The GPT Image Edit worker stopped unexpectedly")


def test_gimp_killing_the_plug_in_stops_the_worker(killed):
    """The worker must not keep running (and spending credits) after its plug-in, and the
    job folder the killed plug-in can no longer remove must go with it."""
    report, killer = killed
    assert [what for what, _ in killer.killed] == ["worker", "plug-in"]
    assert ended(killer.orphan, within=30), "the worker outlived its plug-in"
    result = report.case("killed_plug_in")
    assert result["status"] == "execution-error"  # GIMP: the plug-in crashed
    unchanged(result)
    leftovers = [path.name for path in report.tmpdir.iterdir() if path.name != "gimp"]
    assert leftovers == []


# -- the parasite in a saved XCF, read by one script in GIMP 2.10 and GIMP 3 -------------

def read_parasites(gimp: real_gimp.RealGimp, home: Path, xcf: Path, folder: Path) -> dict:
    out = folder / f"parasites-{gimp.version}.json"
    done = gimp.run_script(SCRIPTS / "read_parasites.py", home=home, binds=[folder],
                           env={"GIMP_TEST_XCF": str(xcf), "GIMP_TEST_OUT": str(out)})
    assert out.exists(), f"GIMP {gimp.version} read no parasite:\n{done.stdout}\n{done.stderr}"
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", ["whole_echo", "variants"])
def test_saved_xcf_keeps_the_parasite_as_plain_json_for_gimp_2_and_3(
        report, installed, case, tmp_path_factory):
    xcf = Path(report.case(case)["xcf"])
    folder = xcf.parent
    read2 = read_parasites(installed.gimp, installed.home, xcf, folder)
    gimp3 = real_gimp.provide(real_gimp.VERSIONS[-1])
    read3 = read_parasites(gimp3, tmp_path_factory.mktemp("gimp3-home"), xcf, folder)
    expected = {child["name"]: child["parasite"] for layer in report.case(case)["new_layers"]
                for child in (layer["children"] or [layer]) if child["parasite"]}
    assert expected, "no result layer with a parasite"
    for read in (read2, read3):
        assert {name: bytes.fromhex(entry["hex"]).decode("utf-8")
                for name, entry in read.items()} == expected
        assert all(entry["flags"] & 1 for entry in read.values())  # persistent


# -- blending, references and colour (issue 13): GIMP 3's checks, GIMP 2.10's way ---------

def test_seamless_is_the_default_corrects_the_drift_and_keeps_the_change(report):
    check_seamless_default(report, "blend_default", only_new_layer(report, "blend_default"),
                           "blend default")


def test_blend_none_keeps_the_models_cast_near_the_edge_and_a_hard_mask(report):
    check_blend_none(report, "blend_none", only_new_layer(report, "blend_none"))


def test_blend_feather_has_a_soft_edge_of_3_px_or_more_inside_the_selection(report):
    check_blend_feather(report, "blend_feather", only_new_layer(report, "blend_feather"))


def test_seamless_whole_layer_edit_keeps_full_detail_away_from_the_change(report):
    check_seamless_whole(report, "seamless_whole", only_new_layer(report, "seamless_whole"),
                         "seamless whole")


def test_a_reference_layer_of_another_image_goes_as_the_second_picture(report):
    check_reference(report, only_new_layer(report, "reference"), "with a reference")


@pytest.mark.parametrize("case,prompt", [("reference_itself", "the edited layer as reference"),
                                         ("reference_none", "no reference at all")])
def test_the_edited_layer_or_none_as_reference_sends_no_reference(report, case, prompt):
    check_no_reference(report, only_new_layer(report, case), prompt)


@pytest.mark.parametrize("case", sorted(COLOUR_CASES))
def test_the_model_gets_srgb_and_the_result_returns_in_the_images_colours(report, case):
    check_colour(report, case, only_new_layer(report, case))


def test_a_script_with_the_older_arguments_is_refused_by_python_fu_itself(report):
    """GIMP 2.10's Python-Fu (like Script-Fu) checks the number of arguments before the call
    reaches GIMP: a 2.10 script written for the arguments before blend and reference must
    add them (0 for seamless, None for no reference; docs/blending.md). GIMP 3 fills them
    in with the defaults."""
    result = report.case("older_script")
    assert (result["status"], result["error"]) == ("execution-error",
                                                   "wrong number of parameters")
    unchanged(result)
