"""How the page shows things: pure functions from answers, passages, documents and quiz items to HTML
or plain text. No Gradio here, no service: every text that reaches the page is ``html.escape``d at
this boundary (``esc``), chat messages on every turn (``rendered_history``).
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote, unquote

from rag.schema import Answer

ARTICLE_PREVIEW = 5  # closest passages shown with a refusal

CSS = """
.src { border-left: 3px solid #c0392b; padding: 6px 10px; margin: 8px 0; background: #fafafa; }
.src .path { color: #555; font-size: 0.9em; }
.src .passage { white-space: pre-wrap; margin-top: 4px; }
#article-view .article { white-space: pre-wrap; max-height: 480px; overflow-y: auto;
  border: 1px solid #ddd; padding: 10px; line-height: 1.7; }
mark { background: #ffe58f; }
a.src-link { color: #a93226; text-decoration: none; }
a.src-link:hover { text-decoration: underline; }
.src .src-open { font-size: 0.85em; margin-left: 0.6em; }
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
# A plain click on a source link (in an answer bubble or the sources panel) opens the article in the
# page's article view: the link's href goes to the hidden #open-link button's handler. A click with a
# modifier key, or "open in new tab", follows the href: the /articles route (page sign-in required).
LINK_CLICKS = """() => { if (window.__ragLinks) return; window.__ragLinks = true;
  document.addEventListener('click', (e) => {
    const a = e.target.closest ? e.target.closest('a.src-link') : null;
    if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    const b = document.querySelector('#open-link');
    if (!b) return;
    e.preventDefault(); e.stopPropagation();
    window.__ragLink = a.getAttribute('href');
    b.click();
  }, true); }"""
LINK_INPUT = "(x) => window.__ragLink || x"  # the js= of #open-link: the clicked href is the handler's input

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


# ---------------------------------------------------------------- source links
# the name as article_href writes it: percent-encoded (quote with safe=""), so only these characters;
# no "." first and no "/" or "\\" once decoded (a sent-back link must not lead anywhere but an article)
_HREF = re.compile(r"articles/([A-Za-z0-9%_~-][A-Za-z0-9%._~-]{0,299})\?start=(\d{1,9})&end=(\d{1,9})#passage")
_LINK = re.compile(r'<a class="src-link" href="([^"<>]*)"[^<>]*>([^<>]*)</a>')
_TAG = re.compile(r"<[^<>]*>")


def article_href(file: str, start: int, end: int) -> str:
    """The page-relative link to ``file``'s article with [start, end) marked: the /articles route
    (``rag/web/api.py``, the page's sign-in) and, clicked on the page, the article view."""
    return f"articles/{quote(str(file), safe='')}?start={int(start)}&end={int(end)}#passage"


def parse_href(href: str) -> tuple[str, int, int] | None:
    """(file, start, end) of a link made by :func:`article_href`; None for anything else."""
    m = _HREF.fullmatch(str(href or ""))
    if not m:
        return None
    name = unquote(m.group(1))
    if name.startswith(".") or any(c in name for c in "/\\\0"):
        return None
    return name, int(m.group(2)), int(m.group(3))


def compact_label(title: str, heading_path) -> str:
    """The bubble's source line: the title and the last heading (the full path is in the panel)."""
    last = next((h for h in reversed(list(heading_path or ())) if h and h != title), "")
    return " › ".join(p for p in (title, last) if p)


def source_line(n: int, title: str, heading_path) -> str:
    return f"[{n}] {compact_label(title, heading_path)}"


def reference_links(references) -> list[dict]:
    """{"line", "href"} of stored references (``rag.web.openai_api.references``: n, title,
    heading_path, file, span), for reopened answers."""
    out = []
    for r in references or []:
        if not isinstance(r, dict):
            continue
        span = r.get("span") or [0, 0]
        try:
            out.append({"line": source_line(int(r.get("n")), r.get("title") or r.get("file") or "", r.get("heading_path")),
                        "href": article_href(r.get("file") or "", int(span[0]), int(span[1]))})
        except (TypeError, ValueError, IndexError):
            continue
    return [d for d in out if parse_href(d["href"])]


def _linked(text: str, links) -> str:
    """``text`` escaped; each line that is exactly a link's source line becomes that link.

    Escaped text holds no ``<``: the anchors are the only markup, with an href of our own form only."""
    targets = {}
    for d in links or []:
        if isinstance(d, dict) and parse_href(d.get("href")):
            targets.setdefault(esc(d.get("line")), esc(d["href"]))
    if not targets:
        return esc(text)
    lines = esc(text).split("\n")
    return "\n".join(f'<a class="src-link" href="{targets[ln]}" target="_blank" rel="noopener">{ln}</a>'
                      if ln in targets else ln for ln in lines)


def rendered_history(history: list[dict]) -> list[dict]:
    """Plain-text messages as the Chatbot gets them: every one escaped, on every turn.

    The Chatbot renders message HTML even without markdown (sanitised, yet ``<img src=…>`` would
    still load), so nothing the page sends back, the earlier turns included, goes out unescaped.
    An assistant message's ``links`` ({"line", "href"}) turn its source lines into article links.
    """
    return [{"role": m["role"],
             "content": _linked(m["content"], m.get("links")) if m["role"] == "assistant" else esc(m["content"])}
            for m in history]


def plain_history(history) -> list[dict]:
    """``history`` (as the Chatbot holds it, escaped) as [{"role", "content": str}] in plain text;
    an assistant message's source links (only hrefs of :func:`article_href`'s form) as its ``links``."""
    out = []
    for m in history or []:
        if not (isinstance(m, dict) and m.get("role") in ("user", "assistant")):
            continue
        raw = message_text(m.get("content"))
        msg = {"role": m.get("role"), "content": html.unescape(_TAG.sub("", raw))}
        links = [{"line": html.unescape(t), "href": html.unescape(h)} for h, t in _LINK.findall(raw)]
        links = [d for d in links if parse_href(d["href"])]
        if links and msg["role"] == "assistant":
            msg["links"] = links
        out.append(msg)
    return out


def path_label(title: str, heading_path) -> str:
    return " › ".join(p for p in (title, *(heading_path or ())) if p)


def _items(ans: Answer) -> list[tuple[int, object, str]]:
    """(n, chunk, quote) of the sources shown: the citations, or a refusal's closest passages."""
    if ans.refused:
        return [(i, h.chunk, "") for i, h in enumerate(ans.hits[:ARTICLE_PREVIEW], 1)]
    return [(c.n, c.chunk, c.quote) for c in ans.citations]


def render_sources(ans: Answer) -> str:
    """Numbered sources of an answer (or the closest passages of a refusal): title, full heading path,
    the passage (the quoted sentences marked) and a link to the article at the passage; all escaped."""
    parts = ["<h4>相关原文</h4>" if ans.refused else "<h4>来源</h4>"]
    for n, c, q in _items(ans):
        href = esc(article_href(c.source, c.start, c.end))
        parts.append(
            f'<div class="src"><b>[{n}] {esc(c.title)}</b>'
            f'<a class="src-link src-open" href="{href}" target="_blank" rel="noopener">在原文中查看</a>'
            f'<div class="path">{esc(path_label(c.title, c.heading_path))}</div>'
            f'<div class="passage">{highlight(c.text, q) if q else esc(c.text)}</div></div>'
        )
    if len(parts) == 1:
        parts.append("<p>（无）</p>")
    return "".join(parts)


def source_refs(ans: Answer) -> list[dict]:
    """What the "查看全文" control needs of each source: label, document and span."""
    return [
        {"label": f"[{n}] {ch.title or ch.source}", "source": ch.source, "start": ch.start, "end": ch.end,
         "quote": q, "title": ch.title}
        for n, ch, q in _items(ans)
    ]


def answer_links(ans: Answer) -> list[dict]:
    """{"line", "href"} of each cited source: the bubble's source lines as links (none for a refusal)."""
    if ans.refused:
        return []
    return [{"line": source_line(c.n, c.chunk.title or c.chunk.source, c.chunk.heading_path),
             "href": article_href(c.chunk.source, c.chunk.start, c.chunk.end)} for c in ans.citations]


def answer_message(ans: Answer) -> str:
    """The assistant message (plain text): the answer with its [n] markers, then one compact line per
    cited source, "[n] 标题 › 末级标题" (the page links them: :func:`answer_links`)."""
    lines = [ans.text]
    if ans.notice:
        lines.append(f"（{ans.notice}）")
    if not ans.refused and ans.citations:
        lines.append("\n来源：")
        lines += [d["line"] for d in answer_links(ans)]
    return "\n".join(lines)


def article_title(documents: dict, name: str) -> str:
    """An article's title from the index's documents (its metadata), else its file name."""
    return str((((documents or {}).get(name) or {}).get("meta") or {}).get("title") or name)


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
