"""The README's install and try-it blocks, run verbatim as a new user would: in a stock
Debian 13 root (debootstrap minbase plus Debian's python3 and python3-venv, nothing from
pip), as a normal user with a home of their own, from a fresh copy of the repository.

The blocks are read from README.md here, so the README and this test cannot drift apart.
pip inside the root reaches the package registry as it does on this machine: the same
settings (`pip config list` and the PIP_* variables), with the local folders they name bound
read-only into the root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from tests import debian_root

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = "<!-- tests/test_readme.py runs this block verbatim: "
HOME = Path("/home") / debian_root.NORMAL_USER
COPY = HOME / "gpt-image-edit"  # where the user unpacked the download
HOST = Path("/tmp/host")  # this machine's folders that pip's settings name, read-only
STOCK_PATH = "/usr/local/bin:/usr/bin:/bin"
ENDPOINT = "http://127.0.0.1:8765/scenario/invert/v1"
NO_GIMP = ("error: No GIMP user folder was found (looked in ~/.config/GIMP, "
           "~/.var/app/org.gimp.GIMP/config/GIMP, ~/snap/gimp/current/.config/GIMP, "
           "~/.gimp-2.10): start GIMP once so that it makes its folder, then run the "
           "installer again, or name the folder with --gimp-dir.\n")
TIMEOUT = 900


def readme_blocks(text: str) -> tuple[str, str]:
    """The README's install block and its try-it block, marked for this test by name."""
    pattern = re.compile(re.escape(MARKER) + r"([a-z-]+)[^\n]*\n```sh\n(.*?)```", re.DOTALL)
    blocks = dict(pattern.findall(text))
    return blocks["install"], blocks["try-it"]


def test_readme_marks_the_install_and_the_try_it_blocks():
    install, try_it = readme_blocks(README.read_text())
    assert "python3 install/install.py\n" in install
    assert "pip install" not in README.read_text().replace("pipx install", "")
    assert "gpt-image-edit edit" in try_it


# -- pip's settings, as this machine has them ------------------------------------------

def pip_settings() -> dict[str, str]:
    """pip's effective settings here as PIP_* variables: the configuration files' values
    (`pip config list`), then the PIP_* environment, which wins as it does for pip."""
    settings = {}
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        name, _, value = line.partition("=")
        section, _, key = name.partition(".")
        if section in ("global", "install") and value:
            settings["PIP_" + key.upper().replace("-", "_")] = value.strip("'\"")
    settings.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    if Path("/etc/ssl/certs/ca-certificates.crt").exists():
        settings.setdefault("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    return settings


def inside_root(settings: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the settings with every local path moved under HOST, the read-only binds for them):
    the root is read-only, so this machine's folders are seen under HOST, whole (an index's
    pages link to files beside them)."""
    binds, moved = {}, {}
    for name, value in settings.items():
        words = []
        for word in value.split():
            prefix = "file://" if word.startswith("file://") else ""
            path = word[len(prefix):]
            if path.startswith("/") and Path(path).exists():
                top = "/" + Path(path).parts[1]
                binds[top] = str(HOST) + top
                word = prefix + str(HOST) + path
            words.append(word)
        moved[name] = " ".join(words)
    return moved, binds


# -- the new user's machine --------------------------------------------------------------

class NewUser:
    """A normal user (uid 1000) with an empty home in the stock Debian 13 root."""

    def __init__(self, root: Path, home: Path):
        self.root = root
        self.home = home  # seen as HOME inside
        self.pip, self.pip_binds = inside_root(pip_settings())

    def run(self, script: str, *, path: str = STOCK_PATH, network: bool = True,
            cwd: Path = COPY) -> subprocess.CompletedProcess:
        env = {"HOME": str(HOME), "USER": debian_root.NORMAL_USER, "LANG": "C.UTF-8",
               "PATH": path, "SHELL": "/bin/bash", **self.pip}
        argv = debian_root.bwrap_argv(self.root, binds={str(self.home): str(HOME)}, env=env,
                                      network=network)
        argv += ["--perms", "0755", "--dir", str(HOST)]  # bwrap makes folders 0700 otherwise
        for source, target in self.pip_binds.items():
            argv += ["--ro-bind", source, target]
        if not network:
            argv.append("--unshare-net")  # its own loopback: no port shared with the machine
        argv += ["--unshare-pid", "--chdir", str(cwd), "setpriv",
                 f"--reuid={debian_root.NORMAL_UID}", f"--regid={debian_root.NORMAL_UID}",
                 "--init-groups", "bash", "-e", "-c", script]
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT,
                              env={"PATH": os.environ.get("PATH", STOCK_PATH)})

    def files(self, *, skip: tuple[str, ...]) -> list[str]:
        """Every file in the home (as the user sees the paths), outside the folders `skip`."""
        found = []
        for path in sorted(self.home.rglob("*")):
            relative = path.relative_to(self.home)
            if path.is_dir() or any(relative.parts[:len(s.split("/"))] == tuple(s.split("/"))
                                    for s in skip):
                continue
            found.append(str(HOME / relative))
        return found


def fresh_copy(target: Path) -> None:
    """The repository's files as a download has them (tracked and new, nothing ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def chown_tree(path: Path) -> None:
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, debian_root.NORMAL_UID, debian_root.NORMAL_UID)


@pytest.fixture(scope="module")
def new_user(tmp_path_factory) -> NewUser:
    root = debian_root.provide("debian-13")
    home = tmp_path_factory.mktemp("newuser-home")
    fresh_copy(home / COPY.name)
    chown_tree(home)
    return NewUser(root, home)


@pytest.fixture(scope="module")
def readme_run(new_user):
    """The whole first hour, in order: the installer before GIMP ever ran, GIMP's first
    start (it makes its user folder), the README's install block, its try-it block."""
    install, try_it = readme_blocks(README.read_text())
    runs = {"no_gimp": new_user.run("python3 install/install.py")}
    runs["no_gimp_files"] = new_user.files(skip=(COPY.name,))
    new_user.run(f"mkdir -p {HOME}/.config/GIMP/3.0")
    runs["install"] = new_user.run(install)
    # The try-it block runs in the same shell as the install block would, so with the PATH
    # its export line made, on a loopback of its own.
    runs["try_it"] = new_user.run(try_it, path=f"{HOME}/.local/bin:{STOCK_PATH}",
                                  network=False)
    return runs


def test_the_installer_before_gimp_ran_says_so_and_installs_nothing(readme_run):
    done = readme_run["no_gimp"]

    assert done.returncode == 1
    assert done.stderr == NO_GIMP
    assert done.stdout == ""
    assert readme_run["no_gimp_files"] == []


def test_the_install_block_installs_with_the_system_python_and_the_command_works(
        readme_run):
    done = readme_run["install"]
    lines = done.stdout.splitlines()

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"  the worker in {HOME}/.local/share/gpt-image-edit (Python: " \
           f"{HOME}/.local/share/gpt-image-edit/venv/bin/python)" in lines
    assert f"  the gpt-image-edit command: {HOME}/.local/bin/gpt-image-edit" in lines
    assert f"  the plug-in for GIMP 3.0 in {HOME}/.config/GIMP/3.0/plug-ins" in lines
    assert (f"  note: {HOME}/.local/bin is not on your PATH, so the shell does not find "
            "gpt-image-edit yet: run: export PATH=\"$HOME/.local/bin:$PATH\" (and add that "
            "line to ~/.profile; on Debian and Ubuntu logging in again is enough now that "
            "the folder exists).") in lines
    assert "Next:" in lines
    # The block's last command, `gpt-image-edit --version`, found on PATH:
    version = (ROOT / "plugin" / "gpt_image_edit" / "__init__.py").read_text()
    assert lines[-1] == "gpt-image-edit " + version.split('__version__ = "')[1].split('"')[0]


def test_the_try_it_block_edits_against_the_stand_in(readme_run, new_user):
    done = readme_run["try_it"]

    assert done.returncode == 0, done.stdout + done.stderr
    result = new_user.home / COPY.name / "try-it" / "dialog-edit.png"
    with Image.open(ROOT / "docs" / "dialog.png") as original, Image.open(result) as edited:
        original, edited = original.convert("RGB"), edited.convert("RGB")
    # The stand-in inverts what it got at the API's size; scaling back blurs a little.
    assert edited.size == original.size
    assert max(mean_difference(edited, ImageOps.invert(original))) < 3
    assert min(mean_difference(edited, original)) > 100
    assert "Fake WisGate on http://127.0.0.1:8765/v1" in done.stdout


def mean_difference(one: Image.Image, other: Image.Image) -> list[float]:
    return ImageStat.Stat(ImageChops.difference(one, other)).mean


def test_settings_shows_the_endpoint_from_the_environment_and_never_the_key(
        readme_run, new_user):
    done = new_user.run(
        f"export GPT_IMAGE_EDIT_BASE_URL={ENDPOINT} GPT_IMAGE_EDIT_API_KEY=sk-never-shown\n"
        "gpt-image-edit settings", path=f"{HOME}/.local/bin:{STOCK_PATH}")

    assert done.returncode == 0, done.stderr
    assert ENDPOINT in done.stdout
    assert "GPT_IMAGE_EDIT_BASE_URL" in done.stdout
    assert "sk-never-shown" not in done.stdout + done.stderr


def test_uninstall_purge_leaves_nothing_it_made(readme_run, new_user):
    """After the first hour: --uninstall --purge leaves the home as the user's own files
    (the download with their results, pip's cache) and empty folders."""
    done = new_user.run("python3 install/install.py --uninstall --purge")

    assert done.returncode == 0, done.stdout + done.stderr
    assert new_user.files(skip=(COPY.name, ".cache/pip")) == []


# -- the README's test command -------------------------------------------------------------

def test_building_a_root_says_each_stage_and_a_second_run_reuses_it(tmp_path):
    """What tests/run shows while it builds the roots (it runs `python3 -m
    tests.debian_root` before pytest): what, where, how long and big, each stage timed."""
    cache = tmp_path / "cache"
    env = dict(os.environ, GPT_IMAGE_EDIT_TEST_CACHE=str(cache))
    build = [sys.executable, "-m", "tests.debian_root", "debian-13"]
    try:
        first = subprocess.run(build, env=env, capture_output=True, text=True, cwd=ROOT,
                               timeout=TIMEOUT)
        second = subprocess.run(build, env=env, capture_output=True, text=True, cwd=ROOT,
                                timeout=TIMEOUT)
    finally:
        shutil.rmtree(cache / "debian-13", ignore_errors=True)

    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0] == (
        "Debian roots for the tests (real GIMP, Python 2.7, a stock Debian 13): building "
        f"debian-13 once into {cache}, all of them {debian_root.FIRST_BUILD} on a first run; "
        f"later runs reuse them. Free the space with: rm -rf {cache}")
    stages = [re.sub(r"^\[ ?\d+:\d\d\] ", "", line) for line in lines[1:]]
    assert all(re.match(r"^\[ ?\d+:\d\d\] debian-13 root: ", line) for line in lines[1:])
    assert stages[:2] == [
        f"debian-13 root: building once into {cache / 'debian-13'} "
        f"(log: {cache / 'debian-13.log'})",
        f"debian-13 root: debootstrap trixie (minbase) from {debian_root.mirror()}"]
    assert stages[2:5] == ["debian-13 root: apt-get update",
                           "debian-13 root: apt-get install python3 python3-venv",
                           "debian-13 root: add the user newuser (uid 1000)"]
    assert re.fullmatch(r"debian-13 root: ready \(\d+(\.\d+)?[MG]\); later runs reuse it",
                        stages[5])
    assert first.stdout == second.stdout == f"{cache / 'debian-13'}\n"
    assert second.stderr == f"Debian roots for the tests: debian-13 reused from {cache}\n"
