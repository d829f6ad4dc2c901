"""install/install.py: GIMP folder discovery on every platform (fake home folders), and real
installs, upgrades and uninstalls into temporary GIMP user folders, checked by starting the
worker the way the GIMP entries do."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "install"))

from gimp_folders import FLATPAK, NATIVE, SNAP, find_gimp_folders  # noqa: E402
from worker_setup import REQUIREMENTS  # noqa: E402

# Files other engineers are still writing. A temporary copy of the checkout gets a minimal
# stand-in only while the real file is missing, so the installer has something to copy.
STAND_INS = {
    "plugin/gpt-image-edit/gpt-image-edit.py": "#!/usr/bin/env python3\n",
    "plugin/gpt-image-edit-gimp2.py": "#!/usr/bin/env python\n",
    "plugin/gpt_image_edit/cli.py": (
        "from . import __version__\n\n\n"
        "def main(argv=None):\n"
        "    print('gpt-image-edit', __version__)\n"
        "    return 0\n"),
}
SETTINGS_TEXT = '{"api_key": "sk-test-not-a-real-key"}\n'


def load_installer(checkout: Path):
    """install.py of that checkout, imported (it installs from the checkout it lies in)."""
    spec = importlib.util.spec_from_file_location("gpt_image_edit_installer",
                                                  checkout / "install" / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_host(entry_dir: Path):
    """The host module the GIMP entries use, loaded from where the installer put it."""
    spec = importlib.util.spec_from_file_location(
        f"host_{abs(hash(str(entry_dir)))}", entry_dir / "gpt_image_edit_host.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def versions(folders):
    return [(f.version, f.sandbox, f.path) for f in folders]


def make_dirs(*paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True)


# -- discovery ---------------------------------------------------------------------------

def test_linux_finds_every_supported_version_native_flatpak_snap_and_old_layout(tmp_path):
    gimp = tmp_path / ".config" / "GIMP"
    flatpak = tmp_path / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP"
    snap = tmp_path / "snap" / "gimp" / "current" / ".config" / "GIMP"
    make_dirs(gimp / "2.10", gimp / "3.0", gimp / "3.2", gimp / "3.4", gimp / "2.8",
              gimp / "2.99", gimp / "4.0", gimp / "themes", flatpak / "3.0", snap / "2.10",
              tmp_path / ".gimp-2.10")
    (gimp / "3.6").write_text("a file, not a folder")

    found = find_gimp_folders("linux", {}, tmp_path)

    assert versions(found) == [
        ("2.10", NATIVE, gimp / "2.10"), ("3.0", NATIVE, gimp / "3.0"),
        ("3.2", NATIVE, gimp / "3.2"), ("3.4", NATIVE, gimp / "3.4"),
        ("3.0", FLATPAK, flatpak / "3.0"), ("2.10", SNAP, snap / "2.10"),
        ("2.10", NATIVE, tmp_path / ".gimp-2.10")]
    assert [f.major for f in found] == [2, 3, 3, 3, 3, 2, 2]


def test_linux_respects_xdg_config_home(tmp_path):
    elsewhere = tmp_path / "xdg"
    make_dirs(elsewhere / "GIMP" / "3.2", tmp_path / ".config" / "GIMP" / "3.0")

    found = find_gimp_folders("linux", {"XDG_CONFIG_HOME": str(elsewhere)}, tmp_path)

    assert versions(found) == [("3.2", NATIVE, elsewhere / "GIMP" / "3.2")]


def test_macos_looks_in_application_support_only(tmp_path):
    gimp = tmp_path / "Library" / "Application Support" / "GIMP"
    make_dirs(gimp / "2.10", gimp / "3.2", tmp_path / ".config" / "GIMP" / "3.0",
              tmp_path / ".gimp-2.10")

    found = find_gimp_folders("darwin", {}, tmp_path)

    assert versions(found) == [("2.10", NATIVE, gimp / "2.10"), ("3.2", NATIVE, gimp / "3.2")]


def test_windows_looks_in_appdata_with_its_usual_default(tmp_path):
    roaming = tmp_path / "AppData" / "Roaming" / "GIMP"
    moved = tmp_path / "D" / "Roaming"
    make_dirs(roaming / "3.0", roaming / "2.10", moved / "GIMP" / "3.4",
              tmp_path / ".config" / "GIMP" / "3.2")

    assert versions(find_gimp_folders("win32", {}, tmp_path)) == [
        ("2.10", NATIVE, roaming / "2.10"), ("3.0", NATIVE, roaming / "3.0")]
    assert versions(find_gimp_folders("win32", {"APPDATA": str(moved)}, tmp_path)) == [
        ("3.4", NATIVE, moved / "GIMP" / "3.4")]


def test_gimp3_and_gimp2_directory_name_the_user_folder_itself(tmp_path):
    gimp3, gimp2 = tmp_path / "portable" / "profile", tmp_path / "old" / "2.10"
    native = tmp_path / ".config" / "GIMP" / "3.2"
    make_dirs(gimp3, gimp2, native)
    environ = {"GIMP3_DIRECTORY": str(gimp3), "GIMP2_DIRECTORY": str(gimp2)}

    assert versions(find_gimp_folders("linux", environ, tmp_path)) == [
        ("3.2", NATIVE, native), ("3", NATIVE, gimp3), ("2.10", NATIVE, gimp2)]
    # The same folder reached twice is one folder; a variable naming nothing is ignored.
    environ = {"GIMP3_DIRECTORY": str(native), "GIMP2_DIRECTORY": str(tmp_path / "missing")}
    assert versions(find_gimp_folders("linux", environ, tmp_path)) == [("3.2", NATIVE, native)]


def test_nothing_found_says_how_to_fix_it(tmp_path, checkout, capsys):
    installer = load_installer(checkout)
    tmp_path = tmp_path / "home"
    tmp_path.mkdir()
    out = io.StringIO()

    listed = installer.main(["--list"], platform="linux", environ={}, home=tmp_path, out=out)
    installed = installer.main([], platform="linux", environ={}, home=tmp_path, out=out)

    assert listed == 0 and installed == 1
    sentence = ("No GIMP user folder was found (looked in ~/.config/GIMP, "
                "~/.var/app/org.gimp.GIMP/config/GIMP, ~/snap/gimp/current/.config/GIMP, "
                "~/.gimp-2.10): start GIMP once so that it makes its folder, then run the "
                "installer again, or name the folder with --gimp-dir.")
    assert out.getvalue() == sentence + "\n"
    assert capsys.readouterr().err == f"error: {sentence}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("platform, environ, looked_in", [
    ("darwin", {}, "~/Library/Application Support/GIMP"),
    ("win32", {"APPDATA": "/elsewhere/Roaming"}, "/elsewhere/Roaming/GIMP"),
    ("linux", {"XDG_CONFIG_HOME": "/xdg", "GIMP3_DIRECTORY": "/portable/gimp"},
     "/xdg/GIMP, ~/.var/app/org.gimp.GIMP/config/GIMP, ~/snap/gimp/current/.config/GIMP, "
     "~/.gimp-2.10, /portable/gimp"),
])
def test_nothing_found_names_where_it_looked_on_each_platform(
        tmp_path, checkout, capsys, platform, environ, looked_in):
    installer = load_installer(checkout)

    code = installer.main([], platform=platform, environ=environ, home=tmp_path / "home",
                          out=io.StringIO())

    assert code == 1
    assert capsys.readouterr().err == (
        f"error: No GIMP user folder was found (looked in {looked_in}): start GIMP once so "
        "that it makes its folder, then run the installer again, or name the folder with "
        "--gimp-dir.\n")


def test_requirements_match_the_lower_bounds_in_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(f"{name}>={low}" for name, low in REQUIREMENTS) == sorted(declared)


# -- dry runs on every platform -----------------------------------------------------------

def snapshot(folder: Path) -> dict:
    """Every path under folder with its mode and content, to prove nothing changed."""
    state = {}
    for path in sorted(folder.rglob("*")):
        stat = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        state[str(path)] = (stat.st_mode, content)
    return state


def test_dry_run_on_windows_shows_every_step_and_changes_nothing(tmp_path, checkout):
    installer = load_installer(checkout)
    tmp_path = tmp_path / "home"
    gimp = tmp_path / "AppData" / "Roaming" / "GIMP"
    local = tmp_path / "Local"
    make_dirs(gimp / "3.2", gimp / "2.10", local)
    before = snapshot(tmp_path)
    out = io.StringIO()

    code = installer.main(["--dry-run"], platform="win32",
                          environ={"LOCALAPPDATA": str(local)}, home=tmp_path, out=out)

    text = out.getvalue()
    data = local / "gpt-image-edit"
    python = data / "venv" / "Scripts" / "python.exe"
    worker = json.dumps({"python": str(python), "pythonpath": [str(data / "lib")]})
    assert snapshot(tmp_path) == before
    assert f"-m venv {data / 'venv'}" in text
    assert f"{python} -m pip install --disable-pip-version-check" in text
    assert f"{python} -m gpt_image_edit --version" in text
    assert f"write {gimp / '3.2' / 'plug-ins' / 'gpt-image-edit' / 'gpt-image-edit-worker.json'}: {worker}" in text  # noqa: E501
    assert f"write {gimp / '2.10' / 'plug-ins' / 'gpt-image-edit-gimp2-lib' / 'gpt-image-edit-worker.json'}: {worker}" in text  # noqa: E501
    assert f"Settings file: {tmp_path / 'AppData' / 'Roaming' / 'gpt-image-edit' / 'settings.json'}" in text  # noqa: E501
    launcher = local / "Microsoft" / "WindowsApps" / "gpt-image-edit.cmd"
    assert f"  [dry run] write {launcher} (mode 755)" in text.splitlines()
    assert code == 0


def test_dry_run_on_macos_uses_application_support(tmp_path, checkout):
    installer = load_installer(checkout)
    tmp_path = tmp_path / "home"
    support = tmp_path / "Library" / "Application Support"
    make_dirs(support / "GIMP" / "3.0")
    before = snapshot(tmp_path)
    out = io.StringIO()

    installer.main(["--dry-run"], platform="darwin", environ={}, home=tmp_path, out=out)

    data = support / "gpt-image-edit"
    assert snapshot(tmp_path) == before
    assert (f"write {support / 'GIMP' / '3.0' / 'plug-ins' / 'gpt-image-edit'}"
            f"/gpt-image-edit-worker.json: " + json.dumps(
                {"python": str(data / "venv" / "bin" / "python"),
                 "pythonpath": [str(data / "lib")]})) in out.getvalue()
    assert f"Settings file: {support / 'gpt-image-edit' / 'settings.json'}" in out.getvalue()


def test_dry_run_for_flatpak_makes_the_worker_with_the_sandbox_python(checkout, home):
    flatpak = home.path / ".var" / "app" / "org.gimp.GIMP"
    make_dirs(flatpak / "config" / "GIMP" / "3.2")
    before = snapshot(home.path)

    done = run_installer(checkout, home.env, "--dry-run", "--python", sys.executable)

    data = flatpak / "data" / "gpt-image-edit"
    python = data / "venv" / "bin" / "python"
    lines = done.stdout.splitlines()
    assert snapshot(home.path) == before
    assert done.returncode == 0, done.stderr
    assert ("  note: --python does not apply here: Flatpak GIMP runs the worker inside its "
            "sandbox, with an environment of its own.") in lines
    assert f"  [dry run] make the environment: flatpak run --command=python3 org.gimp.GIMP " \
           f"-m venv {data / 'venv'}" in lines
    assert f"  [dry run] install the dependencies: flatpak run --command={python} " \
           "org.gimp.GIMP -m pip install --disable-pip-version-check 'requests>=2.31' " \
           "'pillow>=9.5'" in lines
    assert f"  [dry run] check that the worker starts: flatpak run --command={python} " \
           f"--env=PYTHONPATH={data / 'lib'} org.gimp.GIMP -m gpt_image_edit --version" in lines
    entry = flatpak / "config" / "GIMP" / "3.2" / "plug-ins" / "gpt-image-edit"
    assert f"  [dry run] write {entry / 'gpt-image-edit-worker.json'}: " + json.dumps(
        {"python": str(python), "pythonpath": [str(data / "lib")]}) in lines
    assert (f"Settings file: {flatpak / 'config' / 'gpt-image-edit' / 'settings.json'} "
            "(not created yet).") in lines
    assert ("Note: no gpt-image-edit command: Flatpak GIMP's worker runs only inside its "
            "sandbox; for the command line, run 'pipx install .' in the plug-in's folder.") \
        in lines


# -- real installs --------------------------------------------------------------------------

class Home:
    """A fake home folder and the environment that makes the installer use it."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path / ".local" / "share" / "gpt-image-edit"
        self.settings = path / ".config" / "gpt-image-edit" / "settings.json"
        self.gimp3 = path / ".config" / "GIMP" / "3.0"
        self.gimp2 = path / ".config" / "GIMP" / "2.10"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("GIMP", "XDG_", "GPT_IMAGE_EDIT_", "PYTHON"))}
        self.env.update(HOME=str(path), XDG_CONFIG_HOME=str(path / ".config"),
                        XDG_DATA_HOME=str(path / ".local" / "share"))


@pytest.fixture
def home(tmp_path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the plug-in's download, which a test may move or delete."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("install", "plugin", "docs"):
        shutil.copytree(ROOT / part, copy / part, ignore=ignore)
    for relative, text in STAND_INS.items():
        if not (copy / relative).exists():
            (copy / relative).write_text(text)
    return copy


def run_installer(checkout: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(checkout / "install" / "install.py"), *args],
                          env=env, capture_output=True, text=True, cwd=str(checkout.parent))


def start_worker(entry_dir: Path, monkeypatch, *args: str) -> str:
    """Run the worker exactly as the GIMP entries would: find_worker + Worker.environment()."""
    monkeypatch.delenv("GPT_IMAGE_EDIT_WORKER", raising=False)
    host = load_host(entry_dir)
    worker = host.find_worker(str(entry_dir))
    done = subprocess.run([worker.python, *args], env=worker.environment(),
                          capture_output=True, text=True, cwd=str(entry_dir))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def worker_file(folder: Path) -> dict:
    return json.loads(folder.joinpath("gpt-image-edit-worker.json").read_text())


def test_install_puts_entries_with_run_bits_and_a_worker_that_starts(
        checkout, home, monkeypatch):
    make_dirs(home.gimp3, home.gimp2)
    python = os.path.abspath(sys.executable)
    cache = checkout / "plugin" / "gpt-image-edit" / "__pycache__"
    cache.mkdir()
    (cache / "gpt_image_edit_host.cpython-311.pyc").write_bytes(b"stale")

    done = run_installer(checkout, home.env, "--python", sys.executable)

    assert done.returncode == 0, done.stderr
    entry3 = home.gimp3 / "plug-ins" / "gpt-image-edit"
    plug_ins2 = home.gimp2 / "plug-ins"
    lib2 = plug_ins2 / "gpt-image-edit-gimp2-lib"
    expected = {"python": python, "pythonpath": [str(home.data / "lib")]}
    shipped = [p.name for p in (checkout / "plugin" / "gpt-image-edit").iterdir()
               if p.name != "__pycache__"]
    assert "gpt-image-edit.py" in shipped
    assert "gpt_image_edit_core.py" in shipped
    assert sorted(p.name for p in entry3.iterdir()) == sorted(
        shipped + ["gpt-image-edit-worker.json", "gpt_image_edit_geometry.py",
                   "gpt_image_edit_pricing.py", "help"])
    for name in ("manual.html", "gimp-help.xml"):
        assert (entry3 / "help" / "en" / name).read_bytes() == \
            (checkout / "docs" / name).read_bytes()
    # One geometry and one price table, shipped beside both host cores: the worker
    # package's own files.
    for name in ("geometry", "pricing"):
        source = (checkout / "plugin" / "gpt_image_edit" / f"{name}.py").read_bytes()
        assert (entry3 / f"gpt_image_edit_{name}.py").read_bytes() == source
        assert (lib2 / f"gpt_image_edit_{name}.py").read_bytes() == source
    for module in ("gpt_image_edit_core.py", "gpt_image_edit_host.py"):
        assert (lib2 / module).read_bytes() == (entry3 / module).read_bytes()
    # The same manual for GIMP 2.10's Help, in the helper folder (its entry registers it).
    for name in ("manual.html", "gimp-help.xml"):
        assert (lib2 / "help" / "en" / name).read_bytes() == \
            (checkout / "docs" / name).read_bytes()
    assert os.access(entry3 / "gpt-image-edit.py", os.X_OK)
    assert not os.access(entry3 / "gpt_image_edit_host.py", os.X_OK)
    assert worker_file(entry3) == expected
    # GIMP 2.10 (on Windows: every .py) queries each file loose in plug-ins/, and in a
    # subfolder only a file named like that folder.
    assert sorted(p.name for p in plug_ins2.iterdir()) == [
        "gpt-image-edit-gimp2-lib", "gpt-image-edit-gimp2.py"]
    assert os.access(plug_ins2 / "gpt-image-edit-gimp2.py", os.X_OK)
    assert sorted(p.name for p in lib2.iterdir()) == [
        "gpt-image-edit-worker.json", "gpt_image_edit_core.py", "gpt_image_edit_cost2.py",
        "gpt_image_edit_geometry.py", "gpt_image_edit_host.py", "gpt_image_edit_pricing.py",
        "gpt_image_edit_settings2.py", "help"]
    assert not any(p.stem == lib2.name or (p.is_file() and os.access(p, os.X_OK))
               for p in lib2.iterdir())
    assert worker_file(lib2) == expected
    assert (plug_ins2 / "gpt-image-edit-gimp2.py").read_bytes() == \
        (checkout / "plugin" / "gpt-image-edit-gimp2.py").read_bytes()
    assert f"  worker interpreter: {python}" in done.stdout
    assert f"Settings file: {home.settings} (not created yet)." in done.stdout
    launcher = home.path / ".local" / "bin" / "gpt-image-edit"
    assert os.access(launcher, os.X_OK)
    assert done.stdout.splitlines()[-9:] == [
        "Done. Installed:",
        f"  the worker in {home.data} (Python: {python})",
        f"  the gpt-image-edit command: {launcher}",
        f"  the plug-in for GIMP 2.10 in {plug_ins2}",
        f"  the plug-in for GIMP 3.0 in {home.gimp3 / 'plug-ins'}",
        "Next:",
        "  1. Restart GIMP (quit it first if it is running), select a layer and open "
        "Filters > AI > GPT Image Edit...",
        "  2. Set your WisGate API key in GIMP with Filters > AI > GPT Image Settings..., or "
        "set GPT_IMAGE_EDIT_API_KEY in the environment GIMP starts from, or write "
        f'{{"api_key": "..."}} into {home.settings} (mode 0600).',
        "  3. On the command line: gpt-image-edit --help"]
    assert (f"  note: {launcher.parent} is not on your PATH, so the shell does not find "
            'gpt-image-edit yet: run: export PATH="$HOME/.local/bin:$PATH" (and add that '
            "line to ~/.profile; on Debian and Ubuntu logging in again is enough now that the "
            "folder exists).") in done.stdout.splitlines()

    # The worker is its own copy: it starts after the download is gone.
    version = (checkout / "plugin" / "gpt_image_edit" / "__init__.py").read_text()
    shutil.rmtree(checkout)
    for entry_dir in (entry3, lib2):
        assert start_worker(entry_dir, monkeypatch, "-m", "gpt_image_edit", "--version") \
            .endswith(version.split('__version__ = "')[1].split('"')[0])
        assert start_worker(entry_dir, monkeypatch, "-c", "import gpt_image_edit; "
                            "print(gpt_image_edit.__file__)") == \
            str(home.data / "lib" / "gpt_image_edit" / "__init__.py")
    # The command runs the worker's copy too, from any folder, with PATH holding its folder.
    env = dict(home.env, PATH=f"{launcher.parent}{os.pathsep}{home.env['PATH']}",
               PYTHONPATH=str(home.path))
    command = subprocess.run(["gpt-image-edit", "--version"], env=env, capture_output=True,
                             text=True, cwd=str(home.path))
    assert command.returncode == 0, command.stderr
    assert command.stdout.strip() == start_worker(entry3, monkeypatch, "-m", "gpt_image_edit",
                                                  "--version")
    usage = subprocess.run(["gpt-image-edit", "edit"], env=env, capture_output=True, text=True)
    assert usage.returncode == 2  # the tool's own exit code comes through the launcher


def test_second_run_upgrades_in_place_and_keeps_the_settings(checkout, home):
    make_dirs(home.gimp3)
    assert run_installer(checkout, home.env, "--python", sys.executable).returncode == 0
    home.settings.parent.mkdir(parents=True)
    home.settings.write_text(SETTINGS_TEXT)
    home.settings.chmod(0o600)
    entry3 = home.gimp3 / "plug-ins" / "gpt-image-edit"
    (entry3 / "gpt-image-edit.py").write_text("# an older version\n")
    (entry3 / "dropped_module.py").write_text("# no longer shipped\n")
    (checkout / "plugin" / "gpt_image_edit" / "new_module.py").write_text("# new\n")

    done = run_installer(checkout, home.env, "--python", sys.executable)

    assert done.returncode == 0, done.stderr
    assert (entry3 / "gpt-image-edit.py").read_bytes() == \
        (checkout / "plugin" / "gpt-image-edit" / "gpt-image-edit.py").read_bytes()
    assert os.access(entry3 / "gpt-image-edit.py", os.X_OK)
    assert not (entry3 / "dropped_module.py").exists()
    assert (home.data / "lib" / "gpt_image_edit" / "new_module.py").exists()
    assert home.settings.read_text() == SETTINGS_TEXT
    assert home.settings.stat().st_mode & 0o777 == 0o600
    assert f"Settings file: {home.settings} (exists, left as it is)." in done.stdout


def test_upgrade_moves_gimp2_helpers_out_of_the_plug_ins_folder(checkout, home):
    """Earlier versions left the host modules (and Python 2.7's caches of them) and the
    worker description loose in plug-ins/, where GIMP 2.10 on Windows queries every .py."""
    plug_ins2 = home.gimp2 / "plug-ins"
    make_dirs(plug_ins2)
    for name in ("gpt_image_edit_host.py", "gpt_image_edit_host.pyc", "gpt_image_edit_core.py",
                 "gpt_image_edit_core.pyc", "gpt_image_edit_geometry.py",
                 "gpt_image_edit_geometry.pyc", "gpt-image-edit-worker.json"):
        (plug_ins2 / name).write_text("# left by an older version\n")
    (plug_ins2 / "someone-elses-plugin.py").write_text("# not ours\n")

    done = run_installer(checkout, home.env, "--python", sys.executable)

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in plug_ins2.iterdir()) == [
        "gpt-image-edit-gimp2-lib", "gpt-image-edit-gimp2.py", "someone-elses-plugin.py"]

    removed = run_installer(checkout, home.env, "--uninstall")

    assert removed.returncode == 0, removed.stderr
    assert sorted(p.name for p in plug_ins2.iterdir()) == ["someone-elses-plugin.py"]


def test_gimp_dir_installs_into_a_fresh_folder_and_takes_a_version(checkout, home):
    fresh = home.path / "profiles" / "work"

    unknown = run_installer(checkout, home.env, "--python", sys.executable, "--gimp-dir",
                            str(fresh))
    done = run_installer(checkout, home.env, "--python", sys.executable, "--gimp-dir",
                         str(fresh), "--gimp-version", "3.2")

    assert unknown.returncode == 1
    assert unknown.stderr == (
        f"error: The GIMP version of {fresh} cannot be told from its name: add "
        "--gimp-version with the GIMP version that uses it (2.10, 3.0, 3.2, ...).\n")
    assert done.returncode == 0, done.stderr
    assert f"GIMP 3.2 ({fresh})" in done.stdout.splitlines()
    assert os.access(fresh / "plug-ins" / "gpt-image-edit" / "gpt-image-edit.py", os.X_OK)


def test_list_shows_versions_sandboxes_and_what_is_installed(checkout, home):
    flatpak = home.path / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.2"
    make_dirs(home.gimp3, home.gimp2, flatpak)
    run_installer(checkout, home.env, "--python", sys.executable, "--gimp-dir", str(home.gimp3))

    done = run_installer(checkout, home.env, "--list")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"GIMP 2.10  native   not installed  {home.gimp2}",
        f"GIMP 3.0   native   installed      {home.gimp3}",
        f"GIMP 3.2   flatpak  not installed  {flatpak}"]


def test_flatpak_without_the_flatpak_command_says_so_and_installs_the_rest(checkout, home):
    flatpak = home.path / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.2"
    make_dirs(home.gimp3, flatpak)
    env = dict(home.env, PATH=str(home.path / "empty-bin"))

    done = run_installer(checkout, env, "--python", sys.executable)

    assert done.returncode == 1
    assert done.stderr == (
        "error: Flatpak GIMP was found, but the flatpak command is not available to set up "
        "its worker inside the sandbox: run the installer where 'flatpak run org.gimp.GIMP' "
        "works, or choose other GIMP folders with --gimp-dir.\n")
    assert (home.gimp3 / "plug-ins" / "gpt-image-edit" / "gpt-image-edit.py").exists()
    assert not (flatpak / "plug-ins").exists()
    assert not (home.path / ".var" / "app" / "org.gimp.GIMP" / "data").exists()


def test_python_without_the_dependencies_is_refused_with_the_fix(checkout, home, tmp_path):
    make_dirs(home.gimp3)
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"

    done = run_installer(checkout, home.env, "--python", str(python))

    assert done.returncode == 1
    assert done.stderr.endswith(
        f"error: {python} cannot import requests and PIL (requests>=2.31 and pillow>=9.5): "
        "install them into that Python's own virtual environment (or from your "
        "distribution's packages), or leave out --python so the installer makes its own "
        "environment.\n")
    assert not (home.gimp3 / "plug-ins").exists()


def test_uninstall_removes_entries_and_worker_and_keeps_the_settings(checkout, home):
    make_dirs(home.gimp3, home.gimp2)
    assert run_installer(checkout, home.env, "--python", sys.executable).returncode == 0
    home.settings.parent.mkdir(parents=True)
    home.settings.write_text(SETTINGS_TEXT)

    partly = run_installer(checkout, home.env, "--uninstall", "--gimp-dir", str(home.gimp2))
    assert partly.returncode == 0, partly.stderr
    assert f"Kept the worker in {home.data}: other GIMP folders still use it." in partly.stdout
    assert sorted(p.name for p in (home.gimp2 / "plug-ins").iterdir()) == []
    assert (home.data / "lib" / "gpt_image_edit").is_dir()

    before = snapshot(home.path)
    dry = run_installer(checkout, home.env, "--uninstall", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert snapshot(home.path) == before
    assert f"  [dry run] remove {home.gimp3 / 'plug-ins' / 'gpt-image-edit'}" in dry.stdout
    assert f"  [dry run] remove {home.data / 'lib'}" in dry.stdout

    done = run_installer(checkout, home.env, "--uninstall")

    assert done.returncode == 0, done.stderr
    assert not (home.gimp3 / "plug-ins" / "gpt-image-edit").exists()
    assert not home.data.exists()
    assert home.settings.read_text() == SETTINGS_TEXT
    assert not (home.path / ".local" / "bin" / "gpt-image-edit").exists()
    assert home.settings.read_text() == SETTINGS_TEXT
    assert (f"Kept your settings file {home.settings} (it holds your API key; remove it with "
            "--uninstall --purge, or delete it yourself).") in done.stdout


def test_uninstall_purge_removes_the_settings_and_the_log_too(checkout, home):
    make_dirs(home.gimp3)
    assert run_installer(checkout, home.env, "--python", sys.executable).returncode == 0
    home.settings.parent.mkdir(parents=True)
    home.settings.write_text(SETTINGS_TEXT)
    for name in ("gpt-image-edit.log", "gpt-image-edit.log.1"):
        (home.settings.parent / name).write_text("a log line\n")
    before = snapshot(home.path)

    alone = run_installer(checkout, home.env, "--purge")
    dry = run_installer(checkout, home.env, "--uninstall", "--purge", "--dry-run")
    assert snapshot(home.path) == before
    done = run_installer(checkout, home.env, "--uninstall", "--purge")

    assert alone.returncode == 2 and "--purge goes with --uninstall" in alone.stderr
    assert f"  [dry run] remove {home.settings}" in dry.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert not home.settings.parent.exists()
    assert not home.data.exists()
    assert not (home.path / ".local" / "bin" / "gpt-image-edit").exists()
    assert not (home.gimp3 / "plug-ins" / "gpt-image-edit").exists()
    assert done.stdout.splitlines()[-1] == "Done."


def test_a_gpt_image_edit_command_of_someone_else_is_left_alone(checkout, home):
    """pipx's gpt-image-edit (a symbolic link into its own environment) stays as it is."""
    make_dirs(home.gimp3, home.path / ".local" / "bin")
    launcher = home.path / ".local" / "bin" / "gpt-image-edit"
    launcher.symlink_to(home.path / ".local" / "pipx" / "venvs" / "gpt-image-edit" / "bin"
                        / "gpt-image-edit")

    installed = run_installer(checkout, home.env, "--python", sys.executable)
    removed = run_installer(checkout, home.env, "--uninstall")

    assert installed.returncode == 0, installed.stderr
    assert (f"  note: {launcher} exists and was not made by this installer (pipx?): left as it "
            "is, so the gpt-image-edit command is that one.") in installed.stdout.splitlines()
    assert removed.returncode == 0, removed.stderr
    assert launcher.is_symlink()


def test_bin_folder_on_path_gets_no_note(checkout, home):
    make_dirs(home.gimp3)
    env = dict(home.env, PATH=f"{home.env['PATH']}{os.pathsep}{home.path}/.local/bin/")

    done = run_installer(checkout, env, "--python", sys.executable)

    assert done.returncode == 0, done.stderr
    assert "not on your PATH" not in done.stdout


def test_a_python_without_venv_or_ensurepip_is_named_with_its_package(checkout, home):
    """Debian and Ubuntu without python3-venv: ensurepip is missing; nothing is installed."""
    make_dirs(home.gimp3)
    hide = ("import runpy, sys; sys.modules['ensurepip'] = None; "
            f"sys.argv = [{str(checkout / 'install' / 'install.py')!r}]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")

    done = subprocess.run([sys.executable, "-c", hide], env=home.env, capture_output=True,
                          text=True)

    assert done.returncode == 1
    assert done.stderr == (
        f"error: Python's ensurepip module is missing from {sys.executable}, so the installer "
        "cannot make the worker's environment: on Debian and Ubuntu install the python3-venv "
        "package (sudo apt install python3-venv), elsewhere your Python's venv package; or "
        "pass --python with an interpreter that has requests and pillow.\n")
    assert not (home.gimp3 / "plug-ins").exists()
    assert not home.data.exists()
    assert not (home.path / ".local" / "bin").exists()


def test_install_makes_a_virtual_environment_with_requests_and_pillow(checkout, home,
                                                                      monkeypatch):
    """The default path: a venv made by the running Python, dependencies from the registry."""
    make_dirs(home.gimp3)

    first = run_installer(checkout, home.env, "--gimp-dir", str(home.gimp3))
    second = run_installer(checkout, home.env, "--gimp-dir", str(home.gimp3))

    assert first.returncode == 0, first.stderr
    venv_python = home.data / "venv" / "bin" / "python"
    entry3 = home.gimp3 / "plug-ins" / "gpt-image-edit"
    assert worker_file(entry3) == {"python": str(venv_python),
                                   "pythonpath": [str(home.data / "lib")]}
    assert "install the dependencies:" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"  reuse the working environment {home.data / 'venv'}" in second.stdout
    assert "install the dependencies" not in second.stdout
    found = start_worker(entry3, monkeypatch, "-c", "import sys, PIL, requests, gpt_image_edit; "
                         "print(sys.prefix, PIL.__version__, requests.__version__)")
    prefix, pillow, requests_version = found.split()
    assert prefix == str(home.data / "venv")
    assert tuple(int(n) for n in pillow.split(".")[:2]) >= (9, 5)
    assert tuple(int(n) for n in requests_version.split(".")[:2]) >= (2, 31)

    # A dependency gone: pip runs again in the same environment.
    subprocess.run([str(venv_python), "-m", "pip", "uninstall", "-y", "-q", "pillow"],
                   check=True, env=home.env)
    repaired = run_installer(checkout, home.env, "--gimp-dir", str(home.gimp3))
    assert repaired.returncode == 0, repaired.stderr
    assert "install the dependencies:" in repaired.stdout
    assert "make the environment" not in repaired.stdout

    # The Python it was made from upgraded away: the environment is made anew.
    venv_python.unlink()
    venv_python.symlink_to("/nonexistent/python3.99")
    remade = run_installer(checkout, home.env, "--gimp-dir", str(home.gimp3))
    assert remade.returncode == 0, remade.stderr
    assert "make the environment:" in remade.stdout
    assert start_worker(entry3, monkeypatch, "-c", "import PIL, requests; print('ok')") == "ok"


def test_snap_gimp_gets_the_entry_and_a_note_on_confinement(checkout, home):
    snap = home.path / "snap" / "gimp" / "current" / ".config" / "GIMP" / "3.0"
    make_dirs(snap)

    done = run_installer(checkout, home.env, "--python", sys.executable)

    assert done.returncode == 0, done.stderr
    assert worker_file(snap / "plug-ins" / "gpt-image-edit") == {
        "python": os.path.abspath(sys.executable), "pythonpath": [str(home.data / "lib")]}
    assert ("  note: Snap GIMP runs plug-ins confined; if the plug-in says the worker is not "
            "set up, use your distribution's or the Flatpak GIMP.") in done.stdout.splitlines()
    settings = home.path / "snap" / "gimp" / "current" / ".config" / "gpt-image-edit"
    assert f"Settings file: {settings / 'settings.json'} (not created yet)." in done.stdout
