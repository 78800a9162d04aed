"""👍/👎 on every answer, and the admins' view 待改进的问题 with its Excel export.

- **Rating** (every signed-in role): 👍 or 👎 under any answer of the open conversation (the
  Chatbot's like event gives the message's index; its message id comes from the conversation state
  of ``rag.web.conversations_ui``), with an optional reason (答案错误 / 引用不对 / 没有回答 / 其他: in the
  row under the chat, or from the flag menu beside the thumbs) and a note of at most 1000 characters,
  stored by ``FeedbackStore.add`` against that message (it checks that the answer is the caller's own).
  Every rating is kept, as through the API; un-clicking a thumb takes nothing back.
- **待改进的问题** (admins only, in the 管理 tab): refused questions and 👎 answers, newest first,
  counts by article, a bar chart per day (inline SVG, nothing loaded from elsewhere), and an
  Excel export written under ``<data_dir>/tmp/exports/admin/`` — ``rag.web.guard`` serves that
  folder to admins only and sweeps it with the quiz exports (``export_ttl_s``).

Every handler checks the role on the server (``who(request, ...)``); every question, answer,
note, user and article name is ``html.escape``d when rendered, and written to Excel as text
(never as a formula).

Not done here: marking an item as dealt with, filters by date or user.
"""

from __future__ import annotations

import html
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import gradio as gr
from sqlalchemy.exc import SQLAlchemyError

from rag.db.audit import append_audit
from rag.auth.users import allowed
from rag.config import Settings
from rag.db import Database
from rag.db.conversations import MAX_NOTE_CHARS, REASONS, FeedbackStore
from rag.errors import RagError

logger = logging.getLogger(__name__)

CHART_DAYS = 30
HINT = "点每条回答下方的“赞”或“踩”图标评价那一条回答（旗形图标可直接选原因）；所选原因与补充说明随评价一并记录。"


def esc(text: object) -> str:
    return html.escape(str(text or ""), quote=True)


def local_day(iso: str) -> date | None:
    try:
        return datetime.fromisoformat(iso).astimezone().date()
    except (TypeError, ValueError):
        return None


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return ""


def daily_counts(items: list[dict], today: date | None = None, days: int = CHART_DAYS) -> list[tuple[date, int, int]]:
    """(day, 👎, 未回答) for each of the last ``days`` days up to ``today`` (local time)."""
    today = today or date.today()
    first = today - timedelta(days=days - 1)
    down, refused = Counter(), Counter()
    for d in items:
        day = local_day(d.get("time", ""))
        if day is None or day < first or day > today:
            continue
        (down if d.get("kind") == "👎" else refused)[day] += 1
    return [(first + timedelta(days=i), down[first + timedelta(days=i)], refused[first + timedelta(days=i)])
            for i in range(days)]


def svg_chart(counts: list[tuple[date, int, int]]) -> str:
    """A stacked bar per day (👎 red, 未回答 grey) as inline SVG; numbers and dates only."""
    bar, gap, height, top, bottom = 16, 6, 120, 14, 30
    peak = max((a + b for _, a, b in counts), default=0) or 1
    width = len(counts) * (bar + gap) + 40
    parts = [(f'<svg class="nw-chart" role="img" aria-label="每日数量" width="{width}" height="{height + top + bottom}" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="10">'),
             f'<text x="0" y="10" fill="#555">最多 {peak} 条/天 · 红：👎 · 灰：未回答</text>']
    for i, (day, down, refused) in enumerate(counts):
        x = 30 + i * (bar + gap)
        y = top + height
        for n, colour, kind in ((refused, "#999", "未回答"), (down, "#c0392b", "👎")):
            if n:
                h = round(height * n / peak)
                y -= h
                parts.append(f'<rect class="bar" data-kind="{kind}" data-day="{day.isoformat()}" data-n="{n}" x="{x}" '
                             f'y="{y}" width="{bar}" height="{h}" fill="{colour}"><title>{day.isoformat()} {kind} {n}</title></rect>')
        if i % 5 == 0 or i == len(counts) - 1:
            parts.append(f'<text x="{x}" y="{top + height + 14}" fill="#555">{day.strftime("%m-%d")}</text>')
    parts.append(f'<line x1="28" y1="{top + height}" x2="{width}" y2="{top + height}" stroke="#aaa"/></svg>')
    return "".join(parts)


def render_needs_work(data: dict, titles: dict[str, str] | None = None, today: date | None = None) -> str:
    """The admin view: counts, the chart, counts by article and the items, every text escaped."""
    titles = titles or {}
    items = data.get("items", [])
    counts = data.get("counts", {})
    out = [(f"<p id='nw-counts'>👎 回答 <b>{int(counts.get('down', 0))}</b> 条 · 未回答的问题 "
           f"<b>{int(counts.get('refused', 0))}</b> 条（新的在前）</p>")]
    if not items:
        return out[0] + "<p>（暂无需要改进的问题）</p>"
    out.append(svg_chart(daily_counts(items, today)))
    by_article = data.get("by_article", {})
    if by_article:
        out.append("<h4>按文章统计</h4><table class='docs nw' id='nw-articles'><tr><th>文章</th><th>文件</th><th>次数</th></tr>")
        out += [f"<tr><td>{esc(titles.get(f, ''))}</td><td>{esc(f)}</td><td>{int(n)}</td></tr>" for f, n in by_article.items()]
        out.append("</table>")
    out.append("<h4>问题列表</h4><table class='docs nw' id='nw-items'><tr><th>时间</th><th>类型</th><th>用户</th><th>问题</th>"
               "<th>原因</th><th>备注</th><th>相关文章</th></tr>")
    for d in items:
        files = "、".join(titles.get(f) or f for f in d.get("files") or [])
        out.append(f"<tr><td>{esc(local_time(d.get('time', '')))}</td><td>{esc(d.get('kind'))}</td><td>{esc(d.get('user'))}</td>"
                   f"<td style='white-space: pre-wrap'>{esc(d.get('question'))}</td><td>{esc(d.get('reason') or '')}</td>"
                   f"<td style='white-space: pre-wrap'>{esc(d.get('note') or '')}</td><td>{esc(files)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def write_xlsx(data: dict, path: Path, titles: dict[str, str] | None = None) -> None:
    """Two sheets (问题列表, 按文章统计); every cell a string or a number, never a formula."""
    from openpyxl import Workbook

    titles = titles or {}

    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def text(value) -> str:  # control characters are not allowed in the XML of a sheet
        return ILLEGAL_CHARACTERS_RE.sub("", str(value or ""))

    def put(ws, row: list) -> None:
        ws.append(row)
        for cell in ws[ws.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # a question like "=HYPERLINK(...)" stays text

    wb = Workbook()
    ws = wb.active
    ws.title = "问题列表"
    put(ws, ["时间", "类型", "用户", "问题", "回答", "原因", "备注", "相关文章"])
    for d in data.get("items", []):
        put(ws, [local_time(d.get("time", "")), text(d.get("kind")), text(d.get("user")), text(d.get("question")),
                 text(d.get("answer")), text(d.get("reason")), text(d.get("note")),
                 "、".join(titles.get(f) or f for f in d.get("files") or [])])
    for col, width in zip("ABCDEFGH", (17, 8, 12, 50, 60, 10, 40, 40)):
        ws.column_dimensions[col].width = width
    ws2 = wb.create_sheet("按文章统计")
    put(ws2, ["文章", "文件", "次数"])
    for f, n in data.get("by_article", {}).items():
        put(ws2, [text(titles.get(f)), text(f), int(n)])
    ws2.column_dimensions["A"].width, ws2.column_dimensions["B"].width = 50, 30
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(str(path))


class FeedbackUI:
    def __init__(self, settings: Settings, who: Callable, db: Database, *, service=None, users=None) -> None:
        self.settings = settings
        self.who = who
        self.service = service
        self.users = users
        self.store = FeedbackStore(db)
        self.exports = Path(settings.data_dir) / "tmp" / "exports" / "admin"  # rag.web.guard: admins only
        self._titles: tuple[str | None, dict[str, str]] = (None, {})

    # -- rating (every role) -------------------------------------------------------------------
    OPTIONS = ("Like", "Dislike", *REASONS)  # the Chatbot's thumbs; the reasons under its flag icon

    def rate(self, reason, note, state: dict, evt: gr.LikeData, request: gr.Request):
        """👍/👎 (or a reason from the flag menu, which is a 👎 with that reason) on any answer of the chat:
        the answer's message id is the state's ``ids`` at the Chatbot index the like event gives."""
        user = self.who(request, "chat")
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        ids = (state or {}).get("ids") or []
        message_id = ids[index] if isinstance(index, int) and 0 <= index < len(ids) else None
        if not message_id:
            raise gr.Error("这条回答尚未保存（仍在生成或保存失败），暂时无法评价")
        liked = evt.liked
        if liked == "":  # the thumb clicked again: nothing is taken back (the API keeps every rating too)
            return "已取消选择；之前记录的评价仍保留，可重新评价。", gr.skip(), gr.skip()
        if liked is True:
            rating, reason = "up", None
        elif liked is False or liked in REASONS:
            rating, reason = "down", liked if liked in REASONS else (reason or None)
        else:
            raise gr.Error(f"原因须为：{'、'.join(REASONS)}")
        note = str(note or "").strip()
        if len(note) > MAX_NOTE_CHARS:
            raise gr.Error(f"备注不能超过 {MAX_NOTE_CHARS} 字")
        if reason is not None and reason not in REASONS:
            raise gr.Error(f"原因须为：{'、'.join(REASONS)}")
        try:
            self.store.add(user.name, rating, reason=reason, note=note, message_id=int(message_id))
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        except SQLAlchemyError as e:
            logger.error("could not store the feedback of %r: %s", user.name, e)
            raise gr.Error("反馈保存失败，请稍后再试") from e
        nth = sum(1 for i in ids[: index + 1] if i)  # the how-manieth answer of the chat
        label = "👍" if rating == "up" else "👎" + (f"（{reason}）" if reason else "")
        return f"已记录您对第 {nth} 条回答的评价：{esc(label)}。谢谢！", None, ""

    def reset(self, request: gr.Request):
        self.who(request, "chat")
        return HINT, None, ""

    def panel(self, state: gr.State, chatbot: gr.Chatbot) -> None:
        """The reason and note row (call in the chat tab, under the input row); 👍/👎 sit under every answer
        (``chatbot`` must be made with ``feedback_options=FeedbackUI.OPTIONS``)."""
        with gr.Row(elem_id="fb-row"):
            self.reason = gr.Radio(list(REASONS), value=None, label="不满意的原因（可选）", scale=3, elem_id="fb-reason")
            self.note = gr.Textbox(label="补充说明（可选）", max_length=MAX_NOTE_CHARS, scale=3, lines=1,
                                   elem_id="fb-note", placeholder=f"不超过 {MAX_NOTE_CHARS} 字")
        self.status = gr.Markdown(HINT, elem_id="fb-status")
        outs = [self.status, self.reason, self.note]
        chatbot.like(self.rate, [self.reason, self.note, state], outs, api_name="feedback")
        state.change(self.reset, None, outs, api_name=False)  # another answer or conversation: a fresh row

    # -- 待改进的问题 (admins) --------------------------------------------------------------------
    def titles(self) -> dict[str, str]:
        """File -> article title in the live index (its metadata, else its passages' title); cached per version."""
        if self.service is None:
            return {}
        try:
            idx, _, _ = self.service.current()
        except RagError:
            return {}
        if self._titles[0] != idx.version:
            out: dict[str, str] = {}
            for c in idx.chunks:
                if c.title and c.source not in out:
                    out[c.source] = c.title
            for s, d in idx.documents.items():
                title = (d.get("meta") or {}).get("title")
                if title:
                    out[s] = str(title)
            self._titles = (idx.version, out)
        return self._titles[1]

    def data(self) -> dict:
        try:
            return self.store.needs_work()
        except SQLAlchemyError as e:
            logger.error("feedback unreadable: %s", e)
            raise gr.Error("反馈数据暂时无法读取") from e

    def view(self, request: gr.Request):
        self.who(request, "manage")
        return render_needs_work(self.data(), self.titles())

    def load_admin(self, request: gr.Request):
        """On page load: the view for admins, nothing for anyone else (the tab is hidden for them)."""
        name = getattr(request, "username", None)
        user = self.users.get(name) if (self.users is not None and name) else None
        if user is None or not allowed(user.role, "manage"):
            return ""
        return render_needs_work(self.data(), self.titles())

    def export(self, request: gr.Request):
        user = self.who(request, "manage")
        data = self.data()
        if not data["items"]:
            raise gr.Error("暂无需要改进的问题可以导出")
        from rag.web.guard import sweep

        sweep(self.exports, self.settings.export_ttl_s)
        path = self.exports / uuid.uuid4().hex[:12] / f"待改进的问题-{time.strftime('%Y%m%d-%H%M%S')}.xlsx"
        try:
            write_xlsx(data, path, self.titles())
        except OSError as e:
            logger.warning("feedback export failed: %s", e)
            raise gr.Error("导出失败，请稍后再试") from e
        append_audit(self.settings, {"action": "feedback_export", "user": user.name, "items": len(data["items"])})
        return str(path), f"已导出 {len(data['items'])} 条，请点击下方文件下载。"

    def admin(self, demo: gr.Blocks) -> None:
        """待改进的问题 (call inside the admins' tab)."""
        gr.Markdown("### 待改进的问题\n未回答的问题与 👎 的回答：据此补充文章。")
        with gr.Row():
            refresh = gr.Button("刷新", size="sm", scale=0, elem_id="nw-refresh")
            export_btn = gr.Button("导出 Excel", size="sm", scale=0, elem_id="nw-export")
            msg = gr.Markdown("", elem_id="nw-msg")
        html_out = gr.HTML("", elem_id="nw-view")
        file_out = gr.File(label="导出文件", interactive=False, elem_id="nw-file")
        demo.load(self.load_admin, None, html_out, api_name=False)
        refresh.click(self.view, None, html_out, api_name="needs_work")
        export_btn.click(self.export, None, [file_out, msg], api_name="needs_work_export")
