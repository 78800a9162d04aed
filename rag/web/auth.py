"""Who calls: ``Authorization: Bearer KEY`` on every API route, the key's user and role, a rate limit.

anonymous or unknown/revoked key -> 401; a role without the route's action -> 403 (see
``rag.auth.users.PERMISSIONS``: chat for every role, quiz for trainers and admins, manage for admins);
more than ``settings.api_rate_limit`` requests in a minute on one key -> 429 with ``Retry-After``.
The article view also accepts the page's sign-in cookie, so a citation link opens in the browser.

Not done here: OAuth, key scopes, a limit shared between several processes (one worker serves).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..db.audit import append_denied
from ..db.keys import ApiKeyStore, KeyInfo
from ..auth.users import ACTION_LABELS, ROLE_LABELS, User, UserStore, allowed
from .errors import ApiError

WINDOW_S = 60.0
BEARER = HTTPBearer(auto_error=False, description="API 密钥：python -m rag keys add 用户名")


@dataclass(frozen=True)
class Caller:
    user: User
    key: KeyInfo | None  # None when signed in on the page (cookie)


class RateLimiter:
    """At most ``limit`` calls per key in any ``window`` seconds (a sliding log; in memory)."""

    def __init__(self, limit: int, window: float = WINDOW_S) -> None:
        self.limit, self.window = limit, window
        self._calls: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: int) -> float:
        """Count one call; return 0, or the seconds to wait when over the limit (not counted then)."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(key_id, deque())
            while calls and calls[0] <= now - self.window:
                calls.popleft()
            if len(calls) >= self.limit:
                return max(calls[0] + self.window - now, 0.001)
            calls.append(now)
            return 0.0


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Authenticator:
    """Turns a request into a ``Caller`` allowed to perform an action, or raises ApiError."""

    def __init__(self, keys: ApiKeyStore, users: UserStore, limiter: RateLimiter) -> None:
        self.keys, self.users, self.limiter = keys, users, limiter
        self.page_user: Callable[[Request], str | None] | None = None  # set when the page is mounted

    def caller(self, request: Request, *, allow_page: bool = False) -> Caller:
        token = bearer(request)
        if token is None and allow_page and self.page_user is not None:
            name = self.page_user(request)
            user = self.users.get(name) if name else None
            if user is not None:
                return Caller(user, None)
        if token is None:
            raise ApiError(401, "unauthorized", "未提供 API 密钥：请在请求头加上 Authorization: Bearer KEY",
                           {"WWW-Authenticate": "Bearer"})
        info = self.keys.verify(token)
        user = self.users.get(info.user) if info is not None else None
        if info is None or user is None:
            raise ApiError(401, "invalid_api_key", "API 密钥无效或已被吊销", {"WWW-Authenticate": "Bearer"})
        wait = self.limiter.hit(info.id)
        if wait:
            raise ApiError(
                429, "rate_limited",
                f"请求过于频繁：每个密钥每分钟最多 {self.limiter.limit} 次，请 {math.ceil(wait)} 秒后再试",
                {"Retry-After": str(math.ceil(wait))},
            )
        return Caller(user, info)

    def require(self, request: Request, action: str, *, allow_page: bool = False) -> Caller:
        c = self.caller(request, allow_page=allow_page)
        if not allowed(c.user.role, action):
            append_denied(self.users.db, c.user.name, action, f"{request.method} {request.url.path}")
            raise ApiError(
                403, "forbidden",
                f"当前角色（{ROLE_LABELS.get(c.user.role, c.user.role)}）无权执行此操作：{ACTION_LABELS.get(action, action)}",
            )
        return c


def needs(action: str, *, allow_page: bool = False):
    """A FastAPI dependency that returns the ``Caller`` allowed to perform ``action`` (the app's
    ``Authenticator`` is ``app.state.ctx.auth``, set by ``server.create_app``)."""

    def check(
        request: Request,
        _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],  # documents the scheme in OpenAPI
    ) -> Caller:
        return request.app.state.ctx.auth.require(request, action, allow_page=allow_page)

    check.__name__ = f"require_{action}"
    return check


# what a route declares: ``def route(caller: ChatCaller) -> ...``
ChatCaller = Annotated[Caller, Depends(needs("chat"))]
QuizCaller = Annotated[Caller, Depends(needs("quiz"))]
AdminCaller = Annotated[Caller, Depends(needs("manage"))]
ReaderCaller = Annotated[Caller, Depends(needs("chat", allow_page=True))]  # a key, or the page's sign-in
