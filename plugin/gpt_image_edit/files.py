"""Writing files so that a reader never sees half of one: results, manifests, settings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_bytes(data: bytes):
    """A writer for replace_atomically that writes `data` as it is."""
    return lambda stream: stream.write(data)


def replace_atomically(path: Path, write) -> None:
    """`write(stream)` into a temporary file beside `path`, then rename it to `path`.
    mkstemp creates the file with mode 0600, so a settings file is never readable by
    others, not even for a moment."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=str(path.parent))
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(Path(temporary))
        raise


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
