"""The guard in front of the Gradio app: one ASGI middleware for what Gradio's routes do not do.

``launch()`` in ``rag/web/page.py`` installs it with ``app_kwargs={"middleware": [Middleware(Guard, …)]}``,
so it sees every HTTP request before Gradio does and every response before it leaves:

- **Headers** on every response: a strict Content-Security-Policy (scripts and styles from the app
  itself, images only from the app, ``data:`` and ``blob:``, no frames, objects or remote
  connections), ``X-Content-Type-Options: nosniff``, no framing, no referrer to other sites;
  file routes (``/gradio_api/file=…``) answer as downloads (``Content-Disposition: attachment``).
- **Sign-in** (``POST /login``): same-origin check (CSRF); throttled per client address and per
  account (``rag.auth.throttle``: 5 failures a minute, then 429 with a Chinese message, locks growing
  to at most 5 minutes). A browser that signed in to an account before carries a signed
  ``rag_device`` cookie and is throttled under its own key instead, so a guesser cannot lock the
  real user out of the browser they use. The password check itself runs off the event loop
  (``page.launch`` passes an async ``auth``).
- **Sessions** (``rag.auth.sessions.SessionStore``): every session cookie is checked against the store
  on every request; one that expired (idle, lifetime) or was ended (``users reset|remove|role``,
  from any process) is dropped from Gradio's table at once, so the caller is signed out.
  ``GET /logout`` is refused cross-site and ends the sessions in the store too.
- **Files**: Gradio's upload route is for roles that may upload (admins), within a per-user
  quota per hour, and answers an oversized upload in Chinese; files in the upload temp folder
  older than ``tmp_max_age_s`` are deleted, quiz exports after ``export_ttl_s``; an export is
  served only to trainers and admins, checked on every download; remote URLs through the file
  route are refused.
- **No leaks**: ``/monitoring`` is off (404); the sign-in page of an anonymous caller carries no
  description of the event API.

The parts live beside it: ``headers.py`` (the headers, the CSRF check, JSON answers), ``signin.py``
(``POST /login``, device cookies), ``files.py`` (uploads, file routes, the temp-folder sweep).

- **Page events** (``POST /gradio_api/…``) are capped at ``page_events_per_minute`` a minute per
  signed-in user (the user the session store names, so forged cookies count for nothing) and per
  address for callers without a session: each event costs Gradio's validation and, when that
  fails, a log of its payload.

Not done here: TLS; fair scheduling between users (the service's ``AnswerSlots`` bounds each).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.parse
from collections import deque
from pathlib import Path
from typing import Any

from rag.auth.sessions import SessionStore
from rag.auth.throttle import LoginThrottle
from rag.auth.users import UserStore
from rag.web.files import FileRules, is_file_route, sweep  # noqa: F401  (sweep: re-exported)
from rag.web.headers import cross_site, request_cookies, request_headers, send_json, with_headers
from rag.web.signin import SignIn

logger = logging.getLogger(__name__)

_API_INFO = re.compile(rb"window\.gradio_api_info\s*=\s*.*?;</script>", re.DOTALL)


class EventRate:
    """At most ``limit`` events per key in any 60 s. The table of keys is bounded: when it is full,
    keys idle for a minute are dropped; a new key beyond that is not tracked (logged), never a reset
    of the others' counts."""

    def __init__(self, limit: int, *, max_keys: int = 10_000) -> None:
        self.limit, self.max_keys = limit, max_keys
        self._seen: dict[str, deque] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._seen.get(key)
            if q is None:
                if len(self._seen) >= self.max_keys:
                    self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] < 60}
                if len(self._seen) >= self.max_keys:
                    logger.warning("event rate table full (%d keys): %s not tracked", len(self._seen), key[:40])
                    return True
                q = self._seen[key] = deque()
            while q and now - q[0] >= 60:
                q.popleft()
            if len(q) >= self.limit:
                return False
            q.append(now)
            return True


class Guard:
    """ASGI middleware: see the module docstring. ``app`` is the next ASGI app (Gradio's)."""

    def __init__(self, app, *, settings, users: UserStore, sessions: SessionStore, throttle: LoginThrottle,
                 tmp_dir: Path, **_: Any) -> None:
        self.app = app
        self.settings = settings
        self.users = users
        self.sessions = sessions
        self.signin = SignIn(app, sessions=sessions, throttle=throttle, data_dir=settings.data_dir)
        self.files = FileRules(settings, users, tmp_dir)
        self.page_events = EventRate(settings.page_events_per_minute)

    # -- helpers -------------------------------------------------------------------------------
    def _session(self, scope, cookies: dict[str, str]) -> tuple[str | None, str | None]:
        """(token, user) of the caller's live session; drops ended sessions from Gradio's table."""
        app = scope.get("app")
        cid = getattr(app, "cookie_id", None)
        if cid is None:
            return None, None
        token = cookies.get(f"access-token-{cid}") or cookies.get(f"access-token-unsecure-{cid}")
        if not token:
            return None, None
        user = self.sessions.user_of(token)
        tokens = app.tokens
        for t in {token, cookies.get(f"access-token-{cid}"), cookies.get(f"access-token-unsecure-{cid}")}:
            if not t:
                continue
            if user is None:
                tokens.pop(t, None)
            elif tokens.get(t) != user:
                tokens[t] = user  # a session from before a restart
        return token, user

    # -- the middleware ------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        cookies = request_cookies(headers)
        token, user = self._session(scope, cookies)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path.rstrip("/") in ("/login", "/gradio_api/login") and method == "POST":
            await self.signin.login(scope, receive, send, headers, cookies)
            return
        if path.rstrip("/") == "/logout":
            if cross_site(headers):
                logger.warning("cross-site sign-out refused")
                await send_json(send, 403, {"detail": "拒绝来自其他网站的退出请求"})
                return
            if user:
                q = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
                if q.get("all_session", ["true"])[0].lower() in ("false", "0"):
                    self.sessions.end(token)
                else:
                    self.sessions.end_user(user)
        if method == "POST" and path.startswith("/gradio_api/"):
            key = f"u:{user}" if user else "a:" + str((scope.get("client") or ("?", 0))[0])
            if not self.page_events.allow(key):
                logger.warning("page events refused for %s: over %d a minute", key[:66], self.page_events.limit)
                await send_json(send, 429, {"detail": "操作过于频繁，请稍后再试"}, [(b"retry-after", b"10")])
                return
        if path.startswith(("/monitoring", "/gradio_api/monitoring")):
            await send_json(send, 404, {"detail": "Not Found"})
            return
        if path.rstrip("/").endswith("/upload") and method == "POST":
            refused = self.files.upload_refusal(user, headers)
            if refused:
                await send_json(send, *refused)
                return
            self.files.sweep_old()
            await self.app(scope, self.files.counting(receive, user), self.files.upload_send(send))
            return
        download = is_file_route(path)
        if download:
            refused = self.files.file_refusal(path, user)
            if refused:
                await send_json(send, *refused)
                return
            self.files.sweep_old()
        if method == "GET" and user is None and path in ("/", "") or (user is None and path.rstrip("/") == "/gradio_api/info"):
            await self.app(scope, receive, self._anonymous_page(send))
            return

        state: dict[str, Any] = {}

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                if download and message["status"] >= 400:  # Gradio's text echoes the path asked for
                    state["error"] = message["status"]
                    return
                message = {**message, "headers": with_headers(list(message.get("headers", [])), download=download)}
            elif state.get("error"):
                if not message.get("more_body"):
                    await send_json(send, state["error"], {"detail": "文件不存在或无权访问"})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)

    # -- anonymous callers ---------------------------------------------------------------------
    def _anonymous_page(self, send):
        """Send the page without ``window.gradio_api_info`` (the event API's names and parameters)."""
        state: dict[str, Any] = {"chunks": []}

        async def wrapped(message) -> None:
            if message["type"] == "http.response.start":
                state["start"] = message
                return
            state["chunks"].append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(state["chunks"])
            start = state["start"]
            hdrs = [(n, v) for n, v in start.get("headers", []) if n.lower() != b"content-length"]
            if any(n.lower() == b"content-type" and b"text/html" in v for n, v in hdrs):
                body = _API_INFO.sub(b"window.gradio_api_info = {};</script>", body)
            elif start["status"] == 200:  # /gradio_api/info of an anonymous caller: nothing
                body, start = b'{"detail": "Not authenticated"}', {**start, "status": 401}
            hdrs.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": with_headers(hdrs, download=False)})
            await send({"type": "http.response.body", "body": body})

        return wrapped
