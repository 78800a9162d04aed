"""The 管理 tab (admins): upload, replace and delete articles, rebuild the index with progress.

``admin_handlers`` makes the event handlers (each checks the "manage" permission on the server),
``admin_layout`` the components (call inside the tab), ``wire_admin`` joins the two. The corpus
folder is ``DocumentManager``'s; the build is ``RagService.reindex``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from rag.db.audit import append_audit
from rag.config import Settings
from rag.errors import RagError
from rag.index.documents import DocumentManager
from rag.ingest.loaders import SUPPORTED_SUFFIXES
from rag.service import RagService
from rag.web.render import render_documents, status_line

logger = logging.getLogger("app")


def manage_view(docs: DocumentManager) -> tuple[str, gr.Dropdown]:
    """The document table and the choice of documents, as they are now."""
    rows = docs.list()
    return render_documents(rows), gr.Dropdown(choices=[r.name for r in rows], value=None)


def file_items(files) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded file (Gradio hands over paths in its temp folder)."""
    if not files:
        raise gr.Error("请先选择文件")
    items = []
    for f in files if isinstance(files, list) else [files]:
        path = Path(f if isinstance(f, str) else getattr(f, "name", f))
        items.append((path.name, path.read_bytes()))
    return items


def document_handlers(docs: DocumentManager, who) -> tuple:
    """upload, replace and delete: the corpus folder changes, the index waits for 重建索引."""

    def upload(files, request: gr.Request):
        user = who(request, "manage")
        try:
            names = docs.add_many(file_items(files), user.name)
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        table, dd = manage_view(docs)
        msg = f"已添加 {len(names)} 篇：{'、'.join(names)}。请点击“重建索引”使其生效。"
        return msg, table, dd, None

    def replace(name, file, request: gr.Request):
        user = who(request, "manage")
        if not name:
            raise gr.Error("请先选择要替换的文档")
        try:
            (filename, data), = file_items(file)
            docs.replace(name, filename, data, user.name)
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        table, dd = manage_view(docs)
        return f"已替换：{name}。请点击“重建索引”使其生效。", table, dd, None

    def delete(name, request: gr.Request):
        user = who(request, "manage")
        if not name:
            raise gr.Error("请先选择要删除的文档")
        try:
            docs.delete(name, user.name)
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        table, dd = manage_view(docs)
        return f"已删除：{name}。请点击“重建索引”使其生效。", table, dd

    return upload, replace, delete


def reindex_handler(service: RagService, settings: Settings, docs: DocumentManager, who):
    """The 重建索引 handler: builds a new version with progress, audits it, shows the new status."""

    def reindex(request: gr.Request, progress=gr.Progress()):
        user = who(request, "manage")

        def report(done: int, total: int, what: str) -> None:
            progress((done, max(total, 1)), desc=what)

        progress(0, desc="读取文章")
        try:
            rep = service.reindex(progress=report)
        except RagError as e:
            logger.warning("reindex failed: %s", e.log_message)
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        append_audit(settings, {"action": "reindex", "user": user.name, "version": rep.version})
        table, dd = manage_view(docs)
        msg = rep.summary() + (("\n拒绝的文件：" + "；".join(rep.rejected)) if rep.rejected else "")
        return msg, status_line(service.status()), table, dd

    return reindex


def admin_handlers(service: RagService, settings: Settings, docs: DocumentManager, who) -> SimpleNamespace:
    upload, replace, delete = document_handlers(docs, who)
    return SimpleNamespace(upload=upload, replace=replace, delete=delete,
                           reindex=reindex_handler(service, settings, docs, who))


def admin_layout(settings: Settings) -> SimpleNamespace:
    """The tab's components (inside ``gr.Tab("管理")``)."""
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
    return SimpleNamespace(status_md=status_md, up_files=up_files, up_btn=up_btn, doc_pick=doc_pick,
                           rep_file=rep_file, rep_btn=rep_btn, del_btn=del_btn, reindex_btn=reindex_btn,
                           manage_msg=manage_msg, doc_table=doc_table)


def wire_admin(c: SimpleNamespace, h: SimpleNamespace) -> None:
    """The tab's events (inside the Blocks, after the layout)."""
    c.up_btn.click(h.upload, [c.up_files], [c.manage_msg, c.doc_table, c.doc_pick, c.up_files], api_name="upload")
    c.rep_btn.click(h.replace, [c.doc_pick, c.rep_file], [c.manage_msg, c.doc_table, c.doc_pick, c.rep_file],
                    api_name="replace")
    c.del_btn.click(h.delete, [c.doc_pick], [c.manage_msg, c.doc_table, c.doc_pick], api_name="delete")
    c.reindex_btn.click(
        h.reindex, None, [c.manage_msg, c.status_md, c.doc_table, c.doc_pick], api_name="reindex", concurrency_limit=1
    )
