"""Where GIMP keeps its user folders, on every platform and in every packaging.

Everything takes the platform (a `sys.platform` value), the environment and the home
folder as arguments, so the discovery for Linux, macOS and Windows can be tested anywhere.
A folder counts only when it exists: GIMP creates it the first time it runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

FLATPAK_APP = "org.gimp.GIMP"
NATIVE, FLATPAK, SNAP = "native", "flatpak", "snap"
_VERSION_NAME = re.compile(r"^(\d+)\.(\d+)$")


@dataclass(frozen=True)
class GimpFolder:
    """A GIMP user folder: `major` is 2 (GIMP 2.10) or 3 (GIMP 3.x); `version` is for people
    ("3.2"; just "3" when the folder's name does not say); `sandbox` is NATIVE, FLATPAK or
    SNAP, which decides where the worker must live to be runnable by that GIMP."""

    path: Path
    major: int
    version: str
    sandbox: str

    @property
    def plug_ins(self) -> Path:
        return self.path / "plug-ins"


def parse_version(text: str) -> tuple[int, str] | None:
    """(major, version) for a supported GIMP version name: 2.10, or 3.x with any x."""
    match = _VERSION_NAME.match(text)
    if not match:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    if (major, minor) == (2, 10) or major == 3:
        return major, f"{major}.{minor}"
    return None


def flatpak_home(home: Path) -> Path:
    """The Flatpak GIMP's own folder; the sandbox sees it at this same path."""
    return home / ".var" / "app" / FLATPAK_APP


def snap_home(home: Path) -> Path:
    return home / "snap" / "gimp"


def sandbox_of(path: Path, home: Path) -> str:
    """Which GIMP packaging a user folder belongs to, judged by where it lies."""
    for sandbox, root in ((FLATPAK, flatpak_home(home)), (SNAP, snap_home(home))):
        if _is_within(path, root):
            return sandbox
    return NATIVE


def find_gimp_folders(platform: str, environ, home: Path) -> list[GimpFolder]:
    """Every existing GIMP 2.10 and 3.x user folder, each once, in a stable order."""
    found: list[GimpFolder] = []
    for parent in _version_parents(platform, environ, home):
        found += _versions_in(parent, home)
    found += _old_layout(platform, home)
    found += _env_overrides(environ, home)
    return _unique(found)


def searched_places(platform: str, environ, home: Path) -> list[Path]:
    """Where find_gimp_folders looks, for the sentence that says nothing was found there."""
    places = _version_parents(platform, environ, home)
    if platform not in ("win32", "darwin"):
        places.append(home / ".gimp-2.10")
    for variable in ("GIMP3_DIRECTORY", "GIMP2_DIRECTORY"):
        if environ.get(variable):
            places.append(Path(environ[variable]))
    return places


def folder_from_dir(path: Path, home: Path, version: str | None = None) -> GimpFolder | None:
    """The GimpFolder for a folder named by the user (--gimp-dir): its version from
    `version` if given, else from the folder's name; None when neither says."""
    parsed = (3, "3") if version == "3" else parse_version(version or path.name)
    if parsed is None:
        return None
    return GimpFolder(path, parsed[0], parsed[1], sandbox_of(path, home))


def _version_parents(platform: str, environ, home: Path) -> list[Path]:
    """The folders holding one sub-folder per GIMP version (GIMP/2.10, GIMP/3.0, ...)."""
    if platform == "win32":
        appdata = environ.get("APPDATA")
        return [(Path(appdata) if appdata else home / "AppData" / "Roaming") / "GIMP"]
    if platform == "darwin":
        return [home / "Library" / "Application Support" / "GIMP"]
    xdg = environ.get("XDG_CONFIG_HOME")
    return [
        (Path(xdg) if xdg else home / ".config") / "GIMP",
        flatpak_home(home) / "config" / "GIMP",
        snap_home(home) / "current" / ".config" / "GIMP",
    ]


def _versions_in(parent: Path, home: Path) -> list[GimpFolder]:
    try:
        children = sorted(parent.iterdir())
    except OSError:
        return []
    folders = []
    for child in children:
        parsed = parse_version(child.name)
        if parsed and child.is_dir():
            folders.append(GimpFolder(child, parsed[0], parsed[1], sandbox_of(child, home)))
    return folders


def _old_layout(platform: str, home: Path) -> list[GimpFolder]:
    """GIMP 2.10 on Linux still uses ~/.gimp-2.10 when it exists from older setups."""
    old = home / ".gimp-2.10"
    if platform in ("win32", "darwin") or not old.is_dir():
        return []
    return [GimpFolder(old, 2, "2.10", NATIVE)]


def _env_overrides(environ, home: Path) -> list[GimpFolder]:
    """GIMP3_DIRECTORY and GIMP2_DIRECTORY name the user folder itself."""
    folders = []
    for variable, major, fallback in (("GIMP3_DIRECTORY", 3, "3"), ("GIMP2_DIRECTORY", 2, "2.10")):
        value = environ.get(variable)
        if not value or not Path(value).is_dir():
            continue
        path = Path(value)
        parsed = parse_version(path.name)
        version = parsed[1] if parsed and parsed[0] == major else fallback
        folders.append(GimpFolder(path, major, version, sandbox_of(path, home)))
    return folders


def _unique(folders: list[GimpFolder]) -> list[GimpFolder]:
    seen = set()
    unique = []
    for folder in folders:
        key = os.path.realpath(folder.path)
        if key not in seen:
            seen.add(key)
            unique.append(folder)
    return unique


def _is_within(path: Path, root: Path) -> bool:
    path_text, root_text = os.path.abspath(path), os.path.abspath(root)
    return path_text == root_text or path_text.startswith(root_text.rstrip(os.sep) + os.sep)
