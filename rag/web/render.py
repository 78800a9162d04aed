"""How the page shows things: pure functions from answers, passages, documents and quiz items to HTML
or plain text. No Gradio here, no service: every text that reaches the page is ``html.escape``d at
this boundary (``esc``), chat messages on every turn (``rendered_history``).
"""

from __future__ import annotations

import html
import re

from rag.schema import Answer

ARTICLE_PREVIEW = 5  # closest passages shown with a refusal

CSS = """
.src { border-left: 3px solid #c0392b; padding: 6px 10px; margin: 8px 0; background: #fafafa; }
.src .path { color: #555; font-size: 0.9em; }
.src .passage { white-space: pre-wrap; margin-top: 4px; }
#article-view .article { white-space: pre-wrap; max-height: 480px; overflow-y: auto;
  border: 1px solid #ddd; padding: 10px; line-height: 1.7; }
mark { background: #ffe58f; }
table.docs { border-collapse: collapse; width: 100%; font-size: 0.9em; }
table.docs td, table.docs th { border: 1px solid #ddd; padding: 4px 6px; text-align: left; }
.qz { border: 1px solid #ddd; border-left: 4px solid #c0392b; padding: 8px 12px; margin: 10px 0; }
.qz-accepted { border-left-color: #27ae60; background: #f6fff8; }
.qz-dropped { border-left-color: #999; opacity: 0.6; }
.qz .qz-stem { margin: 4px 0; font-weight: 500; }
.qz ul.qz-opts { margin: 4px 0 4px 1.2em; padding: 0; list-style: none; }
.qz .path, .qz .qz-expl { color: #555; font-size: 0.9em; }
.qz .qz-quote { white-space: pre-wrap; background: #fafafa; padding: 2px 6px; font-size: 0.9em; }
"""
SCROLL_TO_MARK = """() => { setTimeout(() => { const m = document.querySelector('#article-view mark');
  if (m) m.scrollIntoView({block: 'center'}); }, 100); }"""

_SENTENCE_END = re.compile(r"(?<=[。！？；!?])")


def esc(text: object) -> str:
    return html.escape(str(text or ""), quote=True)


def highlight(text: str, quote: str) -> str:
    """Escape ``text`` and wrap the occurrences of ``quote`` (or of its sentences) in <mark>."""
    spans: list[tuple[int, int]] = []
    needles = [quote] if quote and quote in text else [s.strip() for s in _SENTENCE_END.split(quote or "")]
    for needle in needles:
        if len(needle) < 2:
            continue
        i = text.find(needle)
        if i >= 0 and not any(a < i + len(needle) and i < b for a, b in spans):
            spans.append((i, i + len(needle)))
    out, pos = [], 0
    for a, b in sorted(spans):
        out.append(esc(text[pos:a]) + "<mark>" + esc(text[a:b]) + "</mark>")
        pos = b
    out.append(esc(text[pos:]))
    return "".join(out)


def message_text(content) -> str:
    """The plain text of a chat message (Gradio 6 sends content as a list of {"type", "text"} parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return "".join(message_text(c) for c in content)
    return ""


def rendered_history(history: list[dict]) -> list[dict]:
    """Plain-text messages as the Chatbot gets them: every one escaped, on every turn.

    The Chatbot renders message HTML even without markdown (sanitised, yet ``<img src=…>`` would
    still load), so nothing the page sends back, the earlier turns included, goes out unescaped.
    """
    return [{"role": m["role"], "content": esc(m["content"])} for m in history]


def plain_history(history) -> list[dict]:
    """``history`` (as the Chatbot holds it, escaped) as [{"role", "content": str}] in plain text."""
    return [
        {"role": m.get("role"), "content": html.unescape(message_text(m.get("content")))}
        for m in history or [] if isinstance(m, dict) and m.get("role") in ("user", "assistant")
    ]


def path_label(title: str, heading_path) -> str:
    return " › ".join(p for p in (title, *(heading_path or ())) if p)


def render_sources(ans: Answer) -> str:
    """Numbered sources of an answer (or the closest passages of a refusal), all text escaped."""
    parts = []
    if ans.refused:
        parts.append("<h4>相关原文</h4>")
        for i, hit in enumerate(ans.hits[:ARTICLE_PREVIEW], 1):
            c = hit.chunk
            parts.append(
                f'<div class="src"><b>[{i}] {esc(c.title)}</b>'
                f'<div class="path">{esc(path_label(c.title, c.heading_path))}</div>'
                f'<div class="passage">{esc(c.text)}</div></div>'
            )
    else:
        parts.append("<h4>来源</h4>")
        for cit in ans.citations:
            c = cit.chunk
            parts.append(
                f'<div class="src"><b>[{cit.n}] {esc(c.title)}</b>'
                f'<div class="path">{esc(path_label(c.title, c.heading_path))}</div>'
                f'<div class="passage">{highlight(c.text, cit.quote)}</div></div>'
            )
    if len(parts) == 1:
        parts.append("<p>（无）</p>")
    return "".join(parts)


def source_refs(ans: Answer) -> list[dict]:
    """What the "查看全文" control needs of each source: label, document and span."""
    if ans.refused:
        items = [(i, h.chunk, "") for i, h in enumerate(ans.hits[:ARTICLE_PREVIEW], 1)]
    else:
        items = [(c.n, c.chunk, c.quote) for c in ans.citations]
    return [
        {"label": f"[{n}] {ch.title or ch.source}", "source": ch.source, "start": ch.start, "end": ch.end,
         "quote": q, "title": ch.title}
        for n, ch, q in items
    ]


def answer_message(ans: Answer) -> str:
    """The assistant message (plain text): the answer, then the numbered source titles."""
    lines = [ans.text]
    if ans.notice:
        lines.append(f"（{ans.notice}）")
    if not ans.refused and ans.citations:
        lines.append("\n来源：" + "；".join(f"[{c.n}] {path_label(c.chunk.title, c.chunk.heading_path)}" for c in ans.citations))
    return "\n".join(lines)


def render_article(title: str, text: str, start: int, end: int) -> str:
    """The whole article, escaped, with the cited passage [start, end) marked."""
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    return (
        f"<h4>{esc(title)}</h4><div class='article'>{esc(text[:start])}<mark>{esc(text[start:end])}</mark>"
        f"{esc(text[end:])}</div>"
    )


def render_documents(rows) -> str:
    if not rows:
        return "<p>（资料库中还没有文章）</p>"
    head = "<tr><th>标题</th><th>文件</th><th>大小</th><th>段落数</th><th>SHA-256</th><th>添加时间</th><th>添加人</th></tr>"
    body = "".join(
        f"<tr><td>{esc(r.title)}</td><td>{esc(r.name)}"
        + (f"<br><small>原名：{esc(r.original_name)}</small>" if r.original_name and r.original_name != r.name else "")
        + f"</td><td>{r.size:,} 字节</td><td>{'—' if r.chunks is None else r.chunks}</td>"
        f"<td><code>{esc(r.sha256)}</code></td><td>{esc(r.added) or '—'}</td><td>{esc(r.added_by) or '—'}</td></tr>"
        for r in rows
    )
    return f"<table class='docs'>{head}{body}</table>"


def status_line(status: dict) -> str:
    if not status.get("ok"):
        return f"索引状态：不可用（{status.get('error', '')}）"
    return (
        f"索引版本 {status['version']} · {status['chunks']} 个段落 · {status.get('documents') or '?'} 篇文章 · "
        f"向量模型 {status.get('embedder')} · 生成于 {status.get('built')}"
    )


QUIZ_STATUS = {"pending": "待审", "accepted": "已采用", "dropped": "不采用"}


def render_quiz_item(i: int, item, status: str) -> str:
    """One generated item as a card: stem, options, answer, explanation and its source; all escaped."""
    from rag.quiz.items import TYPE_LABELS

    opts = item.options.items() if isinstance(item.options, dict) else []
    answer = "、".join(item.answer) if isinstance(item.answer, list) else item.answer
    return (
        f"<div class='qz qz-{esc(status)}' id='quiz-item-{i}'>"
        f"<div class='qz-head'><b>第 {i + 1} 题</b> · {esc(TYPE_LABELS.get(item.type, item.type))}"
        f" · <span class='qz-status'>{esc(QUIZ_STATUS.get(status, status))}</span></div>"
        f"<div class='qz-stem'>{esc(item.stem)}</div>"
        + ("<ul class='qz-opts'>" + "".join(f"<li>{esc(k)}. {esc(v)}</li>" for k, v in opts) + "</ul>" if opts else "")
        + f"<div><b>答案：</b>{esc(answer)}</div><div class='qz-expl'><b>解析：</b>{esc(item.explanation)}</div>"
        f"<div class='path'>出处：{esc(path_label(item.title, item.heading_path))}（{esc(item.evidence.file)}）</div>"
        f"<div class='qz-quote'>“{esc(item.evidence.quote)}”</div></div>"
    )


def render_quiz(entries: list[dict]) -> str:
    if not entries:
        return "<p>（还没有生成题目）</p>"
    from rag.quiz.items import QuizItem

    return "".join(render_quiz_item(i, QuizItem.model_validate(e["item"]), e["status"]) for i, e in enumerate(entries))


def render_quiz_source(item) -> str:
    """The 出处 card under the quiz editor: where an item comes from, and the quote; all escaped."""
    return (
        f"<div class='src'><b>出处</b><div class='path'>{esc(path_label(item.title, item.heading_path))}"
        f"（{esc(item.evidence.file)}）</div><div class='passage'>“{esc(item.evidence.quote)}”</div></div>"
    )
