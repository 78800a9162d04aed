"""Bring the JSON stores under ``data_dir`` into the database, nothing lost.

Stores the database now keeps live (``users.json``: ``rag.auth.users``; ``audit.jsonl``:
``rag.db.audit``; ``question_bank.json``: ``rag.quiz.bank``) are migrated once by ``migrate_json``: in one transaction it claims the meta row
``json_migrated:<file>`` (a second process starting at the same time fails on that key and imports
nothing), brings the file's contents into the table (users: mirrors the file, so an older version's
start-up copy is replaced by the file it copied, and so for the bank; audit: adds the lines that copy did not hold yet,
a line that is not valid JSON kept as ``{"raw": line}``), records the counts in that meta row, and
after the commit renames the file ``<file>.migrated`` (kept, never read again; a rename lost to a
crash is redone on the next start).
A database whose meta row exists never reads the file again, even one put back later.

``documents.json`` is still the live store of ``rag.index.documents``; ``sync_json`` mirrors it into
the table ``documents`` on every start, in one transaction.

Not done here: writing back to the files (the database copy is never the source).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ..errors import RagError
from .bank import row_of
from .engine import Database
from .models import AuditRow, BankItemRow, DocumentRow, MetaRow, UserRow

logger = logging.getLogger(__name__)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RagError(f"无法读取 {path.name}，数据库同步已停止（文件未改动）：{path}", f"cannot read {path}: {e}") from e


def _users(data_dir: Path) -> dict[str, dict]:
    path = data_dir / "users.json"
    data = _read_json(path)
    users = data.get("users") if isinstance(data, dict) else None
    if data is not None and not (isinstance(users, dict) and all(
            isinstance(r, dict) and isinstance(r.get("hash"), str) and isinstance(r.get("role"), str)
            for r in users.values())):
        raise RagError(f"用户文件格式不正确，数据库迁移已停止（文件未改动）：{path}", f"{path}: unexpected structure")
    return users or {}


def _import_users(s, data_dir: Path) -> int:
    users = _users(data_dir)
    s.execute(delete(UserRow).where(UserRow.name.not_in(list(users)) if users else UserRow.name.is_not(None)))
    for name, rec in users.items():
        s.merge(UserRow(name=name, role=rec["role"], password_hash=rec["hash"], created=str(rec.get("created", ""))))
    return len(users)


def _import_audit(s, data_dir: Path) -> int:
    """The lines of ``audit.jsonl`` beyond those an older version's start-up copy already holds."""
    path = data_dir / "audit.jsonl"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise RagError(f"无法读取 {path.name}，数据库迁移已停止（文件未改动）：{path}", f"cannot read {path}: {e}") from e
    done = s.scalar(select(func.max(AuditRow.line))) or 0
    added = 0
    for n, line in enumerate(lines, 1):
        if n <= done or not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):  # kept as it was written: nothing is dropped
            event = {"raw": line}
        s.add(AuditRow(line=n, time=str(event.get("time", "")), user_name=str(event.get("user", ""))[:64],
                       action=str(event.get("action", ""))[:40], event=event))
        added += 1
    return added


def _import_bank(s, data_dir: Path) -> int:
    """The items of ``question_bank.json`` in its order (mirrored: an older version's start-up copy goes)."""
    path = data_dir / "question_bank.json"
    data = _read_json(path)
    items = data.get("items") if isinstance(data, dict) else None
    if data is not None and not (isinstance(items, list) and all(isinstance(i, dict) for i in items)):
        raise RagError(f"题库文件格式不正确，数据库迁移已停止（文件未改动）：{path}", f"{path}: unexpected structure")
    s.execute(delete(BankItemRow))
    for item in items or []:
        s.add(row_of(item))
    return len(items or [])


MIGRATED = {"users.json": _import_users, "audit.jsonl": _import_audit, "question_bank.json": _import_bank}  # the files the database has replaced, and how each is imported


def _retire(path: Path) -> None:
    if path.exists():
        target = path.with_name(path.name + ".migrated")
        if target.exists():
            target = path.with_name(f"{path.name}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.migrated")
        os.replace(path, target)
        logger.info("migrated %s to the database; the file is now %s", path.name, target.name)


def migrate_json(db: Database, data_dir: Path) -> dict[str, int]:
    """Import each replaced JSON file once (see the module doc); return {file: rows imported} of this call."""
    data_dir = Path(data_dir)
    done: dict[str, int] = {}
    for name, load in MIGRATED.items():
        key = f"json_migrated:{name}"
        with db.session() as s:
            known = s.get(MetaRow, key) is not None
        if not known:
            try:
                with db.session() as s:
                    row = MetaRow(key=key, value="{}")
                    s.add(row)
                    s.flush()  # claims the migration (and on SQLite the writer's lock) before reading the file
                    done[name] = load(s, data_dir)
                    row.value = json.dumps({"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                            "rows": done[name], "file": (data_dir / name).exists()})
            except IntegrityError:  # another process migrated it meanwhile
                done.pop(name, None)
        _retire(data_dir / name)
    return done


def sync_json(db: Database, data_dir: Path) -> dict[str, int]:
    """Copy the JSON stores still live into the database; return the row count of each table afterwards."""
    data_dir = Path(data_dir)
    docs = (_read_json(data_dir / "documents.json") or {}).get("documents") or {}
    with db.session() as s:
        s.execute(delete(DocumentRow))
        for name, rec in docs.items():
            s.add(DocumentRow(name=name, title=str(rec.get("title", "")), sha256=str(rec.get("sha256", "")),
                              size=rec.get("size"), added=str(rec.get("added", "")),
                              added_by=str(rec.get("added_by", "")), record=rec))
        s.flush()
        counts = {
            "users": s.scalar(select(func.count()).select_from(UserRow)),
            "audit": s.scalar(select(func.count()).select_from(AuditRow)),
            "question_bank": s.scalar(select(func.count()).select_from(BankItemRow)),
            "documents": s.scalar(select(func.count()).select_from(DocumentRow)),
        }
        s.merge(MetaRow(key="json_synced", value=json.dumps(
            {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **counts})))
    logger.info("JSON stores copied to the database: %s", counts)
    return counts
