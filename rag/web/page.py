"""党建知识问答: the Gradio web page. Gradio lives here only; the work is done by ``RagService``.

``build_app(service, settings, users, docs)`` returns the page; ``launch(demo, settings, users)``
serves it with sign-in; ``python app.py`` does both on ``RAG_HOST``:``RAG_PORT`` (127.0.0.1:7860).

Access control: the whole site is behind Gradio's ``auth=`` (checked with ``UserStore.verify``), so
no anonymous caller reaches any page, event or file route. Every handler additionally looks the
signed-in name up again (``gr.Request.username``) and checks the role with ``users.require`` on the
server: a hidden tab is not access control, since Gradio exposes every event as an HTTP API.
First start: with no user at all, user ``admin`` is created with a random password that is printed
once to the console of whoever starts the server.

Safe rendering: every article text, answer, quote and file name is ``html.escape``d at the render
boundary, and every chat message on every turn (``rendered_history``); answers are shown as plain
text (no markdown, hence no remote images); the Chatbot keeps ``sanitize_html``. The corpus, index,
upload store and user file are in ``blocked_paths``.

``rag/web/guard.py`` sits in front of Gradio (installed by :func:`launch`): CSP and nosniff headers,
sign-in throttling and same-origin checks, server-side sessions that expire and end on
``users reset|remove|role``, uploads for admins only, quiz exports for trainers and admins only.
Passwords are checked off the event loop.

Not done here: password changes from the page (use ``python -m rag users``), TLS.
"""

from __future__ import annotations

import html
import logging
import os
import re
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402

from rag.audit import append_audit  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.index.documents import DocumentManager  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.ingest.loaders import SUPPORTED_SUFFIXES  # noqa: E402
from rag.schema import Answer  # noqa: E402
from rag.service import RagService  # noqa: E402
from rag.auth.users import ROLE_LABELS, User, UserStore, allowed, require  # noqa: E402
from rag.web.conversations_ui import ConversationsUI  # noqa: E402
from rag.web.feedback_ui import FeedbackUI  # noqa: E402

logger = logging.getLogger("app")

EXAMPLE_QUESTIONS = [
    "“一抓双创”的内容是什么？",
    "如何加强政协机关党的建设？",
    "模范机关建设有哪些具体举措？",
]
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


# ---------------------------------------------------------------- rendering (pure functions)
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


def _path_label(title: str, heading_path) -> str:
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
                f'<div class="path">{esc(_path_label(c.title, c.heading_path))}</div>'
                f'<div class="passage">{esc(c.text)}</div></div>'
            )
    else:
        parts.append("<h4>来源</h4>")
        for cit in ans.citations:
            c = cit.chunk
            parts.append(
                f'<div class="src"><b>[{cit.n}] {esc(c.title)}</b>'
                f'<div class="path">{esc(_path_label(c.title, c.heading_path))}</div>'
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
        lines.append("\n来源：" + "；".join(f"[{c.n}] {_path_label(c.chunk.title, c.chunk.heading_path)}" for c in ans.citations))
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


# ---------------------------------------------------------------- quiz tab (trainers and admins)
QUIZ_SCOPES = ["按主题", "按文章", "全部语料"]
QUIZ_TYPES = ["单选", "多选", "判断", "填空"]
QUIZ_FORMATS = {"Word": ".docx", "Excel": ".xlsx", "JSON": ".json", "Markdown": ".md"}
QUIZ_EXPORT_SCOPES = ["本次采用的题目", "整个题库"]
QUIZ_STATUS = {"pending": "待审", "accepted": "已采用", "dropped": "不采用"}
QUIZ_MAX_ITEMS = 40


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
        f"<div class='path'>出处：{esc(_path_label(item.title, item.heading_path))}（{esc(item.evidence.file)}）</div>"
        f"<div class='qz-quote'>“{esc(item.evidence.quote)}”</div></div>"
    )


def render_quiz(entries: list[dict]) -> str:
    if not entries:
        return "<p>（还没有生成题目）</p>"
    from rag.quiz.items import QuizItem

    return "".join(render_quiz_item(i, QuizItem.model_validate(e["item"]), e["status"]) for i, e in enumerate(entries))


def build_quiz_tab(demo: gr.Blocks, service: RagService, settings: Settings, users: UserStore, who, tmp: Path) -> None:
    """The 测验 tab's components and events (call inside its ``gr.Tab``). Every handler checks the
    "quiz" permission on the server; generated items live in the session, accepted ones in the
    question bank on disk (``data_dir/question_bank.json``)."""
    import time
    import uuid

    from rag.errors import QuizError
    from rag.quiz.items import QuizItem
    from rag.quiz.edit import answer_for_edit, apply_edit, options_text
    from rag.quiz.llm_items import corpus_texts_of
    from rag.quiz.bank import QuestionBank
    from rag.quiz.export import export_quiz

    bank = QuestionBank.for_settings(settings)
    exports = tmp / "exports"

    def fail(e: RagError, what: str):
        logger.warning("quiz %s failed: %s", what, e.log_message)
        return gr.Error(str(e))

    def bank_line() -> str:
        try:
            return f"题库中现有 {len(bank)} 题（保存在服务器上，重启后仍在）。"
        except RagError as e:
            logger.warning("question bank unreadable: %s", e.log_message)
            return f"题库不可用：{e}"

    def article_choices() -> list[tuple[str, str]]:
        try:
            idx, _, _ = service.current()
        except RagError:
            return []
        return [((d.get("meta") or {}).get("title") or s, s) for s, d in sorted(idx.documents.items())]

    def entry_choices(entries: list[dict]) -> list[tuple[str, int]]:
        out = []
        for i, e in enumerate(entries):
            it = e["item"]
            stem = it["stem"] if len(it["stem"]) <= 36 else it["stem"][:35] + "…"
            out.append((f"{i + 1}. [{QUIZ_STATUS[e['status']]}] {stem}", i))
        return out

    def editor(entries: list[dict], i: int | None):
        """Values of the editor fields for entry ``i`` (or empty ones)."""
        if i is None or not (0 <= i < len(entries)):
            return gr.Dropdown(choices=entry_choices(entries), value=None), "", "", "", "", ""
        it = QuizItem.model_validate(entries[i]["item"])
        source = (
            f"<div class='src'><b>出处</b><div class='path'>{esc(_path_label(it.title, it.heading_path))}"
            f"（{esc(it.evidence.file)}）</div><div class='passage'>“{esc(it.evidence.quote)}”</div></div>"
        )
        return (
            gr.Dropdown(choices=entry_choices(entries), value=i),
            it.stem, options_text(it), answer_for_edit(it), it.explanation, source,
        )

    def picked(entries: list[dict], choice) -> int:
        if choice is None or choice == "" or not entries:
            raise gr.Error("请先生成题目，并在“选择题目”中选一道")
        i = int(choice)
        if not 0 <= i < len(entries):
            raise gr.Error("所选题目不存在，请重新选择")
        return i

    def edited(state: dict, i: int, stem, options, answer, explanation) -> QuizItem:
        entries = state["entries"]
        idx, _, _ = service.current()
        others = {QuizItem.model_validate(e["item"]).stem_key for k, e in enumerate(entries) if k != i}
        try:
            return apply_edit(
                QuizItem.model_validate(entries[i]["item"]), corpus_texts_of(idx),
                stem=stem, options=options, answer=answer, explanation=explanation, other_stems=others,
            )
        except QuizError as e:
            raise fail(e, "edit") from e

    def view(state: dict, i: int | None, msg: str):
        entries = state["entries"]
        return (state, render_quiz(entries), *editor(entries, i), msg, bank_line())

    # -- handlers --------------------------------------------------------------------------
    def init(request: gr.Request):
        name = getattr(request, "username", None)
        user = users.get(name) if name else None
        if user is None or not allowed(user.role, "quiz"):  # the tab is hidden: send nothing
            return gr.Dropdown(choices=[]), ""
        return gr.Dropdown(choices=article_choices(), value=None), bank_line()

    def generate(scope, topic, article, n, types, state, request: gr.Request, progress=gr.Progress()):
        user = who(request, "quiz")
        state = state or {"entries": [], "accepted": {}}
        kinds = [t for t in (types or []) if t in QUIZ_TYPES]
        if not kinds:
            raise gr.Error("请至少选择一种题型")
        try:
            n = int(n)
        except (TypeError, ValueError):
            raise gr.Error("题目数量应为 1–40 的整数") from None
        if not 1 <= n <= QUIZ_MAX_ITEMS:
            raise gr.Error(f"题目数量应为 1–{QUIZ_MAX_ITEMS}")
        kwargs: dict = {"n": n, "types": kinds}
        if scope == "按主题":
            topic = (topic or "").strip()
            if not topic:
                raise gr.Error("请输入主题，例如：模范机关建设")
            if len(topic) > settings.max_question_chars:
                raise gr.Error(f"主题过长，请控制在 {settings.max_question_chars} 字以内")
            kwargs["topic"] = topic
        elif scope == "按文章":
            if not article:
                raise gr.Error("请选择一篇文章")
            kwargs["article"] = str(article)

        def report(done: int, total: int, what: str) -> None:
            progress((done, max(total, 1)), desc=what)

        progress(0, desc="准备出题")
        try:
            result = service.quiz(progress=report, **kwargs)
        except RagError as e:
            raise fail(e, "generation") from e
        if not result.items:
            raise gr.Error("没有生成任何题目：所选范围内可出题的内容不足，或题目已全部在题库中")
        logger.info("quiz generated by %s: %d items (%s)", user.name, len(result.items), result.stats.get("generated"))
        state = {"entries": [{"item": it.to_record(), "status": "pending"} for it in result.items],
                 "accepted": state.get("accepted", {})}
        st = result.stats
        parts = [f"已生成 {len(result.items)} 题（请求 {n} 题）："]
        parts.append("，".join(f"{lab} {st['generated'].get(k, 0)}" for lab, k in zip(
            QUIZ_TYPES, ("single_choice", "multi_choice", "true_false", "fill_blank")) if k in st.get("generated", {})))
        parts.append(f"；用时 {st.get('seconds', 0)} 秒。请逐题审阅：可修改后“采用”，或“不采用”。")
        if st.get("notice"):
            parts.append(f"\n注意：{st['notice']}")
        return view(state, 0, "".join(parts))

    def pick(state, choice, request: gr.Request):
        who(request, "quiz")
        state = state or {"entries": [], "accepted": {}}
        i = picked(state["entries"], choice)
        return editor(state["entries"], i)

    def save(state, choice, stem, options, answer, explanation, request: gr.Request):
        user = who(request, "quiz")
        state = state or {"entries": [], "accepted": {}}
        i = picked(state["entries"], choice)
        item = edited(state, i, stem, options, answer, explanation)
        entry = state["entries"][i]
        entry["item"] = item.to_record()
        msg = f"第 {i + 1} 题已修改。"
        if entry["status"] == "accepted":
            try:
                bank.update(item)
            except (RagError, OSError) as e:
                logger.warning("question bank update failed: %s", e)
                raise gr.Error("题库保存失败，请稍后再试") from e
            state["accepted"][item.id] = item.to_record()
            msg += "题库中的这道题已同步更新。"
            append_audit(settings.data_dir, {"action": "quiz_edit", "user": user.name, "item": item.id})
        return view(state, i, msg)

    def accept(state, choice, stem, options, answer, explanation, request: gr.Request):
        user = who(request, "quiz")
        state = state or {"entries": [], "accepted": {}}
        i = picked(state["entries"], choice)
        item = edited(state, i, stem, options, answer, explanation)  # unsaved edits are taken along
        try:
            added = bank.add([item])
            if not added:
                bank.update(item)
        except (RagError, OSError) as e:
            logger.warning("question bank write failed: %s", e)
            raise gr.Error("题库保存失败，请稍后再试") from e
        state["entries"][i] = {"item": item.to_record(), "status": "accepted"}
        state["accepted"][item.id] = item.to_record()
        append_audit(settings.data_dir, {"action": "quiz_accept", "user": user.name, "item": item.id})
        nxt = next((k for k, e in enumerate(state["entries"]) if e["status"] == "pending"), i)
        return view(state, nxt, f"第 {i + 1} 题已采用并存入题库。")

    def drop(state, choice, request: gr.Request):
        user = who(request, "quiz")
        state = state or {"entries": [], "accepted": {}}
        i = picked(state["entries"], choice)
        entry = state["entries"][i]
        msg = f"第 {i + 1} 题不采用。"
        if entry["status"] == "accepted":
            item_id = entry["item"]["id"]
            try:
                bank.remove(item_id)
            except (RagError, OSError) as e:
                logger.warning("question bank write failed: %s", e)
                raise gr.Error("题库保存失败，请稍后再试") from e
            state["accepted"].pop(item_id, None)
            msg += "已从题库中移除。"
            append_audit(settings.data_dir, {"action": "quiz_remove", "user": user.name, "item": item_id})
        entry["status"] = "dropped"
        nxt = next((k for k, e in enumerate(state["entries"]) if e["status"] == "pending"), i)
        return view(state, nxt, msg)

    def accept_all(state, request: gr.Request):
        user = who(request, "quiz")
        state = state or {"entries": [], "accepted": {}}
        pending = [e for e in state["entries"] if e["status"] == "pending"]
        if not pending:
            raise gr.Error("没有待审的题目")
        items = [QuizItem.model_validate(e["item"]) for e in pending]
        try:
            bank.add(items)
        except (RagError, OSError) as e:
            logger.warning("question bank write failed: %s", e)
            raise gr.Error("题库保存失败，请稍后再试") from e
        for e, it in zip(pending, items):
            e["status"] = "accepted"
            state["accepted"][it.id] = it.to_record()
        append_audit(settings.data_dir, {"action": "quiz_accept", "user": user.name, "items": len(items)})
        return view(state, None, f"已采用 {len(items)} 题并存入题库。")

    def export(fmt, scope, state, request: gr.Request):
        user = who(request, "quiz")
        state = state or {"entries": [], "accepted": {}}
        ext = QUIZ_FORMATS.get(fmt)
        if ext is None:
            raise gr.Error("请选择导出格式")
        try:
            if scope == "整个题库":
                items = bank.load()
            else:
                items = [QuizItem.model_validate(r) for r in state.get("accepted", {}).values()]
        except RagError as e:
            raise fail(e, "export") from e
        if not items:
            raise gr.Error("还没有已采用的题目可以导出" if scope != "整个题库" else "题库是空的")
        from rag.web.guard import sweep

        sweep(exports, settings.export_ttl_s)  # earlier exports (with their answer keys) do not stay
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = exports / uuid.uuid4().hex[:12] / f"党建测验-{stamp}{ext}"
        try:
            export_quiz(items, path, title="党建知识测验")
        except (RagError, OSError) as e:
            logger.warning("quiz export failed: %s", e)
            raise gr.Error("导出失败，请稍后再试") from e
        append_audit(settings.data_dir, {"action": "quiz_export", "user": user.name, "items": len(items), "format": ext})
        return str(path), f"已导出 {len(items)} 题（{fmt}），请点击下方文件下载。"

    # -- layout ------------------------------------------------------------------------------
    state = gr.State({"entries": [], "accepted": {}})
    with gr.Row():
        scope = gr.Radio(QUIZ_SCOPES, value="按主题", label="出题范围", elem_id="quiz-scope", scale=2)
        topic = gr.Textbox(label="主题", placeholder="例如：模范机关建设", elem_id="quiz-topic", scale=3,
                           max_length=max(settings.max_question_chars, 100))
        article = gr.Dropdown(label="文章", choices=[], elem_id="quiz-article", scale=3)
    with gr.Row():
        n = gr.Slider(1, QUIZ_MAX_ITEMS, value=10, step=1, label="题目数量", elem_id="quiz-n", scale=2)
        types = gr.CheckboxGroup(QUIZ_TYPES, value=list(QUIZ_TYPES), label="题型", elem_id="quiz-types", scale=3)
        gen_btn = gr.Button("生成", variant="primary", elem_id="quiz-generate", scale=1)
    msg = gr.Textbox(label="提示", interactive=False, lines=2, elem_id="quiz-msg")
    items_html = gr.HTML("", elem_id="quiz-items")
    with gr.Group():
        pick_dd = gr.Dropdown(label="选择题目（审阅、修改）", choices=[], elem_id="quiz-pick")
        stem = gr.Textbox(label="题干", lines=3, elem_id="quiz-stem")
        options = gr.Textbox(label="选项（选择题每行一个，如“A. 组织联建”）", lines=5, elem_id="quiz-options")
        answer = gr.Textbox(label="答案（单选填 B；多选填 A,C；判断填 正确/错误；填空填原文词语）", elem_id="quiz-answer")
        explanation = gr.Textbox(label="解析", lines=4, elem_id="quiz-explanation")
        source = gr.HTML("", elem_id="quiz-source")
        with gr.Row():
            save_btn = gr.Button("保存修改", elem_id="quiz-save")
            accept_btn = gr.Button("采用（存入题库）", variant="primary", elem_id="quiz-accept")
            drop_btn = gr.Button("不采用", variant="stop", elem_id="quiz-drop")
            accept_all_btn = gr.Button("全部采用", elem_id="quiz-accept-all")
    with gr.Row():
        fmt = gr.Radio(list(QUIZ_FORMATS), value="Word", label="导出格式", elem_id="quiz-format", scale=2)
        export_scope = gr.Radio(QUIZ_EXPORT_SCOPES, value=QUIZ_EXPORT_SCOPES[0], label="导出范围",
                                elem_id="quiz-export-scope", scale=2)
        export_btn = gr.Button("导出", elem_id="quiz-export", scale=1)
    file_out = gr.File(label="下载", interactive=False, elem_id="quiz-file")
    bank_md = gr.Markdown("", elem_id="quiz-bank")

    edit_fields = [pick_dd, stem, options, answer, explanation, source]
    full = [state, items_html, *edit_fields, msg, bank_md]
    demo.load(init, None, [article, bank_md], api_name=False)
    gen_btn.click(generate, [scope, topic, article, n, types, state], full, api_name="quiz_generate",
                  concurrency_limit=1)
    pick_dd.input(pick, [state, pick_dd], edit_fields, api_name="quiz_pick")
    edit_in = [state, pick_dd, stem, options, answer, explanation]
    save_btn.click(save, edit_in, full, api_name="quiz_save")
    accept_btn.click(accept, edit_in, full, api_name="quiz_accept")
    drop_btn.click(drop, [state, pick_dd], full, api_name="quiz_drop")
    accept_all_btn.click(accept_all, [state], full, api_name="quiz_accept_all")
    export_btn.click(export, [fmt, export_scope, state], [file_out, msg], api_name="quiz_export")


# ---------------------------------------------------------------- the page
def build_app(service: RagService, settings: Settings, users: UserStore, docs: DocumentManager) -> gr.Blocks:
    """Build the page; serve it with :func:`launch` (sign-in is enforced there)."""
    tmp = Path(settings.data_dir) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(tmp)  # uploads land here, not in /tmp/gradio

    def who(request: gr.Request | None, action: str) -> User:
        """The signed-in caller if allowed to ``action``; raises gr.Error otherwise (server-side check)."""
        name = getattr(request, "username", None) if request is not None else None
        try:
            return require(users.get(name) if name else None, action)
        except RagError as e:
            logger.warning("denied: %s", e.log_message)
            raise gr.Error(str(e)) from e

    convs = ConversationsUI(settings, who, rendered_history, service=service)  # past conversations (database)
    feedback = FeedbackUI(settings, who, convs.db, service=service, users=users)  # 👍/👎, 待改进的问题

    def manage_view() -> tuple[str, gr.Dropdown]:
        rows = docs.list()
        return render_documents(rows), gr.Dropdown(choices=[r.name for r in rows], value=None)

    # -- handlers: chat -------------------------------------------------------------------
    def on_load(request: gr.Request):
        user = who(request, "chat")
        is_admin = allowed(user.role, "manage")
        table, names = manage_view() if is_admin else ("", gr.Dropdown(choices=[]))
        return (
            f"已登录：**{esc(user.name)}**（{ROLE_LABELS.get(user.role, user.role)}）",
            gr.Tab(visible=allowed(user.role, "quiz")),
            gr.Tab(visible=is_admin),
            status_line(service.status()) if is_admin else "",
            table,
            names,
        )

    def respond(message: str, history: list[dict], request: gr.Request, answered=None):
        user = who(request, "chat")
        history = plain_history(history)
        try:
            q = service.check_question(message)
            stream = service.stream_answer(q, history, user=user.name)
            text, ans = next(stream)
        except RagError as e:  # nothing yielded yet: the message stays in the input box
            logger.info("question failed: %s", e.log_message)
            raise gr.Error(str(e)) from e
        # history is plain text from here on; rendered_history() escapes all of it for the page
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": text}]
        yield rendered_history(history), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        for text, ans in stream:
            history[-1] = {"role": "assistant", "content": text}
            if ans is None:
                yield rendered_history(history), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if ans is None:  # pragma: no cover - stream_answer always ends with the Answer
            return
        history[-1] = {"role": "assistant", "content": answer_message(ans)}
        if answered is not None:  # conversations_ui files the turn
            answered(question=q, answer=ans, text=history[-1]["content"], history=history[:-2])
        refs = source_refs(ans)
        yield (
            rendered_history(history),
            "",
            render_sources(ans),
            refs,
            gr.Dropdown(choices=[(r["label"], i) for i, r in enumerate(refs)], value=0 if refs else None),
        )

    def open_article(choice, refs, request: gr.Request):
        who(request, "chat")
        if choice is None or not refs or not (0 <= int(choice) < len(refs)):
            raise gr.Error("请先选择一条来源")
        ref = refs[int(choice)]
        try:
            index, _, _ = service.current()
        except RagError as e:
            raise gr.Error(str(e)) from e
        text = index.document_text(ref["source"])
        if not text:
            raise gr.Error("该文章已不在当前索引中（可能已被删除或替换）")
        return render_article(ref["title"] or ref["source"], text, ref["start"], ref["end"])

    def new_chat(request: gr.Request):
        who(request, "chat")
        return [], "", "", [], gr.Dropdown(choices=[], value=None), ""

    def pick_example(evt: gr.SelectData, request: gr.Request):
        who(request, "chat")
        value = evt.value
        return value.get("text", "") if isinstance(value, dict) else str(value or "")

    # -- handlers: documents (admins) -------------------------------------------------------
    def _file_items(files) -> list[tuple[str, bytes]]:
        if not files:
            raise gr.Error("请先选择文件")
        items = []
        for f in files if isinstance(files, list) else [files]:
            path = Path(f if isinstance(f, str) else getattr(f, "name", f))
            items.append((path.name, path.read_bytes()))
        return items

    def upload(files, request: gr.Request):
        user = who(request, "manage")
        try:
            names = docs.add_many(_file_items(files), user.name)
        except RagError as e:
            raise gr.Error(str(e)) from e
        table, dd = manage_view()
        msg = f"已添加 {len(names)} 篇：{'、'.join(names)}。请点击“重建索引”使其生效。"
        return msg, table, dd, None

    def replace(name, file, request: gr.Request):
        user = who(request, "manage")
        if not name:
            raise gr.Error("请先选择要替换的文档")
        try:
            (filename, data), = _file_items(file)
            docs.replace(name, filename, data, user.name)
        except RagError as e:
            raise gr.Error(str(e)) from e
        table, dd = manage_view()
        return f"已替换：{name}。请点击“重建索引”使其生效。", table, dd, None

    def delete(name, request: gr.Request):
        user = who(request, "manage")
        if not name:
            raise gr.Error("请先选择要删除的文档")
        try:
            docs.delete(name, user.name)
        except RagError as e:
            raise gr.Error(str(e)) from e
        table, dd = manage_view()
        return f"已删除：{name}。请点击“重建索引”使其生效。", table, dd

    def reindex(request: gr.Request, progress=gr.Progress()):
        user = who(request, "manage")

        def report(done: int, total: int, what: str) -> None:
            progress((done, max(total, 1)), desc=what)

        progress(0, desc="读取文章")
        try:
            rep = service.reindex(progress=report)
        except RagError as e:
            logger.warning("reindex failed: %s", e.log_message)
            raise gr.Error(str(e)) from e
        append_audit(settings.data_dir, {"action": "reindex", "user": user.name, "version": rep.version})
        table, dd = manage_view()
        msg = rep.summary() + (("\n拒绝的文件：" + "；".join(rep.rejected)) if rep.rejected else "")
        return msg, status_line(service.status()), table, dd

    # -- layout -------------------------------------------------------------------------------
    with gr.Blocks(title="党建知识问答") as demo:
        with gr.Row():
            gr.Markdown("## 党建知识问答")
            who_md = gr.Markdown("")
            gr.Button("退出登录", link="/logout", size="sm", scale=0)
        with gr.Tab("问答", id="chat"):
            convs.panel()
            chatbot = gr.Chatbot(
                label="对话",
                height=420,
                render_markdown=False,  # answers are plain text: no markdown images, no links
                sanitize_html=True,
                placeholder="请输入关于党建资料的问题，回答均出自资料原文并注明来源。",
                examples=[{"text": q} for q in EXAMPLE_QUESTIONS],
                elem_id="chatbot",
            )
            feedback.panel(convs.state)
            with gr.Row():
                msg = gr.Textbox(
                    placeholder="输入问题，按回车发送",
                    show_label=False,
                    scale=8,
                    max_length=max(settings.max_question_chars * 4, 2000),
                    elem_id="question",
                )
                send = gr.Button("发送", variant="primary", scale=1, elem_id="send")
                clear = gr.Button("新对话", scale=1, elem_id="new-chat")
            sources = gr.HTML("", elem_id="sources")
            refs = gr.State([])
            with gr.Row():
                pick = gr.Dropdown(label="查看来源全文", choices=[], scale=4, elem_id="pick-source")
                open_btn = gr.Button("查看全文", scale=1, elem_id="open-article")
            article = gr.HTML("", elem_id="article-view")
        with gr.Tab("测验", id="quiz", visible=False) as quiz_tab:
            build_quiz_tab(demo, service, settings, users, who, tmp)
        with gr.Tab("管理", id="manage", visible=False) as manage_tab:
            status_md = gr.Markdown("", elem_id="index-status")
            with gr.Row():
                with gr.Column():
                    up_files = gr.File(
                        label=f"上传文章（{'、'.join(sorted(SUPPORTED_SUFFIXES))}；每次最多 {settings.upload_max_files} 个，"
                        f"每个不超过 {settings.upload_max_bytes // (1024 * 1024)} MB）",
                        file_count="multiple",
                        file_types=sorted(SUPPORTED_SUFFIXES),
                        type="filepath",
                        elem_id="upload-files",
                    )
                    up_btn = gr.Button("上传", variant="primary", elem_id="upload-btn")
                with gr.Column():
                    doc_pick = gr.Dropdown(label="选择文档", choices=[], allow_custom_value=True, elem_id="doc-pick")
                    rep_file = gr.File(label="替换为（同类型文件）", file_count="single", type="filepath")
                    with gr.Row():
                        rep_btn = gr.Button("替换", elem_id="replace-btn")
                        del_btn = gr.Button("删除", variant="stop", elem_id="delete-btn")
            with gr.Row():
                reindex_btn = gr.Button("重建索引", variant="primary", elem_id="reindex-btn")
            manage_msg = gr.Textbox(label="操作结果", interactive=False, lines=2, elem_id="manage-msg")
            doc_table = gr.HTML("", elem_id="doc-table")
            feedback.admin(demo)

        # -- events ----------------------------------------------------------------------------
        demo.load(on_load, None, [who_md, quiz_tab, manage_tab, status_md, doc_table, doc_pick], api_name="whoami")
        chat_out = [chatbot, msg, sources, refs, pick]
        ask = convs.asking(respond)
        msg.submit(ask, [msg, chatbot, convs.state], chat_out + convs.outputs, api_name="ask")
        send.click(ask, [msg, chatbot, convs.state], chat_out + convs.outputs, api_name=False)
        chatbot.example_select(pick_example, None, msg, api_name=False)
        clear.click(new_chat, None, [chatbot, msg, sources, refs, pick, article], api_name="new_chat")
        convs.wire(demo, chatbot=chatbot, msg=msg, sources=sources, refs=refs, pick=pick, article=article,
                   new_chat=new_chat, new_button=clear)
        open_btn.click(open_article, [pick, refs], article, api_name="open_article").then(
            None, None, None, js=SCROLL_TO_MARK
        )
        up_btn.click(upload, [up_files], [manage_msg, doc_table, doc_pick, up_files], api_name="upload")
        rep_btn.click(replace, [doc_pick, rep_file], [manage_msg, doc_table, doc_pick, rep_file], api_name="replace")
        del_btn.click(delete, [doc_pick], [manage_msg, doc_table, doc_pick], api_name="delete")
        reindex_btn.click(
            reindex, None, [manage_msg, status_md, doc_table, doc_pick], api_name="reindex", concurrency_limit=1
        )
    demo.queue(default_concurrency_limit=settings.concurrency)
    return demo


def blocked_paths(settings: Settings, users: UserStore, docs: DocumentManager) -> list[str]:
    """Everything Gradio's file routes must never serve: corpus, index, uploads, users and metadata.

    (Not the whole data folder: Gradio's own upload temp folder lives in it and must stay readable
    to Gradio itself.)
    """
    data = Path(settings.data_dir)
    paths = [
        settings.corpus_dir, settings.index_dir, docs.uploads_dir, users.path, docs.meta_path,
        data / "audit.jsonl", data / "users.json", data / "documents.json",
        data / "question_bank.json", data / "quiz_vectors",
    ]
    return sorted({str(Path(p).resolve()) for p in paths})


def database_files(settings: Settings) -> list[str]:
    """The SQLite database and its WAL files (keys, conversations, feedback): never served."""
    db = (Path(settings.data_dir) / "app.db").resolve()
    return [str(db), f"{db}-wal", f"{db}-shm"]


def page_options(settings: Settings, users: UserStore, docs: DocumentManager) -> dict:
    """How the page is served (sign-in on every route, blocked paths, limits): for ``launch`` and for
    ``gr.mount_gradio_app`` alike."""

    import anyio
    from starlette.middleware import Middleware

    from rag.auth.sessions import SessionStore
    from rag.auth.throttle import LoginThrottle
    from rag.web.guard import Guard

    verifying = anyio.CapacityLimiter(2)  # argon2 costs ~64 MiB and a core for a moment each

    async def check(name: str, password: str) -> bool:
        # off the event loop: a flood of sign-ins must not stall everyone's chat (rag.web.guard throttles them)
        user = await anyio.to_thread.run_sync(users.verify, name, password, limiter=verifying)
        return user is not None

    guard = Middleware(
        Guard, settings=settings, users=users, sessions=SessionStore.for_settings(settings),
        throttle=LoginThrottle(limit=settings.login_max_failures, lock_s=settings.login_lock_s,
                               max_lock_s=settings.login_max_lock_s),
        tmp_dir=Path(settings.data_dir) / "tmp",
    )
    return dict(
        app_kwargs={"middleware": [guard]},  # CSP, nosniff, sign-in throttle, sessions, file checks
        auth=check,
        auth_message="党建知识问答：请使用管理员分配的账号登录",
        allowed_paths=[],
        blocked_paths=blocked_paths(settings, users, docs) + database_files(settings),
        max_file_size=settings.upload_max_bytes,
        show_error=False,  # gr.Error messages still show; other errors (paths, blocked-path lists) do not
        css=CSS,
        footer_links=[],
        ssr_mode=False,
    )


def launch(demo: gr.Blocks, settings: Settings, users: UserStore, docs: DocumentManager, **overrides):
    """Serve ``demo`` alone (Gradio's own server) with sign-in on every route; ``overrides`` go to ``Blocks.launch``."""
    kwargs = dict(server_name=settings.host, server_port=settings.port, **page_options(settings, users, docs))
    kwargs.update(overrides)
    return demo.launch(**kwargs)


def serve(demo: gr.Blocks, service: RagService, settings: Settings, users: UserStore, docs: DocumentManager) -> None:
    """Serve the page and the API (``/v1``, ``/api/v1``) in one uvicorn process, one worker."""
    from rag.web.server import create_app
    from rag.web.server import serve as serve_app

    app = create_app(service, settings, users, docs, demo=demo, page_options=page_options(settings, users, docs))
    serve_app(app, settings)
