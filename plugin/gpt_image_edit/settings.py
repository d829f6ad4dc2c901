"""The API key, endpoint and timeout: environment first, then the settings file, then defaults.

The settings file is the only place the key is ever written; it is created with mode 0600
(never widened and narrowed afterwards, so no other user can read it even for a moment).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInputError, settings_place
from .files import replace_atomically, write_bytes

APP_NAME = "gpt-image-edit"
SETTINGS_FILE = "settings.json"
DEFAULT_BASE_URL = "https://api.wisgate.ai/v1"
DEFAULT_TIMEOUT = 300.0

CONFIG_ENV = "GPT_IMAGE_EDIT_CONFIG"
KEY_ENVS = ("GPT_IMAGE_EDIT_API_KEY", "WISDOM_GATE_KEY")
BASE_URL_ENV = "GPT_IMAGE_EDIT_BASE_URL"
TIMEOUT_ENV = "GPT_IMAGE_EDIT_TIMEOUT"
FILE_SOURCE = "settings file"


@dataclass(frozen=True)
class Settings:
    """What the client needs. `key_source` says where the key came from (an environment
    variable's name, "settings file", or "" when there is none)."""

    api_key: str | None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    key_source: str = ""

    def __repr__(self) -> str:
        key = f"<set from {self.key_source}>" if self.api_key else None
        return (f"Settings(api_key={key!r}, base_url={self.base_url!r}, "
                f"timeout={self.timeout!r}, key_source={self.key_source!r})")

    __str__ = __repr__


def config_dir(environ=os.environ, platform: str | None = None,
               home: Path | None = None) -> Path:
    """The platform's usual folder for this tool's configuration (the installer asks for
    other platforms and homes than its own)."""
    platform = sys.platform if platform is None else platform
    home = Path.home() if home is None else home
    if platform == "win32":
        appdata = environ.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = environ.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg else home / ".config"
    return base / APP_NAME


def config_path(environ=os.environ, platform: str | None = None,
                home: Path | None = None) -> Path:
    """$GPT_IMAGE_EDIT_CONFIG, else settings.json in the platform's config folder."""
    override = environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return config_dir(environ, platform, home) / SETTINGS_FILE


def load_settings(environ=os.environ) -> Settings:
    path = config_path(environ)
    stored = _read_file(path)
    api_key, key_source = _api_key(environ, stored, path)
    base_url = _env(environ, BASE_URL_ENV) or _stored_text(stored, "base_url", path)
    timeout_text = _env(environ, TIMEOUT_ENV)
    if timeout_text is not None:
        timeout = parse_timeout(timeout_text, f"{TIMEOUT_ENV} ({timeout_text!r})")
    elif stored.get("timeout") is not None:
        timeout = parse_timeout(stored["timeout"], f"The timeout in {path}")
    else:
        timeout = DEFAULT_TIMEOUT
    return Settings(api_key=api_key, base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
                    timeout=timeout, key_source=key_source)


def settings_summary(environ=os.environ) -> dict:
    """What a settings dialog shows: the file's values (defaults where it holds none),
    whether it holds a key and whether edits have any key at all. Never the key itself.
    A broken file is a `problem` (its sentence), not an error: the dialog that fixes it
    must still open."""
    path = config_path(environ)
    summary = {"path": str(path), "base_url": DEFAULT_BASE_URL,
               "default_base_url": DEFAULT_BASE_URL, "timeout": DEFAULT_TIMEOUT,
               "api_key_stored": False, "api_key_available": False, "problem": None}
    try:
        stored = _read_file(path)
        timeout = stored.get("timeout")
        summary.update(
            base_url=_stored_text(stored, "base_url", path) or DEFAULT_BASE_URL,
            timeout=DEFAULT_TIMEOUT if timeout is None else parse_timeout(
                timeout, f"The timeout in {path}"),
            api_key_stored=_stored_text(stored, "api_key", path) is not None,
            api_key_available=load_settings(environ).api_key is not None)
    except BadInputError as error:
        summary["problem"] = str(error)
    return summary


def save_settings(changes: dict, environ=os.environ) -> Path:
    """Merge `changes` into the settings file (a value of None removes that setting) and
    write it atomically with mode 0600. Returns the file's path."""
    path = config_path(environ)
    if "timeout" in changes and changes["timeout"] is not None:
        changes = dict(changes, timeout=parse_timeout(changes["timeout"], "The timeout"))
    try:
        stored = _read_file(path)
    except BadInputError:
        stored = {}  # an unreadable file cannot be merged; saving anew is how it gets fixed
    stored.update(changes)
    stored = {name: value for name, value in stored.items() if value is not None}
    _write_private(path, json.dumps(stored, indent=2, sort_keys=True) + "\n")
    return path


def parse_timeout(value, what: str) -> float:
    """A positive number of seconds, or a BadInputError whose sentence starts with `what`."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise BadInputError(f"{what} is not a positive number of seconds: set it to, "
                            "for example, 300.")
    return seconds


def _api_key(environ, stored: dict, path: Path) -> tuple[str | None, str]:
    for name in KEY_ENVS:
        value = _env(environ, name)
        if value:
            return value, name
    value = _stored_text(stored, "api_key", path)
    return (value, FILE_SOURCE) if value else (None, "")


def _env(environ, name: str) -> str | None:
    """An environment setting; an empty or blank variable counts as not set."""
    value = environ.get(name, "").strip()
    return value or None


def _stored_text(stored: dict, name: str, path: Path) -> str | None:
    value = stored.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    raise BadInputError(f"The setting '{name}' in {path} is not text: correct it in "
                        f"{settings_place()} or delete the file.")


def _read_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"The settings file {path} cannot be read ({_reason(error)}): "
                            f"fix its permissions or delete it.") from None
    try:
        stored = json.loads(text)
    except ValueError:
        stored = None
    if not isinstance(stored, dict):
        raise BadInputError(f"The settings file {path} is not valid JSON: save the settings "
                            f"again in {settings_place()} or delete the file.")
    return stored


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    replace_atomically(path, write_bytes(text.encode("utf-8")))
