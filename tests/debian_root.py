"""Real programs from Debian, in a cached debootstrap root, run through bubblewrap.

The GIMP 3 end-to-end tests need real GIMP 3.0 and 3.2, the GIMP 2.10 entry a real GIMP
2.10 with Python-Fu and Python 2.7; none comes with this machine's Debian. Each is built
once into a cache folder (as root; GIMP 3 about a minute, GIMP 2.10 about five) and reused
by every later run. Building says each stage with its elapsed time on stderr (the full
output goes to the root's .log):

    python3 -m tests.debian_root gimp-3.0     # builds it if missing, prints its folder

GIMP 2.10's Python-Fu is compiled in its bullseye root from sources no registry serves any
more: two come from the folder named by GPT_IMAGE_EDIT_VENDOR (.ci/run sets it to the
shared/vendor folder beside the checkout), GIMP's from the Debian mirror, pycairo's from
PyPI; each is checked against its sha256.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MIRROR_FALLBACK = "http://deb.debian.org/debian"
CACHE = Path(os.environ.get("GPT_IMAGE_EDIT_TEST_CACHE",
                            Path.home() / ".cache" / "gpt-image-edit-tests"))
# Snapshot mirrors serve Release files whose Valid-Until lies in the past.
APT_OPTIONS = ["-o", "Acquire::Check-Valid-Until=false", "-o", "Acquire::Retries=3"]


VENDOR_VARIABLE = "GPT_IMAGE_EDIT_VENDOR"
BUILD_SCRIPTS = Path(__file__).resolve().parent


class MissingSource(RuntimeError):
    """A source tarball a root is built from is not at hand (not a build failure)."""


@dataclass(frozen=True)
class Source:
    """A source tarball: from the vendor folder, the Debian mirror (a pool path) or PyPI
    (a pip requirement), always with its sha256."""

    file: str
    sha256: str
    vendor: bool = False
    debian_pool: str | None = None
    pypi: str | None = None


@dataclass(frozen=True)
class RootRecipe:
    name: str
    suite: str
    packages: tuple[str, ...]
    script: str | None = None  # debootstrap script, for suites this debootstrap does not know
    sources: tuple[Source, ...] = ()  # seen at /tmp/sources by the build script
    build_script: str | None = None  # under tests/, run in the root after apt as root
    user: bool = False  # add NORMAL_USER (uid/gid NORMAL_UID) for tests that must not be root


GIMP_PACKAGES = ("gimp", "python3-gi", "gir1.2-gimp-3.0", "ca-certificates", "python3-venv")

# GIMP 2.10.22, headers and tools to compile Python-Fu, Python 2.7, the worker's Python 3.9.
GIMP_210_PACKAGES = (
    "gimp", "libgimp2.0-dev", "python2.7-dev", "python2", "python-is-python2",
    "libglib2.0-dev", "libffi-dev", "libgtk2.0-dev", "libcairo2-dev", "build-essential",
    "autoconf", "automake", "libtool", "pkg-config", "bzip2", "xz-utils", "python3",
    "python3-venv", "python3-pip", "ca-certificates", "fonts-dejavu-core",
    "librsvg2-common")  # the last two: GIMP's own windows, for the dialog tests
PYTHON_FU_SOURCES = (
    Source("pygobject-2.28.7.tar.xz",
           "b01743585904421c5d510f0673331fb1490320f578a331e5beb1d4ae45c07fe7", vendor=True),
    Source("pygtk-2.24.0.tar.xz",
           "d77c6eda9784a166a63ec3a979e576a8fb9f2b0b7d463c7a0a0a146817628279", vendor=True),
    Source("gimp_2.10.34.orig.tar.bz2",
           "84004642d351b398a4293cd7fd3592044a944f05bb52850ee6068f247c657aa3",
           debian_pool="pool/main/g/gimp/gimp_2.10.34.orig.tar.bz2"),
    Source("pycairo-1.18.2.tar.gz",
           "dcb853fd020729516e8828ad364084e752327d4cff8505d20b13504b32b16531",
           pypi="pycairo==1.18.2"),
)

RECIPES = {
    "gimp-3.0": RootRecipe("gimp-3.0", "trixie", GIMP_PACKAGES),
    "gimp-3.2": RootRecipe("gimp-3.2", "forky", GIMP_PACKAGES,
                           "/usr/share/debootstrap/scripts/sid"),
    # Also the tests' Python 2.7 (tests/test_python27.py).
    "gimp-2.10": RootRecipe("gimp-2.10", "bullseye", GIMP_210_PACKAGES,
                            sources=PYTHON_FU_SOURCES,
                            build_script="gimp2/build_python_fu.sh"),
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _vendor_file(source: Source) -> Path:
    folder = os.environ.get(VENDOR_VARIABLE)
    path = Path(folder) / source.file if folder else None
    if path is None or not path.is_file():
        where = f"{VENDOR_VARIABLE}={folder} has no {source.file}" if folder \
            else f"{VENDOR_VARIABLE} is not set"
        raise MissingSource(
            f"{where}: set {VENDOR_VARIABLE} to the folder holding pygobject-2.28.7.tar.xz "
            "and pygtk-2.24.0.tar.xz (shared/vendor beside the checkout; .ci/run does this)")
    return path


def _download(source: Source, downloads: Path, log) -> Path:
    """The source's file in `downloads`, fetched once from the mirror or PyPI."""
    path = downloads / source.file
    if path.is_file():
        return path
    downloads.mkdir(parents=True, exist_ok=True)
    if source.debian_pool:
        partial = path.with_name(path.name + ".part")
        with urllib.request.urlopen(f"{mirror().rstrip('/')}/{source.debian_pool}",
                                    timeout=120) as answer, open(partial, "wb") as out:
            shutil.copyfileobj(answer, out)
        partial.replace(path)
    else:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", "--dest", str(downloads), source.pypi],
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    return path


def gather_sources(recipe: RootRecipe, folder: Path, log) -> None:
    """Every source of `recipe`, checked against its sha256, copied into `folder`.
    Raises MissingSource when a vendored one is not at hand."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in recipe.sources:
        path = _vendor_file(source) if source.vendor else _download(source, CACHE / "downloads",
                                                                    log)
        if _sha256(path) != source.sha256:
            raise RuntimeError(f"{path} is not the expected {source.file} (sha256 differs)")
        shutil.copyfile(path, folder / source.file)


def check_sources(name: str) -> None:
    """Raises MissingSource when the root `name` is not built and cannot be (a vendored
    source is missing); quick, for tests deciding up front what they can run."""
    recipe = RECIPES[name]
    if (CACHE / f"{name}.ready").exists():
        return
    for source in recipe.sources:
        if source.vendor:
            _vendor_file(source)


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
    hosts = root / "etc" / "hosts"
    if not hosts.exists():  # bullseye's debootstrap writes none: "localhost" would not resolve
        hosts.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    if recipe.build_script:
        progress(f"compile {recipe.build_script} in the root")
        sources = CACHE / f"{recipe.name}.sources"
        shutil.rmtree(sources, ignore_errors=True)
        gather_sources(recipe, sources, log)
        build = bwrap_argv(root, writable=True, ro_binds={str(sources): "/tmp/sources",
                                                          str(BUILD_SCRIPTS): "/tmp/scripts"})
        try:
            subprocess.run([*build, "bash", f"/tmp/scripts/{recipe.build_script}"], check=True,
                           stdout=log, stderr=subprocess.STDOUT)
        finally:
            shutil.rmtree(sources, ignore_errors=True)
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
        check_sources(name)
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
            except OSError as exc:
                raise RuntimeError(
                    f"Building the {name} root failed ({exc}); see {log_path}") from exc
        ready.write_text(recipe.suite + "\n")
        progress(f"ready ({_size(root)}); later runs reuse it")
        return root


def _size(folder: Path) -> str:
    done = subprocess.run(["du", "-sh", str(folder)], capture_output=True, text=True)
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout else "size unknown"


# Measured on the project's 2-core test machine with a nearby Debian mirror (README, "Tests").
# GIMP 2.10's root (Python-Fu compiled, also the tests' Python 2.7) replaced the plain
# Python 2.7 one: its build took about five minutes and its root is 1.2 GB larger.
FIRST_BUILD = "about 12 minutes and 6 GB of disk"


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
        try:
            print(provide(name))
        except MissingSource as missing_source:
            if os.environ.get("CI") == "true":
                raise
            # Outside CI the GIMP 2.10 tests are then left out, saying so in one line.
            say(f"Not building the {name} root: {missing_source}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
