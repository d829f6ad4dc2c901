"""The GIMP rows of the benchmark: the real GIMP 3 plug-in, timed inside gimp-console.

One gimp-console launch per GIMP version runs every case (timed_edits.py beside this file):
GIMP's own start is outside the timings, the plug-in's start, export, worker, import and
layer insert are inside. The plug-in is installed by the project's installer into a fresh
GIMP user folder, as tests/test_gimp3.py does.
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
    real_gimp.install_plugin(gimp, home, home / ".config" / "GIMP" / version)
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
                                "GPT_IMAGE_EDIT_CONFIG": str(settings),
                                "TMPDIR": str(folder / "tmp")})
    if not out.exists():
        raise RuntimeError(f"GIMP {version} wrote no timings (exit {done.returncode}):\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    report = json.loads(out.read_text())
    return GimpTimings(report["version"],
                       {name: timed["seconds"] for name, timed in report["cases"].items()},
                       uploaded_per_case(fake.requests, cases, prompt, repeat))


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
