"""One process: a FastAPI app serving the API routes and, mounted at ``/``, the Gradio page.

``create_app(service, settings, users, docs, demo=page, page_options={...})`` builds the app (the
page keeps its own sign-in: ``page_options`` are the keyword arguments ``gr.mount_gradio_app``
takes, e.g. ``auth``); ``serve(app, settings)`` runs it with uvicorn, one worker (the index, the
sentence cache and the rate limits live in this process). ``ServerThread`` runs it on a loopback
port in a thread, for tests and the API benchmark.

Not done here: TLS, several workers, a reverse proxy's headers (put one in front for TLS).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from .. import __version__
from ..db.audit import append_denied
from ..config import Settings
from ..db import Database, open_database
from ..db.keys import ApiKeyStore
from ..index.documents import DocumentManager
from ..service import RagService
from ..auth.users import UserStore
from .api import ApiContext, include_routes
from .auth import Authenticator, RateLimiter
from ..auth.sessions import SessionStore
from .edge import Edge
from .errors import install_error_handlers

logger = logging.getLogger(__name__)


def create_app(
    service: RagService, settings: Settings, users: UserStore, docs: DocumentManager, *,
    db: Database | None = None, demo: Any = None, page_options: dict | None = None, **extra: Any,
) -> FastAPI:
    """The FastAPI app: ``/v1``, ``/api/v1``, ``/articles``, ``/openapi.json``, and the page at ``/``."""
    app = FastAPI(
        title="党建知识问答 API", version=__version__,
        description="OpenAI 兼容的问答接口（/v1）与管理接口（/api/v1）。所有接口需 Authorization: Bearer KEY。",
        docs_url=None, redoc_url=None,  # Swagger UI would load its script from a CDN: the schema is at /openapi.json
    )
    install_error_handlers(app)
    db = db or open_database(settings)
    auth = Authenticator(ApiKeyStore(db), users, RateLimiter(settings.api_rate_limit))
    ctx = ApiContext(service=service, settings=settings, users=users, docs=docs, db=db, auth=auth, extra=dict(extra))
    app.state.ctx = ctx
    include_routes(app, ctx)
    app.add_middleware(
        Edge, upload_max_bytes=settings.upload_max_bytes, upload_max_files=settings.upload_max_files,
        key_user=lambda token: key_user(auth, token),
        busy=lambda user: service.slots.in_flight(user) >= service.slots.per_user,
        denied=lambda user, action, where: append_denied(settings, user, action, where),
    )
    if demo is not None:
        import gradio as gr

        gr.mount_gradio_app(app, demo, path="/", **(page_options or {}))
        auth.page_user = page_user_lookup(app, SessionStore.for_settings(settings))
    return app


def key_user(auth: Authenticator, token: str) -> tuple[str, str] | None:
    """(name, role) of the user of a valid, unrevoked API key, else None."""
    info = auth.keys.verify(token)
    user = auth.users.get(info.user) if info is not None else None
    return (user.name, user.role) if user is not None else None


def page_user_lookup(app: FastAPI, sessions: SessionStore):
    """The page's signed-in user of a request (Gradio's session cookie, checked against the live
    sessions: a session ended by ``users reset|remove|role``, by its idle time or its lifetime
    opens nothing), for the article view."""
    from starlette.routing import Mount

    page = next((r.app for r in app.routes if isinstance(r, Mount) and hasattr(r.app, "tokens")), None)
    if page is None:
        return None

    def lookup(request) -> str | None:
        cid = page.cookie_id
        token = request.cookies.get(f"access-token-{cid}") or request.cookies.get(f"access-token-unsecure-{cid}")
        if not token:
            return None
        user = sessions.user_of(token)
        return user if user is not None and page.tokens.get(token) in (None, user) else None

    return lookup


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` on ``settings.host:settings.port`` until interrupted (one worker)."""
    # proxy_headers off: X-Forwarded-For from a local client must not pick the address the sign-in
    # throttle counts. No connection cap: uvicorn has no header timeout, so a cap would let anyone
    # who opens that many idle sockets shut everyone out (put a reverse proxy in front for that).
    uvicorn.run(
        app, host=settings.host, port=settings.port, workers=1, log_level="info", timeout_graceful_shutdown=5,
        proxy_headers=False, timeout_keep_alive=5,
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving ``app`` on ``host:port`` in a daemon thread; ``with ServerThread(app) as url: ...``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="on", proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
