"""``GET /v1/models`` and ``POST /v1/chat/completions`` in the OpenAI chat format, with citations.

The message content is the answer text with its ``[n]`` markers. Beside it every answer carries
``references`` (``{n, title, heading_path, file, span, text, quote}``: the passage and the cited
sentence) and ``annotations`` of type ``url_citation`` whose url opens the article at the passage
in this app (``/articles/{file}?start=&end=``). Streamed (``stream: true``, server-sent events),
the references and annotations come in the last chunk before ``data: [DONE]``, computed from the
text that was streamed, so an SDK client sees them. A refusal is a normal answer with
``refused: true`` whose references are the closest passages (no marker points at them).

The ``messages`` history drives follow-ups as in the page: the last user message is the question,
the earlier user/assistant messages are ``history`` for ``RagService.ask``. System messages and
sampling parameters (temperature, max_tokens, ...) are accepted and ignored: the answer mode is the
server's. In llm mode the text is sent once the citation check has run (the check may drop
sentences, and text already streamed cannot be taken back).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote as urlquote

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError
from ..limits import strip_invisible
from ..schema import Answer, Chunk

logger = logging.getLogger(__name__)

MODEL_ID = "dangjian-rag"
MARKER = re.compile(r"\[(\d{1,3})\]")
REFUSAL_PASSAGES = 5  # closest passages listed with a refusal (as on the page)
MAX_MESSAGES = 100
MAX_HISTORY_CHARS = 100_000


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[Any] | None = None


class ChatRequest(BaseModel):
    """The OpenAI request body; unknown fields (temperature, top_p, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    conversation_id: str | None = Field(default=None, description="继续某个已保存的对话（可选）")


def message_text(content: Any) -> str:
    """Plain text of an OpenAI message content: a string or a list of ``{"type": "text", "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    return ""


def split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict]]:
    """(question, history): the last message must be the user's; system messages are dropped."""
    if len(messages) > MAX_MESSAGES:
        raise InputError(f"对话消息过多（{len(messages)} 条），最多 {MAX_MESSAGES} 条", f"{len(messages)} messages")
    # invisible characters and lone surrogates out of every message: they are stored with the conversation
    plain = [{"role": m.role, "content": strip_invisible(message_text(m.content))}
             for m in messages if m.role in ("user", "assistant")]
    if not plain or plain[-1]["role"] != "user":
        raise InputError("最后一条消息须为用户的问题（role: user）", "last message is not a user message")
    if sum(len(m["content"]) for m in plain) > MAX_HISTORY_CHARS:
        raise InputError(f"对话历史过长（超过 {MAX_HISTORY_CHARS} 字）", "history too long")
    return plain[-1]["content"], plain[:-1]


def article_url(base_url: str, chunk: Chunk) -> str:
    """Where the app shows ``chunk``'s article with the passage marked."""
    return f"{base_url.rstrip('/')}/articles/{urlquote(chunk.source)}?start={chunk.start}&end={chunk.end}#passage"


def cited_items(ans: Answer, text: str) -> list[tuple[int, Chunk, str]]:
    """(n, chunk, quote) of the sources ``text`` cites; for a refusal the closest passages."""
    if ans.refused:
        return [(i, h.chunk, "") for i, h in enumerate(ans.hits[:REFUSAL_PASSAGES], 1)]
    shown = {int(m) for m in MARKER.findall(text)}
    return [(c.n, c.chunk, c.quote) for c in ans.citations if c.n in shown]


def references(ans: Answer, text: str) -> list[dict]:
    return [
        {"n": n, "title": ch.title, "heading_path": list(ch.heading_path), "file": ch.source,
         "span": [ch.start, ch.end], "text": ch.text, "quote": quote}
        for n, ch, quote in cited_items(ans, text)
    ]


def annotations(ans: Answer, text: str, base_url: str) -> list[dict]:
    """One ``url_citation`` per cited source, anchored on the first occurrence of its marker."""
    out = []
    for n, ch, _ in cited_items(ans, text):
        i = text.find(f"[{n}]")
        start, end = (i, i + len(f"[{n}]")) if i >= 0 else (0, 0)
        out.append({
            "type": "url_citation",
            "url_citation": {"start_index": start, "end_index": end, "url": article_url(base_url, ch),
                             "title": " › ".join(p for p in (ch.title, *ch.heading_path) if p) or ch.source},
        })
    return out


def answer_fields(ans: Answer, text: str, base_url: str) -> dict:
    """The non-OpenAI fields that travel with an answer: refused, references, notice."""
    d = {"refused": ans.refused, "references": references(ans, text), "annotations": annotations(ans, text, base_url)}
    if ans.notice:
        d["notice"] = ans.notice
    return d


def completion(ans: Answer, base_url: str, *, model: str = MODEL_ID, extra: dict | None = None) -> dict:
    """A ``chat.completion`` object for a whole answer."""
    text = ans.text
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None, **answer_fields(ans, text, base_url)},
            "finish_reason": "stop",
            "logprobs": None,
        }],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        **(extra or {}),
    }


def sse(obj: dict | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


def stream_chunks(
    steps: Iterator[tuple[str, Answer | None]], base_url: str, *, model: str = MODEL_ID, llm_mode: bool = False,
    extra: dict | None = None, on_done: Callable[[Answer, str], dict | None] | None = None,
    on_error: Callable[[Exception], dict] | None = None,
) -> Iterator[str]:
    """``chat.completion.chunk`` events for the (text so far, Answer|None) steps of ``stream_answer``.

    Only text that extends what was sent is streamed; the last chunk holds the references of the
    streamed text. ``on_done(answer, streamed_text)`` runs before ``[DONE]`` (saving the turn); the
    fields it returns (``conversation_id``, ``message_id``) go into the last chunk.
    """
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish: str | None = None, more: dict | None = None) -> str:
        return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                    **(extra or {}), **(more or {})})

    yield chunk({"role": "assistant", "content": ""})
    sent, final = "", None
    try:
        for text, ans in steps:
            if ans is not None:
                final = ans
                text = ans.text
            elif llm_mode:
                continue  # see the module docstring: llm text is sent once checked
            if text.startswith(sent) and len(text) > len(sent):
                yield chunk({"content": text[len(sent):]})
                sent = text
    except Exception as e:  # noqa: BLE001 - the stream has started: report in-band, never a traceback
        logger.warning("stream failed: %s: %s", type(e).__name__, e)
        err = on_error(e) if on_error else {"error": {"code": "internal_error", "message": "服务器内部错误"}}
        yield sse(err)
        yield sse("[DONE]")
        return
    if final is not None:
        more = on_done(final, sent) if on_done is not None else None
        yield chunk(answer_fields(final, sent, base_url), "stop", more)
    yield sse("[DONE]")


def models_list() -> dict:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "dangjian-rag"}]}
