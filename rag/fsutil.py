"""Durable file writes shared by the stores (users, documents, question bank, index).

``write_temp`` + ``os.replace`` is the one way we replace a file: readers see the old or the new
content, never half of it. It does not lock: callers that read-modify-write hold their own lock.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path, *, strict: bool = False) -> None:
    """Make a rename in ``folder`` durable. Best effort unless ``strict`` (the index publish)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if strict:
            raise
    finally:
        os.close(fd)


def write_temp(folder: Path, data: bytes, *, prefix: str = ".tmp-", mode: int | None = None) -> Path:
    """Write ``data`` to a new fsynced temp file in ``folder`` (same file system as the target)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one step: temp file, fsync, ``os.replace``, fsync the folder."""
    tmp = write_temp(path.parent, data, prefix=f".{path.name}.", mode=mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
