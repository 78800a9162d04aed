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
  older than ``tmp_max_age_s`` are deleted, exports after ``export_ttl_s``; an export is served to
  trainers and admins (one under ``exports/admin/`` to admins only), checked on every download;
  remote URLs through the file route are refused.
- **No leaks**: ``/monitoring`` is off (404); the sign-in page of an anonymous caller carries no
  description of the event API.

Not done here: TLS, rate limits on chat events (the service bounds the work of each question).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.parse
from collections import deque
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from rag.fsutil import atomic_write
from rag.auth.sessions import SessionStore
from rag.auth.throttle import LoginThrottle
from rag.auth.users import UserStore, allowed

logger = logging.getLogger(__name__)

# Gradio's page needs inline scripts (its config), eval for js= event handlers and inline styles;
# everything else is this origin only. Images: the app's own, data: and blob: (no remote image).
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "media-src 'self' data: blob:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "frame-src 'none'",
    "child-src 'none'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
DEVICE_COOKIE = "rag_device"
DEVICE_DAYS = 30
MAX_LOGIN_BODY = 16 * 1024
SWEEP_EVERY_S = 30.0
_API_INFO = re.compile(rb"window\.gradio_api_info\s*=\s*.*?;</script>", re.DOTALL)


def is_file_route(path: str) -> bool:
    """Gradio's routes that serve files by path (``/gradio_api/file=…``, ``/file=…``, ``/file/…``)."""
    return "/file=" in path or path.startswith(("/file/", "/gradio_api/file/"))


def file_route_target(path: str) -> str:
    """The path or URL a file route asks for (URL-decoded)."""
    if "/file=" in path:
        return urllib.parse.unquote(path.split("/file=", 1)[1])
    return urllib.parse.unquote(path.split("/file/", 1)[1])


def _with_headers(headers: list, *, download: bool, extra: list | None = None) -> list:
    names = {n for n, _ in SECURITY_HEADERS}
    if download:
        names.add(b"content-disposition")
    out = [(n, v) for n, v in headers if n.lower() not in names]
    out += SECURITY_HEADERS
    if download:
        disposition = next((v for n, v in headers if n.lower() == b"content-disposition"), b"")
        i = disposition.find(b"filename")
        out.append((b"content-disposition", b"attachment" + (b"; " + disposition[i:] if i >= 0 else b"")))
    return out + (extra or [])


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    c = SimpleCookie()
    try:
        c.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header: treat as none
        return {}
    return {k: m.value for k, m in c.items()}


def cross_site(headers: dict[str, str]) -> bool:
    """True when the browser says the request comes from another site or origin (CSRF).

    Uses Sec-Fetch-Site where the browser sends it, else Origin, else Referer; a request with
    none of them (curl, scripts, the Python client) is not a browser's cross-site request.
    """
    host = headers.get("host", "")
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    for name in ("origin", "referer"):
        value = headers.get(name)
        if value:
            if value == "null":
                return True
            return urllib.parse.urlsplit(value).netloc != host
    return False


class DeviceCookies:
    """Signed ``rag_device`` cookies: "this browser signed in as NAME before" (HMAC, secret in the data dir)."""

    def __init__(self, data_dir: Path) -> None:
        path = Path(data_dir) / "device_secret"
        try:
            self._key = path.read_bytes()
        except FileNotFoundError:
            self._key = secrets.token_bytes(32)
            atomic_write(path, self._key, mode=0o600)

    def make(self, user: str) -> str:
        stamp = str(int(time.time()))
        body = urllib.parse.quote(user, safe="") + "." + stamp
        return body + "." + hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def user_of(self, value: str | None) -> tuple[str, str] | None:
        """(user, device id) of a valid cookie value, else None."""
        try:
            name, stamp, mac = (value or "").rsplit(".", 2)
            body = name + "." + stamp
            good = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]
            if not hmac.compare_digest(mac, good) or time.time() - int(stamp) > DEVICE_DAYS * 86400:
                return None
        except ValueError:
            return None
        return urllib.parse.unquote(name), mac[:12]


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


async def _send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": _with_headers([(b"content-type", b"application/json; charset=utf-8"),
                                          (b"content-length", str(len(body)).encode())], download=False, extra=headers)})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: see the module docstring. ``app`` is the next ASGI app (Gradio's)."""

    def __init__(self, app, *, settings, users: UserStore, sessions: SessionStore, throttle: LoginThrottle,
                 tmp_dir: Path, **_: Any) -> None:
        self.app = app
        self.settings = settings
        self.users = users
        self.sessions = sessions
        self.throttle = throttle
        self.tmp = Path(tmp_dir).resolve()
        self.exports = self.tmp / "exports"
        self.devices = DeviceCookies(settings.data_dir)
        self._uploads: dict[str, deque] = {}  # user -> (time, bytes) of the last hour
        self._last_sweep = 0.0

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

    def _role(self, user: str | None) -> str | None:
        u = self.users.get(user) if user else None
        return u.role if u else None

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        n = sweep(self.exports, self.settings.export_ttl_s)
        n += sweep(self.tmp, self.settings.tmp_max_age_s, keep=self.exports)
        if n:
            logger.info("deleted %d old file(s) from the temp folder", n)

    # -- the middleware ------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        cookies = _cookies(headers)
        token, user = self._session(scope, cookies)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path.rstrip("/") in ("/login", "/gradio_api/login") and method == "POST":
            await self._login(scope, receive, send, headers, cookies)
            return
        if path.rstrip("/") == "/logout":
            if cross_site(headers):
                logger.warning("cross-site sign-out refused")
                await _send_json(send, 403, {"detail": "拒绝来自其他网站的退出请求"})
                return
            if user:
                q = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
                if q.get("all_session", ["true"])[0].lower() in ("false", "0"):
                    self.sessions.end(token)
                else:
                    self.sessions.end_user(user)
        if path.startswith(("/monitoring", "/gradio_api/monitoring")):
            await _send_json(send, 404, {"detail": "Not Found"})
            return
        if path.rstrip("/").endswith("/upload") and method == "POST":
            refused = self._upload_refusal(user, headers)
            if refused:
                await _send_json(send, *refused)
                return
            self._sweep()
            await self.app(scope, self._counting(receive, user), self._upload_send(send))
            return
        download = is_file_route(path)
        if download:
            refused = self._file_refusal(path, user)
            if refused:
                await _send_json(send, *refused)
                return
            self._sweep()
        if method == "GET" and user is None and path in ("/", "") or (user is None and path.rstrip("/") == "/gradio_api/info"):
            await self.app(scope, receive, self._anonymous_page(send))
            return

        state: dict[str, Any] = {}

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                if download and message["status"] >= 400:  # Gradio's text echoes the path asked for
                    state["error"] = message["status"]
                    return
                message = {**message, "headers": _with_headers(list(message.get("headers", [])), download=download)}
            elif state.get("error"):
                if not message.get("more_body"):
                    await _send_json(send, state["error"], {"detail": "文件不存在或无权访问"})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)

    # -- sign-in -------------------------------------------------------------------------------
    async def _login(self, scope, receive, send, headers, cookies) -> None:
        if cross_site(headers):
            logger.warning("cross-site sign-in refused (origin %s)", headers.get("origin") or headers.get("referer"))
            await _send_json(send, 403, {"detail": "拒绝来自其他网站的登录请求"})
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_LOGIN_BODY:
                await _send_json(send, 413, {"detail": "登录请求过大"})
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        username = await self._form_username(scope, body)
        addr = (scope.get("client") or ("?", 0))[0]
        device = self.devices.user_of(cookies.get(DEVICE_COOKIE))
        if device and device[0] == username:
            keys = [f"device:{device[1]}"]  # this browser signed in to this account before
        else:
            keys = [f"addr:{addr}", f"user:{username.casefold()}"]
        wait = self.throttle.locked_for(keys)
        if wait > 0:
            secs = int(wait) + 1
            logger.info("sign-in refused while locked: %s (%d s left)", ", ".join(keys), secs)
            await _send_json(send, 429, {"detail": f"登录失败次数过多，请 {secs} 秒后再试"},
                             [(b"retry-after", str(secs).encode())])
            return
        status: dict[str, Any] = {}

        async def replay():
            if not status.get("sent"):
                status["sent"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = []
                if message["status"] == 200:
                    token = self._token_in(message.get("headers", []))
                    if token:
                        self.sessions.add(token, username)
                    cookie = f"{DEVICE_COOKIE}={self.devices.make(username)}; Max-Age={DEVICE_DAYS * 86400}; Path=/; HttpOnly; SameSite=Strict"
                    extra.append((b"set-cookie", cookie.encode("latin-1", "replace")))
                message = {**message, "headers": _with_headers(list(message.get("headers", [])), download=False, extra=extra)}
            await send(message)

        await self.app(scope, replay, watch)
        code = status.get("code")
        if code == 200:
            self.throttle.succeeded(keys)
            logger.info("signed in: %r from %s", username, addr)
        elif code in (400, 401):
            lock = self.throttle.failed(keys)
            logger.info("sign-in failed: %r from %s%s", username, addr, f" (locked {lock:.0f} s)" if lock else "")

    @staticmethod
    def _token_in(headers) -> str | None:
        for n, v in headers:
            if n.lower() == b"set-cookie" and v.startswith(b"access-token-"):
                return v.split(b";", 1)[0].split(b"=", 1)[1].decode("latin-1")
        return None

    @staticmethod
    async def _form_username(scope, body: bytes) -> str:
        from starlette.requests import Request

        sent = False

        async def once():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form()
            name = form.get("username")
            return name.strip()[:64] if isinstance(name, str) else ""
        except Exception:  # an unreadable form: Gradio answers it; count it under no account
            return ""

    # -- files ---------------------------------------------------------------------------------
    def _upload_refusal(self, user: str | None, headers: dict[str, str]) -> tuple[int, dict] | None:
        role = self._role(user)
        if role is None:
            return 401, {"detail": "请先登录"}
        if not allowed(role, "manage"):
            logger.warning("upload refused: %r (role %s) may not upload", user, role)
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

    def _counting(self, receive, user: str):
        q = self._uploads.setdefault(user, deque())

        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                q.append((time.monotonic(), len(message.get("body", b""))))
            return message

        return counted

    def _upload_send(self, send):
        state: dict[str, Any] = {}

        async def wrapped(message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if message["status"] == 413:  # Gradio's English "maximum allowed size" message
                    state["replace"] = True
                    return
                message = {**message, "headers": _with_headers(list(message.get("headers", [])), download=False)}
            elif state.get("replace"):
                if message.get("more_body"):
                    return
                await _send_json(send, 413, {"detail": self.too_large_message()})
                return
            await send(message)

        return wrapped

    def _file_refusal(self, path: str, user: str | None) -> tuple[int, dict] | None:
        target = file_route_target(path)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", target):
            return 403, {"detail": "不提供外部网址的文件"}
        try:
            resolved = Path(target).resolve()
        except (OSError, ValueError):
            return 404, {"detail": "文件不存在"}
        # 待改进的问题 (exports/admin, rag/web/feedback_ui.py): admins only; other exports: trainers and admins
        for folder, action, what in ((self.exports / "admin", "manage", "管理员导出文件"), (self.exports, "quiz", "测验导出文件")):
            if (resolved == folder or folder in resolved.parents) and not allowed(role := self._role(user), action):
                logger.warning("export download refused: %r (role %s, %s)", user, role, what)
                return 403, {"detail": f"当前角色无权下载{what}"}
        return None

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
            await send({**start, "headers": _with_headers(hdrs, download=False)})
            await send({"type": "http.response.body", "body": body})

        return wrapped
