"""Append-only audit trail in the database (table ``audit``): who added, replaced or removed which
file, every reindex, quiz and key actions, and refusals.

Refusals (``append_denied``): a signed-in user refused an action for their role (page, API, upload
and export routes) and sign-in locks; bounded per user and hour.

Rows are only ever inserted (one transaction per event), never updated or deleted; the app and the
CLI append at once without a lock of their own (the database serialises the writers). An
``audit.jsonl`` of an older version is imported once on first start (``rag.db.importer``) and renamed
``audit.jsonl.migrated``. It does not rotate or sign the log.

``target`` names the database: a ``Database``, the app's ``Settings``, or its ``data_dir`` (the database that
``open_database`` opened for that folder in this process, else the default ``<data_dir>/app.db``).

Example::

    append_audit(settings, {"action": "reindex", "user": "admin", "version": "v3"})
    read_audit(settings, limit=20)     # the last 20 events, oldest first
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..errors import RagError
from .models import AuditRow
from .engine import Database, database_url
from .startup import shared_database, url_of_data_dir

_lock = threading.Lock()


def _database(target: Database | Settings | Path | str) -> tuple[str, Database]:
    if isinstance(target, Database):
        return target.url.render_as_string(hide_password=False), target
    if not isinstance(target, Settings):
        target = Settings(data_dir=Path(target), database_url=url_of_data_dir(Path(target)))
    return database_url(target), shared_database(target)


def append_audit(target: Database | Settings | Path | str, event: dict) -> None:
    """Append ``event`` (e.g. {"action": "add", "user": "admin", "file": ..., "sha256": ...}) with a timestamp."""
    event = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **event}
    _, db = _database(target)
    try:
        with db.session() as s:
            s.add(AuditRow(line=None, time=str(event["time"]), user_name=str(event.get("user", ""))[:64],
                           action=str(event.get("action", ""))[:40], event=event))
    except SQLAlchemyError as e:
        raise RagError("无法写入审计日志（数据库不可用）", f"audit append failed: {e}") from e


def read_audit(target: Database | Settings | Path | str, limit: int | None = None) -> list[dict]:
    """The events in the order they were appended (the last ``limit`` of them when given)."""
    _, db = _database(target)
    with db.session() as s:
        q = select(AuditRow.event).order_by(AuditRow.id.desc() if limit else AuditRow.id)
        rows = list(s.scalars(q.limit(limit) if limit else q))
    return rows[::-1] if limit else rows


# ---------------------------------------------------------------- refused actions
DENIED_PER_HOUR = 30  # lines per user and hour: a hostile user cannot fill the database through refusals
_denied: dict[tuple[str, str], list] = {}  # (database url, user) -> [window start, lines written, suppressed]


def append_denied(target: Database | Settings | Path | str, user: str | None, action: str, where: str) -> bool:
    """Record that ``user`` (signed in, or None for anonymous) was refused ``action`` at ``where``.

    At most ``DENIED_PER_HOUR`` rows per user and hour (in this process); the refusals beyond are
    counted and the count goes into the next row written (``"suppressed": n``). Anonymous callers are
    logged under ``"-"`` together (their 401s are not recorded here: only role refusals and locks are).
    Returns whether a row was written.
    """
    url, _ = _database(target)
    key = (url, user or "-")
    now = time.monotonic()
    with _lock:
        slot = _denied.get(key)
        if slot is None or now - slot[0] >= 3600:
            slot = _denied[key] = [now, 0, slot[2] if slot else 0]
        if slot[1] >= DENIED_PER_HOUR:
            slot[2] += 1
            return False
        slot[1] += 1
        suppressed, slot[2] = slot[2], 0
        if len(_denied) > 10_000:  # a bound on the table itself
            _denied.clear()
    event = {"action": "denied", "user": user or "-", "what": action, "where": where[:200]}
    if suppressed:
        event["suppressed"] = suppressed
    append_audit(target, event)
    return True
