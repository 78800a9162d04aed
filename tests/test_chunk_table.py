"""The loaded version's compact parts: the chunk table decoded per lookup, the vector index read
as a stream and checked against the manifest, the build's OpenMP threads put back."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from rag.config import Settings
from rag.errors import IndexCorruptError
from rag.index.store import open_store
from rag.index.store.files import hnsw_ef_search
from rag.index.store.loaded import ChunkTable
from rag.index.store.reader import _load_vectors, read_manifest
from rag.schema import Chunk, SourceText

CHUNKS = [
    Chunk(id="a1", source="a.txt", title="标题", heading_path=("一、概况", "张三"), text="大熊猫吃竹子。", start=0, end=7, ordinal=0),
    # U+2028 and U+0085 are line breaks to str.splitlines, not to the JSONL table
    Chunk(id="a2", source="a.txt", title="标题", heading_path=(), text="第一行\u2028第二行\x85完", start=7, end=17, ordinal=1,
          context="问题？"),
    Chunk(id="b1", source="b.txt", title="", heading_path=("x",), text="龙井 绿茶", start=0, end=5, ordinal=0),
]


def _blob(chunks: list[Chunk], sep: str = "") -> bytes:
    return "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" + sep for c in chunks).encode("utf-8")


def test_table_gives_back_the_chunks_written() -> None:
    table = ChunkTable(_blob(CHUNKS))
    assert len(table) == 3 and list(table) == CHUNKS and table[1] == CHUNKS[1] and table[-1] == CHUNKS[2]
    assert table[1:] == CHUNKS[1:] and table[np.int64(2)] == CHUNKS[2]
    with pytest.raises(IndexError):
        table[3]
    # blank and whitespace-only lines are skipped, as the list of Chunk objects did
    assert list(ChunkTable(_blob(CHUNKS, sep="\n  \n"))) == CHUNKS
    assert len(ChunkTable(b"")) == 0 and list(ChunkTable(b"\n")) == []


def _version(tmp_path: Path, n: int, threshold: int):
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((n, 16), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [Chunk(id=f"c{i}", source="s.txt", title="", heading_path=(), text=f"词{i % 7} 文本", start=0, end=0) for i in range(n)]
    doc = SourceText(source="s.txt", text="", sha256="0" * 64, kind="txt")
    store = open_store(Settings(index_dir=tmp_path / "index", hnsw_threshold=threshold))
    name = store.write_version(chunks, vecs, [doc], embedder_id="synthetic", chunk_size=0, extra={"dim": 16})
    return store, name, chunks, vecs


def test_loaded_version_holds_a_table_equal_to_its_chunks(tmp_path: Path) -> None:
    threads = faiss.omp_get_max_threads()
    store, name, chunks, vecs = _version(tmp_path, 300, threshold=100)  # HNSW: the add runs on every core
    assert faiss.omp_get_max_threads() == threads  # ... and the question-time setting is back
    idx = store.load(name)
    assert isinstance(idx.chunks, ChunkTable) and list(idx.chunks) == chunks
    assert idx.chunk_by_id("c42") == chunks[42] and idx.chunk_by_id("nope") is None
    assert idx.store.dense(vecs[42], 1)[0][0] == 42
    assert idx.manifest["vector_index"]["kind"] == "hnsw" and idx.manifest["vector_index"]["ef_search"] == hnsw_ef_search(300) == 128
    assert hnsw_ef_search(10**6) > hnsw_ef_search(10**5)  # a larger graph searches a longer list
    assert faiss.downcast_index(idx.vectors).hnsw.efSearch == idx.manifest["vector_index"]["ef_search"]


def test_vector_index_is_kept_only_when_the_bytes_read_are_the_vouched_ones(tmp_path: Path) -> None:
    store, name, _, vecs = _version(tmp_path, 50, threshold=1000)
    path = tmp_path / "index" / "versions" / name
    manifest = read_manifest(path)
    assert _load_vectors(path, manifest).ntotal == 50
    # the file changed after the check (here: the manifest vouches for other bytes)
    other = {**manifest, "artifacts": {**manifest["artifacts"], "vectors.faiss": "0" * 64}}
    with pytest.raises(IndexCorruptError) as e:
        _load_vectors(path, other)
    assert e.value.log_message.endswith("sha256 mismatch for vectors.faiss")
    # bytes after a well-formed index count too
    with open(path / "vectors.faiss", "ab") as f:
        f.write(b"tail")
    with pytest.raises(IndexCorruptError) as e:
        _load_vectors(path, manifest)
    assert "sha256 mismatch" in e.value.log_message
