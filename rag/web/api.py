"""The HTTP API: ``/v1`` (OpenAI-compatible chat) and ``/api/v1`` (REST for admins and trainers).

Routes call ``RagService`` through its public methods and the document/user stores through
theirs; they translate typed errors into JSON (``rag.web.errors``). Handlers are plain ``def``
functions: FastAPI runs them in its thread pool, so a slow answer never blocks the event loop.
"""

from __future__ import annotations

import html
import itertools
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount

from ..config import Settings
from ..db import Database
from ..index.documents import DocumentManager
from ..errors import RagError
from ..service import RagService
from ..auth.users import UserStore
from . import openai_api as oa
from .auth import Authenticator, Caller, ChatCaller, ReaderCaller
from .errors import ApiError, error_body, rag_error_status
from .render import article_title

logger = logging.getLogger(__name__)


@dataclass
class ApiContext:
    """What the routes need; built once by ``server.create_app``."""

    service: RagService
    settings: Settings
    users: UserStore
    docs: DocumentManager
    db: Database
    auth: Authenticator
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..db.conversations import ConversationStore, FeedbackStore

        self.conversations = ConversationStore(self.db)
        self.feedback = FeedbackStore(self.db)


def base_url(request: Request, settings: Settings) -> str:
    """Where citation links point: ``RAG_PUBLIC_URL`` when set, else the address the connection
    arrived at. The Host header is never used: a client could set it to any name."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host, port = (request.scope.get("server") or (settings.host, settings.port))[:2]
    scheme = request.url.scheme if request.url.scheme in ("http", "https") else "http"
    base = f"{scheme}://[{host}]:{port}" if ":" in str(host) else f"{scheme}://{host}:{port}"
    return base + request.scope.get("root_path", "").rstrip("/")


def stream_error(e: Exception) -> dict:
    if isinstance(e, RagError):
        _, code = rag_error_status(e)
        return error_body(code, str(e))
    return error_body("internal_error", "服务器内部错误，请联系管理员查看日志")


def record_turn(ctx: ApiContext, caller: Caller, question: str, history: list[dict], conversation: str | None,
                ans, text: str) -> dict:
    """File the turn under the caller's conversation; a database failure costs the record, not the answer."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        turn = ctx.conversations.record_turn(
            caller.user.name, question, text, history=history, conversation_id=conversation, refused=ans.refused,
            references=oa.references(ans, text), index_version=ctx.service.status().get("version"),
            evidence=float(ans.evidence), source="api",
        )
    except SQLAlchemyError as e:
        logger.error("could not record the turn of %r: %s", caller.user.name, e)
        return {}
    return {"conversation_id": turn.conversation_id, "message_id": turn.message_id}


def openai_router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["OpenAI 兼容"])

    @r.get("/models", summary="可用模型（OpenAI 格式）")
    def models(caller: ChatCaller) -> dict:
        return oa.models_list()

    @r.post("/chat/completions", summary="问答（OpenAI 格式，stream=true 时为 SSE）")
    def chat_completions(body: oa.ChatRequest, request: Request, caller: ChatCaller) -> Any:
        if body.model != oa.MODEL_ID:
            raise ApiError(404, "model_not_found", f"模型不存在：{body.model}（可用：{oa.MODEL_ID}）")
        question, history = oa.split_messages(body.messages)
        question = ctx.service.check_question(question)
        url = base_url(request, ctx.settings)
        conversation = body.conversation_id or request.headers.get("x-conversation-id") or None
        if conversation:
            ctx.conversations.get(caller.user.name, conversation)  # 404 before any work when not the caller's

        def save(ans, text: str) -> dict:
            return record_turn(ctx, caller, question, history, conversation, ans, text)

        if body.stream:
            steps = ctx.service.stream_answer(question, history, user=caller.user.name)
            first = next(steps)  # the answer slot is taken here: a busy caller gets its 429 before any stream
            steps = itertools.chain([first], steps)
            chunks = oa.stream_chunks(
                steps, url, llm_mode=ctx.settings.answer_mode == "llm", on_error=stream_error, on_done=save,
            )
            return StreamingResponse(chunks, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        ans = ctx.service.ask(question, history, user=caller.user.name)
        return JSONResponse(oa.completion(ans, url, extra=save(ans, ans.text)))

    return r


ARTICLE_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:48em;margin:2em auto;line-height:1.7;padding:0 1em}}
.article{{white-space:pre-wrap}} mark{{background:#ffe58f}}</style></head>
<body><h2>{title}</h2><div class="article">{before}<mark id="passage">{passage}</mark>{after}</div></body></html>"""


def article_router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(tags=["文章"])

    @r.get("/articles/{name}", response_class=HTMLResponse, summary="文章全文，引用段落高亮")
    def article(
        name: str, caller: ReaderCaller, start: Annotated[int, Query(ge=0)] = 0, end: Annotated[int, Query(ge=0)] = 0,
    ) -> HTMLResponse:
        index, _, _ = ctx.service.current()
        text = index.document_text(name)
        if not text:
            raise ApiError(404, "not_found", f"文章不在当前索引中：{name}")
        start, end = min(start, len(text)), min(max(end, start), len(text))
        title = article_title(index.documents, name)
        page = ARTICLE_PAGE.format(
            title=html.escape(str(title)), before=html.escape(text[:start]),
            passage=html.escape(text[start:end]), after=html.escape(text[end:]),
        )
        return HTMLResponse(page)

    return r


def include_routes(app: FastAPI, ctx: ApiContext) -> None:
    from .rest import rest_router

    app.include_router(openai_router(ctx))
    app.include_router(rest_router(ctx))
    app.include_router(article_router(ctx))

    # anything else under the API prefixes: the API's JSON 404, not the page's
    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    @app.api_route("/api/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown_route(rest: str, request: Request) -> None:
        from starlette.routing import Match

        others = [r for r in app.router.routes if getattr(r, "endpoint", None) is not unknown_route]
        if any(r.matches(request.scope)[0] != Match.NONE for r in others if not isinstance(r, Mount)):
            raise ApiError(405, "method_not_allowed", "不支持该请求方法")  # the path exists, with other methods
        raise ApiError(404, "not_found", "接口不存在")
