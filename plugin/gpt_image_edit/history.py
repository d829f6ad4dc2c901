"""The results history: every picture the API returned, kept for a while.

A result is paid for when it arrives. The worker keeps a copy here as soon as it has it,
before the host places anything, so a GIMP that quits, cancels or crashes afterwards loses
nothing. `history/` in the user's data folder for gpt-image-edit holds the pictures (mode
0600) and `history.jsonl`, one JSON line a picture (time, prompt, image name, model,
variant, file), oldest first. Pictures older than 7 days go, and the oldest go while the
pictures take more than 500 MB.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from pathlib import Path

from .files import replace_atomically, write_bytes
from .settings import data_dir

INDEX = "history.jsonl"
KEEP_SECONDS = 7 * 24 * 3600
KEEP_BYTES = 500 * 1000 * 1000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

log = logging.getLogger(__name__)


def history_dir(environ=os.environ, platform: str | None = None,
                home: Path | None = None) -> Path:
    """`history/` in the data folder (where the installer puts the worker)."""
    return data_dir(environ, platform, home) / "history"


def keep(pictures, prompt: str, image_name: str | None, model: str,
         folder: Path | None = None, now: float | None = None) -> list[Path]:
    """Keep each picture (PNG bytes, or a Pillow image) with its record; returns the files.
    A history that cannot be written is logged, never a failed edit."""
    folder = history_dir() if folder is None else folder
    now = time.time() if now is None else now
    kept = []
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        batch = uuid.uuid4().hex[:8]
        for variant, picture in enumerate(pictures, start=1):
            path = folder / f"{stamp}-{batch}-{variant}.png"
            replace_atomically(path, _writer(picture))
            kept.append(path)
            _append(folder / INDEX, {"time": round(now, 3), "prompt": prompt,
                                     "image": image_name, "model": model,
                                     "variant": variant, "file": path.name})
        prune(folder, now)
    except OSError as error:
        log.warning("The results history in %s could not be written: %s", folder, error)
    return kept


def entries(folder: Path | None = None) -> list[dict]:
    """The records whose picture is still there, newest first, each with its `path`."""
    folder = history_dir() if folder is None else folder
    found = []
    for record in _read_index(folder / INDEX):
        path = folder / str(record.get("file", ""))
        if record.get("file") and path.is_file():
            found.append({**record, "path": str(path)})
    return sorted(found, key=lambda record: record.get("time", 0), reverse=True)


def prune(folder: Path, now: float) -> None:
    """Drop pictures older than KEEP_SECONDS, then the oldest while over KEEP_BYTES."""
    records = _read_index(folder / INDEX)
    kept, size = [], 0
    for record in sorted(records, key=lambda record: record.get("time", 0), reverse=True):
        path = folder / str(record.get("file", ""))
        try:
            picture_size = path.stat().st_size
        except OSError:
            continue
        if now - record.get("time", 0) > KEEP_SECONDS or size + picture_size > KEEP_BYTES:
            path.unlink(missing_ok=True)
            continue
        size += picture_size
        kept.append(record)
    if len(kept) != len(records):
        lines = "".join(json.dumps(record) + "\n" for record in reversed(kept))
        replace_atomically(folder / INDEX, write_bytes(lines.encode("utf-8")))


def _writer(picture):
    """PNG bytes as they are; any other picture file (a router may answer JPEG or WebP)
    or a Pillow image encoded as PNG, as the history's file names say."""
    if isinstance(picture, (bytes, bytearray)):  # a url answer's body is a bytearray
        picture = bytes(picture)
        if picture.startswith(PNG_SIGNATURE):
            return write_bytes(picture)
        from PIL import Image

        with Image.open(io.BytesIO(picture)) as opened:
            picture = opened.copy()  # decoded now: a broken file fails here, not half-written
    return lambda stream: picture.save(stream, "PNG", compress_level=1)


def _append(index: Path, record: dict) -> None:
    # One write of one line in append mode: concurrent edits never interleave a line.
    descriptor = os.open(index, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (json.dumps(record) + "\n").encode("utf-8"))
    finally:
        os.close(descriptor)


def _read_index(index: Path) -> list[dict]:
    try:
        lines = index.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a full disk: the others still count
        if isinstance(record, dict) and isinstance(record.get("time", 0), (int, float)):
            records.append(record)
    return records
