"""Real programs from Debian, in a cached debootstrap root, run through bubblewrap.

The GIMP 3 end-to-end tests need real GIMP 3.0 and 3.2, the GIMP 2.10 entry a real
Python 2.7; neither comes with this machine's Debian. Each is built once into a cache
folder (a few minutes each, as root) and reused by every later run. Building says each
stage with its elapsed time on stderr (the full output goes to the root's .log):

    python3 -m tests.debian_root gimp-3.0     # builds it if missing, prints its folder
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MIRROR_FALLBACK = "http://deb.debian.org/debian"
CACHE = Path(os.environ.get("GPT_IMAGE_EDIT_TEST_CACHE",
                            Path.home() / ".cache" / "gpt-image-edit-tests"))
# Snapshot mirrors serve Release files whose Valid-Until lies in the past.
APT_OPTIONS = ["-o", "Acquire::Check-Valid-Until=false", "-o", "Acquire::Retries=3"]


@dataclass(frozen=True)
class RootRecipe:
    name: str
    suite: str
    packages: tuple[str, ...]
    script: str | None = None  # debootstrap script, for suites this debootstrap does not know
    user: bool = False  # add NORMAL_USER (uid/gid NORMAL_UID) for tests that must not be root


GIMP_PACKAGES = ("gimp", "python3-gi", "gir1.2-gimp-3.0", "ca-certificates", "python3-venv")

RECIPES = {
    "gimp-3.0": RootRecipe("gimp-3.0", "trixie", GIMP_PACKAGES),
    "gimp-3.2": RootRecipe("gimp-3.2", "forky", GIMP_PACKAGES,
                           "/usr/share/debootstrap/scripts/sid"),
    "python-2.7": RootRecipe("python-2.7", "bullseye", ("python2.7",)),
    # A stock Debian 13 as a new user has it: Debian's Python and its venv module, nothing
    # from pip (tests/test_readme.py runs the README's commands in it).
    "debian-13": RootRecipe("debian-13", "trixie", ("python3", "python3-venv"), user=True),
}
NORMAL_USER, NORMAL_UID = "newuser", 1000


def mirror() -> str:
    """The Debian mirror this machine's apt already uses (the only one it can reach)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and words[1].rstrip("/").endswith("/debian"):
                return words[1]
            if words[:1] == ["deb"]:
                uri = next((w for w in words[1:] if "://" in w), "")
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return MIRROR_FALLBACK


def bwrap_argv(root: Path, *, writable: bool = False, binds: dict[str, str] | None = None,
               ro_binds: dict[str, str] | None = None, env: dict[str, str] | None = None,
               network: bool = True) -> list[str]:
    """The bwrap command line that runs a program with `root` as its `/`."""
    argv = ["bwrap", "--bind" if writable else "--ro-bind", str(root), "/",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
            "--die-with-parent"]
    if network and Path("/etc/resolv.conf").exists():
        argv += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    for source, target in (ro_binds or {}).items():
        argv += ["--ro-bind", source, target]
    for source, target in (binds or {}).items():
        argv += ["--bind", source, target]
    for key, value in (env or {}).items():
        argv += ["--setenv", key, value]
    return argv


def _require_tools() -> None:
    missing = [tool for tool in ("debootstrap", "bwrap") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not found: install them with "
            "'apt-get install debootstrap bubblewrap' (as root).")
    if os.geteuid() != 0:
        raise RuntimeError("Building a Debian root for the tests needs root (debootstrap).")


def _build(recipe: RootRecipe, root: Path, log, progress) -> None:
    argv = ["debootstrap", "--variant=minbase", recipe.suite, str(root), mirror()]
    if recipe.script:
        argv.append(recipe.script)
    progress(f"debootstrap {recipe.suite} (minbase) from {mirror()}")
    subprocess.run(argv, check=True, stdout=log, stderr=subprocess.STDOUT)
    apt = bwrap_argv(root, writable=True, env={"DEBIAN_FRONTEND": "noninteractive"})
    progress("apt-get update")
    subprocess.run([*apt, "apt-get", *APT_OPTIONS, "update"], check=True, stdout=log,
                   stderr=subprocess.STDOUT)
    progress(f"apt-get install {' '.join(recipe.packages)}")
    subprocess.run([*apt, "apt-get", *APT_OPTIONS, "install", "-y", "--no-install-recommends",
                    *recipe.packages], check=True, stdout=log, stderr=subprocess.STDOUT)
    if recipe.user:
        progress(f"add the user {NORMAL_USER} (uid {NORMAL_UID})")
        subprocess.run([*apt, "useradd", "--create-home", "--uid", str(NORMAL_UID),
                        "--user-group", "--shell", "/bin/bash", NORMAL_USER], check=True,
                       stdout=log, stderr=subprocess.STDOUT)


def _progress(name: str, out=sys.stderr):
    """A function printing one stage of building root `name` with the time since the start:
    the first run builds for minutes, and a silent terminal looks like a hang."""
    start = time.monotonic()

    def say(stage: str) -> None:
        elapsed = int(time.monotonic() - start)
        print(f"[{elapsed // 60:2d}:{elapsed % 60:02d}] {name} root: {stage}", file=out,
              flush=True)
    return say


def provide(name: str) -> Path:
    """The folder of a ready root for `name` (see RECIPES), built first if missing."""
    recipe = RECIPES[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    root = CACHE / name
    ready = CACHE / f"{name}.ready"
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test processes must not build one root together
        if ready.exists():
            return root
        _require_tools()
        shutil.rmtree(root, ignore_errors=True)
        log_path = CACHE / f"{name}.log"
        progress = _progress(name)
        progress(f"building once into {root} (log: {log_path})")
        with open(log_path, "w") as log:
            try:
                _build(recipe, root, log, progress)
            except subprocess.CalledProcessError as exc:
                progress(f"failed, see {log_path}")
                raise RuntimeError(
                    f"Building the {name} root failed ({exc.cmd[0]}); see {log_path}") from exc
        ready.write_text(recipe.suite + "\n")
        progress(f"ready ({_size(root)}); later runs reuse it")
        return root


def _size(folder: Path) -> str:
    done = subprocess.run(["du", "-sh", str(folder)], capture_output=True, text=True)
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout else "size unknown"


# Measured on the project's 2-core test machine with a nearby Debian mirror (README, "Tests").
FIRST_BUILD = "about 8 minutes and 4.6 GB of disk"


def main(names: list[str]) -> int:
    """Build the roots not built yet, saying what, how long and how big, then print each
    root's folder. tests/run calls it before pytest, whose output capture would hide the
    progress."""
    names = names or sorted(RECIPES)
    missing = [name for name in names if not (CACHE / f"{name}.ready").exists()]
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if missing:
        say(f"Debian roots for the tests (real GIMP, Python 2.7, a stock Debian 13): building "
            f"{', '.join(missing)} once into {CACHE}, all of them {FIRST_BUILD} on a first "
            f"run; later runs reuse them. Free the space with: rm -rf {CACHE}")
    else:
        say(f"Debian roots for the tests: {', '.join(names)} reused from {CACHE}")
    for name in names:
        print(provide(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
