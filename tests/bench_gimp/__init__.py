"""The GIMP rows of the benchmark: the real GIMP 3 plug-in, timed inside gimp-console.

One gimp-console launch per GIMP version runs every case, the cases taking turns
repetition by repetition (timed_edits.py beside this file):
GIMP's own start is outside the timings, the plug-in's start, export, worker, import and
layer insert are inside. The plug-in is installed by the project's installer into a fresh
GIMP user folder, as tests/test_gimp3.py does. The worker is started through a small
wrapper (GPT_IMAGE_EDIT_WORKER) that notes every start, so each edit's worker starts are
counted, whatever command started them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests import real_gimp

VERSIONS = real_gimp.VERSIONS
SCRIPT = Path(__file__).resolve().parent / "timed_edits.py"


@dataclass(frozen=True)
class GimpCase:
    name: str
    picture: Path
    ellipse: tuple[int, int, int, int] | None


@dataclass
class GimpTimings:
    version: str  # GIMP's own version string, e.g. 3.0.4
    seconds: dict[str, list[float]]  # per case name
    uploaded: dict[str, int]  # per case name: request body bytes of one edit
    starts: dict[str, list[int]]  # per case name: worker process starts of each edit
    requests: dict[str, object]  # per case name: the last edit request the server received


def prompt_for(case: GimpCase, prompt: str) -> str:
    """Each case's prompt names it, so the fake server's records tell the cases apart."""
    return f"{prompt} ({case.name})"


def time_edits(version: str, cases: list[GimpCase], repeat: int, fake, folder: Path,
               key: str, prompt: str) -> GimpTimings:
    """Install the plug-in into a fresh user folder of GIMP `version` and time `repeat`
    edits of each case against `fake` (a running FakeWisGate, echo scenario)."""
    gimp = real_gimp.provide(version)
    home = folder / "home"
    home.mkdir(parents=True)
    gimp_dir = home / ".config" / "GIMP" / version
    real_gimp.install_plugin(gimp, home, gimp_dir)
    starts = folder / "worker-starts.txt"
    wrapper = counting_wrapper(gimp_dir / "plug-ins" / "gpt-image-edit", starts,
                               folder / "worker")
    settings = folder / "settings" / "settings.json"
    write_settings(settings, {"base_url": fake.url_for("echo"), "api_key": key})
    out = folder / "timings.json"
    request = folder / "request.json"
    request.write_text(json.dumps({
        "out": str(out), "repeat": repeat,
        "cases": [{"name": case.name, "picture": str(case.picture),
                   "ellipse": case.ellipse, "prompt": prompt_for(case, prompt)}
                  for case in cases]}))
    (folder / "tmp").mkdir()
    fake.reset()
    done = gimp.run_script(SCRIPT, home=home, binds=[folder, *{c.picture.parent for c in cases}],
                           env={"GIMP_BENCH_REQUEST": str(request),
                                "GIMP_BENCH_STARTS": str(starts),
                                "GPT_IMAGE_EDIT_WORKER": str(wrapper),
                                "GPT_IMAGE_EDIT_CONFIG": str(settings),
                                # What the plug-in adds around one plain API call: no live
                                # previews, so the curl baseline replays the same request.
                                "GPT_IMAGE_EDIT_PARTIAL_IMAGES": "0",
                                "TMPDIR": str(folder / "tmp")})
    if not out.exists():
        raise RuntimeError(f"GIMP {version} wrote no timings (exit {done.returncode}):\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    report = json.loads(out.read_text())
    return GimpTimings(report["version"],
                       {name: timed["seconds"] for name, timed in report["cases"].items()},
                       uploaded_per_case(fake.requests, cases, prompt, repeat),
                       {name: timed["starts"] for name, timed in report["cases"].items()},
                       {case.name: [r for r in fake.requests
                                    if r.fields.get("prompt") == prompt_for(case, prompt)][-1]
                        for case in cases})


def counting_wrapper(entry_dir: Path, starts: Path, path: Path) -> Path:
    """A program in the worker interpreter's place: it notes the start in `starts`, then
    runs the installed worker (its interpreter, with its package first on PYTHONPATH)."""
    described = json.loads((entry_dir / "gpt-image-edit-worker.json").read_text())
    pythonpath = os.pathsep.join(described.get("pythonpath", []))
    path.write_text("#!/bin/sh\n"
                    f"echo start >> '{starts}'\n"
                    f"PYTHONPATH='{pythonpath}' exec '{described['python']}' \"$@\"\n")
    path.chmod(0o755)
    starts.write_text("")
    return path


def write_settings(path: Path, settings: dict) -> None:
    """The settings file the worker inside GIMP reads (mode 0600, like the real one)."""
    path.parent.mkdir(parents=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        json.dump(settings, handle)


def uploaded_per_case(requests, cases: list[GimpCase], prompt: str,
                      repeat: int) -> dict[str, int]:
    """The request body size of one edit of each case, from the fake server's records."""
    uploaded = {}
    for case in cases:
        bodies = [int(r.headers["content-length"]) for r in requests
                  if r.fields.get("prompt") == prompt_for(case, prompt)]
        if len(bodies) != repeat:
            raise RuntimeError(f"GIMP sent {len(bodies)} edits for the {case.name} case, "
                               f"not {repeat}.")
        uploaded[case.name] = max(bodies)
    return uploaded
