"""The GIMP 2.10 side under a real Python 2.7 (Debian 11's python2.7, in the cached
gimp-2.10 debootstrap root run through bwrap): it compiles, imports, and the host module does its
job for real: writes the job, finds the worker or says why not, runs a worker, reads its
progress and manifest, reports a crash, and cancels.

The worker here is a small Python 2.7 stand-in inside the root (the real worker is Python
3 with requests and pillow); what is under test is the host side talking to it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gpt_image_edit import pricing
from gpt_image_edit.geometry import Box, plan_region, request_size
from tests import debian_root, real_gimp
from tests import host_policies as policies
from tests.fake_host import core

REPO = Path(__file__).resolve().parent.parent
NOT_INSTALLED = ("The GPT Image Edit worker is not set up: run 'python3 install/install.py' "
                 "from the plug-in's download, then restart GIMP.")

# A stand-in for `python -m gpt_image_edit job JOB`: the job's prompt says what to do.
STANDIN = r'''
import json, os, sys, time
job_path = sys.argv[sys.argv.index("job") + 1]
with open(job_path) as handle:
    job = json.load(handle)
output = os.path.join(os.path.dirname(job_path), job["output_dir"])
def say(stage, message):
    sys.stdout.write(json.dumps({"event": "progress", "stage": stage, "elapsed": 0.1,
                                 "message": message}) + "\n")
    sys.stdout.flush()
def manifest(content):
    if not os.path.isdir(output):
        os.mkdir(output)
    with open(os.path.join(output, "manifest.json.tmp"), "w") as handle:
        json.dump(content, handle)
    os.rename(os.path.join(output, "manifest.json.tmp"), os.path.join(output, "manifest.json"))
prompt = job["prompt"]
say("prepare", "Preparing 1 picture")
sys.stdout.write("not json at all\n")
if prompt == "crash":
    sys.exit(5)
if prompt == "sleep":
    say("wait", "Waiting for gpt-image-2: 1 s")
    time.sleep(120)
if prompt == "fail":
    manifest({"protocol": 2, "ok": False,
              "error": {"kind": "quota", "message": u"Quota used up \u2014 top it up."}})
    sys.exit(3)
os.mkdir(output)
with open(os.path.join(output, "preview-1.rgb"), "wb") as handle:
    handle.write(b"\x40" * (2 * 2 * 3))
for path in ("results/preview-1.rgb", "../../etc/passwd", "/etc/passwd"):
    sys.stdout.write(json.dumps({"event": "preview", "path": path, "index": 1,
                                 "placement": {"x": 1, "y": 2, "width": 3, "height": 4},
                                 "width": 2, "height": 2, "pixels": "RGB",
                                 "elapsed": 0.2}) + "\n")
# Not a preview a host can show: no size, or a size that is no number.
sys.stdout.write(json.dumps({"event": "preview", "path": "results/preview-1.rgb",
                             "index": 2, "placement": {"x": 1, "y": 2, "width": 3,
                                                       "height": 4}}) + "\n")
sys.stdout.write(json.dumps({"event": "preview", "path": "results/preview-1.rgb",
                             "index": 3, "placement": {"x": 1, "y": 2, "width": 3,
                                                       "height": 4},
                             "width": "2", "height": 2, "pixels": "RGB"}) + "\n")
say("finish", u"Placing 1 result \u2713")
with open(os.path.join(output, "variant-1.rgb"), "wb") as handle:
    handle.write(b"\x80" * (3 * 4 * 3))
manifest({"protocol": 2, "ok": True, "placement": {"x": 1, "y": 2, "width": 3, "height": 4},
          "results": [{"path": "variant-1.rgb", "variant": 1, "pixels": "RGB"}],
          "usage": {"output_tokens": 7}, "cost_usd": 0.25})
'''

# Runs inside the root under python2.7; prints one JSON object with what it saw.
CHECKS = r'''
import glob, imp, json, os, py_compile, shutil, sys, tempfile
sys.dont_write_bytecode = True
seen = {"python": list(sys.version_info[:2])}

for path in ("/tmp/src/plugin/gpt-image-edit-gimp2.py",
             "/tmp/src/plugin/gpt-image-edit/gpt_image_edit_host.py",
             "/tmp/src/plugin/gpt-image-edit/gpt_image_edit_core.py",
             "/tmp/src/plugin/gpt_image_edit/geometry.py",
             "/tmp/src/plugin/gpt-image-edit-gimp2-lib/gpt_image_edit_settings2.py",
             "/tmp/src/plugin/gpt-image-edit-gimp2-lib/gpt_image_edit_cost2.py",
             "/tmp/src/tests/gimp2/run_cases.py", "/tmp/src/tests/gimp2/read_parasites.py",
             "/tmp/src/plugin/gpt_image_edit/pricing.py",
             "/tmp/src/tests/gimpfu_shim/gimp.py", "/tmp/src/tests/gimpfu_shim/gimpfu.py",
             "/tmp/src/tests/gimpfu_shim/gimpenums.py"):
    py_compile.compile(path, cfile="/tmp/work/compiled.pyc", doraise=True)
seen["compiled"] = True

# As the installer lays it out: the entry, and its helper modules with the worker file in
# a folder of their own.
plug_ins = "/tmp/work/plug-ins"
lib = os.path.join(plug_ins, "gpt-image-edit-gimp2-lib")
shutil.copytree("/tmp/src/plugin/gpt-image-edit-gimp2-lib", lib)
shutil.copy("/tmp/src/plugin/gpt-image-edit-gimp2.py", plug_ins)
shutil.copy("/tmp/src/plugin/gpt-image-edit/gpt_image_edit_host.py", lib)
shutil.copy("/tmp/src/plugin/gpt-image-edit/gpt_image_edit_core.py", lib)
shutil.copy("/tmp/src/plugin/gpt_image_edit/geometry.py",
            os.path.join(lib, "gpt_image_edit_geometry.py"))
shutil.copy("/tmp/src/plugin/gpt_image_edit/pricing.py",
            os.path.join(lib, "gpt_image_edit_pricing.py"))
sys.path.insert(0, "/tmp/src/tests/gimpfu_shim")
sys.path.insert(0, lib)
import gpt_image_edit_host as host

os.environ.pop("GPT_IMAGE_EDIT_WORKER", None)
try:
    host.find_worker(lib)
    seen["missing_worker"] = None
except host.HostError as error:
    seen["missing_worker"] = error.args[0]
with open(os.path.join(lib, host.WORKER_FILE), "w") as handle:
    json.dump({"python": sys.executable, "pythonpath": ["/tmp/work/standin"]}, handle)
worker = host.find_worker(lib)
seen["worker"] = [worker.python, worker.pythonpath]

# Raw pixels (protocol 2) with Python 2.7's byte strings: written as they are, read back only
# at their exact size.
host.write_raw("/tmp/work/raw.gray", b"\x00\x80\xff" * 4)
raw_read = [host.read_raw("/tmp/work/raw.gray", 4, 3, "L") == b"\x00\x80\xff" * 4]
try:
    host.read_raw("/tmp/work/raw.gray", 4, 4, "L")
except ValueError:
    raw_read.append("short")
seen["raw"] = raw_read

def run(prompt, cancel=False):
    job = host.Job()
    folder = job.folder
    reference = {"path": job.relative(job.reference_path(1)), "name": u"look \u00e9",
                 "pixels": "RGBA", "width": 9, "height": 6}
    job.write({"prompt": prompt, "model": "gpt-image-2", "size": "auto", "quality": "high",
               "variants": 2, "blend": "seamless"},
              {"width": 30, "height": 20, "offset_x": -5, "offset_y": 7},
              "RGB", (3, 4), (20, 10), with_selection=True, references=[reference])
    with open(job.path) as handle:
        written = json.load(handle)
    mode = oct(os.stat(folder).st_mode & 0o777)
    outcome = {"job": written, "folder_mode": mode}
    current = None
    previews = []
    try:
        with job:
            current = host.WorkerRun(worker, job, on_preview=lambda preview: previews.append(
                [os.path.relpath(preview.path, folder), preview.index, preview.placement,
                 list(preview.size), preview.mode, len(preview.pixels())]))
            ticks = []
            def tick(active):
                ticks.append(active.last_message)
                if cancel and "Waiting" in active.last_message:
                    active.cancel()
            outcome["manifest"] = current.wait(on_tick=tick, interval=0.05)
            outcome["last_message"] = current.last_message
    except host.HostError as error:
        outcome["error"] = error.args[0]
        outcome["kind"] = error.kind
    outcome["previews"] = previews
    outcome["folder_removed"] = not os.path.exists(folder)
    outcome["exit"] = current._process.poll()
    return outcome

seen["ok"] = run(u"ciel d'orage \u00e9")
seen["fail"] = run("fail")
seen["crash"] = run("crash")
seen["cancel"] = run("sleep", cancel=True)

entry = imp.load_source("gpt_image_edit_gimp2", os.path.join(plug_ins,
                                                              "gpt-image-edit-gimp2.py"))
import gimp, gimpfu
record = gimpfu._registered_plugins_["python-fu-gpt-image-edit"]
seen["registered"] = [record[5], record[11], [p[1] for p in record[8]]]
record = gimpfu._registered_plugins_["python-fu-gpt-image-edit-settings"]
seen["settings_registered"] = [record[5], record[6], record[11], record[8]]
seen["main_called"] = len(gimp.shim_main)
entry.gpt_image_edit(None, None, "sky", "gpt-image-2", "auto", 3, 1, 1, 0, None)  # no drawable
seen["messages"] = list(gimp.shim_messages)

# The host core itself under Python 2.7, with a document of plain Python answers and the
# stand-in worker: refusals, the region and size arithmetic, the job, and the placement.
core = entry.core

class Document(core.Document):
    def __init__(self, values, kind="layer", bounds=None):
        self.values, self.kind_, self.bounds, self.log, self.job = values, kind, bounds, [], None
    def drawables(self): return ["the layer"]
    def kind(self, drawable): return self.kind_
    def layer_name(self, layer): return u"source"
    def layer_box(self, layer): return (10, 20, 6000, 4000)
    def selection_bounds(self): return self.bounds
    def ask_arguments(self): return self.values
    def layer_pixels(self, layer, region):
        self.log.append(["layer", list(region)])
        return "RGB", b"\x10\x20\x30"
    def selection_pixels(self, region):
        self.log.append(["selection", list(region)])
        return b"\xff"
    def new_layer(self, width, height, mode, pixels):
        [job_path] = glob.glob(os.path.join(tempfile.gettempdir(), "gpt-image-edit-*",
                                            "job.json"))
        with open(job_path) as handle:
            self.job = json.load(handle)
        self.log.append(["new", width, height, mode, len(pixels)])
        return {"name": None}
    def new_group(self, name): return {"name": name}
    def parent_and_position(self, layer): return None, 3
    def insert(self, item, parent, position): self.log.append(["insert", position])
    def set_name(self, item, name): item["name"] = name
    def move(self, item, x, y): self.log.append(["move", x, y])
    def image_size(self): return (7000, 5000)
    def image_name(self): return u"photo.xcf"
    def tattoo(self, item): return 7
    def is_valid(self, item): return True
    def image_is_open(self): return True
    def layers_in(self, parent): return [{"name": u"other"}] * 3
    def children(self, item): return []
    def parasite(self, item, name): return None
    def add_mask(self, item): self.log.append(["new mask"])
    def fill_mask(self, item, pixels): self.log.append(["mask", len(pixels)])
    def set_visible(self, item, visible): pass
    def attach_parasite(self, item, name, text):
        record = json.loads(text)
        self.log.append(["parasite", name, record["prompt"], record["cost_usd"]])
    def select(self, item): self.log.append(["select", item["name"]])
    def undo_group_start(self): self.log.append(["undo-start"])
    def undo_group_end(self): self.log.append(["undo-end"])
    shown = ()  # what the retoucher reads: the progress's first text, the note at the end
    def progress_start(self, text): self.shown += (["progress", text],)
    def progress_update(self, text, fraction): pass
    def progress_end(self): pass
    def show_note(self, text): self.shown += (["note", text],)

def edit(values, **document):
    done = core.edit(Document(values, **document), lib)
    return [done.status, done.message]

seen["core_refusals"] = [
    edit({"prompt": "  "}), edit({"prompt": "sky", "variants": 0}),
    edit({"prompt": "sky"}, kind="channel"), edit({"prompt": "sky"}, kind="group"),
    edit({"prompt": "sky"}, bounds=(7000, 10, 7100, 50)),
    edit({"prompt": "sky", "size": "1000x1000"})]
whole = Document({"prompt": u"ciel d\u2019orage", "quality": entry.quality_name(1)})
seen["whole"] = [core.edit(whole, lib).status, whole.log, whole.job]
seen["shown"] = whole.shown
selected = Document({"prompt": "sky"}, bounds=(3000, 2000, 3400, 2300))
seen["selected"] = [core.edit(selected, lib).status, selected.log, selected.job]
arguments = core.Arguments({"prompt": entry.text("ciel d\xe2\x80\x99orage"),
                            "model": entry.text(""), "size": entry.text(" "),
                            "quality": entry.quality_name(1), "variants": 2}).for_job()
seen["arguments"] = arguments
seen["name"] = entry.native(core.host.layer_name((arguments["prompt"] + u" ") * 4)).decode("utf-8")
# The shared price table and estimate under Python 2.7.
import gpt_image_edit_pricing as pricing
usage = {"input_tokens": 1234, "output_tokens": 4160,
         "input_tokens_details": {"text_tokens": 34, "image_tokens": 1200}}
seen["pricing"] = {
    "costs": [pricing.cost_of(usage, model) for model in
              ("gpt-image-2-2026-04-21", "gpt-image-1.5", "gpt-image-1", "gpt-image-1-mini",
               "dall-e-2")],
    "estimates": [pricing.estimate("gpt-image-2", 1536, 1024, quality, 2, 3, 41,
                                   [(512, 300)]) for quality in ("low", "medium", "high")],
    "core": core.estimate(core.Plan(None, None, core.geometry.Box(0, 0, 6000, 4000),
                                    False),
                          core.Arguments({"prompt": "sky", "variants": 2})),
}
# GIMP's previews of a large layer: the factor and the tiles, as under Python 3.
seen["scaled"] = [[export.scale, export.size, [[tile.src, tile.dest, tile.at]
                                               for tile in export.tiles]]
                  for export in [core.scaled_export(width, height, canvas) for width, height,
                                 canvas in ((6000, 4000, (2336, 1568)),
                                            (4032, 3024, (2208, 1664)),
                                            (2000, 3000, (1552, 2352)))]]
# The cost settings read by the host (never the key) and the dialog's estimate line.
with open("/tmp/work/settings.json", "w") as handle:
    json.dump({"api_key": "sk-py27-secret", "partial_images": 1, "max_cost_usd": 0.05,
               "prices": {"dall-e-2": {"text_input": 1, "image_input": 1,
                                       "image_output": 1}}}, handle)
settings = host.cost_settings({"GPT_IMAGE_EDIT_CONFIG": "/tmp/work/settings.json",
                               "GPT_IMAGE_EDIT_MAX_COST": " 0.5 "})
seen["cost_settings"] = vars(settings)
seen["dialog"] = [core.dialog_estimate(Document(None), {"prompt": "", "variants": variants,
                                                       "quality": quality}, settings)
                  for variants, quality in ((1, "high"), (3, "high"), (3, "low"))]
seen["dialog"].append(core.dialog_estimate(Document(None), {"model": "dall-e-2",
                                                            "size": "512x512"}, settings))
seen["settings_paths"] = [host.settings_path(environ, platform, "/home/u") for environ, platform
                          in (({}, "linux"), ({"APPDATA": "C:/x"}, "win32"), ({}, "darwin"),
                              ({"GPT_IMAGE_EDIT_CONFIG": "/y.json"}, "linux"))]
sys.stdout.write(json.dumps(seen))
'''


@pytest.fixture(scope="module")
def python27(tmp_path_factory) -> dict:
    """Run the checks once under the real Python 2.7; a missing root is built or fails."""
    root = real_gimp.gimp2_root()
    work = tmp_path_factory.mktemp("py27")
    standin = work / "standin" / "gpt_image_edit"
    standin.mkdir(parents=True)
    (standin / "__init__.py").write_text("")
    (standin / "__main__.py").write_text(STANDIN)
    (work / "checks.py").write_text(CHECKS)
    # The root is read-only, so the folders are mounted on its fresh /tmp.
    argv = debian_root.bwrap_argv(root, ro_binds={str(REPO): "/tmp/src"},
                                  binds={str(work): "/tmp/work"}, network=False)
    done = subprocess.run([*argv, "/usr/bin/python2.7", "/tmp/work/checks.py"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, "Python 2.7 checks failed:\n" + done.stderr
    return json.loads(done.stdout)


def test_it_is_really_python_2_7(python27):
    assert python27["python"] == [2, 7]
    assert python27["compiled"] is True


def test_entry_imports_and_registers_under_python_2_7(python27):
    label, menu, params = python27["registered"]
    assert (label, menu) == ("GPT Image Edit...", "<Image>/Filters/AI")
    assert params == ["image", "drawable", "prompt", "model", "size", "quality", "variants",
                      "use-selection", "blend", "reference"]
    assert python27["main_called"] == 1
    # the settings procedure: no image needed, no argument (the key is never one)
    assert python27["settings_registered"] == ["GPT Image Settings...", "",
                                               "<Image>/Filters/AI", []]


def test_entry_refusals_under_python_2_7(python27):
    assert python27["messages"] == [policies.NO_LAYER]
    assert python27["core_refusals"] == [
        ["error", policies.REFUSALS["empty_prompt"]], ["error", policies.REFUSALS["variants"]],
        ["error", policies.NOT_A_LAYER], ["error", policies.REFUSALS["layer_group"]],
        ["error", policies.REFUSALS["selection_beside"]],
        ["error", policies.REFUSALS["bad_size"]]]


@pytest.mark.parametrize("case,bounds", [("whole", None), ("selected", (3000, 2000, 3400, 2300))])
def test_host_core_plans_and_places_under_python_2_7_as_under_3(python27, case, bounds):
    """The region from the shared geometry under Python 2.7 is the worker's own under
    Python 3, handed over raw at full size; the result comes back raw at the placement's
    size, is moved, masked (with a selection), selected, in one undo group."""
    status, log, job = python27[case]
    assert status == "success"
    selection = None if bounds is None else Box.from_bounds(
        bounds[0] - 10, bounds[1] - 20, bounds[2] - 10, bounds[3] - 20)
    region = plan_region(6000, 4000, selection)
    # The selection is captured at OK, before the layer's pixels are read.
    exports = [["layer", list(region)]]
    if bounds is not None:
        exports.insert(0, ["selection", [region.x + 10, region.y + 20, region.width,
                                         region.height]])
    assert log[:len(exports)] == exports
    assert job["source"] == {"path": "source.raw", "pixels": "RGB", "x": region.x,
                             "y": region.y, "width": region.width, "height": region.height}
    assert job["result_pixels"] == "raw"
    assert job["layer"] == {"width": 6000, "height": 4000, "offset_x": 10, "offset_y": 20}
    placed = log[len(exports):]
    # The stand-in worker's manifest places one result at 1,2 size 3x4.
    expected = [["new", 3, 4, "RGB", 36], ["undo-start"]]
    expected += [["new mask"]] if bounds is not None else []
    expected += [["insert", 3], ["move", 1, 2]]
    expected += [["mask", 1]] if bounds is not None else []  # the captured selection
    assert placed[:len(expected)] == expected
    assert placed[len(expected)][:2] == ["parasite", "gpt-image-edit"]
    assert placed[-1] == ["undo-end"] and placed[-2][0] == "select"
    assert placed[-2][1].startswith("GPT edit: ")


def test_entry_handles_gimp_2_byte_strings(python27):
    assert python27["arguments"] == {"prompt": "ciel d\u2019orage", "model": "gpt-image-2",
                                     "size": "auto", "quality": "low", "variants": 2,
                                     "blend": "seamless"}
    # 40 characters of the prompt at most, cut at a word end; UTF-8 in, UTF-8 out
    assert python27["name"] == "GPT edit: " + "ciel d\u2019orage " * 2 + "ciel d\u2019orage\u2026"
    status, log, job = python27["whole"]
    assert job["prompt"] == "ciel d\u2019orage" and job["quality"] == "low"


def test_host_writes_the_job_under_python_2_7(python27):
    outcome = python27["ok"]
    assert outcome["folder_mode"] in ("0700", "0o700")
    assert outcome["job"] == {
        "protocol": 2, "prompt": "ciel d'orage \u00e9", "model": "gpt-image-2",
        "size": "auto", "quality": "high", "variants": 2,
        "layer": {"width": 30, "height": 20, "offset_x": -5, "offset_y": 7},
        "source": {"path": "source.raw", "pixels": "RGB", "x": 3, "y": 4, "width": 20,
                   "height": 10},
        "selection": {"path": "selection.gray", "pixels": "L"}, "output_dir": "results",
        "result_pixels": "raw", "blend": "seamless",
        "references": [{"path": "reference-1.raw", "name": "look \u00e9", "pixels": "RGBA",
                        "width": 9, "height": 6}]}


def test_host_writes_and_reads_raw_pixels_under_python_2_7(python27):
    assert python27["raw"] == [True, "short"]


def test_host_finds_the_worker_or_says_why_under_python_2_7(python27):
    assert python27["missing_worker"] == NOT_INSTALLED
    assert python27["worker"] == ["/usr/bin/python2.7", ["/tmp/work/standin"]]


def test_host_runs_the_worker_and_reads_its_manifest_under_python_2_7(python27):
    outcome = python27["ok"]
    assert outcome["manifest"]["ok"] is True
    assert outcome["manifest"]["placement"] == {"x": 1, "y": 2, "width": 3, "height": 4}
    assert outcome["last_message"] == "Placing 1 result \u2713"
    assert outcome["folder_removed"] is True


@pytest.mark.parametrize("case,sentence", [
    ("fail", "Quota used up \u2014 top it up."),
    ("crash", "The GPT Image Edit worker stopped unexpectedly (exit code 5); see the log in "
              "the gpt-image-edit settings folder."),
    ("cancel", "The edit was cancelled; the image is unchanged."),
])
def test_host_reports_failures_under_python_2_7(python27, case, sentence):
    outcome = python27[case]
    assert outcome["error"] == sentence
    assert "manifest" not in outcome
    assert outcome["folder_removed"] is True


def test_cancel_terminates_the_worker(python27):
    assert python27["cancel"]["exit"] == -15  # SIGTERM, not the end of its 120 s sleep
    assert python27["crash"]["exit"] == 5 and python27["ok"]["exit"] == 0


def test_prices_and_estimates_are_the_same_under_python_2_7(python27):
    """The one price table and estimate, imported by the host core under 2.7, gives the
    worker's numbers under 3, exactly."""
    usage = {"input_tokens": 1234, "output_tokens": 4160,
             "input_tokens_details": {"text_tokens": 34, "image_tokens": 1200}}
    assert python27["pricing"]["costs"] == [
        pricing.cost_of(usage, model) for model in
        ("gpt-image-2-2026-04-21", "gpt-image-1.5", "gpt-image-1", "gpt-image-1-mini",
         "dall-e-2")]
    assert python27["pricing"]["costs"][-1] is None
    assert python27["pricing"]["estimates"] == [
        pricing.estimate("gpt-image-2", 1536, 1024, quality, 2, 3, 41, [(512, 300)])
        for quality in ("low", "medium", "high")]
    width, height = request_size(6000, 4000, "gpt-image-2")
    assert python27["pricing"]["core"] == pricing.estimate("gpt-image-2", width, height,
                                                           "high", 2, 2, 3)


def test_previews_of_a_large_layer_are_planned_alike_under_python_2_7(python27):
    expected = []
    for width, height, canvas in ((6000, 4000, (2336, 1568)), (4032, 3024, (2208, 1664)),
                                  (2000, 3000, (1552, 2352))):
        export = core.scaled_export(width, height, canvas)
        expected.append([list(export.scale), list(export.size),
                         [[list(tile.src), list(tile.dest), list(tile.at)]
                          for tile in export.tiles]])
    assert python27["scaled"] == expected


def test_host_hands_previews_on_and_keeps_to_the_job_folder_under_python_2_7(python27):
    # Announced paths outside the job folder are never opened nor handed on.
    # Only a preview with its size and raw mode is handed on, its pixels readable.
    assert python27["ok"]["previews"] == [
        ["results/preview-1.rgb", 1, {"x": 1, "y": 2, "width": 3, "height": 4}, [2, 2], "RGB",
         12]]
    assert python27["fail"]["kind"] == "quota"
    status, log, job = python27["whole"]
    parasite = next(entry for entry in log if entry[0] == "parasite")
    assert parasite[3] == 0.25  # the manifest's cost_usd, into the provenance record


def test_host_reads_the_cost_settings_without_the_key_under_python_2_7(python27, tmp_path):
    from gpt_image_edit import settings as worker_settings

    assert python27["cost_settings"] == {
        "partial_images": 1, "max_cost_usd": 0.5,
        "prices": {"dall-e-2": {"text_input": 1, "image_input": 1, "image_output": 1}}}
    assert [str(worker_settings.config_path(environ, platform, Path("/home/u")))
            for environ, platform in (({}, "linux"), ({"APPDATA": "C:/x"}, "win32"),
                                      ({}, "darwin"),
                                      ({"GPT_IMAGE_EDIT_CONFIG": "/y.json"}, "linux"))
            ] == python27["settings_paths"]


def test_the_estimate_line_and_the_cost_note_under_python_2_7(python27):
    """The dialog's line, the progress's estimate and the note after placing, from the same
    core under Python 2.7 as under 3 (a 6000x4000 layer, 1 preview from the settings)."""
    width, height = request_size(6000, 4000, "gpt-image-2")

    def cost(variants, quality, previews=1, prompt=""):
        return pricing.format_usd(pricing.estimate("gpt-image-2", width, height, quality,
                                                   variants, previews, len(prompt))["cost_usd"])

    assert python27["dialog"][:3] == [
        f"Estimated cost: {cost(1, 'high')} ({width}x{height}, high, 1 variant, 1 preview).",
        f"Estimated cost: {cost(3, 'high')} ({width}x{height}, high, 3 variants, 1 preview).\n"
        "Above your spending limit of $0.50: you will be asked before it is sent.",
        f"Estimated cost: {cost(3, 'low')} ({width}x{height}, low, 3 variants, 1 preview)."]
    assert python27["dialog"][3].startswith("Estimated cost: $0.0")
    assert python27["dialog"][3].endswith("(512x512, high, 1 variant).\ndall-e-2 gets no live "
                                          "previews and no reference pictures: only the GPT "
                                          "image models (gpt-image-2, gpt-image-1.5, "
                                          "gpt-image-1) send them.")
    # A document that shows no live previews asks for none, and counts none.
    estimate = cost(1, "low", previews=0, prompt="ciel d\u2019orage")
    assert python27["shown"] == [
        ["progress", f"GPT Image Edit: preparing (estimate {estimate})"],
        ["note", f"GPT Image Edit: 1 result placed, cost $0.2500 (estimate {estimate})."]]
