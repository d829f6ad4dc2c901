"""The log file, and the redaction that keeps the API key out of it and out of every message.

GIMP on Windows runs plug-ins with pythonw, which loses stdout and stderr, so every log
line goes to gpt-image-edit.log beside settings.json. Any text that may carry a secret
(a server's echo, an exception, a log record) passes through `redact` first: registered
secrets, `Bearer` tokens, `Authorization` values and user info in addresses. The log and its
rotated copies are private (0600): they hold prompts and file names.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from .errors import EditError
from .settings import KEY_ENVS, config_path, load_settings

LOG_FILE = "gpt-image-edit.log"
LOGGER_NAME = "gpt_image_edit"
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 2
REDACTED = "[redacted]"
# A token ends before whitespace, quotes and separators, and before punctuation that ends a
# sentence, so that "... Bearer sk-abc." keeps its full stop.
_TOKEN = r"[^\s'\",;()<>]+?(?=[.!?:)]*(?:[\s'\",;()<>]|$))"
BEARER = re.compile(r"(Bearer\s+)" + _TOKEN, re.IGNORECASE)
AUTHORIZATION = re.compile(r"(Authorization['\"]?\s*[:=]\s*['\"]?)(?:(?!Bearer\b)\w+\s+)?"
                           + _TOKEN, re.IGNORECASE)
USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s/?#@'\"<>]*@", re.IGNORECASE)
# Shorter "keys" would redact ordinary words; real keys are far longer.
MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """From now on, `redact` (and so every log line) hides `secret`."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:
        _secrets.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret, any `Bearer <token>`, any `Authorization`
    value and any user info in an address replaced; the sentence around stays whole."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = USERINFO.sub(r"\1" + REDACTED + "@", text)
    text = AUTHORIZATION.sub(lambda match: match.group(1) + REDACTED
                             if not match.group(0)[len(match.group(1)):].lower()
                             .startswith("bearer") else match.group(0), text)
    return BEARER.sub(r"\1" + REDACTED, text)


def register_userinfo(url: str) -> None:
    """Hide the user name and password of an address wherever they appear on their own."""
    try:
        parts = urlsplit(url)
        names = (parts.username, parts.password)
    except ValueError:
        return
    for name in names:
        register_secret(name)


def log_path(environ=os.environ) -> Path:
    return config_path(environ).with_name(LOG_FILE)


class RedactingFilter(logging.Filter):
    """Rewrites each record so its message, traceback and stack carry no secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup_logging(environ=os.environ, level: int = logging.INFO) -> Path:
    """Send the package's log records to the log file (rotating, small), redacted.
    Safe to call more than once. Returns the log file's path."""
    for name in KEY_ENVS:
        register_secret(environ.get(name, "").strip())
    try:
        settings = load_settings(environ)
        register_secret(settings.api_key)
        register_userinfo(settings.base_url)
    except EditError:
        pass  # an unreadable settings file holds no key we could hide; it is reported elsewhere
    path = log_path(environ)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    for handler in list(logger.handlers):
        installed = getattr(handler, "gpt_image_edit_path", None)
        if installed == path:
            return path
        if installed is not None:  # set up before for another settings folder
            logger.removeHandler(handler)
            handler.close()
    handler = _file_handler(path)
    if handler is not None:
        logger.addHandler(handler)
    return path


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file, the ones started after a rotation included, is
    created with mode 0600 whatever the umask."""

    def _open(self):
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.chmod(self.baseFilename, 0o600)  # also one made earlier with a wider mode
        except OSError:
            pass
        return os.fdopen(descriptor, self.mode, encoding=self.encoding, errors=self.errors)


def _file_handler(path: Path) -> logging.Handler | None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = PrivateRotatingFileHandler(
            str(path), maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError:
        return None  # a read-only home must not stop an edit; there is just no log
    handler.gpt_image_edit_path = path
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    return handler
