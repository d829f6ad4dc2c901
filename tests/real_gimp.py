"""Real GIMP 3.0, 3.2 and 2.10 for the end-to-end tests.

`gimp-console-3.0` / `gimp-console-3.2` from PATH when present; otherwise the cached
Debian roots of tests/debian_root.py (trixie: 3.0.4, forky: 3.2.6) run through bwrap. A
GIMP 3 that cannot be provided raises with the reason: these tests never skip. GIMP 2.10
with Python-Fu always comes from its bullseye root (no Debian since 10 ships Python-Fu);
outside CI, when that root cannot be built for want of the vendored sources, its tests are
left out with one line saying how to run them (gimp2_not_run).

Folders given as binds keep their path inside the root, so scripts and tests name a file
the same way on both sides; they must lie under /tmp (the root is read-only, its /tmp a
tmpfs), as pytest's temporary folders do. The repository is seen at `gimp.repo`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests import debian_root

VERSIONS = ("3.0", "3.2")
GIMP2 = "2.10"
GIMP2_TESTS = "tests/test_gimp2_real.py, tests/test_gimp2_dialog.py, tests/test_python27.py"
REPO = Path(__file__).resolve().parent.parent
REPO_IN_ROOT = Path("/tmp/gpt-image-edit-repo")
SCRIPTS = REPO / "tests" / "gimp3"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
X11_SOCKETS = "/tmp/.X11-unix"
RUN_TIMEOUT = 900


@dataclass(frozen=True)
class RealGimp:
    """One GIMP version: native (root is None) or inside a Debian root."""

    version: str
    root: Path | None

    @property
    def repo(self) -> Path:
        """Where this GIMP sees the repository (bound read-only into a root)."""
        return REPO if self.root is None else REPO_IN_ROOT

    def command(self, argv: list[str], *, env: dict[str, str],
                binds: list[Path | str] = (), ro_binds: list[Path | str] = ()) -> tuple:
        """(argv, environment) running `argv` with this GIMP's `/` and environment `env`."""
        if self.root is None:
            native_argv = [self.native_program(argv[0]), *argv[1:]]
            return native_argv, {**os.environ, **env}
        ro = {str(REPO): str(REPO_IN_ROOT), **{str(p): str(p) for p in ro_binds}}
        wrapped = debian_root.bwrap_argv(self.root, binds={str(p): str(p) for p in binds},
                                         ro_binds=ro, env=env)
        return [*wrapped, *argv], {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    @property
    def is_gimp2(self) -> bool:
        return self.version == GIMP2

    def native_program(self, name: str) -> str:
        if name == "gimp-console":
            return f"gimp-console-{self.version}"
        if name == "gimp":
            return f"gimp-{self.version}"
        return name

    def run(self, argv: list[str], *, env: dict[str, str], binds=(), ro_binds=(),
            stdin: str | None = None, timeout: float = RUN_TIMEOUT,
            **popen) -> subprocess.CompletedProcess:
        full_argv, full_env = self.command(argv, env=env, binds=binds, ro_binds=ro_binds)
        return subprocess.run(full_argv, env=full_env, input=stdin, text=True,
                              capture_output=True, timeout=timeout, **popen)

    def start_gui_script(self, script: Path, *, home: Path, display: str,
                         env: dict[str, str] | None = None, binds=(),
                         stdout=None, extra_args=()) -> subprocess.Popen:
        """Start GIMP with its windows on X display `display` (":N"), running a Python
        script as a batch command, and quitting when the script ends."""
        argv = ["gimp", "-n", "--no-splash", *extra_args, *self._batch_arguments()]
        x_socket = [X11_SOCKETS] if self.root is not None else []
        full_argv, full_env = self.command(
            argv, env=gimp_environment(home, {"DISPLAY": display, **(env or {})}),
            binds=[home, *x_socket, *binds])
        process = subprocess.Popen(full_argv, env=full_env, stdin=subprocess.PIPE,
                                   stdout=stdout, stderr=subprocess.STDOUT, text=True)
        process.stdin.write(script.read_text())
        process.stdin.close()
        return process

    def run_script(self, script: Path, *, home: Path, env: dict[str, str] | None = None,
                   binds=(), ro_binds=()) -> subprocess.CompletedProcess:
        """Run a Python script inside gimp-console (no display) with HOME=home."""
        argv = ["gimp-console", "-i", *self._batch_arguments()]
        return self.run(argv, env=gimp_environment(home, env), binds=[home, *binds],
                        ro_binds=ro_binds, stdin=script.read_text())


    def _batch_arguments(self) -> list[str]:
        """Run the Python code on standard input, then quit (GIMP 2.10 has no --quit)."""
        if self.is_gimp2:
            return ["--batch-interpreter=python-fu-eval", "-b", "-", "-b", "pdb.gimp_quit(1)"]
        return ["--quit", "--batch-interpreter=python-fu-eval", "-b", "-"]


def gimp_environment(home: Path, extra: dict[str, str] | None) -> dict[str, str]:
    """HOME and the XDG folders inside `home`, so GIMP's user folder is home's own."""
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_DATA_HOME": str(home / ".local/share"),
           "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


def gimp2_not_run() -> str | None:
    """Outside CI, when GIMP 2.10's root is not built and cannot be (no vendored sources):
    the one line saying which tests are left out and how to run them (tests/conftest.py
    leaves them out). None when they can run, and always under CI=true, where a missing
    GIMP 2.10 fails them."""
    if os.environ.get("CI") == "true":
        return None
    try:
        debian_root.check_sources("gimp-2.10")
    except debian_root.MissingSource as missing:
        return f"Not run: {GIMP2_TESTS} (real GIMP 2.10 and Python 2.7), as {missing}."
    return None


def gimp2_root() -> Path:
    """The bullseye root with GIMP 2.10, Python-Fu and Python 2.7, built first if missing;
    raises RuntimeError saying why when impossible."""
    try:
        return debian_root.provide("gimp-2.10")
    except debian_root.MissingSource as missing:
        raise RuntimeError(f"GIMP 2.10 is not available: {missing}.") from None
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        raise RuntimeError(f"GIMP 2.10 is not available: its Debian root could not be built "
                           f"({error}).") from error


def provide(version: str) -> RealGimp:
    """GIMP `version` ("3.0", "3.2" or "2.10"); raises RuntimeError saying why when
    impossible (GIMP 2.10: see gimp2_root)."""
    if version == GIMP2:
        return RealGimp(GIMP2, gimp2_root())
    if version not in VERSIONS:
        raise ValueError(f"unknown GIMP version {version!r}")
    if shutil.which(f"gimp-console-{version}"):
        return RealGimp(version, None)
    try:
        root = debian_root.provide(f"gimp-{version}")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        raise RuntimeError(f"GIMP {version} is not available: gimp-console-{version} is not on "
                           f"PATH and its Debian root could not be built ({error}).") from error
    return RealGimp(version, root)


def pip_environment() -> dict[str, str]:
    """PIP_* settings of this machine, passed on so pip inside a root reaches the registry."""
    env = {name: value for name, value in os.environ.items() if name.startswith("PIP_")}
    if Path(CA_BUNDLE).exists():
        env.setdefault("PIP_CERT", CA_BUNDLE)
    return env


_installed: dict[str, Path] = {}


def installed_home(gimp: RealGimp, make_folder) -> Path:
    """A GIMP home with the plug-in installed, made once per version and test session
    (make_folder(name) gives a new empty folder, e.g. tmp_path_factory.mktemp)."""
    if gimp.version not in _installed:
        home = make_folder(f"gimp-{gimp.version}-home")
        if gimp.is_gimp2:  # GIMP 2.10 makes its user folder on its first start
            first = gimp.run(["gimp-console", "-i", "--batch-interpreter=python-fu-eval", "-b",
                              "pdb.gimp_quit(1)"], env=gimp_environment(home, None),
                             binds=[home], timeout=300)
            if first.returncode != 0:
                raise RuntimeError(f"GIMP 2.10 did not start:\n{first.stdout}\n{first.stderr}")
        install_plugin(gimp, home, home / ".config" / "GIMP" / gimp.version)
        _installed[gimp.version] = home
    return _installed[gimp.version]


def install_plugin(gimp: RealGimp, home: Path, gimp_dir: Path) -> subprocess.CompletedProcess:
    """The project's installer, run with this GIMP's python3 (inside the root when there is
    one), installing into gimp_dir. Raises with the installer's output when it fails."""
    ro_binds = [CA_BUNDLE] if gimp.root is not None and Path(CA_BUNDLE).exists() else []
    env = gimp_environment(home, pip_environment())
    done = gimp.run(["python3", str(gimp.repo / "install" / "install.py"), "--gimp-dir",
                     str(gimp_dir)], env=env, binds=[home], ro_binds=ro_binds)
    if done.returncode != 0:
        raise RuntimeError(f"install/install.py failed for GIMP {gimp.version} "
                           f"(exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done
