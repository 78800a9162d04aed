"""The 测验 tab (trainers and admins): generate items, review and edit them, keep them in the question
bank, export them.

Every handler checks the "quiz" permission on the server; generated items live in the session
(``gr.State``: ``{"entries": [{"item", "status"}], "accepted": {id: item}}``), accepted ones in the
question bank (in the database, ``rag.quiz.bank``). The items are ``rag/quiz``'s; this module
only shows and routes them. ``build_quiz_tab`` is the one entry point.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from rag.db.audit import append_audit
from rag.auth.users import UserStore, allowed
from rag.config import Settings
from rag.errors import RagError
from rag.service import RagService
from rag.web.render import QUIZ_STATUS, render_quiz, render_quiz_source

logger = logging.getLogger("app")

QUIZ_SCOPES = ["按主题", "按文章", "全部语料"]
QUIZ_TYPES = ["单选", "多选", "判断", "填空"]
QUIZ_FORMATS = {"Word": ".docx", "Excel": ".xlsx", "JSON": ".json", "Markdown": ".md"}
QUIZ_EXPORT_SCOPES = ["本次采用的题目", "整个题库"]
QUIZ_MAX_ITEMS = 40
BANK_FAILED = "题库保存失败，请稍后再试"


# ---------------------------------------------------------------- helpers the handlers share
def fail(e: RagError, what: str):
    logger.warning("quiz %s failed: %s", what, e.log_message)
    return gr.Error(str(e))


def bank_line(bank) -> str:
    try:
        return f"题库中现有 {len(bank)} 题（保存在服务器上，重启后仍在）。"
    except RagError as e:
        logger.warning("question bank unreadable: %s", e.log_message)
        return f"题库不可用：{e}"


def article_choices(service: RagService) -> list[tuple[str, str]]:
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
    from rag.quiz.edit import answer_for_edit, options_text
    from rag.quiz.items import QuizItem

    if i is None or not (0 <= i < len(entries)):
        return gr.Dropdown(choices=entry_choices(entries), value=None), "", "", "", "", ""
    it = QuizItem.model_validate(entries[i]["item"])
    return (
        gr.Dropdown(choices=entry_choices(entries), value=i),
        it.stem, options_text(it), answer_for_edit(it), it.explanation, render_quiz_source(it),
    )


def picked(entries: list[dict], choice) -> int:
    if choice is None or choice == "" or not entries:
        raise gr.Error("请先生成题目，并在“选择题目”中选一道")
    i = int(choice)
    if not 0 <= i < len(entries):
        raise gr.Error("所选题目不存在，请重新选择")
    return i


def edited(service: RagService, state: dict, i: int, stem, options, answer, explanation):
    """Entry ``i`` with the editor's fields applied, checked against the corpus (gr.Error if not valid)."""
    from rag.errors import QuizError
    from rag.quiz.edit import apply_edit
    from rag.quiz.items import QuizItem
    from rag.quiz.llm_items import corpus_texts_of

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


def view(bank, state: dict, i: int | None, msg: str):
    entries = state["entries"]
    return (state, render_quiz(entries), *editor(entries, i), msg, bank_line(bank))


def fresh(state) -> dict:
    return state or {"entries": [], "accepted": {}}


def next_pending(state: dict, i: int) -> int:
    return next((k for k, e in enumerate(state["entries"]) if e["status"] == "pending"), i)


def generated_message(result, n: int) -> str:
    """What the page says after a generation: counts per type, time, and any notice."""
    st = result.stats
    parts = [f"已生成 {len(result.items)} 题（请求 {n} 题）："]
    parts.append("，".join(f"{lab} {st['generated'].get(k, 0)}" for lab, k in zip(
        QUIZ_TYPES, ("single_choice", "multi_choice", "true_false", "fill_blank")) if k in st.get("generated", {})))
    parts.append(f"；用时 {st.get('seconds', 0)} 秒。请逐题审阅：可修改后“采用”，或“不采用”。")
    if st.get("notice"):
        parts.append(f"\n注意：{st['notice']}")
    return "".join(parts)


# ---------------------------------------------------------------- handlers, one group each
def init_handler(service: RagService, users: UserStore, bank):
    def init(request: gr.Request):
        name = getattr(request, "username", None)
        user = users.get(name) if name else None
        if user is None or not allowed(user.role, "quiz"):  # the tab is hidden: send nothing
            return gr.Dropdown(choices=[]), ""
        return gr.Dropdown(choices=article_choices(service), value=None), bank_line(bank)

    return init


def quiz_request(settings: Settings, scope, topic, article, n, types) -> dict:
    """The keyword arguments of ``RagService.quiz`` from the form (gr.Error on a bad field)."""
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
    return kwargs


def generate_handler(service: RagService, settings: Settings, bank, who):
    def generate(scope, topic, article, n, types, state, request: gr.Request, progress=gr.Progress()):
        user = who(request, "quiz")
        state = fresh(state)
        kwargs = quiz_request(settings, scope, topic, article, n, types)

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
        return view(bank, state, 0, generated_message(result, kwargs["n"]))

    return generate


def edit_handlers(service: RagService, settings: Settings, bank, who):
    """pick (load an item into the editor) and save (apply the edit; synced to the bank if accepted)."""

    def pick(state, choice, request: gr.Request):
        who(request, "quiz")
        state = fresh(state)
        i = picked(state["entries"], choice)
        return editor(state["entries"], i)

    def save(state, choice, stem, options, answer, explanation, request: gr.Request):
        user = who(request, "quiz")
        state = fresh(state)
        i = picked(state["entries"], choice)
        item = edited(service, state, i, stem, options, answer, explanation)
        entry = state["entries"][i]
        entry["item"] = item.to_record()
        msg = f"第 {i + 1} 题已修改。"
        if entry["status"] == "accepted":
            try:
                bank.update(item)
            except (RagError, OSError) as e:
                logger.warning("question bank update failed: %s", e)
                raise gr.Error(BANK_FAILED) from e
            state["accepted"][item.id] = item.to_record()
            msg += "题库中的这道题已同步更新。"
            append_audit(settings, {"action": "quiz_edit", "user": user.name, "item": item.id})
        return view(bank, state, i, msg)

    return pick, save


def review_handlers(service: RagService, settings: Settings, bank, who):
    """accept (into the bank, unsaved edits taken along), drop (and out of the bank), accept_all."""

    def accept(state, choice, stem, options, answer, explanation, request: gr.Request):
        user = who(request, "quiz")
        state = fresh(state)
        i = picked(state["entries"], choice)
        item = edited(service, state, i, stem, options, answer, explanation)  # unsaved edits are taken along
        try:
            added = bank.add([item])
            if not added:
                bank.update(item)
        except (RagError, OSError) as e:
            logger.warning("question bank write failed: %s", e)
            raise gr.Error(BANK_FAILED) from e
        state["entries"][i] = {"item": item.to_record(), "status": "accepted"}
        state["accepted"][item.id] = item.to_record()
        append_audit(settings, {"action": "quiz_accept", "user": user.name, "item": item.id})
        return view(bank, state, next_pending(state, i), f"第 {i + 1} 题已采用并存入题库。")

    def drop(state, choice, request: gr.Request):
        user = who(request, "quiz")
        state = fresh(state)
        i = picked(state["entries"], choice)
        entry = state["entries"][i]
        msg = f"第 {i + 1} 题不采用。"
        if entry["status"] == "accepted":
            item_id = entry["item"]["id"]
            try:
                bank.remove(item_id)
            except (RagError, OSError) as e:
                logger.warning("question bank write failed: %s", e)
                raise gr.Error(BANK_FAILED) from e
            state["accepted"].pop(item_id, None)
            msg += "已从题库中移除。"
            append_audit(settings, {"action": "quiz_remove", "user": user.name, "item": item_id})
        entry["status"] = "dropped"
        return view(bank, state, next_pending(state, i), msg)

    def accept_all(state, request: gr.Request):
        from rag.quiz.items import QuizItem

        user = who(request, "quiz")
        state = fresh(state)
        pending = [e for e in state["entries"] if e["status"] == "pending"]
        if not pending:
            raise gr.Error("没有待审的题目")
        items = [QuizItem.model_validate(e["item"]) for e in pending]
        try:
            bank.add(items)
        except (RagError, OSError) as e:
            logger.warning("question bank write failed: %s", e)
            raise gr.Error(BANK_FAILED) from e
        for e, it in zip(pending, items):
            e["status"] = "accepted"
            state["accepted"][it.id] = it.to_record()
        append_audit(settings, {"action": "quiz_accept", "user": user.name, "items": len(items)})
        return view(bank, state, None, f"已采用 {len(items)} 题并存入题库。")

    return accept, drop, accept_all


def export_handler(settings: Settings, bank, who, exports: Path):
    def export(fmt, scope, state, request: gr.Request):
        import time
        import uuid

        from rag.quiz.export import export_quiz
        from rag.quiz.items import QuizItem
        from rag.web.files import sweep

        user = who(request, "quiz")
        state = fresh(state)
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
        sweep(exports, settings.export_ttl_s)  # earlier exports (with their answer keys) do not stay
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = exports / uuid.uuid4().hex[:12] / f"党建测验-{stamp}{ext}"
        try:
            export_quiz(items, path, title="党建知识测验")
        except (RagError, OSError) as e:
            logger.warning("quiz export failed: %s", e)
            raise gr.Error("导出失败，请稍后再试") from e
        append_audit(settings, {"action": "quiz_export", "user": user.name, "items": len(items), "format": ext})
        return str(path), f"已导出 {len(items)} 题（{fmt}），请点击下方文件下载。"

    return export


# ---------------------------------------------------------------- layout and events
def quiz_layout(settings: Settings) -> SimpleNamespace:
    """The tab's components (inside ``gr.Tab("测验")``)."""
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
    return SimpleNamespace(**{k: v for k, v in locals().items() if k != "settings"})


def build_quiz_tab(demo: gr.Blocks, service: RagService, settings: Settings, users: UserStore, who, tmp: Path) -> None:
    """The 测验 tab's components and events (call inside its ``gr.Tab``)."""
    from rag.quiz.bank import QuestionBank

    bank = QuestionBank.for_settings(settings)
    c = quiz_layout(settings)
    generate = generate_handler(service, settings, bank, who)
    pick, save = edit_handlers(service, settings, bank, who)
    accept, drop, accept_all = review_handlers(service, settings, bank, who)
    export = export_handler(settings, bank, who, tmp / "exports")

    edit_fields = [c.pick_dd, c.stem, c.options, c.answer, c.explanation, c.source]
    full = [c.state, c.items_html, *edit_fields, c.msg, c.bank_md]
    demo.load(init_handler(service, users, bank), None, [c.article, c.bank_md], api_name=False)
    c.gen_btn.click(generate, [c.scope, c.topic, c.article, c.n, c.types, c.state], full, api_name="quiz_generate",
                    concurrency_limit=1)
    c.pick_dd.input(pick, [c.state, c.pick_dd], edit_fields, api_name="quiz_pick")
    edit_in = [c.state, c.pick_dd, c.stem, c.options, c.answer, c.explanation]
    c.save_btn.click(save, edit_in, full, api_name="quiz_save")
    c.accept_btn.click(accept, edit_in, full, api_name="quiz_accept")
    c.drop_btn.click(drop, [c.state, c.pick_dd], full, api_name="quiz_drop")
    c.accept_all_btn.click(accept_all, [c.state], full, api_name="quiz_accept_all")
    c.export_btn.click(export, [c.fmt, c.export_scope, c.state], [c.file_out, c.msg], api_name="quiz_export")
