"""``/api/v1``: REST for admins (documents, reindex, index status) and trainers (quiz).

Documents: ``GET /documents`` lists, ``POST /documents`` uploads (multipart ``files``),
``PUT /documents/{name}`` replaces (multipart ``file``), ``DELETE /documents/{name}`` removes;
the corpus changes at once, the index at the next reindex (as on the page).
Reindex: ``POST /reindex`` starts a build in a background thread (409 while one runs) and
``GET /reindex`` reports its progress and, when done, its report. ``GET /index`` is the live
index's status. Quiz: ``POST /quiz`` generates items, ``POST /quiz/export`` returns a file.

Not done here: editing quiz items or the question bank (the page's 测验 tab does that).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..db.audit import append_audit
from ..errors import IndexBusyError, InputError
from .auth import AdminCaller, ChatCaller, QuizCaller
from .errors import ApiError

logger = logging.getLogger(__name__)

EXPORT_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
}


class ReindexJob:
    """The one reindex this process runs at a time, and what the last one reported."""

    def __init__(self, service, settings) -> None:
        self.service, self.settings = service, settings
        self._lock = threading.Lock()
        self.state: dict = {"state": "idle"}

    def start(self, user: str, rebuild: bool) -> dict:
        with self._lock:
            if self.state.get("state") == "running":
                raise ApiError(409, "index_busy", "已有索引重建正在进行，请稍后查看进度（GET /api/v1/reindex）")
            self.state = {"state": "running", "user": user, "rebuild": rebuild, "started": time.time(),
                          "done": 0, "total": 0, "what": "读取文章"}
            snapshot = dict(self.state)
        threading.Thread(target=self._run, args=(user, rebuild), name="api-reindex", daemon=True).start()
        return snapshot

    def _progress(self, done: int, total: int, what: str) -> None:
        with self._lock:
            self.state.update(done=done, total=total, what=what)

    def _run(self, user: str, rebuild: bool) -> None:
        try:
            rep = self.service.reindex(progress=self._progress, rebuild=rebuild, user=user)
        except Exception as e:  # noqa: BLE001 - reported through GET /reindex, never lost
            logger.warning("API reindex failed: %s: %s", type(e).__name__, getattr(e, "log_message", e))
            busy = isinstance(e, IndexBusyError)
            message = str(e) if isinstance(e, (IndexBusyError, InputError)) or hasattr(e, "log_message") else "索引重建失败，请查看服务器日志"
            with self._lock:
                self.state.update(state="failed", finished=time.time(), error={"code": "index_busy" if busy else "reindex_failed", "message": message})
            return
        append_audit(self.settings, {"action": "reindex", "user": user, "version": rep.version, "via": "api"})
        report = dataclasses.asdict(rep)
        report["summary"] = rep.summary()
        with self._lock:
            self.state.update(state="done", finished=time.time(), report=report)

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self.state)


class ReindexRequest(BaseModel):
    rebuild: bool = Field(False, description="全部重新嵌入（不用缓存）")


class QuizRequest(BaseModel):
    topic: str | None = Field(None, max_length=200, description="主题（检索相关段落出题）")
    article: str | None = Field(None, max_length=200, description="只从这篇文章出题（文件名或编号）")
    n: int = Field(5, ge=1, le=40)
    types: list[Literal["single", "multi", "judge", "blank"]] = Field(default_factory=lambda: ["single", "multi", "judge", "blank"])
    seed: int = Field(0, ge=0, le=2**31)
    exclude_bank: bool = True


class ExportRequest(BaseModel):
    items: list[dict] | None = Field(None, max_length=200, description="要导出的题目（POST /quiz 返回的 items）；省略则导出整个题库")
    format: Literal["docx", "xlsx", "json", "md"] = "docx"
    title: str = Field("党建知识测验", max_length=100)


class RenameRequest(BaseModel):
    title: str = Field(..., min_length=1, max_length=100)


class FeedbackRequest(BaseModel):
    rating: Literal["up", "down", "👍", "👎"] = Field(..., description="up（👍）或 down（👎）")
    message_id: int | None = Field(None, ge=1, le=2**63 - 1, description="所评价的回答（/v1/chat/completions 返回的 message_id）")
    reason: Literal["答案错误", "引用不对", "没有回答", "其他"] | None = None
    note: str = Field("", max_length=1000)
    question: str = Field("", max_length=2000, description="没有 message_id 时：问题原文")
    answer: str = Field("", max_length=20000, description="没有 message_id 时：回答原文")


def _doc_row(row) -> dict:
    return dataclasses.asdict(row)


async def _read(f: UploadFile, limit: int) -> tuple[str, bytes]:
    data = await f.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"文件过大：{f.filename}（上限 {limit // (1024 * 1024)} MiB）")
    return f.filename or "upload", data


def rest_router(ctx) -> APIRouter:
    """``/api/v1``: one builder per resource, routes added in this order."""
    r = APIRouter(prefix="/api/v1")
    job = ReindexJob(ctx.service, ctx.settings)
    ctx.extra["reindex_job"] = job
    _document_routes(r, ctx)
    _index_routes(r, ctx, job)
    _quiz_routes(r, ctx)
    _conversation_routes(r, ctx)
    _feedback_routes(r, ctx)
    return r


def _document_routes(r: APIRouter, ctx) -> None:
    """Documents (admins): list, upload, replace, delete; the index changes at the next reindex."""
    docs, limit = ctx.docs, ctx.settings.upload_max_bytes

    @r.get("/documents", tags=["文档"], summary="列出文章")
    def list_documents(caller: AdminCaller) -> dict:
        return {"documents": [_doc_row(d) for d in docs.list()]}

    @r.post("/documents", status_code=201, tags=["文档"], summary="上传文章（multipart，字段 files，可多个）")
    async def upload_documents(files: Annotated[list[UploadFile], File()], caller: AdminCaller) -> dict:
        if len(files) > ctx.settings.upload_max_files:
            raise InputError(f"一次最多上传 {ctx.settings.upload_max_files} 个文件（本次 {len(files)} 个）", "too many files")
        items = [await _read(f, limit) for f in files]
        from starlette.concurrency import run_in_threadpool

        names = await run_in_threadpool(docs.add_many, items, caller.user.name)
        return {"added": names, "message": f"已添加 {len(names)} 篇，重建索引后生效"}

    @r.put("/documents/{name}", tags=["文档"], summary="替换文章（multipart，字段 file，类型须相同）")
    async def replace_document(name: str, file: Annotated[UploadFile, File()], caller: AdminCaller) -> dict:
        filename, data = await _read(file, limit)
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(docs.replace, name, filename, data, caller.user.name)
        return {"replaced": name, "message": "已替换，重建索引后生效"}

    @r.delete("/documents/{name}", tags=["文档"], summary="删除文章")
    def delete_document(name: str, caller: AdminCaller) -> dict:
        docs.delete(name, caller.user.name)
        return {"deleted": name, "message": "已删除，重建索引后生效"}


def _index_routes(r: APIRouter, ctx, job: ReindexJob) -> None:
    """Reindex in the background and its progress, and the live index's status (admins)."""

    @r.post("/reindex", status_code=202, tags=["索引"], summary="开始重建索引（后台进行）")
    def start_reindex(caller: AdminCaller, body: ReindexRequest | None = None) -> dict:
        return job.start(caller.user.name, bool(body and body.rebuild))

    @r.get("/reindex", tags=["索引"], summary="重建进度与报告")
    def reindex_progress(caller: AdminCaller) -> dict:
        return job.snapshot()

    @r.get("/index", tags=["索引"], summary="当前索引状态")
    def index_status(caller: AdminCaller) -> dict:
        return ctx.service.status()


def _quiz_routes(r: APIRouter, ctx) -> None:
    """Quiz (trainers and admins): generate items, export items or the whole bank."""

    @r.post("/quiz", tags=["测验"], summary="生成测验题")
    def generate_quiz(body: QuizRequest, caller: QuizCaller) -> dict:
        result = ctx.service.quiz(topic=body.topic, article=body.article, n=body.n, types=body.types,
                                  seed=body.seed, exclude_bank=body.exclude_bank)
        append_audit(ctx.settings, {"action": "quiz_generate", "user": caller.user.name,
                                             "items": len(result.items), "via": "api"})
        out = {"items": [i.model_dump() for i in result.items], "stats": result.stats}
        if not result.items:
            out["message"] = "没有生成任何题目（语料中没有足够的可出题内容）"
        return out

    @r.post("/quiz/export", tags=["测验"], summary="导出测验（docx/xlsx/json/md；省略 items 导出整个题库）",
            response_class=Response, responses={200: {"content": {t: {} for t in EXPORT_TYPES.values()}}})
    def export_quiz(body: ExportRequest, caller: QuizCaller) -> Response:
        from pydantic import ValidationError

        from ..quiz.items import QuizItem
        from ..quiz.bank import QuestionBank
        from ..quiz.export import export_quiz as write

        if body.items is None:
            items = QuestionBank.for_settings(ctx.settings).load()
        else:
            try:
                items = [QuizItem.model_validate(d) for d in body.items]
            except ValidationError as e:
                raise ApiError(422, "invalid_request", f"题目格式无效（共 {e.error_count()} 处）") from e
        if not items:
            raise InputError("没有可导出的题目", "nothing to export")
        with tempfile.TemporaryDirectory() as tmp:
            path = write(items, Path(tmp) / f"quiz.{body.format}", title=body.title)
            data = path.read_bytes()
        append_audit(ctx.settings, {"action": "quiz_export", "user": caller.user.name, "items": len(items),
                                             "format": "." + body.format, "via": "api"})
        return Response(data, media_type=EXPORT_TYPES[body.format],
                        headers={"Content-Disposition": f'attachment; filename="quiz.{body.format}"'})


def _conversation_routes(r: APIRouter, ctx) -> None:
    """The caller's own conversations: list, read, rename, delete."""

    @r.get("/conversations", tags=["对话"], summary="本人的对话列表（新的在前）")
    def list_conversations(caller: ChatCaller, limit: Annotated[int, Query(ge=1, le=200)] = 200,
                           offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> dict:
        return {"conversations": ctx.conversations.list(caller.user.name, limit=limit, offset=offset)}

    @r.get("/conversations/{conversation_id}", tags=["对话"], summary="一个对话的全部消息（含引用）")
    def get_conversation(conversation_id: str, caller: ChatCaller) -> dict:
        return ctx.conversations.get(caller.user.name, conversation_id)

    @r.patch("/conversations/{conversation_id}", tags=["对话"], summary="重命名对话")
    def rename_conversation(conversation_id: str, body: RenameRequest, caller: ChatCaller) -> dict:
        return ctx.conversations.rename(caller.user.name, conversation_id, body.title)

    @r.delete("/conversations/{conversation_id}", tags=["对话"], summary="删除对话")
    def delete_conversation(conversation_id: str, caller: ChatCaller) -> dict:
        ctx.conversations.delete(caller.user.name, conversation_id)
        return {"deleted": conversation_id}


def _feedback_routes(r: APIRouter, ctx) -> None:
    """Feedback on answers (anyone who may chat) and what needs work (admins)."""

    @r.post("/feedback", status_code=201, tags=["反馈"], summary="评价回答：👍/👎，原因与备注")
    def add_feedback(body: FeedbackRequest, caller: ChatCaller) -> dict:
        return ctx.feedback.add(caller.user.name, body.rating, reason=body.reason, note=body.note,
                                message_id=body.message_id, question=body.question, answer=body.answer)

    @r.get("/feedback", tags=["反馈"], summary="待改进的问题：未回答的问题与 👎 的回答，新的在前，按文章计数")
    def needs_work(caller: AdminCaller) -> dict:
        return ctx.feedback.needs_work()
