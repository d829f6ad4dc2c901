"""The GIMP entries in a user folder's plug-ins folder.

GIMP 3 runs only plug-ins that sit in a folder of their own name, so the whole
plugin/gpt-image-edit/ folder goes to plug-ins/gpt-image-edit/. GIMP 2.10 tries to run
every file in plug-ins/ it deems executable (on Windows every .py), so only its entry lies
there; the helper modules (the host core, the host module, the settings dialog), the worker
description and the manual go to plug-ins/gpt-image-edit-gimp2-lib/, a folder GIMP 2.10
looks into only for a file named like the folder, which there is not. Both get the worker's
pure modules (plugin/gpt_image_edit/geometry.py and pricing.py, valid Python 2.7 and 3)
beside the host core as gpt_image_edit_geometry.py and gpt_image_edit_pricing.py: one
source, imported by both sides. The manual for
the dialogs' Help goes from docs/ into the layout of a GIMP help domain (help/<language>/
gimp-help.xml maps help ids to pages); each entry registers it.
"""

from __future__ import annotations

import json
from pathlib import Path

from gimp_folders import GimpFolder
from install_steps import InstallError, Steps

GIMP3_FOLDER = "gpt-image-edit"
GIMP3_ENTRY = "gpt-image-edit.py"
GIMP2_ENTRY = "gpt-image-edit-gimp2.py"
GIMP2_LIB = "gpt-image-edit-gimp2-lib"  # also the folder of GIMP 2.10's own modules here
HOST_MODULE = "gpt_image_edit_host.py"
HOST_CORE = "gpt_image_edit_core.py"
HOST_MODULES = (HOST_CORE, HOST_MODULE)
# The worker's pure modules the host core imports: source in the package -> name beside it.
SHARED_MODULES = {Path("gpt_image_edit") / "geometry.py": "gpt_image_edit_geometry.py",
                  Path("gpt_image_edit") / "pricing.py": "gpt_image_edit_pricing.py"}
WORKER_FILE = "gpt-image-edit-worker.json"
HELP_FILES = ("manual.html", "gimp-help.xml")
HELP_FOLDER = Path("help") / "en"
# What earlier versions put loose into GIMP 2.10's plug-ins/ (removed on upgrade).
GIMP2_LOOSE = tuple(name for module in HOST_MODULES + tuple(SHARED_MODULES.values())
                    for name in (module, module + "c")) + (WORKER_FILE,)


def entry_file(folder: GimpFolder) -> Path:
    if folder.major == 3:
        return folder.plug_ins / GIMP3_FOLDER / GIMP3_ENTRY
    return folder.plug_ins / GIMP2_ENTRY


def is_installed(folder: GimpFolder) -> bool:
    return entry_file(folder).is_file()


def install_entry(steps: Steps, folder: GimpFolder, plugin_source: Path, worker: dict) -> None:
    """Put the entry for this GIMP into its plug-ins folder, replacing an older one."""
    steps.say(f"GIMP {folder.version} ({_sandbox_label(folder)}{folder.path})")
    if folder.major == 3:
        _install_gimp3(steps, folder, plugin_source, worker)
    else:
        _install_gimp2(steps, folder, plugin_source, worker)


def remove_entry(steps: Steps, folder: GimpFolder) -> None:
    steps.say(f"GIMP {folder.version} ({_sandbox_label(folder)}{folder.path})")
    for path in _installed_paths(folder):
        steps.remove(path)


def worker_file(folder: GimpFolder) -> Path:
    if folder.major == 3:
        return folder.plug_ins / GIMP3_FOLDER / WORKER_FILE
    return folder.plug_ins / GIMP2_LIB / WORKER_FILE


def installed_worker(folder: GimpFolder) -> dict | None:
    """The worker description installed with the entry, if any."""
    try:
        return json.loads(worker_file(folder).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _install_gimp3(steps, folder, plugin_source, worker) -> None:
    source = plugin_source / GIMP3_FOLDER
    docs = plugin_source.parent / "docs"
    for required in (source / GIMP3_ENTRY, *(docs / name for name in HELP_FILES)):
        _require(required)
    target = folder.plug_ins / GIMP3_FOLDER
    for shared in SHARED_MODULES:
        _require(plugin_source / shared)
    steps.replace_tree(source, target)
    for shared, module in SHARED_MODULES.items():
        steps.copy_file(plugin_source / shared, target / module)
    steps.set_executable(target / GIMP3_ENTRY)
    for name in HELP_FILES:
        steps.copy_file(docs / name, target / HELP_FOLDER / name)
    steps.write_json(target / WORKER_FILE, worker)


def _install_gimp2(steps, folder, plugin_source, worker) -> None:
    entry = plugin_source / GIMP2_ENTRY
    docs = plugin_source.parent / "docs"
    modules = [plugin_source / GIMP3_FOLDER / module for module in HOST_MODULES]
    for required in (entry, *(plugin_source / shared for shared in SHARED_MODULES), *modules,
                     *(docs / name for name in HELP_FILES)):
        _require(required)
    for name in GIMP2_LOOSE:
        steps.remove(folder.plug_ins / name)
    lib = folder.plug_ins / GIMP2_LIB
    steps.replace_tree(plugin_source / GIMP2_LIB, lib)  # also drops Python 2.7's old caches
    for module in modules:
        steps.copy_file(module, lib / module.name)
    for shared, module in SHARED_MODULES.items():
        steps.copy_file(plugin_source / shared, lib / module)
    for name in HELP_FILES:
        steps.copy_file(docs / name, lib / HELP_FOLDER / name)
    steps.write_json(lib / WORKER_FILE, worker)
    steps.copy_file(entry, folder.plug_ins / GIMP2_ENTRY, executable=True)


def _installed_paths(folder: GimpFolder) -> list[Path]:
    if folder.major == 3:
        return [folder.plug_ins / GIMP3_FOLDER]
    return [folder.plug_ins / name for name in (GIMP2_ENTRY, GIMP2_LIB, *GIMP2_LOOSE)]


def _require(path: Path) -> None:
    if not path.is_file():
        raise InstallError(f"This download of the plug-in lacks {path}: download the complete "
                           "plug-in again and run its install/install.py.")


def _sandbox_label(folder: GimpFolder) -> str:
    return "" if folder.sandbox == "native" else f"{folder.sandbox}, "
