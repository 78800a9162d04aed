"""Bring the JSON stores under ``data_dir`` into the database, nothing lost.

``users.json``, ``audit.jsonl``, ``question_bank.json`` and ``documents.json`` stay the live stores
of their modules (``rag.auth.users``, ``rag.audit``, ``rag.quiz.bank``, ``rag.index.documents``): moving them
would change code that other work is reshaping right now. ``sync_json`` copies them into the
tables ``users``, ``audit``, ``question_bank`` and ``documents`` on every start, in one transaction:
the first start migrates everything, later starts add the audit lines appended since and mirror
the other three. A line of ``audit.jsonl`` that is not valid JSON is kept as ``{"raw": line}``.

Not done here: writing back to the files (the database copy is never the source).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, func, select

from ..errors import RagError
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


def sync_json(db: Database, data_dir: Path) -> dict[str, int]:
    """Copy the JSON stores into the database; return the row count of each table afterwards."""
    data_dir = Path(data_dir)
    users = (_read_json(data_dir / "users.json") or {}).get("users") or {}
    bank = (_read_json(data_dir / "question_bank.json") or {}).get("items") or []
    docs = (_read_json(data_dir / "documents.json") or {}).get("documents") or {}
    audit_file = data_dir / "audit.jsonl"
    lines = audit_file.read_text(encoding="utf-8").splitlines() if audit_file.exists() else []
    with db.session() as s:
        s.execute(delete(UserRow).where(UserRow.name.not_in(list(users)) if users else UserRow.name.is_not(None)))
        for name, rec in users.items():
            s.merge(UserRow(name=name, role=rec["role"], password_hash=rec["hash"], created=str(rec.get("created", ""))))
        s.execute(delete(BankItemRow))
        for i, item in enumerate(bank):
            s.add(BankItemRow(id=str(item.get("id") or f"item-{i}"), position=i, type=str(item.get("type", "")),
                              stem=str(item.get("stem", "")), item=item))
        s.execute(delete(DocumentRow))
        for name, rec in docs.items():
            s.add(DocumentRow(name=name, title=str(rec.get("title", "")), sha256=str(rec.get("sha256", "")),
                              size=rec.get("size"), added=str(rec.get("added", "")),
                              added_by=str(rec.get("added_by", "")), record=rec))
        done = s.scalar(select(func.max(AuditRow.line))) or 0
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
