"""Append-only audit trail: who added, replaced or removed which file, every reindex, and refusals.

Refusals (``append_denied``): a signed-in user refused an action for their role (page, API, upload
and export routes) and sign-in locks; bounded per user and hour.

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


# ---------------------------------------------------------------- refused actions
DENIED_PER_HOUR = 30  # lines per user and hour: a hostile user cannot fill the disk through refusals
_denied: dict[tuple[str, str], list] = {}  # (data_dir, user) -> [window start, lines written, suppressed]


def append_denied(data_dir: Path, user: str | None, action: str, where: str) -> bool:
    """Record that ``user`` (signed in, or None for anonymous) was refused ``action`` at ``where``.

    At most ``DENIED_PER_HOUR`` lines per user and hour; the refusals beyond are counted and the
    count goes into the next line written (``"suppressed": n``). Anonymous callers are logged
    under ``"-"`` together (their 401s are not recorded here: only role refusals and locks are).
    Returns whether a line was written.
    """
    key = (str(data_dir), user or "-")
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
    append_audit(data_dir, event)
    return True
