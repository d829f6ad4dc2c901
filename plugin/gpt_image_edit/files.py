"""Writing files so that a reader never sees half of one: results, manifests, settings.

Every file is written under a temporary name beside its final one and then renamed (or,
for results that must not overwrite anything, hard-linked) into place, so a name appears
only with its whole content. The temporary files in progress are known here: when the
process is interrupted (Ctrl-C, SIGTERM), `abandon_writes` removes them, and no write
started or finished afterwards, so nothing partial or `*.tmp` is left whatever thread was
writing.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from pathlib import Path

PRIVATE = 0o600
FULL_DISK_ERRORS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})

_lock = threading.Lock()
_in_progress: set[Path] = set()
_abandoned = False
_usual_mode: int | None = None


class Abandoned(Exception):
    """The process is stopping: no file may be started or put in place any more."""


def write_bytes(data: bytes):
    """A writer for replace_atomically that writes `data` as it is."""
    return lambda stream: stream.write(data)


def write_temporary(folder: Path, name: str, write, mode: int = PRIVATE,
                    sync: bool = True) -> Path:
    """`write(stream)` into a new temporary file in `folder` (named after `name`), synced
    (unless `sync` is false: a job's raw result, read at once and deleted, needs no trip
    to the disk), with `mode`; returns its path. It is removed on any failure, and by
    abandon_writes."""
    with _lock:
        if _abandoned:
            raise Abandoned()
        # mkstemp creates the file with mode 0600, so a settings file is never readable by
        # others, not even for a moment.
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp",
                                             dir=str(folder))
        path = Path(temporary)
        _in_progress.add(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            if mode != PRIVATE:
                os.fchmod(stream.fileno(), mode)
            if sync:
                os.fsync(stream.fileno())
    except BaseException:
        discard(path)
        raise
    return path


def replace_atomically(path: Path, write, mode: int = PRIVATE, sync: bool = True) -> None:
    """`write(stream)` into a temporary file beside `path`, then rename it to `path`."""
    temporary = write_temporary(path.parent, path.name, write, mode, sync)
    try:
        with _lock:
            if _abandoned:
                raise Abandoned()
            os.replace(temporary, path)
            _in_progress.discard(temporary)
    except BaseException:
        discard(temporary)
        raise


def link_without_overwriting(temporary: Path, path: Path) -> bool:
    """Give the finished `temporary` file the name `path` unless that name exists (False).
    A hard link never replaces anything and never shows an empty file; where the file
    system has none, an exclusive create and a rename do nearly as well."""
    with _lock:
        if _abandoned:
            raise Abandoned()
        try:
            os.link(temporary, path)
            return True
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                                   errno.EMLINK, errno.ENOSYS):
                raise
        try:
            os.close(os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
        except FileExistsError:
            return False
        os.replace(temporary, path)
        return True


def discard(temporary: Path) -> None:
    """Remove a temporary file and forget it."""
    remove_quietly(temporary)
    with _lock:
        _in_progress.discard(temporary)


def abandon_writes() -> None:
    """Remove every temporary file in progress and refuse any further write: the process
    is about to stop."""
    global _abandoned
    with _lock:
        _abandoned = True
        for path in _in_progress:
            remove_quietly(path)
        _in_progress.clear()


def usual_mode() -> int:
    """The mode a new file gets from the user's umask (0644 under umask 022). Read once,
    early, on the main thread (umask can only be read by setting it)."""
    global _usual_mode
    if _usual_mode is None:
        mask = os.umask(0o022)
        os.umask(mask)
        _usual_mode = 0o666 & ~mask
    return _usual_mode


def is_full_disk(error: OSError) -> bool:
    return error.errno in FULL_DISK_ERRORS


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
