"""API keys in the 管理 tab (admins only): list them, make one for a chosen user, revoke one.

The store is the one ``python -m rag keys add|list|revoke`` uses (``rag.db.keys.ApiKeyStore``: the
sha256 of a key only). A new key is shown once, in a copyable box, in the answer to 创建 only: every
other action of the section empties the box, and nothing can show it again. Every handler checks the
"manage" permission on the server (``who(request, "manage")``: a cadre calling the event API gets
「无权」, not a key); creating and revoking are written to the audit log (without the key). Every user
name, label and prefix is ``html.escape``d in the table; the choices are plain text in Dropdowns.

Not done here: expiry dates, labels edited afterwards, scopes narrower than the user's role.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gradio as gr
from sqlalchemy.exc import SQLAlchemyError

from rag.db.audit import append_audit
from rag.auth.users import ROLE_LABELS, UserStore, allowed
from rag.config import Settings
from rag.db import Database
from rag.db.keys import ApiKeyStore, KeyInfo
from rag.errors import RagError
from rag.web.render import esc

logger = logging.getLogger(__name__)

MAX_LABEL_CHARS = 100


def when(t) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M") if t is not None else ""


def render_keys(rows: list[KeyInfo], known: set[str]) -> str:
    """The key table: number, user, label, prefix, created, last used, state; all text escaped."""
    if not rows:
        return "<p id='keys-none'>（暂无 API 密钥）</p>"
    head = "<tr><th>编号</th><th>用户</th><th>说明</th><th>前缀</th><th>创建时间</th><th>最近使用</th><th>状态</th></tr>"
    body = "".join(
        f"<tr data-key-id='{k.id}'><td>#{k.id}</td><td>{esc(k.user)}{'' if k.user in known else '（用户已删除）'}</td>"
        f"<td>{esc(k.label) or '—'}</td><td><code>{esc(k.prefix)}…</code></td><td>{when(k.created)}</td>"
        f"<td>{when(k.last_used) or '从未使用'}</td><td>{'有效' if k.active else '已吊销 ' + when(k.revoked)}</td></tr>"
        for k in rows
    )
    return f"<table class='docs' id='keys-list'>{head}{body}</table>"


class KeysUI:
    def __init__(self, settings: Settings, who: Callable, db: Database, users: UserStore) -> None:
        self.settings = settings
        self.who = who
        self.users = users
        self.store = ApiKeyStore(db)

    # -- views ----------------------------------------------------------------------------------
    def _rows(self) -> list[KeyInfo]:
        try:
            return self.store.list()
        except SQLAlchemyError as e:
            logger.error("API keys unreadable: %s", e)
            raise gr.Error("API 密钥暂时无法读取") from e

    def _view(self) -> tuple[str, gr.Dropdown, gr.Dropdown]:
        """The table, the users to make a key for, the active keys to revoke."""
        rows = self._rows()
        users = self.users.list()
        table = render_keys(rows, {u.name for u in users})
        people = gr.Dropdown(choices=[(f"{u.name}（{ROLE_LABELS.get(u.role, u.role)}）", u.name) for u in users], value=None)
        active = gr.Dropdown(choices=[(f"#{k.id} {k.prefix}… {k.user}", k.id) for k in rows if k.active], value=None)
        return table, people, active

    def refresh(self, request: gr.Request):
        self.who(request, "manage")
        return ("", "", *self._view())

    def load_keys(self, request: gr.Request):
        """On page load: the section for admins, nothing for anyone else (the tab is hidden for them)."""
        name = getattr(request, "username", None)
        user = self.users.get(name) if name else None
        if user is None or not allowed(user.role, "manage"):
            return "", gr.Dropdown(choices=[], value=None), gr.Dropdown(choices=[], value=None)
        return self._view()

    # -- actions ---------------------------------------------------------------------------------
    def create(self, name, label, request: gr.Request):
        """A new key for user ``name``: (the key, shown this once; the message; table, users, active keys)."""
        admin = self.who(request, "manage")
        user = self.users.get(str(name)) if name else None
        if user is None:
            raise gr.Error("请先选择一位已有的用户")
        label = " ".join(str(label or "").split())
        if len(label) > MAX_LABEL_CHARS:
            raise gr.Error(f"说明不能超过 {MAX_LABEL_CHARS} 字")
        try:
            info, key = self.store.add(user.name, label)
        except SQLAlchemyError as e:
            logger.error("could not make an API key for %r: %s", user.name, e)
            raise gr.Error("创建失败，请稍后再试") from e
        append_audit(self.settings, {"action": "key_add", "user": admin.name, "for": user.name,
                                              "key_id": info.id, "prefix": info.prefix})
        msg = (f"已为用户 {esc(user.name)}（{esc(user.role_label)}）创建 API 密钥 #{info.id}。"
               "密钥只显示这一次，请立即复制保存；之后只能看到它的前缀。")
        return (key, msg, *self._view())

    def revoke(self, key_id, request: gr.Request):
        admin = self.who(request, "manage")
        if key_id in (None, ""):
            raise gr.Error("请先选择要吊销的密钥")
        try:
            info = self.store.revoke(int(key_id))
        except (TypeError, ValueError) as e:
            raise gr.Error("请先选择要吊销的密钥") from e
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        except SQLAlchemyError as e:
            logger.error("could not revoke API key %r: %s", key_id, e)
            raise gr.Error("吊销失败，请稍后再试") from e
        append_audit(self.settings, {"action": "key_revoke", "user": admin.name, "for": info.user,
                                              "key_id": info.id, "prefix": info.prefix})
        return ("", f"已吊销 API 密钥 #{info.id}（{esc(info.prefix)}…，用户 {esc(info.user)}）。", *self._view())

    # -- layout and events -----------------------------------------------------------------------
    def admin(self, demo: gr.Blocks) -> None:
        """The section (call inside the admins' tab)."""
        gr.Markdown("### API 密钥\n供 OpenAI 兼容接口（/v1）与管理接口（/api/v1）使用；密钥以其用户的角色行事。")
        with gr.Row():
            user = gr.Dropdown(label="为用户创建", choices=[], scale=2, elem_id="key-user")
            label = gr.Textbox(label="说明（可选）", max_length=MAX_LABEL_CHARS, scale=2, elem_id="key-label")
            create = gr.Button("创建密钥", variant="primary", scale=1, elem_id="key-create")
        key = gr.Textbox(label="新密钥（只显示这一次，请立即复制）", interactive=False, buttons=["copy"],
                         elem_id="key-new")
        msg = gr.Markdown("", elem_id="key-msg")
        table = gr.HTML("", elem_id="key-table")
        with gr.Row():
            active = gr.Dropdown(label="选择要吊销的密钥", choices=[], scale=3, elem_id="key-pick")
            revoke = gr.Button("吊销所选密钥", variant="stop", scale=1, elem_id="key-revoke")
            refresh = gr.Button("刷新", size="sm", scale=0, elem_id="key-refresh")
        outs = [key, msg, table, user, active]
        demo.load(self.load_keys, None, [table, user, active], api_name=False)
        create.click(self.create, [user, label], outs, api_name="keys_add")
        revoke.click(self.revoke, [active], outs, api_name="keys_revoke")
        refresh.click(self.refresh, None, outs, api_name="keys_list")
