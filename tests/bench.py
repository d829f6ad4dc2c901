"""The benchmark of issue 5: what the plug-in adds to an edit, against the plain-curl baseline.

    python3 -m tests.bench                                # 7 repetitions, prints the table
    python3 -m tests.bench --output docs/benchmark.md     # and writes it there

The fake WisGate server (tests/fake_wisgate.py, `echo` scenario) answers at once with the
uploaded picture's own bytes, so the figures measure the client. For each case the same
run times the curl baseline of the WisGate tutorial (curl | jq | base64 -d, sending the
picture the worker sends, at the request size), the worker through its command-line tool,
and the real GIMP 3 plug-in inside gimp-console (GIMP's own start excluded), then prints
medians, spreads, ratios to the baseline, bytes uploaded, peak memory and the targets.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

from tests import bench_gimp
from tests.fake_wisgate import FakeWisGate

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-key-not-a-secret"
PROMPT = "make the light warmer"
MB = 1_000_000
TARGET_RATIO = 1.5
TARGET_UPLOAD_BYTES = 4 * MB
TARGET_PEAK_BYTES = 400 * MB
TARGET_GIMP_SECONDS = 3.0
GNU_TIME = "/usr/bin/time"
BASELINE = "baseline: curl, jq, base64 -d"
WORKER = "worker: gpt-image-edit edit"


@dataclass(frozen=True)
class Case:
    name: str
    width: int
    height: int
    ellipse: tuple[int, int, int, int] | None = None  # x, y, width, height of the selection

    @property
    def label(self) -> str:
        if self.ellipse is None:
            return f"{self.width}x{self.height}, whole layer"
        return f"{self.width}x{self.height}, {self.ellipse[2]}x{self.ellipse[3]} ellipse"


FULL_CASES = (Case("square", 1024, 1024),
              Case("selection", 6000, 4000, (2750, 1900, 400, 300)))
SMALL_CASES = (Case("square", 256, 256),
               Case("selection", 1200, 800, (560, 370, 80, 60)))


@dataclass
class Inputs:
    picture: Path
    selection: Path | None


@dataclass
class Row:
    """One line of the table: repeated timings of one way to do one case's edit."""

    case: Case
    what: str
    seconds: list[float] = field(default_factory=list)
    uploaded: int | None = None  # request body bytes of one edit
    peak_bytes: int | None = None  # the highest peak resident memory over the repetitions

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Measured:
    seconds: float
    peak_bytes: int


# -- inputs ----------------------------------------------------------------------------------
def photo(width: int, height: int, seed: int) -> Image.Image:
    """A deterministic photo-like RGB picture: smooth gradients plus sensor-like noise, so its
    PNG is about as large as a photograph's (pure gradients would compress to nothing)."""
    rng = random.Random(seed)
    linear = Image.linear_gradient("L").resize((width, height))
    radial = Image.radial_gradient("L").resize((width, height))
    diagonal = linear.rotate(90).resize((width, height))
    channels = []
    for base in (linear, radial, diagonal):
        noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
        channels.append(ImageChops.add(base, noise.point(lambda v: v >> 4)))
    return Image.merge("RGB", channels)


def selection_mask(case: Case) -> Image.Image:
    x, y, width, height = case.ellipse
    mask = Image.new("L", (case.width, case.height), 0)
    ImageDraw.Draw(mask).ellipse((x, y, x + width - 1, y + height - 1), fill=255)
    return mask


def make_inputs(case: Case, folder: Path) -> Inputs:
    picture = folder / f"{case.name}.png"
    photo(case.width, case.height, seed=case.width).save(picture, compress_level=1)
    selection = None
    if case.ellipse is not None:
        selection = folder / f"{case.name}-selection.png"
        selection_mask(case).save(selection)
    return Inputs(picture, selection)


# -- running things ------------------------------------------------------------------------
def run_measured(argv: list[str], env: dict[str, str], log: Path) -> Measured:
    """Run a command; its wall time and the peak resident memory of it and its children.

    GNU time measures the memory: Linux carries a process's peak across fork and exec, so
    a child started straight from this (large) process would report this process's peak
    as its own. GNU time is small, and what it starts inherits only its small peak."""
    peak_file = log.with_suffix(".peak")
    with open(log, "wb") as output:
        started = time.perf_counter()
        done = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(peak_file), *argv], env=env,
                              stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with exit code {done.returncode}: "
                           f"{log.read_text(errors='replace')[-2000:]}")
    peak_kib = int(peak_file.read_text().split()[-1])
    return Measured(elapsed, peak_kib * 1024)


def worker_env(base_url: str, folder: Path) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE would recompile the worker on every run, which no installed
    # worker does.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GPT_IMAGE_EDIT_") and k not in ("WISDOM_GATE_KEY",
                                                                "PYTHONDONTWRITEBYTECODE")}
    env.update(GPT_IMAGE_EDIT_BASE_URL=base_url, GPT_IMAGE_EDIT_API_KEY=KEY,
               GPT_IMAGE_EDIT_CONFIG=str(folder / "config" / "settings.json"),
               PYTHONPATH=os.pathsep.join([str(REPO / "plugin"), str(REPO)]))
    return env


def worker_argv(inputs: Inputs, out_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "gpt_image_edit", "edit", str(inputs.picture),
            "--prompt", PROMPT, "-o", str(out_dir)]
    if inputs.selection is not None:
        argv += ["--selection", str(inputs.selection)]
    return argv


def curl_script(base_url: str, fields: dict[str, str], files: dict[str, Path],
                out: Path) -> list[str]:
    """The tutorial's way: curl posts the form, jq takes the base64 out, base64 -d decodes."""
    form = []
    for name, value in fields.items():
        form += ["--form-string", f"{name}={value}"]
    for name, path in files.items():
        form += ["-F", f"{name}=@{path};type=image/png"]
    curl = ["curl", "-sS", "--fail", "-H", f"Authorization: Bearer {KEY}", *form,
            f"{base_url}/images/edits"]
    script = (f"{_quote(curl)} | jq -r '.data[0].b64_json' | base64 -d > {_quote([str(out)])}")
    return ["bash", "-o", "pipefail", "-c", script]


def _quote(words: list[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


# -- one case --------------------------------------------------------------------------------
class CaseBench:
    """Times the baseline and the worker for one case against one fake server."""

    def __init__(self, case: Case, inputs: Inputs, fake: FakeWisGate, folder: Path):
        self.case = case
        self.inputs = inputs
        self.fake = fake
        self.base_url = fake.url_for("echo")
        self.folder = folder
        self.env = worker_env(self.base_url, folder)
        self.baseline = Row(case, BASELINE)
        self.worker = Row(case, WORKER)
        self._baseline_argv: list[str] | None = None

    def prepare(self) -> None:
        """One untimed run of each (warms caches); the worker's request defines the baseline's."""
        request = self._worker_once(record=False)
        image = self.folder / f"{self.case.name}-request.png"
        image.write_bytes(request.files["image"][0])
        files = {"image": image}
        if "mask" not in request.files and png_size(image) == png_size(self.inputs.picture):
            files["image"] = self.inputs.picture  # as a user would: the input file itself
        if "mask" in request.files:
            files["mask"] = self.folder / f"{self.case.name}-request-mask.png"
            files["mask"].write_bytes(request.files["mask"][0])
        self._baseline_argv = curl_script(self.base_url, dict(request.fields), files,
                                          self.folder / "curl-out.png")
        self._baseline_once(record=False)

    def repeat(self) -> None:
        self._baseline_once(record=True)
        self._worker_once(record=True)

    def _worker_once(self, record: bool):
        out_dir = self.folder / "worker-out"
        shutil.rmtree(out_dir, ignore_errors=True)
        self.fake.reset()
        measured = run_measured(worker_argv(self.inputs, out_dir), self.env,
                                self.folder / "worker.log")
        request = self._one_request()
        check_worker_output(out_dir, self.case)
        if record:
            _record(self.worker, measured, int(request.headers["content-length"]))
        return request

    def _baseline_once(self, record: bool) -> None:
        self.fake.reset()
        measured = run_measured(self._baseline_argv, self.env, self.folder / "curl.log")
        request = self._one_request()
        sent = request.files["image"][0]
        if (self.folder / "curl-out.png").read_bytes() != sent:
            raise RuntimeError("The curl baseline did not write the picture the server echoed.")
        if record:
            _record(self.baseline, measured, int(request.headers["content-length"]))

    def _one_request(self):
        requests = [r for r in self.fake.requests if r.path.endswith("/images/edits")]
        if len(requests) != 1:
            raise RuntimeError(f"Expected one edit request at the fake server, got "
                               f"{len(requests)}.")
        return requests[0]


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as picture:
        return picture.size


def _record(row: Row, measured: Measured, uploaded: int) -> None:
    row.seconds.append(measured.seconds)
    row.peak_bytes = max(row.peak_bytes or 0, measured.peak_bytes)
    row.uploaded = uploaded


def check_worker_output(out_dir: Path, case: Case) -> None:
    """The worker really produced a picture: one PNG, of the region's size at most."""
    pictures = sorted(out_dir.glob("*.png"))
    if len(pictures) != 1:
        raise RuntimeError(f"The worker wrote {len(pictures)} pictures in {out_dir}, not one.")
    with Image.open(pictures[0]) as result:
        width, height = result.size
    if width > case.width or height > case.height or (case.ellipse is None
                                                       and (width, height) != (case.width,
                                                                               case.height)):
        raise RuntimeError(f"The worker's result is {width}x{height}, which does not fit "
                           f"the {case.label} case.")


# -- the whole run ---------------------------------------------------------------------------
def run_bench(cases: tuple[Case, ...], repeat: int, gimp_versions: tuple[str, ...],
              folder: Path, say=print) -> tuple[list[Row], dict[str, str]]:
    rows: list[Row] = []
    machine = machine_facts()
    inputs: dict[Case, Inputs] = {}
    with FakeWisGate(key=KEY) as fake:
        for case in cases:
            say(f"{case.label}: making the input")
            case_folder = folder / case.name
            case_folder.mkdir()
            inputs[case] = make_inputs(case, case_folder)
            bench = CaseBench(case, inputs[case], fake, case_folder)
            bench.prepare()
            for number in range(repeat):
                say(f"{case.label}: baseline and worker, repetition {number + 1}/{repeat}")
                bench.repeat()
            rows += [bench.baseline, bench.worker]
        for version in gimp_versions:
            say(f"GIMP {version}: installing the plug-in, then {repeat} edits of each case "
                "in one gimp-console")
            rows += gimp_rows(version, inputs, repeat, fake, folder / f"gimp-{version}",
                              machine)
    order = {case: index for index, case in enumerate(cases)}
    return sorted(rows, key=lambda row: order[row.case]), machine


def gimp_rows(version: str, inputs: dict[Case, Inputs], repeat: int, fake: FakeWisGate,
              folder: Path, machine: dict[str, str]) -> list[Row]:
    gimp_cases = {case: bench_gimp.GimpCase(case.name, given.picture, case.ellipse)
                  for case, given in inputs.items()}
    timed = bench_gimp.time_edits(version, list(gimp_cases.values()), repeat, fake, folder,
                                  KEY, PROMPT)
    machine[f"GIMP {version}"] = timed.version
    return [Row(case, f"GIMP {timed.version} plug-in (GIMP start excluded)",
                timed.seconds[case.name], timed.uploaded[case.name], None)
            for case in inputs]


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
    import PIL
    import requests
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    return {"CPU": cpu, "cores": str(os.cpu_count()), "memory": memory,
            "system": f"{platform.system()} {platform.release()}",
            "Python": platform.python_version(),
            "Pillow": PIL.__version__, "requests": requests.__version__,
            "curl": curl.split()[1] if curl else "unknown"}


# -- the report ------------------------------------------------------------------------------
def table(rows: list[Row]) -> list[str]:
    lines = ["| case | what | median s | spread s (min-max) | x baseline | uploaded MB "
             "| peak MB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    baselines = {row.case: row for row in rows if row.what == BASELINE}
    for row in rows:
        ratio = row.median / baselines[row.case].median
        lines.append(f"| {row.case.label} | {row.what} | {row.median:.3f} | "
                     f"{min(row.seconds):.3f}-{max(row.seconds):.3f} | {ratio:.2f} | "
                     f"{_mb(row.uploaded)} | {_mb(row.peak_bytes, 0)} |")
    return lines


def _mb(value: int | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value / MB:.{digits}f}"


@dataclass
class Target:
    text: str
    passed: bool


def targets(rows: list[Row], cases: tuple[Case, ...]) -> list[Target]:
    square, selection = cases
    found = {(row.case, row.what): row for row in rows}
    base, worker = found[(square, BASELINE)], found[(square, WORKER)]
    ratio = worker.median / base.median
    sel_worker = found[(selection, WORKER)]
    result = [
        Target(f"{square.label}: worker {ratio:.2f}x the curl baseline (at most "
               f"{TARGET_RATIO}x)", ratio <= TARGET_RATIO),
        Target(f"{selection.label}: worker uploads {_mb(sel_worker.uploaded)} MB (at most "
               f"{_mb(TARGET_UPLOAD_BYTES, 0)} MB)", sel_worker.uploaded <= TARGET_UPLOAD_BYTES),
        Target(f"{selection.label}: worker peak memory {_mb(sel_worker.peak_bytes, 0)} MB "
               f"(at most {_mb(TARGET_PEAK_BYTES, 0)} MB)",
               sel_worker.peak_bytes <= TARGET_PEAK_BYTES),
    ]
    for row in rows:
        if row.case == selection and row.what.startswith("GIMP"):
            result.append(Target(f"{selection.label}: {row.what} {row.median:.2f} s "
                                 f"(under {TARGET_GIMP_SECONDS:.0f} s)",
                                 row.median < TARGET_GIMP_SECONDS))
            result.append(Target(f"{selection.label}: {row.what} uploads {_mb(row.uploaded)} "
                                 f"MB (at most {_mb(TARGET_UPLOAD_BYTES, 0)} MB)",
                                 row.uploaded <= TARGET_UPLOAD_BYTES))
    return result


def report(rows: list[Row], machine: dict[str, str], cases: tuple[Case, ...],
           repeat: int) -> str:
    lines = [f"Each figure: {repeat} repetitions; median and spread (min-max) of the wall time "
             "of one edit; x baseline is the median over the baseline's median for the same "
             "case; uploaded is the request body of one edit; peak is the highest resident "
             "memory of the process and its children (1 MB = 1,000,000 bytes).", "",
             *table(rows), "", "Targets (issue 5):", ""]
    lines += [f"- {'PASS' if t.passed else 'FAIL'}: {t.text}" for t in targets(rows, cases)]
    lines += ["", "Machine:", ""] + [f"- {name}: {value}" for name, value in machine.items()]
    return "\n".join(lines) + "\n"


HEADER = """# Benchmark: what the plug-in adds to an edit

Reproduce with `python3 -m tests.bench --output docs/benchmark.md` (about three minutes;
it needs curl, jq and GNU time: `apt-get install curl jq time`; the real GIMP 3.0 and 3.2
come from the cached Debian roots of tests/debian_root.py, the plug-in is installed into a
fresh GIMP user folder by install/install.py). `--repeat N` sets the repetitions, `--no-gimp`
or `--gimp 3.2` limits the GIMP rows, `--small` checks the harness on small inputs.

The fake WisGate server (tests/fake_wisgate.py, `echo` scenario, on 127.0.0.1) answers at
once with the uploaded picture's own bytes; like the real API it first parses the form and
decodes the picture, which is part of every row, the baseline's included. The rows:

- baseline: the WisGate tutorial's `curl -F image=@in.png ... | jq -r '.data[0].b64_json' |
  base64 -d > out.png`, with the same form fields as the worker and the picture the worker
  sends (the input file itself when the worker sends it at its own size, otherwise the
  worker's request picture and mask).
- worker: `python3 -m gpt_image_edit edit INPUT [--selection FILE] -o DIR`, a fresh process
  per edit. The command-line tool writes the whole picture with the result composited in
  (for the 6000x4000 case a full-size PNG); GIMP's worker job writes only the region.
- GIMP: the `plug-in-gpt-image-edit` procedure called from a script inside gimp-console,
  timed around the call (plug-in start, `plan`, export, worker job, import, layer and mask
  insert); GIMP's own start is excluded.

Uploaded is the request body of one edit as the server received it; peak is the peak
resident memory of the process and everything it started (GNU time's %M).

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (default 7)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--small", action="store_true",
                        help="small inputs (256x256, 1200x800): checks the harness quickly")
    parser.add_argument("--gimp", action="append", choices=bench_gimp.VERSIONS,
                        help="GIMP versions to time (default: all); --no-gimp for none")
    parser.add_argument("--no-gimp", action="store_true", help="skip the GIMP rows")
    args = parser.parse_args(argv)
    for tool, package in (("curl", "curl"), ("jq", "jq"), ("base64", "coreutils"),
                          (GNU_TIME, "time")):
        if shutil.which(tool) is None:
            print(f"The benchmark needs {tool}: install it (apt-get install {package}).",
                  file=sys.stderr)
            return 2
    cases = SMALL_CASES if args.small else FULL_CASES
    versions = () if args.no_gimp else tuple(args.gimp or bench_gimp.VERSIONS)
    # Under /tmp: real_gimp binds folders into GIMP's root at the same path, below its /tmp.
    with tempfile.TemporaryDirectory(prefix="gpt-image-edit-bench-", dir="/tmp") as folder:
        rows, machine = run_bench(cases, args.repeat, versions, Path(folder),
                                  say=lambda text: print(text, file=sys.stderr, flush=True))
    text = report(rows, machine, cases, args.repeat)
    print(text)
    if args.output:
        args.output.write_text(HEADER + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
