"""Every change the installer makes goes through Steps, so --dry-run can show each one and
change nothing, and a real run prints what it did."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

# Python caches from the checkout are not part of the plug-in.
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


class InstallError(Exception):
    """A failure; its text is the one sentence saying what happened and what to do."""


class Steps:
    def __init__(self, dry_run: bool = False, out=None):
        self.dry_run = dry_run
        self.out = out or sys.stdout

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _step(self, text: str) -> bool:
        """Print one step; True when it is to be carried out."""
        self.say(("  [dry run] " if self.dry_run else "  ") + text)
        return not self.dry_run

    def replace_tree(self, source: Path, target: Path) -> None:
        """Make `target` an exact copy of `source` (an upgrade drops files no longer shipped)."""
        if self._step(f"copy {source} -> {target}"):
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, target, ignore=COPY_IGNORE)

    def copy_file(self, source: Path, target: Path, executable: bool = False) -> None:
        mode = 0o755 if executable else 0o644
        if self._step(f"copy {source} -> {target} (mode {mode:o})"):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            os.chmod(target, mode)

    def set_executable(self, path: Path) -> None:
        if self._step(f"set the run bit on {path}"):
            os.chmod(path, 0o755)

    def write_json(self, path: Path, data: dict) -> None:
        text = json.dumps(data, indent=2) + "\n"
        if self._step(f"write {path}: {json.dumps(data)}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def write_text(self, path: Path, text: str, executable: bool = False) -> None:
        """Write a small text file (replacing one of that name), run bit as asked."""
        mode = 0o755 if executable else 0o644
        if self._step(f"write {path} (mode {mode:o})"):
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                path.unlink()
            path.write_bytes(text.encode("utf-8"))
            os.chmod(path, mode)

    def remove(self, path: Path) -> None:
        """Remove a file or a folder; nothing to do when it is not there."""
        if not (path.exists() or path.is_symlink()):
            return
        if self._step(f"remove {path}"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def remove_if_empty(self, path: Path) -> None:
        if path.is_dir() and not any(path.iterdir()) and self._step(f"remove {path}"):
            path.rmdir()

    def run(self, argv: list[str], what: str, env=None, cwd=None, capture=False):
        """Run a command that changes something; None in a dry run."""
        if not self._step(f"{what}: {command_text(argv)}"):
            return None
        return run_command(argv, env=env, cwd=cwd, capture=capture)


def run_command(argv: list[str], env=None, cwd=None, capture=True):
    """Run a program; a program that cannot be started counts as failing with code 127."""
    try:
        return subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None,
                              text=True)
    except OSError as exc:
        return subprocess.CompletedProcess(argv, 127, "", str(exc))


def command_text(argv: list[str]) -> str:
    return " ".join(shlex.quote(str(part)) for part in argv)


def last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
