"""The index writer lock: one reindex (or rollback) at a time, many readers.

``writer_lock(index_dir)`` takes an exclusive ``flock`` on ``index_dir/writer.lock`` without
waiting; a second writer gets :class:`IndexBusyError` at once. The lock belongs to the open
file description, so the kernel drops it when the holder exits for any reason (SIGKILL
included): a crashed writer never blocks the next one, and there is no stale-lock clean-up.
Two threads of one process also exclude each other (each opens its own descriptor).

Readers take no lock: they read ``CURRENT`` and a version folder that is never modified
after it is renamed into place. Does not work across machines on NFS (flock is local).
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import IndexBusyError

logger = logging.getLogger(__name__)

LOCK_NAME = "writer.lock"


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "?"
    except OSError:
        return "?"


@contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Hold the writer lock of ``index_dir`` for the block; raise IndexBusyError if taken."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError (EWOULDBLOCK): someone else holds it
        os.close(fd)
        holder = _holder(path)
        raise IndexBusyError(
            f"另一个索引任务正在进行（进程 {holder}），请等它完成后再试",
            f"index writer lock {path} is held by pid {holder}",
        ) from None
    try:
        # who holds it, for the message above; written only after the lock is ours
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def try_writer_lock(index_dir: Path):
    """Context manager like :func:`writer_lock` that yields False instead of raising when busy."""

    @contextmanager
    def _cm() -> Iterator[bool]:
        try:
            cm = writer_lock(index_dir)
            cm.__enter__()
        except IndexBusyError:
            yield False
            return
        try:
            yield True
        finally:
            cm.__exit__(None, None, None)

    return _cm()
