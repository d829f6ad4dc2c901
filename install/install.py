#!/usr/bin/env python3
"""Install GPT Image Edit into every GIMP on this machine.

    python3 install/install.py [--list] [--dry-run] [--gimp-dir DIR [--gimp-version V]]
                               [--python PATH] [--uninstall [--purge]]

Finds the GIMP 2.10 and 3.x user folders (native, Flatpak, Snap), puts the right entry into
each plug-ins folder, sets up the worker (a copy of the gpt_image_edit package and a Python
with requests and pillow), checks that the worker starts, puts the `gpt-image-edit` command
into the user's bin folder, and says what it did and what to do next. Running it again
upgrades in place; the settings file (with the API key) is touched only by --purge.
Standard library only; Python 3.8 or later.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gimp_folders import (  # noqa: E402
    NATIVE,
    SNAP,
    GimpFolder,
    find_gimp_folders,
    folder_from_dir,
    searched_places,
)
from install_steps import InstallError, Steps  # noqa: E402
from launcher import install_launcher, path_advice, remove_launcher  # noqa: E402
from plugin_entries import (  # noqa: E402
    install_entry,
    installed_worker,
    is_installed,
    remove_entry,
)
from worker_setup import (  # noqa: E402
    LOG_FILE,
    WorkerSetup,
    settings_file,
    worker_place,
    worker_sandbox,
)

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "plugin"
EDIT_MENU = "Filters > AI > GPT Image Edit..."
SETTINGS_MENU = "Filters > AI > GPT Image Settings..."


def none_found(platform, environ, home) -> str:
    places = ", ".join(_short(place, home) for place in searched_places(platform, environ, home))
    return (f"No GIMP user folder was found (looked in {places}): start GIMP once so that it "
            "makes its folder, then run the installer again, or name the folder with "
            "--gimp-dir.")


def _short(path: Path, home: Path) -> str:
    """A path as people write it: ~/.config/GIMP rather than /home/someone/.config/GIMP."""
    try:
        return str(Path("~") / path.relative_to(home))
    except ValueError:
        return str(path)


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
                        help="remove the plug-in, its worker and the gpt-image-edit command; "
                             "keep the settings file")
    parser.add_argument("--purge", action="store_true",
                        help="with --uninstall: remove the settings file (and the API key in "
                             "it) and the log too")
    args = parser.parse_args(argv)
    if args.purge and not args.uninstall:
        parser.error("--purge goes with --uninstall")
    return args


def main(argv=None, platform=sys.platform, environ=None, home=None, out=None) -> int:
    args = parse_args(argv)
    environ = os.environ if environ is None else environ
    home = Path(home) if home else Path(os.path.expanduser("~"))
    steps = Steps(dry_run=args.dry_run, out=out)
    try:
        every = find_gimp_folders(platform, environ, home)
        chosen = _chosen(args, every, home)
        if args.list:
            return _list(steps, chosen, none_found(platform, environ, home))
        if not chosen:
            raise InstallError(none_found(platform, environ, home))
        if args.uninstall:
            return _uninstall(steps, args.purge, chosen, every, platform, environ, home)
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


def _list(steps: Steps, chosen: list[GimpFolder], nothing: str) -> int:
    if not chosen:
        steps.say(nothing)
    for folder in chosen:
        state = "installed" if is_installed(folder) else "not installed"
        steps.say(f"GIMP {folder.version:<5} {folder.sandbox:<8} {state:<14} {folder.path}")
    return 0


def _install(steps, args, chosen, platform, environ, home) -> int:
    failures, installed = [], []
    for sandbox, folders in _by_worker(chosen).items():
        place = worker_place(sandbox, platform, environ, home)
        setup = WorkerSetup(place, steps, environ, python=args.python)
        try:
            worker = setup.set_up(PLUGIN_SOURCE / "gpt_image_edit").description()
        except InstallError as error:
            failures.append(str(error))
            continue
        installed.append(f"the worker in {place.data_dir} (Python: {worker['python']})")
        if sandbox == NATIVE:
            installed += _command(steps, worker, platform, environ, home)
        for folder in folders:
            try:
                install_entry(steps, folder, PLUGIN_SOURCE, worker)
            except InstallError as error:
                failures.append(str(error))
                continue
            installed.append(f"the plug-in for GIMP {folder.version} in {folder.plug_ins}")
            if folder.sandbox == SNAP:
                steps.say("  note: Snap GIMP runs plug-ins confined; if the plug-in says the "
                          "worker is not set up, use your distribution's or the Flatpak GIMP.")
    if NATIVE not in _by_worker(chosen):
        steps.say("Note: no gpt-image-edit command: Flatpak GIMP's worker runs only inside its "
                  "sandbox; for the command line, run 'pipx install .' in the plug-in's folder.")
    settings = _say_settings(steps, chosen, platform, environ, home)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if steps.dry_run:
        steps.say("Done (dry run: nothing was changed).")
    elif not failures:
        _say_done(steps, installed, settings)
    return 1 if failures else 0


def _command(steps, worker, platform, environ, home) -> list[str]:
    """The gpt-image-edit launcher for a native worker; what was installed, for the summary."""
    steps.say("The gpt-image-edit command:")
    path = install_launcher(steps, platform, environ, home, worker["python"],
                            os.pathsep.join(worker["pythonpath"]))
    if path is None:
        return []
    advice = path_advice(platform, environ, home)
    if advice:
        steps.say(advice)
    return [f"the gpt-image-edit command: {path}"]


def _say_done(steps, installed, settings) -> None:
    steps.say("Done. Installed:")
    for thing in installed:
        steps.say(f"  {thing}")
    files = " or ".join(str(path) for path in settings)
    steps.say("Next:")
    steps.say(f"  1. Restart GIMP (quit it first if it is running), select a layer and open "
              f"{EDIT_MENU}")
    steps.say(f"  2. Set your WisGate API key in GIMP with {SETTINGS_MENU}, or set "
              f"GPT_IMAGE_EDIT_API_KEY in the environment GIMP starts from, or write "
              f'{{"api_key": "..."}} into {files} (mode 0600).')
    steps.say("  3. On the command line: gpt-image-edit --help")


def _uninstall(steps, purge, chosen, every, platform, environ, home) -> int:
    for folder in chosen:
        remove_entry(steps, folder)
    still_used = {worker_sandbox(f.sandbox) for f in every
                  if f not in chosen and is_installed(f) and installed_worker(f)}
    for sandbox in sorted({worker_sandbox(f.sandbox) for f in chosen}):
        place = worker_place(sandbox, platform, environ, home)
        if sandbox in still_used:
            steps.say(f"Kept the worker in {place.data_dir}: other GIMP folders still use it.")
            continue
        WorkerSetup(place, steps, environ).remove()
        if sandbox == NATIVE:  # the launcher runs the native worker, gone now
            remove_launcher(steps, platform, environ, home)
    for path in _settings_files(chosen, platform, environ, home):
        if purge:
            _purge(steps, path)
        else:
            steps.say(f"Kept your settings file {path} (it holds your API key; remove it "
                      "with --uninstall --purge, or delete it yourself).")
    steps.say("Done" + (" (dry run: nothing was changed)." if steps.dry_run else "."))
    return 0


def _purge(steps, settings: Path) -> None:
    """The settings file, the worker's log beside it (with its rotated copies), and their
    folder when nothing else is left in it."""
    steps.say(f"Settings: {settings.parent}")
    steps.remove(settings)
    for log in sorted(settings.parent.glob(LOG_FILE + "*")):
        steps.remove(log)
    steps.remove_if_empty(settings.parent)


def _say_settings(steps, chosen, platform, environ, home) -> list[Path]:
    paths = _settings_files(chosen, platform, environ, home)
    for path in paths:
        state = "exists, left as it is" if path.exists() else "not created yet"
        steps.say(f"Settings file: {path} ({state}).")
    return paths


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
