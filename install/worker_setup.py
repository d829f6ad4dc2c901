"""The worker: a copy of the gpt_image_edit package and a Python that has its dependencies.

Native GIMP (and Snap GIMP) use a worker in the user's data folder, run by a virtual
environment made with the Python running the installer. Flatpak GIMP runs plug-ins inside
its sandbox, where that interpreter does not exist: its worker lives in the sandbox's own
data folder (seen at the same path inside) and its virtual environment is made by the
sandbox's Python through `flatpak run`.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from gimp_folders import FLATPAK, FLATPAK_APP, NATIVE, SNAP, flatpak_home, snap_home
from install_steps import InstallError, Steps, command_text, last_line, run_command

# The worker's own settings rules (standard library only): the installer names the file the
# worker will read, by the same code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugin"))
from gpt_image_edit import settings as worker_settings  # noqa: E402
from gpt_image_edit.logs import LOG_FILE  # noqa: E402, F401  (the installer's --purge)

APP_NAME = "gpt-image-edit"
PACKAGE = "gpt_image_edit"
# The lower bounds of pyproject.toml's dependencies (a test keeps the two equal).
REQUIREMENTS = (("requests", "2.31"), ("pillow", "9.5"))
MIN_PYTHON = (3, 9)

# Run by the worker's interpreter: exit 0 when it can run the worker, 4 when the Python is
# too old, 3 when requests or pillow are missing or older than the bounds.
PROBE = f"""
import sys
if sys.version_info < {MIN_PYTHON!r}:
    sys.exit(4)
def numbers(text):
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)
try:
    import PIL, requests
except ImportError:
    sys.exit(3)
have = {{"requests": requests.__version__, "pillow": PIL.__version__}}
wanted = {dict((name, tuple(int(n) for n in low.split("."))) for name, low in REQUIREMENTS)!r}
sys.exit(3 if any(numbers(have[name]) < low for name, low in wanted.items()) else 0)
"""
PROBE_OK, PROBE_MISSING, PROBE_OLD_PYTHON = 0, 3, 4


@dataclass(frozen=True)
class WorkerPlace:
    """Where one worker lives. `sandbox` is NATIVE or FLATPAK (Snap GIMP uses NATIVE)."""

    sandbox: str
    data_dir: Path
    platform: str

    @property
    def lib(self) -> Path:
        return self.data_dir / "lib"

    @property
    def venv(self) -> Path:
        return self.data_dir / "venv"

    @property
    def venv_python(self) -> Path:
        if self.platform == "win32":
            return self.venv / "Scripts" / "python.exe"
        return self.venv / "bin" / "python"


@dataclass(frozen=True)
class Worker:
    """What gpt-image-edit-worker.json says: the interpreter and its PYTHONPATH."""

    python: str
    pythonpath: tuple[str, ...]

    def description(self) -> dict:
        return {"python": self.python, "pythonpath": list(self.pythonpath)}


def worker_sandbox(gimp_sandbox: str) -> str:
    return FLATPAK if gimp_sandbox == FLATPAK else NATIVE


def worker_place(sandbox: str, platform: str, environ, home: Path) -> WorkerPlace:
    if sandbox == FLATPAK:
        return WorkerPlace(FLATPAK, flatpak_home(home) / "data" / APP_NAME, "linux")
    return WorkerPlace(NATIVE, worker_settings.data_dir(environ, platform, home), platform)


def settings_file(gimp_sandbox: str, platform: str, environ, home: Path) -> Path:
    """The settings file the worker reads when run by that GIMP (see product.md): a
    sandboxed GIMP gives its plug-ins a configuration folder of its own."""
    if gimp_sandbox == FLATPAK:
        return flatpak_home(home) / "config" / APP_NAME / "settings.json"
    if gimp_sandbox == SNAP:
        return snap_home(home) / "current" / ".config" / APP_NAME / "settings.json"
    return worker_settings.config_path(environ, platform, home)


class WorkerSetup:
    """Sets up, checks and removes the worker at one place."""

    def __init__(self, place: WorkerPlace, steps: Steps, environ, python: str | None = None):
        self.place = place
        self.steps = steps
        self.environ = environ
        self.requested_python = python
        self.custom_python = python if place.sandbox == NATIVE else None

    # -- running programs where the worker runs ------------------------------------------
    def _argv(self, program, args, pythonpath=False) -> list[str]:
        if self.place.sandbox != FLATPAK:
            return [str(program), *args]
        env = [f"--env=PYTHONPATH={self.place.lib}"] if pythonpath else []
        return ["flatpak", "run", f"--command={program}", *env, FLATPAK_APP, *args]

    def _env(self, pythonpath=False) -> dict:
        """The environment, with PYTHONPATH built the way the GIMP entries' host module
        builds it (gpt_image_edit_host.Worker.environment)."""
        env = dict(self.environ)
        if pythonpath and self.place.sandbox != FLATPAK:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(self.place.lib)] + [p for p in [env.get("PYTHONPATH")] if p])
        return env

    def _probe(self, python) -> int:
        return run_command(self._argv(python, ["-c", PROBE]), env=self._env()).returncode

    # -- set up ------------------------------------------------------------------------
    def set_up(self, package_source: Path) -> Worker:
        self.steps.say(f"Worker for {self._gimps()}: {self.place.data_dir}")
        if self.place.sandbox == FLATPAK and self.requested_python:
            self.steps.say("  note: --python does not apply here: Flatpak GIMP runs the "
                           "worker inside its sandbox, with an environment of its own.")
        self._require_flatpak()
        # The interpreter first: when it cannot be had, nothing has been copied yet.
        python = self._custom_python() if self.custom_python else self._venv_python()
        self.steps.replace_tree(package_source, self.place.lib / PACKAGE)
        self.steps.say(f"  worker interpreter: {python}")
        version = self._check(python)
        if version:
            self.steps.say(f"  the worker starts: {version}")
        return Worker(str(python), (str(self.place.lib),))

    def _gimps(self) -> str:
        return "Flatpak GIMP" if self.place.sandbox == FLATPAK else "GIMP"

    def _require_flatpak(self) -> None:
        if self.place.sandbox != FLATPAK or self.steps.dry_run:
            return
        if shutil.which("flatpak", path=self.environ.get("PATH")) is None:
            raise InstallError(
                f"Flatpak GIMP was found, but the flatpak command is not available to set up "
                f"its worker inside the sandbox: run the installer where 'flatpak run "
                f"{FLATPAK_APP}' works, or choose other GIMP folders with --gimp-dir.")

    def _custom_python(self) -> str:
        python = shutil.which(self.custom_python, path=self.environ.get("PATH"))
        python = os.path.abspath(python or self.custom_python)
        if self.steps.dry_run:
            self.steps.say(f"  [dry run] check that {python} imports requests and PIL")
            return python
        code = self._probe(python)
        if code == PROBE_OLD_PYTHON:
            raise InstallError(f"{python} is older than Python 3.9, which the worker needs: "
                               "pass a newer one with --python, or leave out --python.")
        if code != PROBE_OK:
            raise InstallError(
                f"{python} cannot import requests and PIL ({_wanted()}): install them "
                "into that Python's own virtual environment (or from your distribution's "
                "packages), or leave out --python so the installer makes its own "
                "environment.")
        return python

    def _venv_python(self) -> Path:
        python = self.place.venv_python
        if self.steps.dry_run:
            return self._plan_venv(python)
        state = self._probe(python)
        if state == PROBE_OK:
            self.steps.say(f"  reuse the working environment {self.place.venv}")
            return python
        if state != PROBE_MISSING:
            self._create_venv()
        self._pip_install(python)
        if self._probe(python) != PROBE_OK:
            raise InstallError(
                f"The environment {self.place.venv} still lacks {_wanted()} after pip ran: "
                "see pip's messages above, fix what they say and run the installer again.")
        return python

    def _plan_venv(self, python: Path) -> Path:
        """What a real run would do; whether an existing environment works is not tried."""
        if python.exists():
            self.steps.say(f"  [dry run] reuse {self.place.venv} if it works with "
                           f"{_wanted()}, else make it anew and install them:")
        self._create_venv()
        self._pip_install(python)
        return python

    def _create_venv(self) -> None:
        """(Re)make the environment: a missing or broken one (say its Python was upgraded
        away) is replaced."""
        if self.place.sandbox != FLATPAK and sys.version_info < MIN_PYTHON:
            raise InstallError(
                "The worker needs Python 3.9 or later, but the installer runs on Python "
                f"{sys.version_info[0]}.{sys.version_info[1]}: run it with a newer python3, "
                "or pass --python with one that has requests and pillow.")
        if self.place.sandbox != FLATPAK:
            _require_venv_module()
        self.steps.remove(self.place.venv)
        if self.place.sandbox == FLATPAK:
            argv = self._argv("python3", ["-m", "venv", str(self.place.venv)])
        else:
            argv = [sys.executable, "-m", "venv", str(self.place.venv)]
        done = self.steps.run(argv, "make the environment", env=self._env(), capture=True)
        if done is not None and done.returncode != 0:
            self.steps.remove(self.place.venv)
            raise InstallError(self._venv_failure(last_line(done.stderr or done.stdout)))

    def _venv_failure(self, detail: str) -> str:
        if self.place.sandbox == FLATPAK:
            return (f"Flatpak GIMP's Python could not make {self.place.venv} ({detail}): run "
                    f"'flatpak update {FLATPAK_APP}' and the installer again; if it still "
                    "fails, use your distribution's GIMP.")
        return (f"Python's venv module could not make {self.place.venv} ({detail}): on "
                "Debian or Ubuntu install python3-venv, or pass --python with an interpreter "
                "that has requests and pillow.")

    def _pip_install(self, python: Path) -> None:
        # pip runs inside the environment (no --user) and reads the PIP_* variables itself.
        specs = [f"{name}>={low}" for name, low in REQUIREMENTS]
        argv = self._argv(python, ["-m", "pip", "install", "--disable-pip-version-check",
                                   *specs])
        done = self.steps.run(argv, "install the dependencies", env=self._env())
        if done is not None and done.returncode != 0:
            raise InstallError(
                f"pip could not install {' and '.join(specs)} into {self.place.venv}: see "
                "its messages above, check the connection to the package index (or the "
                "PIP_INDEX_URL setting) and run the installer again.")

    def _check(self, python) -> str | None:
        """Start the worker exactly as the GIMP entries will; its version, None in a dry run."""
        argv = self._argv(python, ["-m", PACKAGE, "--version"], pythonpath=True)
        if self.steps.dry_run:
            self.steps.say(f"  [dry run] check that the worker starts: {command_text(argv)}")
            return None
        done = run_command(argv, env=self._env(pythonpath=True), cwd=str(self.place.data_dir))
        if done.returncode != 0:
            raise InstallError(
                f"The worker does not start ({last_line(done.stderr or done.stdout)}): "
                "run the installer again from a complete download of the plug-in.")
        return last_line(done.stdout)

    # -- remove ------------------------------------------------------------------------
    def remove(self) -> None:
        self.steps.say(f"Worker: {self.place.data_dir}")
        self.steps.remove(self.place.lib)
        self.steps.remove(self.place.venv)
        self.steps.remove_if_empty(self.place.data_dir)


def _require_venv_module() -> None:
    """Debian and Ubuntu ship venv's ensurepip apart, in python3-venv: without it `-m venv`
    fails half-way, so say so before anything is made."""
    for name in ("venv", "ensurepip"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise InstallError(
                f"Python's {name} module is missing from {sys.executable}, so the installer "
                "cannot make the worker's environment: on Debian and Ubuntu install the "
                "python3-venv package (sudo apt install python3-venv), elsewhere your "
                "Python's venv package; or pass --python with an interpreter that has "
                "requests and pillow.") from None


def _wanted() -> str:
    return " and ".join(f"{name}>={low}" for name, low in REQUIREMENTS)
