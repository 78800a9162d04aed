"""API keys: one or more per user, shown once when made, stored as their sha256.

A key is ``rag-`` + 32 random bytes (URL-safe base64). It carries 256 bits of entropy, so a plain
sha256 is enough to store it (a slow password hash would only slow every request down); the key
is looked up by its hash. ``prefix`` (the first 12 characters) names a key in lists and logs.

Not done here: expiry dates, scopes narrower than the user's role.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ..errors import InputError
from .engine import Database
from .models import ApiKey, utcnow

KEY_PREFIX = "rag-"
SHOWN_CHARS = 12
LAST_USED_EVERY = timedelta(minutes=1)  # do not write on every request


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: int
    user: str
    label: str
    prefix: str
    created: datetime
    last_used: datetime | None
    revoked: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked is None


def _info(k: ApiKey) -> KeyInfo:
    return KeyInfo(k.id, k.user_name, k.label, k.prefix, k.created, k.last_used, k.revoked)


class ApiKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, user: str, label: str = "") -> tuple[KeyInfo, str]:
        """Make a key for ``user``; return its record and the key itself (not kept anywhere)."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            row = ApiKey(user_name=user, label=label[:100], prefix=key[:SHOWN_CHARS], key_hash=hash_key(key),
                         created=utcnow())
            s.add(row)
            s.flush()
            return _info(row), key

    def list(self, user: str | None = None) -> list[KeyInfo]:
        with self.db.session() as s:
            q = select(ApiKey).order_by(ApiKey.id)
            if user is not None:
                q = q.where(ApiKey.user_name == user)
            return [_info(k) for k in s.scalars(q)]

    def revoke(self, ref: str | int, user: str | None = None) -> KeyInfo:
        """Revoke the key with id or prefix ``ref`` (of ``user`` when given); InputError when none matches."""
        with self.db.session() as s:
            q = select(ApiKey)
            ref = str(ref).strip()
            q = q.where(ApiKey.id == int(ref)) if ref.isdigit() else q.where(ApiKey.prefix == ref[:SHOWN_CHARS])
            if user is not None:
                q = q.where(ApiKey.user_name == user)
            rows = list(s.scalars(q))
            if len(rows) != 1:
                raise InputError(f"找不到 API 密钥：{ref}", f"no single key matches {ref!r}")
            if rows[0].revoked is None:
                rows[0].revoked = utcnow()
            return _info(rows[0])

    def revoke_user(self, user: str) -> int:
        """Revoke every key of ``user`` (the user was removed); return how many."""
        with self.db.session() as s:
            rows = list(s.scalars(select(ApiKey).where(ApiKey.user_name == user, ApiKey.revoked.is_(None))))
            for r in rows:
                r.revoked = utcnow()
            return len(rows)

    def verify(self, key: str) -> KeyInfo | None:
        """The active key record for ``key``, or None (unknown, malformed or revoked)."""
        if not isinstance(key, str) or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
            if row is None or row.revoked is not None:
                return None
            now = utcnow()
            last = row.last_used
            if last is None or now - last > LAST_USED_EVERY:
                row.last_used = now
            return _info(row)
