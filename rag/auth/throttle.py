"""Sign-in throttling: failures counted per key (a client address, an account, a known browser).

After ``limit`` failures within ``window_s`` seconds a key is locked for ``lock_s`` seconds; each
further lock of the same key doubles that, up to ``max_lock_s``, and the count of locks is
forgotten after ``forget_s`` without failures. So a guesser gets 5 tries a minute at first and
~5 per ``max_lock_s`` later, while a real user locked out by someone else waits at most
``max_lock_s`` (5 minutes by default), and never on a browser that signed in before (the web
layer throttles such a browser under its own key, not under the address or the account).

Example::

    t = LoginThrottle()
    keys = ["addr:10.0.0.7", "user:zhang"]
    if t.locked_for(keys):        # seconds to wait, 0.0 when free
        ...                       # answer 429 without checking the password
    t.failed(keys)                # after a wrong password
    t.succeeded(keys)             # after a right one: the count starts again

Memory is bounded: at most ``max_keys`` keys are kept (the stalest go first). Not done here:
anything persistent (a restart forgets the counts), CAPTCHAs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class _State:
    failures: deque = field(default_factory=deque)
    locked_until: float = 0.0
    strikes: int = 0
    last: float = 0.0


class LoginThrottle:
    def __init__(
        self, *, limit: int = 5, window_s: float = 60.0, lock_s: float = 30.0, max_lock_s: float = 300.0,
        forget_s: float = 900.0, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window_s, self.lock_s, self.max_lock_s = limit, window_s, lock_s, max_lock_s
        self.forget_s, self.max_keys, self._clock = forget_s, max_keys, clock
        self._keys: dict[str, _State] = {}
        self._mutex = threading.Lock()

    def locked_for(self, keys: Iterable[str]) -> float:
        """Seconds until every key in ``keys`` is free again (0.0 when none is locked)."""
        now = self._clock()
        with self._mutex:
            return max([0.0] + [s.locked_until - now for k in keys if (s := self._keys.get(k))])

    def failed(self, keys: Iterable[str]) -> float:
        """Count a failure for each key; returns the longest lock this failure started (0.0: none)."""
        now, longest = self._clock(), 0.0
        with self._mutex:
            for key in keys:
                s = self._keys.pop(key, None) or _State()
                self._keys[key] = s  # re-inserted: the dict stays ordered by last failure
                if now - s.last > self.forget_s:
                    s.strikes = 0
                s.last = now
                while s.failures and now - s.failures[0] > self.window_s:
                    s.failures.popleft()
                s.failures.append(now)
                if len(s.failures) >= self.limit:
                    s.strikes += 1
                    lock = min(self.lock_s * 2 ** (s.strikes - 1), self.max_lock_s)
                    s.locked_until = now + lock
                    s.failures.clear()
                    longest = max(longest, lock)
                    logger.warning("sign-in locked for %s: %d failures, %.0f s (lock %d)", key, self.limit, lock, s.strikes)
            while len(self._keys) > self.max_keys:  # the stalest first
                self._keys.pop(next(iter(self._keys)))
        return longest

    def succeeded(self, keys: Iterable[str]) -> None:
        """Forget the failures of ``keys`` (a right password)."""
        with self._mutex:
            for key in keys:
                self._keys.pop(key, None)
