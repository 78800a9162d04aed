"""FAISS exact below the size threshold, HNSW from it on: chosen at build, written in the manifest,
restored at load, and close to exact search (recall@10 against IndexFlatIP)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from rag.config import Settings
from rag.index.store import open_store
from rag.schema import Chunk, SourceText

DIM = 64


def vectors(rng: np.random.Generator, n: int, proj: np.ndarray) -> np.ndarray:
    """Normalised vectors of a low intrinsic dimension, like text embeddings."""
    v = rng.standard_normal((n, proj.shape[0]), dtype=np.float32) @ proj
    v += 0.05 * rng.standard_normal((n, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write(tmp_path: Path, n: int, threshold: int):
    rng = np.random.default_rng(1)
    proj = rng.standard_normal((16, DIM), dtype=np.float32)
    vecs = vectors(rng, n, proj)
    chunks = [Chunk(id=f"c{i}", source="s.txt", title="", heading_path=(), text=f"词{i % 50} 文本", start=0, end=0) for i in range(n)]
    doc = SourceText(source="s.txt", text="", sha256="0" * 64, kind="txt")
    store = open_store(Settings(index_dir=tmp_path / "index", hnsw_threshold=threshold))
    name = store.write_version(chunks, vecs, [doc], embedder_id="synthetic", chunk_size=0, extra={"dim": DIM})
    return store.load(name), vecs, vectors(rng, 100, proj)


def test_below_the_threshold_search_is_exact(tmp_path: Path) -> None:
    idx, vecs, _ = write(tmp_path, 500, threshold=1000)
    assert idx.manifest["vector_index"] == {"kind": "flat", "threshold": 1000}
    assert isinstance(idx.vectors, faiss.IndexFlatIP)
    assert idx.store.dense(vecs[7], 1)[0][0] == 7


@pytest.mark.parametrize("n", [3000])
def test_from_the_threshold_on_hnsw_with_recall_at_10_near_exact(tmp_path: Path, n: int) -> None:
    idx, vecs, queries = write(tmp_path, n, threshold=2000)
    vi = idx.manifest["vector_index"]
    assert vi["kind"] == "hnsw" and vi["threshold"] == 2000 and vi["M"] > 0
    hnsw = faiss.downcast_index(idx.vectors)
    assert isinstance(hnsw, faiss.IndexHNSWFlat) and hnsw.hnsw.efSearch == vi["ef_search"]
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vecs)
    _, truth = exact.search(queries, 10)
    found = sum(len({i for i, _ in idx.store.dense(q, 10)} & set(t.tolist())) for q, t in zip(queries, truth))
    assert found / (10 * len(queries)) >= 0.95
    # the stored vectors come back exactly (the answerer and the quiz read them)
    assert np.allclose(idx.store.vectors([5, 9]), vecs[[5, 9]])
