"""The chat tab's past conversations: a list of the signed-in user's conversations (title, date),
reopen, continue, rename, delete (after a confirmation) and 新对话.

The database is the store (``rag.db.conversations.ConversationStore``, ``source="page"``), so the
list survives reloads and restarts; the open conversation's id, its last answer's message id and
the message id of every message shown in the chat (``ids``, in the Chatbot's order: 👍/👎 on any
answer finds its message by the index Gradio's like event gives) live in a ``gr.State`` per browser tab. Every handler looks the signed-in user up on the
server (``who(request, "chat")``) and the store only ever opens that user's own conversations.
Reopened messages are escaped by the page's own ``rendered_history`` (their source lines linked from
the stored references, ``render.reference_links``); the list's titles are plain
text in a ``gr.Radio`` (Svelte renders labels as text, never as HTML).

Hook-up (``rag/web/page.py``): ``convs = ConversationsUI(settings, who, rendered_history)`` in
``build_app``; ``convs.panel()`` inside the chat tab; ``respond`` takes ``answered=`` and calls it
with the finished answer; ``convs.asking(respond)`` is the chat event's handler (inputs
``[msg, chatbot, convs.state]``, outputs ``chat_out + convs.outputs``); ``convs.wire(demo, ...)``
attaches the list's events.

Not done here: search over conversations, paging of a very long list (the newest 200 are shown).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

import gradio as gr
from sqlalchemy.exc import SQLAlchemyError

from rag.config import Settings
from rag.db import Database, open_database
from rag.db.conversations import MAX_TITLE_CHARS, ConversationStore, NotFoundError
from rag.errors import RagError
from rag.web.render import reference_links

logger = logging.getLogger(__name__)

REOPEN_MESSAGES = 60  # 30 turns
REOPEN_BYTES = 128 * 1024  # and at most this much chat as the page sends it back (its events: 256 KiB)
EMPTY = {"id": None, "last": None, "ids": []}


def when(iso: str) -> str:
    """A stored UTC time as the server's local ``MM-DD HH:MM`` (``YYYY-MM-DD`` for an earlier year)."""
    try:
        t = datetime.fromisoformat(iso).astimezone()
    except (TypeError, ValueError):
        return ""
    return t.strftime("%m-%d %H:%M" if t.year == datetime.now().year else "%Y-%m-%d")


def choice_label(c: dict) -> str:
    """A list entry: the title (plain text; the Radio renders it as text) and the date."""
    return f"{c['title']} · {when(c['updated'])}"


def shown_ids(state: dict, shown: int) -> list:
    """The state's message ids for the ``shown`` messages before a new turn (None where unknown)."""
    ids = list((state or {}).get("ids") or [])[:shown]
    return ids + [None] * (shown - len(ids))


def last_answer_id(conv: dict) -> int | None:
    ids = [m["id"] for m in conv.get("messages", []) if m["role"] == "assistant"]
    return ids[-1] if ids else None


class ConversationsUI:
    def __init__(self, settings: Settings, who: Callable, rendered_history: Callable, *, service=None,
                 db: Database | None = None) -> None:
        self.settings = settings
        self.who = who
        self.rendered_history = rendered_history
        self.service = service
        self.db = db or open_database(settings)
        self.store = ConversationStore(self.db)
        self.state: gr.State | None = None
        self.outputs: list = []

    # -- pure-ish helpers (also used by the handlers' tests) ------------------------------------
    def choices(self, user: str) -> list[tuple[str, str]]:
        try:
            return [(choice_label(c), c["id"]) for c in self.store.list(user)]  # at most rag.db.conversations.LIST_LIMIT
        except SQLAlchemyError as e:
            logger.error("conversations of %r unreadable: %s", user, e)
            return []

    def listing(self, user: str, value: str | None):
        choices = self.choices(user)
        if value not in {v for _, v in choices}:
            value = None
        return gr.Radio(choices=choices, value=value, label=f"历史对话（{len(choices)}）")

    def record(self, user: str, state: dict, question: str, ans, text: str, history: list[dict]) -> dict:
        """File a finished turn under the open conversation (or a new one); the new state."""
        from rag.web import openai_api as oa

        def save(conversation_id):
            version = None
            if self.service is not None:
                try:
                    version = self.service.status().get("version")
                except RagError:  # the status is informational only
                    version = None
            return self.store.record_turn(
                user, question, text, history=history, conversation_id=conversation_id, refused=ans.refused,
                references=oa.references(ans, ans.text), index_version=version, evidence=float(ans.evidence),
                source="page",
            )

        ids = shown_ids(state, len(history))  # the chat shows history, then this question and answer
        try:
            try:
                turn = save(state.get("id"))
            except NotFoundError:  # deleted meanwhile (another tab): file it under a new conversation
                turn = save(None)
        except SQLAlchemyError as e:  # the record is lost, not the answer
            logger.error("could not record the page turn of %r: %s", user, e)
            return {**state, "ids": ids + [None, None]}
        return {"id": turn.conversation_id, "last": turn.message_id, "ids": ids + [None, turn.message_id]}

    # -- layout ----------------------------------------------------------------------------------
    def panel(self, container=None) -> None:
        """The list and its controls (call inside the chat tab). ``container`` holds them: by default an
        accordion above the chat, in the page's flow (a ``gr.Sidebar`` inside a tab overlays the tab bar
        on a 1280-px screen); give a ``gr.Column`` beside the chat once the chat tab has a row for it."""
        self.state = gr.State(dict(EMPTY))
        with container if container is not None else gr.Accordion("历史对话", open=True, elem_id="conv-panel"):
            self.new_btn = gr.Button("＋ 新对话", size="sm", elem_id="conv-new")
            self.radio = gr.Radio(choices=[], value=None, label="历史对话", elem_id="conv-list")
            with gr.Accordion("重命名 / 删除", open=False, elem_id="conv-edit"):
                self.title_box = gr.Textbox(label="新标题", max_length=MAX_TITLE_CHARS, elem_id="conv-title",
                                            placeholder=f"不超过 {MAX_TITLE_CHARS} 字")
                with gr.Row():
                    self.rename_btn = gr.Button("重命名", size="sm", elem_id="conv-rename")
                    self.delete_btn = gr.Button("删除", size="sm", variant="stop", elem_id="conv-delete")
                with gr.Row(visible=False) as self.confirm_row:
                    gr.Markdown("确定删除这段对话？删除后不能恢复。")
                    self.confirm_btn = gr.Button("确定删除", size="sm", variant="stop", elem_id="conv-delete-yes")
                    self.cancel_btn = gr.Button("取消", size="sm", elem_id="conv-delete-no")
            self.msg_md = gr.Markdown("", elem_id="conv-msg")
        self.outputs = [self.state, self.radio]

    # -- handlers ----------------------------------------------------------------------------------
    def asking(self, respond: Callable) -> Callable:
        """The chat handler: ``respond``'s outputs, then the conversation state and the list."""

        def ask(message: str, history: list[dict], state: dict, request: gr.Request):
            user = self.who(request, "chat")
            state = dict(state or EMPTY)
            done: dict = {}
            for out in respond(message, history, request, answered=lambda **kw: done.update(kw)):
                if done and "state" not in done:
                    done["state"] = self.record(user.name, state, done["question"], done["answer"], done["text"],
                                                done["history"])
                    yield (*out, done["state"], self.listing(user.name, done["state"]["id"]))
                else:
                    yield (*out, gr.skip(), gr.skip())

        return ask

    def load(self, request: gr.Request):
        user = self.who(request, "chat")
        return self.listing(user.name, None)

    def reopen(self, conversation_id, request: gr.Request):
        """The chosen conversation's messages into the chat (escaped by ``rendered_history``)."""
        user = self.who(request, "chat")
        if not conversation_id:
            raise gr.Error("请先在列表中选择一段对话")
        try:
            conv = self.store.get(user.name, str(conversation_id))
        except NotFoundError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        # the page sends the whole chat back with every event (256 KiB at most): a long conversation
        # reopens with its last REOPEN_MESSAGES messages (all of it stays stored, and readable by the API)
        shown = conv["messages"][-REOPEN_MESSAGES:]
        if shown and shown[0]["role"] == "assistant":
            shown = shown[1:]
        history = [{"role": m["role"], "content": m["content"], "links": reference_links(m["references"])}
                   if m["role"] == "assistant" else {"role": m["role"], "content": m["content"]}
                   for m in shown]
        rendered = self.rendered_history(history)
        while len(rendered) > 2 and len(json.dumps(rendered, ensure_ascii=False).encode()) > REOPEN_BYTES:
            shown, history = shown[2:], history[2:]  # the oldest turn goes
            rendered = self.rendered_history(history)
        state = {"id": conv["id"], "last": last_answer_id(conv), "ids": [m["id"] if m["role"] == "assistant" else None for m in shown]}
        if len(shown) < len(conv["messages"]):
            gr.Info(f"对话较长，只显示最近 {len(shown) // 2} 轮（共 {len(conv['messages']) // 2} 轮）")
        return (rendered, state, self.listing(user.name, conv["id"]), conv["title"],
                "", "", [], gr.Dropdown(choices=[], value=None), "", gr.Row(visible=False))

    def new(self, request: gr.Request):
        user = self.who(request, "chat")
        return dict(EMPTY), self.listing(user.name, None), "", "", gr.Row(visible=False)

    def rename(self, title, state: dict, request: gr.Request):
        user = self.who(request, "chat")
        cid = (state or {}).get("id")
        if not cid:
            raise gr.Error("请先打开或开始一段对话")
        title = str(title or "")
        if len(title) > MAX_TITLE_CHARS:
            raise gr.Error(f"标题不能超过 {MAX_TITLE_CHARS} 字")
        try:
            conv = self.store.rename(user.name, cid, title)
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        return self.listing(user.name, cid), conv["title"], "已重命名。"

    def ask_delete(self, state: dict, request: gr.Request):
        self.who(request, "chat")
        if not (state or {}).get("id"):
            raise gr.Error("请先打开要删除的对话")
        return gr.Row(visible=True)

    def delete(self, state: dict, request: gr.Request):
        user = self.who(request, "chat")
        cid = (state or {}).get("id")
        if not cid:
            raise gr.Error("请先打开要删除的对话")
        try:
            self.store.delete(user.name, cid)
        except NotFoundError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        return ([], dict(EMPTY), self.listing(user.name, None), "", "已删除。", "", [],
                gr.Dropdown(choices=[], value=None), "", gr.Row(visible=False))

    def cancel(self, request: gr.Request):
        self.who(request, "chat")
        return gr.Row(visible=False)

    # -- events --------------------------------------------------------------------------------
    def wire(self, demo: gr.Blocks, *, chatbot, msg, sources, refs, pick, article, new_chat: Callable, new_button) -> None:
        """The list's events. ``new_chat`` is the page's own handler (clears chat, sources, article),
        ``new_button`` the page's 新对话 button: both it and the list's button start a new conversation."""
        view = [sources, refs, pick, article]
        fresh = [self.state, self.radio, self.title_box, self.msg_md, self.confirm_row]
        demo.load(self.load, None, self.radio, api_name="conversations")
        self.radio.select(self.reopen, [self.radio],
                          [chatbot, self.state, self.radio, self.title_box, msg, *view, self.confirm_row],
                          api_name="conversation_open")
        self.new_btn.click(new_chat, None, [chatbot, msg, *view], api_name=False).then(
            self.new, None, fresh, api_name=False)
        new_button.click(self.new, None, fresh, api_name="conversation_new")
        self.rename_btn.click(self.rename, [self.title_box, self.state], [self.radio, self.title_box, self.msg_md],
                              api_name="conversation_rename")
        self.delete_btn.click(self.ask_delete, [self.state], [self.confirm_row], api_name=False)
        self.cancel_btn.click(self.cancel, None, [self.confirm_row], api_name=False)
        self.confirm_btn.click(self.delete, [self.state],
                               [chatbot, self.state, self.radio, self.title_box, self.msg_md, *view, self.confirm_row],
                               api_name="conversation_delete")
