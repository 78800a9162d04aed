"""`python -m rag bench` on the mini corpus: every figure is measured and printed (no timing asserts)."""

from __future__ import annotations

import io
import json

from rag.eval.bench import run_bench
from rag.config import Settings


def test_bench_prints_every_figure(mini_corpus, tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        "".join(json.dumps({"id": f"q{i}", "question": q}, ensure_ascii=False) + "\n" for i, q in enumerate(["大熊猫吃什么？", "党支部多久开一次会？", "Where do pandas live?"])),
        encoding="utf-8",
    )
    settings = Settings(corpus_dir=mini_corpus, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    out = io.StringIO()
    result = run_bench(settings, gold_path=gold, synthetic=2000, out=out)
    build, ask = result["build"], result["ask"]
    assert build["chunks"] > 0 and build["chunks_per_s"] > 0 and build["raw_passages_per_s"] > 0
    assert len(build["raw_embed_seconds_before_after"]) == 2 and build["overhead_seconds"] >= 0
    assert 0 < build["ratio"] < 5
    assert ask["questions"] == 3 and ask["errors"] == 0
    assert ask["p50_ms"] > 0 and ask["cold_p50_ms"] > 0 and ask["sentences_cached"] > 0
    assert result["synthetic"]["chunks"] == 2000 and result["synthetic"]["search_p50_ms"] > 0
    text = out.getvalue()
    for label in ("建索引", "比值", "问答延迟", "冷启动", "内存", "合成语料检索"):
        assert label in text
    assert not (tmp_path / "index").exists()  # the bench never touches the configured index


def test_load_bench_prints_the_phases_side_by_side(mini_corpus, tmp_path):
    from rag.web.bench_load import run_load

    settings = Settings(corpus_dir=mini_corpus, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    out = io.StringIO()
    res = run_load(settings, out, seconds=8, alone_seconds=3, askers=2, flooders=1)
    text = out.getvalue()
    for label in ("回答数 answers", "错误 errors", "p50 ms", "p95 ms", "重建索引期间 p95 ms", "登录洪泛", "单独", "并发",
                  "1 人 + 重建索引", "1 人重建索引期间 / 1 人单独"):
        assert label in text, label
    assert res["alone"]["answers"] > 0 and res["load"]["answers"] > 0
    solo = res["solo_reindex"]
    assert solo["answers"] > 0 and solo["errors"] == 0 and solo["reindex_ok"] and solo["reindex_s"] > 0
    assert res["load"]["errors"] == 0 and res["load"]["reindex_ok"]
    assert res["load"]["login_flood"].get(429, 0) > 0  # the flood was throttled
