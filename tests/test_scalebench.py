"""``python -m rag bench --scale`` on a tiny size: one JSON object per store with the agreed keys."""

from __future__ import annotations

import json

import pytest

from rag.cli import main
from rag.eval.scalebench import KEYS


def test_scale_bench_json_lines(capsys) -> None:
    pytest.importorskip("pymilvus", reason="the milvus store needs pymilvus[milvus-lite]")
    assert main(["bench", "--scale", "300", "--store", "faiss,milvus", "--json", "--queries", "5"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["store"], r["n"]) for r in rows] == [("faiss", 300), ("milvus", 300)]
    for r in rows:
        assert set(KEYS) <= set(r) and "error" not in r
        assert r["recall_at_10"] >= 0.95 and r["build_s"] >= 0 and r["rss_mb"] > 0 and r["disk_mb"] > 0
        assert r["p50_ms"] <= r["p95_ms"]


def test_scale_bench_refuses_an_unknown_store(capsys) -> None:
    assert main(["bench", "--scale", "300", "--store", "elastic"]) == 1
    assert "faiss" in capsys.readouterr().err
