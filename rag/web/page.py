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

The tabs are their own modules: ``chat_tab.py`` (问答), ``quiz_tab.py`` (测验), ``admin_tab.py`` (管理,
with ``keys_ui.py`` for API keys and ``feedback_ui.py`` for 待改进的问题);
``render.py`` holds the pure rendering (re-exported here). This module assembles the Blocks and
says how they are served.

Not done here: password changes from the page (use ``python -m rag users``), TLS.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402

from rag.db.audit import append_denied  # noqa: E402
from rag.auth.users import ROLE_LABELS, User, UserStore, allowed, require  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.index.documents import DocumentManager  # noqa: E402
from rag.service import RagService  # noqa: E402
from rag.web.admin_tab import admin_handlers, admin_layout, manage_view, wire_admin  # noqa: E402
from rag.web.chat_tab import EXAMPLE_QUESTIONS, chat_handlers, chat_layout, wire_chat  # noqa: E402,F401
from rag.web.conversations_ui import ConversationsUI  # noqa: E402
from rag.web.feedback_ui import FeedbackUI  # noqa: E402
from rag.web.keys_ui import KeysUI  # noqa: E402
from rag.web.quiz_tab import (  # noqa: E402,F401  (re-exported: the page's names stay importable from here)
    QUIZ_EXPORT_SCOPES,
    QUIZ_FORMATS,
    QUIZ_MAX_ITEMS,
    QUIZ_SCOPES,
    QUIZ_TYPES,
    build_quiz_tab,
)
from rag.web.render import (  # noqa: E402,F401  (re-exported)
    ARTICLE_PREVIEW,
    CSS,
    QUIZ_STATUS,
    SCROLL_TO_MARK,
    answer_links,
    answer_message,
    article_href,
    esc,
    highlight,
    message_text,
    plain_history,
    render_article,
    render_documents,
    render_quiz,
    render_quiz_item,
    render_sources,
    rendered_history,
    source_refs,
    status_line,
)

logger = logging.getLogger("app")


# ---------------------------------------------------------------- the page
def make_who(users: UserStore):
    """``who(request, action)``: the signed-in caller if allowed to ``action``; raises gr.Error otherwise
    (the server-side check every handler makes)."""

    def who(request: gr.Request | None, action: str) -> User:
        name = getattr(request, "username", None) if request is not None else None
        try:
            return require(users.get(name) if name else None, action)
        except RagError as e:
            logger.warning("denied: %s", e.log_message)
            if name:
                append_denied(users.db, name, action, "page")
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash

    return who


def load_handler(service: RagService, docs: DocumentManager, who):
    """On page load: who is signed in, which tabs they see, and the admin's view of the index."""

    def on_load(request: gr.Request):
        user = who(request, "chat")
        is_admin = allowed(user.role, "manage")
        table, names = manage_view(docs) if is_admin else ("", gr.Dropdown(choices=[]))
        return (
            f"已登录：**{esc(user.name)}**（{ROLE_LABELS.get(user.role, user.role)}）",
            gr.Tab(visible=allowed(user.role, "quiz")),
            gr.Tab(visible=is_admin),
            status_line(service.status()) if is_admin else "",
            table,
            names,
        )

    return on_load


def build_app(service: RagService, settings: Settings, users: UserStore, docs: DocumentManager) -> gr.Blocks:
    """Build the page; serve it with :func:`launch` (sign-in is enforced there)."""
    tmp = Path(settings.data_dir) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(tmp)  # uploads land here, not in /tmp/gradio
    who = make_who(users)
    convs = ConversationsUI(settings, who, rendered_history, service=service)  # past conversations (database)
    feedback = FeedbackUI(settings, who, convs.db, service=service, users=users)  # 👍/👎, 待改进的问题
    keys = KeysUI(settings, who, convs.db, users)  # API keys (admins)
    with gr.Blocks(title="党建知识问答") as demo:
        with gr.Row():
            gr.Markdown("## 党建知识问答")
            who_md = gr.Markdown("")
            gr.Button("退出登录", link="/logout", size="sm", scale=0)
        with gr.Tab("问答", id="chat"):
            chat = chat_layout(settings, convs=convs, feedback=feedback)
        with gr.Tab("测验", id="quiz", visible=False) as quiz_tab:
            build_quiz_tab(demo, service, settings, users, who, tmp)
        with gr.Tab("管理", id="manage", visible=False) as manage_tab:
            admin = admin_layout(settings)
            keys.admin(demo)
            feedback.admin(demo)

        demo.load(load_handler(service, docs, who), None,
                  [who_md, quiz_tab, manage_tab, admin.status_md, admin.doc_table, admin.doc_pick], api_name="whoami")
        wire_chat(chat, chat_handlers(service, who), demo=demo, convs=convs)
        wire_admin(admin, admin_handlers(service, settings, docs, who))
    demo.queue(default_concurrency_limit=settings.concurrency)
    return demo


def blocked_paths(settings: Settings, users: UserStore, docs: DocumentManager) -> list[str]:
    """Everything Gradio's file routes must never serve: corpus, index, uploads, users and metadata.

    (Not the whole data folder: Gradio's own upload temp folder lives in it and must stay readable
    to Gradio itself.)
    """
    data = Path(settings.data_dir)
    paths = [
        settings.corpus_dir, settings.index_dir, docs.uploads_dir, docs.meta_path,
        data / "audit.jsonl", data / "audit.jsonl.migrated", data / "users.json", data / "users.json.migrated", data / "documents.json",
        data / "question_bank.json", data / "question_bank.json.migrated", data / "quiz_vectors",
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
        auth_message="党建知识问答：请使用管理员分配的账号登录。连续输错密码 5 次后，登录会暂停一段时间（按钮无反应时请稍候再试）。",
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

    app = create_app(service, settings, users, docs, db=users.db, demo=demo,
                     page_options=page_options(settings, users, docs))
    serve_app(app, settings)
