"""The ``users`` table: the rows behind ``rag.auth.users.UserStore`` (names, roles, argon2 hashes).

Hashing, name and role rules live in ``rag.auth.users``; this module only reads and writes rows, each
change in one transaction. Guards that read other rows (the last admin, the first admin) write first
and check after, with the admin rows locked (``FOR UPDATE`` on PostgreSQL; SQLite serialises
writers), so two processes (the app and the CLI) cannot both pass them.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from .engine import Database
from .models import UserRow


class LastAdmin(Exception):
    """The change would leave no admin; nothing was written."""


class UserExists(Exception):
    """A user of that name exists already; nothing was written."""


def _record(row: UserRow) -> dict:
    return {"role": row.role, "hash": row.password_hash, "created": row.created}


def _admins(s) -> int:
    return s.scalar(select(func.count()).select_from(UserRow).where(UserRow.role == "admin"))


def _lock_admins(s) -> None:
    s.execute(select(UserRow.name).where(UserRow.role == "admin").with_for_update())


class UserTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> dict[str, dict]:
        with self.db.session() as s:
            return {r.name: _record(r) for r in s.scalars(select(UserRow))}

    def get(self, name: str) -> dict | None:
        with self.db.session() as s:
            row = s.get(UserRow, name)
            return _record(row) if row is not None else None

    def count(self) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(UserRow))

    def insert(self, name: str, record: dict, *, only_if_empty: bool = False) -> bool:
        """Add a row; UserExists on a taken name. ``only_if_empty``: add it only when it is the first
        user (returns False, nothing written, when other users exist)."""
        try:
            with self.db.session() as s:
                s.add(UserRow(name=name, role=record["role"], password_hash=record["hash"], created=record["created"]))
                s.flush()  # the write comes first: from here on this transaction holds the writer's lock
                if only_if_empty and s.scalar(select(func.count()).select_from(UserRow)) > 1:
                    s.rollback()
                    return False
        except IntegrityError as e:
            raise UserExists(name) from e
        return True

    def delete(self, name: str) -> bool:
        """Remove a row; LastAdmin when it was the only admin. False when there is no such user."""
        with self.db.session() as s:
            _lock_admins(s)
            was = s.scalar(select(UserRow.role).where(UserRow.name == name))
            gone = s.execute(delete(UserRow).where(UserRow.name == name)).rowcount
            if gone and was == "admin" and not _admins(s):  # counted after the write: under its lock
                raise LastAdmin(name)
            return bool(gone)

    def set(self, name: str, *, role: str | None = None, password_hash: str | None = None,
            if_hash: str | None = None) -> bool:
        """Change the role and/or hash of ``name`` (only while its hash is ``if_hash``, when given);
        LastAdmin when that demotes the only admin. False when no row matched."""
        values = {k: v for k, v in (("role", role), ("password_hash", password_hash)) if v is not None}
        with self.db.session() as s:
            was = None
            if role is not None:
                _lock_admins(s)
                was = s.scalar(select(UserRow.role).where(UserRow.name == name))
            q = update(UserRow).where(UserRow.name == name).values(**values)
            if if_hash is not None:
                q = q.where(UserRow.password_hash == if_hash)
            changed = s.execute(q).rowcount
            if changed and was == "admin" and role != "admin" and not _admins(s):
                raise LastAdmin(name)
            return bool(changed)
