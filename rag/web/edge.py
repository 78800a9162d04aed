"""The outermost ASGI middleware: what every request meets before any route reads it.

- **Bodies are bounded before they are read.** A request whose ``Content-Length`` is over the
  limit of its route is refused with 413 at once; a body without a length (chunked) is counted
  as it arrives and cut off at the limit. Limits: uploads to ``/api/v1/documents`` the upload
  limit times the file count; Gradio's own upload route the same; the page's events
  ``PAGE_EVENT_BYTES``; every other route ``MAX_BODY_BYTES`` (a chat request with the whole history
  allowed is far below it).
- **API keys are checked before the body.** ``/v1`` and ``/api/v1`` need ``Authorization: Bearer
  KEY``; a request without a valid key gets its 401 without the server reading (or spooling to
  disk) a single byte of its body, and an upload to ``/api/v1/documents`` by a role that may not
  upload gets its 403 the same way.
- **A user's flood stops here.** A chat request from a user who already has as many answers in
  flight as allowed (``limits.AnswerSlots``) gets its 429 before its body is parsed. (The page's
  events are rate-limited by ``web/guard.py``, which knows whose session a cookie is.)
- **Security headers on every response** that lacks them: ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY``, and for HTML outside the page (the article view) a strict
  Content-Security-Policy with ``frame-ancestors 'none'``. The page's own, stricter headers are
  set by ``web/guard.py`` and kept.

Not done here: roles and rate limits (``rag.web.auth``), sign-in (``web/guard.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from ..auth.users import allowed

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
PAGE_EVENT_BYTES = 256 * 1024  # a page event carries the chat as shown: a long conversation is ~100 KB
API_PREFIXES = ("/v1/", "/api/v1/")
ARTICLE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"


class BodyTooLarge(Exception):
    pass


async def send_error(send, status: int, code: str, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "type": code}}, ensure_ascii=False).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                    (b"x-content-type-options", b"nosniff"), *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})


class Edge:
    """See the module docstring. ``key_user(token)`` is (user name, role) of a valid API key, else None;
    ``busy(user)`` tells a user who already has as many answers in flight as allowed."""

    def __init__(self, app, *, upload_max_bytes: int, upload_max_files: int,
                 key_user: Callable[[str], tuple[str, str] | None], busy: Callable[[str], bool] = lambda user: False,
                 denied: Callable[[str, str, str], object] = lambda user, action, where: None) -> None:
        self.app = app
        self.denied = denied
        self.upload_limit = upload_max_bytes * upload_max_files + 64 * 1024  # the multipart framing
        self.key_user = key_user
        self.busy = busy

    def limit_for(self, path: str) -> int:
        if path.rstrip("/").startswith("/api/v1/documents") or path.rstrip("/").endswith("/upload"):
            return self.upload_limit
        if path.startswith("/gradio_api/") or path.startswith("/queue/") or path.rstrip("/").endswith("/queue/join"):
            # Gradio logs a failed validation of an event's whole payload: the cap bounds that log too
            return PAGE_EVENT_BYTES
        return MAX_BODY_BYTES

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        limit = self.limit_for(path)
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > limit:
            logger.info("%s %s refused: body of %s bytes (limit %d)", method, path, headers.get("content-length"), limit)
            await send_error(send, 413, "too_large", f"请求内容过大（上限 {limit // 1024} KB）")
            return
        if path.startswith(API_PREFIXES) and method != "OPTIONS":
            scheme, _, token = headers.get("authorization", "").partition(" ")
            given = scheme.lower() == "bearer" and bool(token.strip())
            found = self.key_user(token.strip()) if given else None
            if found is None:  # the same codes and messages as rag.web.auth
                code, message = (("invalid_api_key", "API 密钥无效或已被吊销") if given else
                                 ("unauthorized", "未提供 API 密钥：请在请求头加上 Authorization: Bearer KEY"))
                await send_error(send, 401, code, message, [(b"www-authenticate", b"Bearer")])
                return
            user, role = found
            if method == "POST" and path.rstrip("/") == "/v1/chat/completions" and self.busy(user):
                # a flood from one user: refused before its body is parsed (the service would refuse it too)
                await send_error(send, 429, "busy", "您的问题正在回答中，请等回答完成后再问", [(b"retry-after", b"2")])
                return
            if method in ("POST", "PUT") and path.startswith("/api/v1/documents") and not allowed(role, "manage"):
                # an upload body may be 400 MB: a role that may not upload is refused before it is spooled
                self.denied(user, "manage", f"{method} {path}"[:200])
                await send_error(send, 403, "forbidden", "当前角色无权上传或替换文章")
                return
        state = {"started": False, "read": 0, "cut": False}

        async def bounded_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit:
                    state["cut"] = True
                    return {"type": "http.disconnect"}  # the route stops reading; the 413 is sent below
            return message

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                if state["cut"]:
                    return
                state["started"] = True
                hs = list(message.get("headers", []))
                have = {k.lower() for k, _ in hs}
                if b"x-content-type-options" not in have:
                    hs.append((b"x-content-type-options", b"nosniff"))
                if b"x-frame-options" not in have:
                    hs.append((b"x-frame-options", b"DENY"))
                ctype = next((v for k, v in hs if k.lower() == b"content-type"), b"")
                if b"content-security-policy" not in have and ctype.startswith(b"text/html"):
                    hs.append((b"content-security-policy", ARTICLE_CSP.encode()))
                message = {**message, "headers": hs}
            elif state["cut"]:
                return
            await send(message)

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except Exception:
            if not state["cut"]:
                raise
        if state["cut"] and not state["started"]:
            logger.info("%s %s refused: body over %d bytes", method, path, limit)
            await send_error(send, 413, "too_large", f"请求内容过大（上限 {limit // 1024} KB）")
