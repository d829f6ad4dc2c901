"""The `gpt-image-edit` command: a launcher in the user's bin folder for the worker's own
environment, so the command-line tool needs no `pip install` (which PEP 668 refuses for the
system Python of Debian, Ubuntu and Fedora).

Linux and macOS: a shell script in ~/.local/bin, the folder pipx and `pip install --user`
use (Debian's and Ubuntu's ~/.profile put it on PATH when it exists at login). Windows: a
.cmd file in %LOCALAPPDATA%\\Microsoft\\WindowsApps, the per-user folder Windows keeps on
PATH. A file of that name not made by the installer (say, from `pipx install .`) is left
alone.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from install_steps import Steps

COMMAND = "gpt-image-edit"
# The second line of every launcher: how the installer knows a launcher is its own.
MARK = "made by GPT Image Edit's install/install.py; removed by its --uninstall"


def bin_folder(platform: str, environ, home: Path) -> Path:
    if platform == "win32":
        local = environ.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
        return base / "Microsoft" / "WindowsApps"
    return home / ".local" / "bin"


def launcher_path(platform: str, environ, home: Path) -> Path:
    name = COMMAND + (".cmd" if platform == "win32" else "")
    return bin_folder(platform, environ, home) / name


def launcher_text(platform: str, python: str, lib: str) -> str:
    """The launcher runs the worker's Python on the worker's copy of the package, as the
    GIMP entries do (PYTHONPATH first, then the caller's own)."""
    if platform == "win32":
        return (f"@echo off\r\nrem {MARK}\r\nsetlocal\r\n"
                f'set "PYTHONPATH={lib};%PYTHONPATH%"\r\n'
                f'"{python}" -m gpt_image_edit %*\r\n'
                "exit /b %ERRORLEVEL%\r\n")  # the tool's exit code, not the batch file's
    return (f"#!/bin/sh\n# {MARK}\n"
            f'PYTHONPATH={shlex.quote(lib)}${{PYTHONPATH:+:$PYTHONPATH}}\n'
            "export PYTHONPATH\n"
            f'exec {shlex.quote(python)} -m gpt_image_edit "$@"\n')


def is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as launcher:
            return MARK in launcher.read(400)
    except OSError:
        return False


def install_launcher(steps: Steps, platform: str, environ, home: Path, python: str,
                     lib: str) -> Path | None:
    """Write the launcher; None when a `gpt-image-edit` of someone else's is in the way."""
    path = launcher_path(platform, environ, home)
    if (path.exists() or path.is_symlink()) and not is_ours(path):
        steps.say(f"  note: {path} exists and was not made by this installer (pipx?): left "
                  "as it is, so the gpt-image-edit command is that one.")
        return None
    steps.write_text(path, launcher_text(platform, python, lib), executable=True)
    return path


def remove_launcher(steps: Steps, platform: str, environ, home: Path) -> None:
    path = launcher_path(platform, environ, home)
    if is_ours(path):
        steps.remove(path)


def path_advice(platform: str, environ, home: Path) -> str | None:
    """A sentence when the bin folder is not on PATH, saying how to put it there."""
    folder = bin_folder(platform, environ, home)
    separator = ";" if platform == "win32" else ":"
    entries = [entry for entry in environ.get("PATH", "").split(separator) if entry]
    if any(_same(entry, folder, home) for entry in entries):
        return None
    if platform == "win32":
        how = ("add it under Settings > System > About > Advanced system settings > "
               "Environment Variables > Path")
    else:
        how = ('run: export PATH="$HOME/.local/bin:$PATH" (and add that line to ~/.profile; '
               "on Debian and Ubuntu logging in again is enough now that the folder exists)")
    return (f"  note: {folder} is not on your PATH, so the shell does not find "
            f"{COMMAND} yet: {how}.")


def _same(entry: str, folder: Path, home: Path) -> bool:
    entry = entry.replace("$HOME", str(home))
    return os.path.normcase(os.path.abspath(os.path.expanduser(entry))) == \
        os.path.normcase(os.path.abspath(folder))
