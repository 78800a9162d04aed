"""Signed-in sessions, kept server-side in ``data_dir/sessions.sqlite3``.

The web page's session cookie is a random token; the store keeps only its SHA-256, the user name,
when it was created and when it was last seen. A session ends after ``idle_s`` without a request
and ``lifetime_s`` after sign-in, whichever comes first, and at once when the user's password is
reset, the user is removed or the role changes (``UserStore`` calls :meth:`SessionStore.end_user`;
the CLI runs in another process, hence a file every process opens, not memory).

Example::

    store = SessionStore(settings.data_dir / "sessions.sqlite3", idle_s=8 * 3600, lifetime_s=7 * 86400)
    store.add(token, "zhang")
    store.user_of(token)      # "zhang", or None when unknown, idle too long, too old or ended
    store.end_user("zhang")   # 1: sessions ended

Not done here: the cookie itself (the web layer), any session data beyond the user name.
SQLite in WAL mode serialises writers across processes; every call opens its own connection,
so the store is safe to share between threads.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

logger = logging.getLogger(__name__)

FILE_NAME = "sessions.sqlite3"
TOUCH_EVERY_S = 60.0  # "last seen" is written at most once a minute per session


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """Sessions by token digest: ``add``, ``user_of``, ``end``, ``end_user``, ``purge``."""

    def __init__(
        self, path: Path, *, idle_s: float = 8 * 3600, lifetime_s: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.idle_s = idle_s
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._ready = False

    @classmethod
    def for_settings(cls, settings) -> SessionStore:
        return cls(Path(settings.data_dir) / FILE_NAME, idle_s=settings.session_idle_s,
                   lifetime_s=settings.session_lifetime_s)

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        if not self._ready:
            if new:
                self.path.chmod(0o600)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS sessions (digest TEXT PRIMARY KEY, user TEXT NOT NULL,"
                " created REAL NOT NULL, seen REAL NOT NULL)"
            )
            con.execute("CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user)")
            self._ready = True
        return con

    def add(self, token: str, user: str) -> None:
        """Start a session for ``user`` under ``token`` (a random secret made by the caller)."""
        now = self._clock()
        with closing(self._connect()) as con:
            con.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)", (_digest(token), user, now, now))
        logger.info("session started for %r", user)

    def user_of(self, token: str) -> str | None:
        """The user of a live session, else None (an expired session is deleted on the way)."""
        if not token:
            return None
        now, key = self._clock(), _digest(token)
        with closing(self._connect()) as con:
            row = con.execute("SELECT user, created, seen FROM sessions WHERE digest = ?", (key,)).fetchone()
            if row is None:
                return None
            user, created, seen = row
            if now - seen > self.idle_s or now - created > self.lifetime_s:
                con.execute("DELETE FROM sessions WHERE digest = ?", (key,))
                why = "idle" if now - seen > self.idle_s else "lifetime"
                logger.info("session of %r expired (%s)", user, why)
                return None
            if now - seen > TOUCH_EVERY_S:
                con.execute("UPDATE sessions SET seen = ? WHERE digest = ?", (now, key))
            return user

    def end(self, token: str) -> None:
        """End one session (sign-out)."""
        with closing(self._connect()) as con:
            con.execute("DELETE FROM sessions WHERE digest = ?", (_digest(token),))

    def end_user(self, user: str) -> int:
        """End every session of ``user``; returns how many there were."""
        with closing(self._connect()) as con:
            n = con.execute("DELETE FROM sessions WHERE user = ?", (user,)).rowcount
        if n:
            logger.info("ended %d session(s) of %r", n, user)
        return n

    def purge(self) -> int:
        """Delete expired sessions; returns how many."""
        now = self._clock()
        with closing(self._connect()) as con:
            return con.execute(
                "DELETE FROM sessions WHERE seen < ? OR created < ?", (now - self.idle_s, now - self.lifetime_s)
            ).rowcount
