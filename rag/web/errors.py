"""Every error of the web API as JSON ``{"error": {"code", "message", "type"}}``, never a stack trace.

``message`` is Chinese, for people; ``code`` is a stable English token for programs; ``type``
repeats the code so that OpenAI clients, which read ``error.type``, show something sensible.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..db.conversations import NotFoundError
from ..errors import (
    AuthError,
    BusyError,
    ConfigError,
    EmptyCorpusError,
    IndexBusyError,
    IndexNotBuiltError,
    InputError,
    LoaderError,
    QuizError,
    RagError,
)

logger = logging.getLogger(__name__)

HTTP_MESSAGES = {
    400: ("bad_request", "请求无效"),
    401: ("unauthorized", "未提供有效的 API 密钥（Authorization: Bearer KEY）"),
    403: ("forbidden", "当前角色无权访问此接口"),
    404: ("not_found", "接口或资源不存在"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("too_large", "请求内容过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
    429: ("rate_limited", "请求过于频繁，请稍后再试"),
    500: ("internal_error", "服务器内部错误"),
    503: ("unavailable", "服务暂不可用"),
}

# typed errors of the core -> HTTP status and code
RAG_STATUS: list[tuple[type[RagError], int, str]] = [
    (AuthError, 403, "forbidden"),
    (BusyError, 429, "busy"),
    (IndexBusyError, 409, "index_busy"),
    (IndexNotBuiltError, 503, "index_not_built"),
    (EmptyCorpusError, 409, "empty_corpus"),
    (LoaderError, 400, "bad_document"),
    (NotFoundError, 404, "not_found"),
    (InputError, 400, "bad_input"),
    (QuizError, 422, "quiz_failed"),
    (ConfigError, 500, "config_error"),
]


class ApiError(Exception):
    """An error the API answers with on purpose: status, code, Chinese message, optional headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, "type": code, **extra}}


def rag_error_status(e: RagError) -> tuple[int, str]:
    for cls, status, code in RAG_STATUS:
        if isinstance(e, cls):
            return status, code
    return 500, "internal_error"


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors for the routes of ``app`` (the mounted Gradio page keeps its own)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(error_body(e.code, e.message), status_code=e.status, headers=e.headers)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, e: RagError) -> JSONResponse:
        status, code = rag_error_status(e)
        logger.info("%s %s -> %d: %s", request.method, request.url.path, status, e.log_message)
        headers = {"Retry-After": str(e.retry_after)} if isinstance(e, BusyError) else None
        return JSONResponse(error_body(code, str(e)), status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code, message = HTTP_MESSAGES.get(e.status_code, ("http_error", "请求失败"))
        return JSONResponse(error_body(code, message), status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        if any(err.get("type") == "json_invalid" for err in errs):
            return JSONResponse(error_body("invalid_request", "请求内容不是合法的 JSON"), status_code=422)
        fields = sorted({".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body" for err in errs})
        return JSONResponse(
            error_body("invalid_request", f"请求参数无效：{'、'.join(fields)}", fields=fields), status_code=422
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "服务器内部错误，请联系管理员查看日志"), status_code=500)
