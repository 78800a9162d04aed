"""Files at the guard: who may upload and how much, which files the file routes may serve, and the
clean-up of the temp folder.

- uploads (Gradio's ``/upload``) are for roles that may manage documents (admins), within
  ``upload_max_bytes`` x ``upload_max_files`` a request and ``upload_quota_bytes`` a user an hour; an
  oversized upload is answered in Chinese;
- the file routes (``/gradio_api/file=…``) serve no remote URL, exports under ``exports/admin/``
  (待改进的问题) to admins only, and quiz exports (answer keys) only
  to trainers and admins, checked on every download;
- ``sweep``: files in the upload temp folder older than ``tmp_max_age_s`` go, quiz exports after
  ``export_ttl_s``.

Not done here: the documents themselves (``rag.index.documents``), the headers of a download (``guard.py``).
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from collections import deque
from pathlib import Path
from typing import Any

from rag.db.audit import append_denied
from rag.auth.users import UserStore, allowed
from rag.web.headers import send_json, with_headers

logger = logging.getLogger("rag.web.guard")  # one log for the whole guard

SWEEP_EVERY_S = 30.0


def is_file_route(path: str) -> bool:
    """Gradio's routes that serve files by path (``/gradio_api/file=…``, ``/file=…``, ``/file/…``)."""
    return "/file=" in path or path.startswith(("/file/", "/gradio_api/file/"))


def file_route_target(path: str) -> str:
    """The path or URL a file route asks for (URL-decoded)."""
    if "/file=" in path:
        return urllib.parse.unquote(path.split("/file=", 1)[1])
    return urllib.parse.unquote(path.split("/file/", 1)[1])


def sweep(folder: Path, max_age_s: float, *, keep: Path | None = None) -> int:
    """Delete files under ``folder`` older than ``max_age_s`` (not under ``keep``), then empty folders."""
    if not folder.exists():
        return 0
    now, n = time.time(), 0
    for p in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            if keep is not None and (p == keep or keep in p.parents):
                continue
            if p.is_file() and now - p.stat().st_mtime > max_age_s:
                p.unlink()
                n += 1
            elif p.is_dir() and not any(p.iterdir()) and now - p.stat().st_mtime > 5:
                p.rmdir()
        except OSError:  # gone meanwhile, or in use: the next sweep tries again
            continue
    return n


class FileRules:
    """The guard's file checks and its clean-up; one per Guard (it counts each user's uploads of the last hour)."""

    def __init__(self, settings, users: UserStore, tmp_dir: Path) -> None:
        self.settings = settings
        self.users = users
        self.tmp = Path(tmp_dir).resolve()
        self.exports = self.tmp / "exports"
        self._uploads: dict[str, deque] = {}  # user -> (time, bytes) of the last hour
        self._last_sweep = 0.0

    def role(self, user: str | None) -> str | None:
        u = self.users.get(user) if user else None
        return u.role if u else None

    def sweep_old(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        n = sweep(self.exports, self.settings.export_ttl_s)
        n += sweep(self.tmp, self.settings.tmp_max_age_s, keep=self.exports)
        if n:
            logger.info("deleted %d old file(s) from the temp folder", n)

    def upload_refusal(self, user: str | None, headers: dict[str, str]) -> tuple[int, dict] | None:
        role = self.role(user)
        if role is None:
            return 401, {"detail": "请先登录"}
        if not allowed(role, "manage"):
            logger.warning("upload refused: %r (role %s) may not upload", user, role)
            append_denied(self.settings, user, "manage", "upload")
            return 403, {"detail": "当前角色无权上传文件"}
        s = self.settings
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = 0
        limit = s.upload_max_bytes * s.upload_max_files + 64 * 1024  # multipart overhead
        if length > limit:
            return 413, {"detail": self.too_large_message()}
        used = self._used(user)
        if used + length > s.upload_quota_bytes:
            logger.warning("upload refused: %r over the hourly quota (%d bytes used)", user, used)
            return 429, {"detail": f"上传过多：每人每小时最多 {s.upload_quota_bytes // (1024 * 1024)} MB，请稍后再试"}
        return None

    def too_large_message(self) -> str:
        s = self.settings
        return f"文件过大：每个文件不超过 {s.upload_max_bytes // (1024 * 1024)} MB，每次最多 {s.upload_max_files} 个"

    def _used(self, user: str) -> int:
        q = self._uploads.setdefault(user, deque())
        now = time.monotonic()
        while q and now - q[0][0] > 3600:
            q.popleft()
        return sum(n for _, n in q)

    def counting(self, receive, user: str):
        q = self._uploads.setdefault(user, deque())

        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                q.append((time.monotonic(), len(message.get("body", b""))))
            return message

        return counted

    def upload_send(self, send):
        state: dict[str, Any] = {}

        async def wrapped(message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if message["status"] == 413:  # Gradio's English "maximum allowed size" message
                    state["replace"] = True
                    return
                message = {**message, "headers": with_headers(list(message.get("headers", [])), download=False)}
            elif state.get("replace"):
                if message.get("more_body"):
                    return
                await send_json(send, 413, {"detail": self.too_large_message()})
                return
            await send(message)

        return wrapped

    def file_refusal(self, path: str, user: str | None) -> tuple[int, dict] | None:
        target = file_route_target(path)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", target):
            return 403, {"detail": "不提供外部网址的文件"}
        try:
            resolved = Path(target).resolve()
        except (OSError, ValueError):
            return 404, {"detail": "文件不存在"}
        # 待改进的问题 (exports/admin, rag/web/feedback_ui.py): admins only; other exports: trainers and admins
        for folder, action, what in ((self.exports / "admin", "manage", "管理员导出文件"), (self.exports, "quiz", "测验导出文件")):
            if (resolved == folder or folder in resolved.parents) and not allowed(role := self.role(user), action):
                logger.warning("export download refused: %r (role %s, %s)", user, role, what)
                append_denied(self.settings, user, action, "file route: " + what)
                return 403, {"detail": f"当前角色无权下载{what}"}
        return None
