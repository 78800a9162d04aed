"""Append-only audit trail: who added, replaced or removed which file, and every reindex.

One JSON object per line in ``<data_dir>/audit.jsonl``; lines are only ever appended (opened in
append mode, flushed and fsynced), never rewritten. It does not rotate or sign the log.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

_lock = threading.Lock()


def audit_path(data_dir: Path) -> Path:
    return Path(data_dir) / "audit.jsonl"


def append_audit(data_dir: Path, event: dict) -> None:
    """Append ``event`` (e.g. {"action": "add", "user": "admin", "file": ..., "sha256": ...}) with a timestamp."""
    path = audit_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **event}, ensure_ascii=False)
    # 0600: the trail names users and files; nobody else on a shared host reads it
    with _lock, open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_audit(data_dir: Path, limit: int | None = None) -> list[dict]:
    path = audit_path(data_dir)
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[-limit:] if limit else rows
