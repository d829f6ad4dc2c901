"""The API key, endpoint, timeout, previews, prices and spending limit: environment first,
then the settings file, then defaults.

The settings file is the only place the key is ever written; it is created with mode 0600
(never widened and narrowed afterwards, so no other user can read it even for a moment).
A settings file decides where the key is sent, so one that another user owns or can change
(or whose folder they can change) is refused; one holding a key that others can read is made
private, with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import BadInputError, endpoint_has_userinfo, settings_place
from .files import replace_atomically, write_bytes

APP_NAME = "gpt-image-edit"
SETTINGS_FILE = "settings.json"
DEFAULT_BASE_URL = "https://api.wisgate.ai/v1"
DEFAULT_TIMEOUT = 300.0

CONFIG_ENV = "GPT_IMAGE_EDIT_CONFIG"
KEY_ENVS = ("GPT_IMAGE_EDIT_API_KEY", "WISDOM_GATE_KEY")
BASE_URL_ENV = "GPT_IMAGE_EDIT_BASE_URL"
TIMEOUT_ENV = "GPT_IMAGE_EDIT_TIMEOUT"
PARTIAL_IMAGES_ENV = "GPT_IMAGE_EDIT_PARTIAL_IMAGES"
MAX_COST_ENV = "GPT_IMAGE_EDIT_MAX_COST"
DEFAULT_PARTIAL_IMAGES = 2
MAX_PARTIAL_IMAGES = 3
FILE_SOURCE = "settings file"
DEFAULT_SOURCE = "default"
# Group and others may not change the settings (a planted endpoint would receive the key),
# nor read a key.
OTHERS_ANY = stat.S_IRWXG | stat.S_IRWXO

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class Settings:
    """What the client needs. `key_source` says where the key came from (an environment
    variable's name, "settings file", or "" when there is none)."""

    api_key: str | None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    key_source: str = ""
    # Live previews per edit (the API's partial_images, 0-3; 0: a plain request).
    partial_images: int = DEFAULT_PARTIAL_IMAGES
    # USD an edit (a run on the command line) may be estimated at; None: no limit.
    max_cost_usd: float | None = None
    # The price table, built-in prices with the `prices` setting over them (pricing.py).
    prices: dict | None = None

    def __repr__(self) -> str:
        key = f"<set from {self.key_source}>" if self.api_key else None
        return (f"Settings(api_key={key!r}, base_url={self.base_url!r}, "
                f"timeout={self.timeout!r}, key_source={self.key_source!r}, "
                f"partial_images={self.partial_images!r}, "
                f"max_cost_usd={self.max_cost_usd!r})")

    __str__ = __repr__


# Per kind of folder: the Windows variable and its fallback under the home folder, then the
# XDG variable and its fallback (macOS keeps both in Application Support).
PLATFORM_FOLDERS = {
    "config": ("APPDATA", ("AppData", "Roaming"), "XDG_CONFIG_HOME", (".config",)),
    "data": ("LOCALAPPDATA", ("AppData", "Local"), "XDG_DATA_HOME", (".local", "share")),
}


def config_dir(environ=os.environ, platform: str | None = None,
               home: Path | None = None) -> Path:
    """The platform's usual folder for this tool's configuration (the installer asks for
    other platforms and homes than its own)."""
    return _platform_folder("config", environ, platform, home)


def data_dir(environ=os.environ, platform: str | None = None,
             home: Path | None = None) -> Path:
    """The platform's usual folder for this tool's data: where the installer puts the
    worker, and the results history."""
    return _platform_folder("data", environ, platform, home)


def _platform_folder(kind: str, environ, platform: str | None, home: Path | None) -> Path:
    platform = sys.platform if platform is None else platform
    home = Path.home() if home is None else home
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_NAME
    windows, windows_fallback, xdg, xdg_fallback = PLATFORM_FOLDERS[kind]
    variable, fallback = ((windows, windows_fallback) if platform == "win32"
                          else (xdg, xdg_fallback))
    value = environ.get(variable)
    return (Path(value) if value else home.joinpath(*fallback)) / APP_NAME


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
    partial_images = _chosen(environ, stored, PARTIAL_IMAGES_ENV, "partial_images", path,
                             parse_partial_images, DEFAULT_PARTIAL_IMAGES)
    max_cost = _chosen(environ, stored, MAX_COST_ENV, "max_cost_usd", path, parse_max_cost,
                       None)
    return Settings(api_key=api_key, base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
                    timeout=timeout, key_source=key_source, partial_images=partial_images,
                    max_cost_usd=max_cost, prices=parse_prices(stored.get("prices"), path))


def _chosen(environ, stored: dict, env_name: str, key: str, path: Path, parse, default):
    """A setting from its environment variable, else the settings file, else `default`,
    checked by `parse(value, what)`."""
    text = _env(environ, env_name)
    if text is not None:
        return parse(text, f"{env_name} ({text!r})")
    if stored.get(key) is not None:
        return parse(stored[key], f"The setting '{key}' in {path}")
    return default


def parse_partial_images(value, what: str) -> int:
    """0 to 3 live previews, or a BadInputError whose sentence starts with `what`."""
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(
        value, bool) else ""
    if not text.isdigit() or not 0 <= int(text) <= MAX_PARTIAL_IMAGES:
        raise BadInputError(f"{what} is not a number of live previews from 0 to "
                            f"{MAX_PARTIAL_IMAGES}: set it to, for example, 2 (0 turns them "
                            "off).")
    return int(text)


def parse_max_cost(value, what: str) -> float:
    """A positive number of USD, or a BadInputError whose sentence starts with `what`."""
    try:
        cost = float(value)
    except (TypeError, ValueError):
        cost = math.nan
    if isinstance(value, bool) or not math.isfinite(cost) or cost <= 0:
        raise BadInputError(f"{what} is not a positive amount of US dollars: set it to, for "
                            "example, 0.50.")
    return cost


def parse_prices(value, path) -> dict:
    """The price table: the built-in one with the `prices` setting over it."""
    from .pricing import PriceError, merged_prices

    try:
        return merged_prices(value)
    except PriceError as error:
        raise BadInputError(f"The setting 'prices' in {path} is not usable ({error}): give "
                            "each model name prefix text_input, image_input and image_output "
                            "in USD per million tokens.") from None


def settings_summary(environ=os.environ) -> dict:
    """What a settings dialog shows: the file's values (defaults where it holds none),
    whether it holds a key and whether edits have any key at all; and under `effective`,
    every value an edit would use with where it comes from. Never the key itself, nor user
    info in an endpoint. A broken file is a `problem` (its sentence), not an error: the
    dialog that fixes it must still open."""
    path = config_path(environ)
    summary = {"path": str(path), "base_url": DEFAULT_BASE_URL,
               "default_base_url": DEFAULT_BASE_URL, "timeout": DEFAULT_TIMEOUT,
               "api_key_stored": False, "api_key_available": False, "problem": None}
    stored: dict = {}
    try:
        stored = _read_file(path)
        timeout = stored.get("timeout")
        summary.update(
            base_url=public_url(_stored_text(stored, "base_url", path) or DEFAULT_BASE_URL),
            timeout=DEFAULT_TIMEOUT if timeout is None else parse_timeout(
                timeout, f"The timeout in {path}"),
            api_key_stored=_stored_text(stored, "api_key", path) is not None,
            api_key_available=load_settings(environ).api_key is not None)
    except BadInputError as error:
        summary["problem"] = str(error)  # `stored` keeps what could be read, if anything
    summary["effective"] = _effective(environ, stored, path)
    if summary["problem"] is None and has_userinfo(summary["effective"]["base_url"]["raw"]):
        summary["problem"] = endpoint_has_userinfo()
    del summary["effective"]["base_url"]["raw"]
    return summary


def _effective(environ, stored: dict, path: Path) -> dict:
    """Each setting an edit uses, with its source: an environment variable, the settings
    file (with its path) or the default."""
    in_file = f"{FILE_SOURCE} {path}"
    effective = {}
    base_url = _env(environ, BASE_URL_ENV)
    if base_url is not None:
        source = f"environment variable {BASE_URL_ENV}"
    elif isinstance(stored.get("base_url"), str) and stored["base_url"].strip():
        base_url, source = stored["base_url"].strip(), in_file
    else:
        base_url, source = DEFAULT_BASE_URL, DEFAULT_SOURCE
    effective["base_url"] = {"value": public_url(base_url), "source": source, "raw": base_url}
    timeout_text = _env(environ, TIMEOUT_ENV)
    if timeout_text is not None:
        timeout, source = timeout_text, f"environment variable {TIMEOUT_ENV}"
    elif stored.get("timeout") is not None:
        timeout, source = stored["timeout"], in_file
    else:
        timeout, source = DEFAULT_TIMEOUT, DEFAULT_SOURCE
    try:
        value = parse_timeout(timeout, "The timeout")
    except BadInputError:
        value = None  # the problem's sentence says what is wrong with it
    effective["timeout"] = {"value": value, "source": source}
    key_source = next((f"environment variable {name}" for name in KEY_ENVS
                       if _env(environ, name)), None)
    if key_source is None and isinstance(stored.get("api_key"), str) and stored["api_key"].strip():
        key_source = in_file
    effective["api_key"] = {"set": key_source is not None, "source": key_source}
    for key, env_name, parse, default in (
            ("partial_images", PARTIAL_IMAGES_ENV, parse_partial_images,
             DEFAULT_PARTIAL_IMAGES),
            ("max_cost_usd", MAX_COST_ENV, parse_max_cost, None)):
        effective[key] = _effective_value(environ, stored, in_file, key, env_name, parse,
                                          default)
    effective["prices"] = _effective_prices(stored, path, in_file)
    return effective


def _effective_value(environ, stored, in_file, key, env_name, parse, default) -> dict:
    text = _env(environ, env_name)
    if text is not None:
        value, source = text, f"environment variable {env_name}"
    elif stored.get(key) is not None:
        value, source = stored[key], in_file
    else:
        return {"value": default, "source": DEFAULT_SOURCE}
    try:
        return {"value": parse(value, key), "source": source}
    except BadInputError:
        return {"value": None, "source": source}  # the problem's sentence says why


def _effective_prices(stored, path, in_file) -> dict:
    try:
        table = parse_prices(stored.get("prices"), path)
    except BadInputError:
        table = None
    return {"value": table,
            "source": f"built-in table and {in_file}" if stored.get("prices") is not None
            else DEFAULT_SOURCE}


def has_userinfo(url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False


def public_url(url: str) -> str:
    """`url` without any user name or password, fit to be shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def save_settings(changes: dict, environ=os.environ) -> Path:
    """Merge `changes` into the settings file (a value of None removes that setting) and
    write it atomically with mode 0600. Returns the file's path."""
    path = config_path(environ)
    if "timeout" in changes and changes["timeout"] is not None:
        changes = dict(changes, timeout=parse_timeout(changes["timeout"], "The timeout"))
    if changes.get("partial_images") is not None:
        changes = dict(changes, partial_images=parse_partial_images(
            changes["partial_images"], f"partial_images ({changes['partial_images']!r})"))
    if changes.get("max_cost_usd") is not None:
        changes = dict(changes, max_cost_usd=parse_max_cost(
            changes["max_cost_usd"], f"max_cost_usd ({changes['max_cost_usd']!r})"))
    if changes.get("prices") is not None:
        parse_prices(changes["prices"], "the settings to save")  # refused before writing
    _check_folder(path.parent)
    try:
        stored = _read_file(path)
    except BadInputError:
        # An unreadable or untrusted file cannot be merged: saving anew is how it gets
        # fixed (the new file is this user's, mode 0600).
        stored = {}
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
        status = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise BadInputError(f"The settings file {path} cannot be read ({_reason(error)}): "
                            f"fix its permissions or delete it.") from None
    _check_folder(path.parent)
    _check_file(path, status)
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
    if stored.get("api_key") and status.st_mode & OTHERS_ANY:
        _make_private(path)
    return stored


def _trusted_owner(uid: int) -> bool:
    """This user, or the administrator (who can change anything anyway)."""
    return uid in (os.getuid(), 0)


def _others_can_write(status: os.stat_result) -> bool:
    """Writable by others, or by a group with anyone but this user in it (a user private
    group, the default on Ubuntu and Fedora with umask 002, is this user alone)."""
    if status.st_mode & stat.S_IWOTH:
        return True
    if not status.st_mode & stat.S_IWGRP:
        return False
    try:
        import grp
        import pwd

        group = grp.getgrgid(status.st_gid)
        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return True
    private = (status.st_gid == os.getgid() and group.gr_name == user
               and set(group.gr_mem) <= {user})
    return not private


def _check_file(path: Path, status: os.stat_result) -> None:
    if not hasattr(os, "getuid"):
        return  # Windows: the profile folder's ACLs are the protection
    if not _trusted_owner(status.st_uid):
        raise BadInputError(
            f"The settings file {path} belongs to another user, who could have set where "
            f"the key is sent, so it is not used: delete it, or save the settings again in "
            f"{settings_place()} to make a file of your own.")
    if _others_can_write(status):
        raise BadInputError(
            f"The settings file {path} can be changed by other users, who could set where the "
            f"key is sent, so it is not used: save the settings again in {settings_place()} "
            "(which makes it private) or run chmod go-w on it.")


def _check_folder(folder: Path) -> None:
    """The settings folder must not let others replace the file (a sticky folder such as
    /tmp does not: others cannot rename or delete what is not theirs)."""
    if not hasattr(os, "getuid"):
        return
    try:
        status = folder.stat()
    except OSError:
        return  # not there yet: it is made 0700 when the settings are saved
    sticky = status.st_mode & stat.S_ISVTX
    if not _trusted_owner(status.st_uid) or (_others_can_write(status) and not sticky):
        raise BadInputError(
            f"The settings folder {folder} can be changed by other users, who could plant "
            "settings that send the key elsewhere, so it is not used: run chmod go-w on it "
            "(it must be yours), or name another file in GPT_IMAGE_EDIT_CONFIG.")


def _make_private(path: Path) -> None:
    try:
        os.chmod(path, 0o600)
    except OSError:
        return
    warning = (f"The settings file {path} holds the API key and was readable by other users: "
               "it is now private (mode 0600); consider replacing the key.")
    log.info("%s", warning)
    if str(path) not in _warned:
        _warned.add(str(path))
        print(warning, file=sys.stderr)


def _reason(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return getattr(error, "strerror", None) or type(error).__name__


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    replace_atomically(path, write_bytes(text.encode("utf-8")))
