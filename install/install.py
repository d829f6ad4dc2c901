#!/usr/bin/env python3
"""Install GPT Image Edit into every GIMP on this machine.

    python3 install/install.py [--list] [--dry-run] [--gimp-dir DIR [--gimp-version V]]
                               [--python PATH] [--uninstall]

Finds the GIMP 2.10 and 3.x user folders (native, Flatpak, Snap), puts the right entry into
each plug-ins folder, sets up the worker (a copy of the gpt_image_edit package and a Python
with requests and pillow), checks that the worker starts, and says what it did. Running it
again upgrades in place; the settings file (with the API key) is never touched.
Standard library only; Python 3.8 or later.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gimp_folders import SNAP, GimpFolder, find_gimp_folders, folder_from_dir  # noqa: E402
from install_steps import InstallError, Steps  # noqa: E402
from plugin_entries import (  # noqa: E402
    install_entry,
    installed_worker,
    is_installed,
    remove_entry,
)
from worker_setup import (  # noqa: E402
    WorkerSetup,
    settings_file,
    worker_place,
    worker_sandbox,
)

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "plugin"
NONE_FOUND = ("No GIMP user folder was found: start GIMP once so it creates its folder, "
              "or pass --gimp-dir.")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="install.py", description="Install GPT Image Edit into GIMP 2.10 and 3.x.")
    parser.add_argument("--list", action="store_true",
                        help="list the GIMP user folders found and whether it is installed")
    parser.add_argument("--dry-run", action="store_true",
                        help="print every step and change nothing")
    parser.add_argument("--gimp-dir", metavar="DIR",
                        help="only this GIMP user folder (e.g. ~/.config/GIMP/3.0)")
    parser.add_argument("--gimp-version", metavar="VERSION",
                        help="the GIMP version of --gimp-dir when its name does not say "
                             "(2.10, 3.0, 3.2, ...)")
    parser.add_argument("--python", metavar="PATH",
                        help="run the worker with this Python (it must import requests and "
                             "PIL) instead of making a virtual environment; not for "
                             "Flatpak GIMP, whose worker runs in its sandbox")
    parser.add_argument("--uninstall", action="store_true",
                        help="remove the plug-in and its worker; keep the settings file")
    return parser.parse_args(argv)


def main(argv=None, platform=sys.platform, environ=None, home=None, out=None) -> int:
    args = parse_args(argv)
    environ = os.environ if environ is None else environ
    home = Path(home) if home else Path(os.path.expanduser("~"))
    steps = Steps(dry_run=args.dry_run, out=out)
    try:
        every = find_gimp_folders(platform, environ, home)
        chosen = _chosen(args, every, home)
        if args.list:
            return _list(steps, chosen)
        if not chosen:
            raise InstallError(NONE_FOUND)
        if args.uninstall:
            return _uninstall(steps, chosen, every, platform, environ, home)
        return _install(steps, args, chosen, platform, environ, home)
    except InstallError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _chosen(args, every: list[GimpFolder], home: Path) -> list[GimpFolder]:
    if not args.gimp_dir:
        return every
    path = Path(os.path.abspath(os.path.expanduser(args.gimp_dir)))
    folder = folder_from_dir(path, home, args.gimp_version)
    if folder is None:
        raise InstallError(
            f"The GIMP version of {path} cannot be told from its name: add --gimp-version "
            "with the GIMP version that uses it (2.10, 3.0, 3.2, ...).")
    return [folder]


def _list(steps: Steps, chosen: list[GimpFolder]) -> int:
    if not chosen:
        steps.say(NONE_FOUND)
    for folder in chosen:
        state = "installed" if is_installed(folder) else "not installed"
        steps.say(f"GIMP {folder.version:<5} {folder.sandbox:<8} {state:<14} {folder.path}")
    return 0


def _install(steps, args, chosen, platform, environ, home) -> int:
    failures = []
    for sandbox, folders in _by_worker(chosen).items():
        setup = WorkerSetup(worker_place(sandbox, platform, environ, home), steps, environ,
                            python=args.python)
        try:
            worker = setup.set_up(PLUGIN_SOURCE / "gpt_image_edit").description()
        except InstallError as error:
            failures.append(str(error))
            continue
        for folder in folders:
            try:
                install_entry(steps, folder, PLUGIN_SOURCE, worker)
            except InstallError as error:
                failures.append(str(error))
                continue
            if folder.sandbox == SNAP:
                steps.say("  note: Snap GIMP runs plug-ins confined; if the plug-in says the "
                          "worker is not set up, use your distribution's or the Flatpak GIMP.")
    _say_settings(steps, chosen, platform, environ, home)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if not failures:
        steps.say("Done" + (" (dry run: nothing was changed)." if steps.dry_run else
                            ": restart GIMP and find it in Filters > AI > GPT Image Edit..."))
    return 1 if failures else 0


def _uninstall(steps, chosen, every, platform, environ, home) -> int:
    for folder in chosen:
        remove_entry(steps, folder)
    still_used = {worker_sandbox(f.sandbox) for f in every
                  if f not in chosen and is_installed(f) and installed_worker(f)}
    for sandbox in sorted({worker_sandbox(f.sandbox) for f in chosen}):
        place = worker_place(sandbox, platform, environ, home)
        if sandbox in still_used:
            steps.say(f"Kept the worker in {place.data_dir}: other GIMP folders still use it.")
        else:
            WorkerSetup(place, steps, environ).remove()
    for path in _settings_files(chosen, platform, environ, home):
        steps.say(f"Kept your settings file {path} (it holds your API key; delete it "
                  "yourself if you no longer need it).")
    return 0


def _say_settings(steps, chosen, platform, environ, home) -> None:
    for path in _settings_files(chosen, platform, environ, home):
        state = "exists, left as it is" if path.exists() else "not created yet"
        steps.say(f"Settings file: {path} ({state}).")
    steps.say("Set the API key in GIMP 3 with Filters > AI > GPT Image Settings..., or write "
              '{"api_key": "..."} into the settings file (mode 0600), or set '
              "GPT_IMAGE_EDIT_API_KEY in the environment GIMP starts from.")


def _settings_files(chosen, platform, environ, home) -> list[Path]:
    paths = []
    for folder in chosen:
        path = settings_file(folder.sandbox, platform, environ, home)
        if path not in paths:
            paths.append(path)
    return paths


def _by_worker(chosen: list[GimpFolder]) -> dict[str, list[GimpFolder]]:
    """The GIMP folders grouped by the worker they use: one worker serves every GIMP that
    can run it."""
    groups: dict[str, list[GimpFolder]] = {}
    for folder in chosen:
        groups.setdefault(worker_sandbox(folder.sandbox), []).append(folder)
    return groups


if __name__ == "__main__":
    sys.exit(main())
