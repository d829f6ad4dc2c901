"""The log file, and the redaction that keeps the API key out of it and out of every message.

GIMP on Windows runs plug-ins with pythonw, which loses stdout and stderr, so every log
line goes to gpt-image-edit.log beside settings.json. Any text that may carry a secret
(a server's echo, an exception, a log record) passes through `redact` first.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

from .errors import EditError
from .settings import KEY_ENVS, config_path, load_settings

LOG_FILE = "gpt-image-edit.log"
LOGGER_NAME = "gpt_image_edit"
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 2
REDACTED = "[redacted]"
BEARER = re.compile(r"(Bearer\s+)[^\s'\",;]+", re.IGNORECASE)
# Shorter "keys" would redact ordinary words; real keys are far longer.
MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """From now on, `redact` (and so every log line) hides `secret`."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:
        _secrets.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret and any `Bearer <token>` replaced."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return BEARER.sub(r"\1" + REDACTED, text)


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
        register_secret(load_settings(environ).api_key)
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


def _file_handler(path: Path) -> logging.Handler | None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created private: the log holds prompts and file names, if never the key.
        os.close(os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = logging.handlers.RotatingFileHandler(
            str(path), maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError:
        return None  # a read-only home must not stop an edit; there is just no log
    handler.gpt_image_edit_path = path
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    return handler
