"""Sign-in at the guard (``POST /login``): the same-origin check, the throttle, the signed device cookie.

``SignIn.login`` reads the form (bounded), picks the throttle keys (this browser's device if it
signed in to the same account before, else the client address and the account), refuses with 429
while they are locked, and otherwise hands the request on to Gradio, recording the session of a
successful sign-in and counting a failed one. The password check itself is Gradio's ``auth``
(``page.page_options``: off the event loop).

Not done here: sessions after sign-in (``guard.Guard._session``), sign-out (``guard.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any

from rag.db.audit import append_denied
from rag.auth.sessions import SessionStore
from rag.auth.throttle import LoginThrottle
from rag.fsutil import atomic_write
from rag.web.headers import cross_site, send_json, with_headers

logger = logging.getLogger("rag.web.guard")  # one log for the whole guard

DEVICE_COOKIE = "rag_device"
DEVICE_DAYS = 30
MAX_LOGIN_BODY = 16 * 1024


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


class SignIn:
    """The ``POST /login`` handler of the guard; ``app`` is the next ASGI app (Gradio's)."""

    def __init__(self, app, *, sessions: SessionStore, throttle: LoginThrottle, data_dir: Path) -> None:
        self.app = app
        self.sessions = sessions
        self.throttle = throttle
        self.devices = DeviceCookies(data_dir)
        self.data_dir = Path(data_dir)

    async def login(self, scope, receive, send, headers, cookies) -> None:
        if cross_site(headers):
            logger.warning("cross-site sign-in refused (origin %s)", headers.get("origin") or headers.get("referer"))
            await send_json(send, 403, {"detail": "拒绝来自其他网站的登录请求"})
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_LOGIN_BODY:
                await send_json(send, 413, {"detail": "登录请求过大"})
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
            await send_json(send, 429, {"detail": f"登录失败次数过多，请 {secs} 秒后再试"},
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
                message = {**message, "headers": with_headers(list(message.get("headers", [])), download=False, extra=extra)}
            await send(message)

        await self.app(scope, replay, watch)
        code = status.get("code")
        if code == 200:
            self.throttle.succeeded(keys)
            logger.info("signed in: %r from %s", username, addr)
        elif code in (400, 401):
            lock = self.throttle.failed(keys)
            logger.info("sign-in failed: %r from %s%s", username, addr, f" (locked {lock:.0f} s)" if lock else "")
            if lock:  # anonymous by definition: recorded under "-", bounded per hour with all others
                append_denied(self.data_dir, None, "login", f"locked {lock:.0f} s: {', '.join(keys)}"[:200])

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
