"""Quiz generation on the real corpus: every item validates; LLM path; bank; CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from rag.cli import main
from rag.errors import QuizError
from rag.quiz import (
    TYPES,
    Evidence,
    QuizItem,
    corpus_texts_of,
    generate_with_llm,
    make_quiz,
    parse_types,
    validate_item,
)
from rag.quiz_bank import QuestionBank

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


def test_llm_items_are_validated_retried_once_then_dropped(real_service, texts) -> None:
    idx, retriever, _ = real_service.current()
    hits = retriever.search("党建链动 四联机制", 3)
    not_verbatim = llm_json(evidence={"file": FILE, "quote": "推动省直部门与联建企业开展组织联建、理论联学、活动联办、品牌联创工作"})
    bad_answer = llm_json(stem="卞汉林介绍的“四联机制”有哪些内容？", answer=["A", "E"])
    model = FakeListChatModel(
        responses=[
            llm_json(),  # 1st passage: valid at once
            not_verbatim,  # 2nd passage: rejected ...
            "```json\n" + llm_json(stem="“党建链动”行动中，“四联机制”包括下列哪些？") + "\n```",  # ... fixed on retry
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
    path = tmp_path / "data" / "question_bank.json"
    first = make_quiz(real_service, n=12, bank=QuestionBank(path))
    assert len(QuestionBank(path).add(first.items)) == 12
    assert QuestionBank(path).add(first.items) == []  # same stems: nothing added
    reopened = QuestionBank(path)  # a new process reads what the last one wrote
    assert [i.id for i in reopened.load()] == [i.id for i in first.items]
    second = make_quiz(real_service, n=12, bank=reopened)  # same seed: would repeat without the bank
    assert not {i.stem_key for i in second.items} & {i.stem_key for i in first.items}
    assert not {i.fact for i in second.items} & {i.fact for i in first.items}
    assert second.stats["dropped"].get("already in the question bank", 0) > 0
    edited = first.items[0].model_copy(update={"stem": first.items[0].stem + "（修订）"})
    reopened.update(edited)
    assert QuestionBank(path).load()[0].stem.endswith("（修订）")
    assert reopened.remove(edited.id) and len(QuestionBank(path)) == 11
    assert not list(path.parent.glob("*.tmp"))


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
    assert (tmp_path / "data" / "question_bank.json").exists()
    for bad in (["--n", "0"], ["--types", "essay"], ["--out", str(tmp_path / "q.pdf")], ["--article", "999"]):
        assert main([*argv, *bad]) == 1  # argparse: the last --n/--types/--out wins
        assert "错误：" in capsys.readouterr().err
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "no_index"))
    assert main(argv) == 1
    assert "请先运行" in capsys.readouterr().err
