"""Write one complete index version into ``versions/vN.tmp`` and rename it into place (see ``files.py``).

What it does not do: make the version live (``files.publish``) or load it (``reader.py``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import faiss
import numpy as np

from ...fsutil import fsync_dir
from ...schema import Chunk, SourceText
from . import files
from .files import (
    ARTIFACTS,
    FORMAT_VERSION,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    HNSW_THRESHOLD,
    _crash_point,
    _sha256_file,
    _write_bytes,
    _write_text,
    hnsw_ef_search,
    next_version_name,
    versions_dir,
)
from .keywords import KeywordIndex
from .loaded import chunk_tokens

logger = logging.getLogger(__name__)


def write_version(
    index_dir: Path,
    chunks: list[Chunk],
    vectors: np.ndarray,
    docs: list[SourceText],
    *,
    embedder_id: str,
    chunk_size: int,
    extra: dict | None = None,
    hnsw_threshold: int = HNSW_THRESHOLD,
) -> Path:
    """Write a complete version folder (``vNNNNNN``) and fsync it; does not publish it.

    The folder is written as ``vNNNNNN.tmp`` and renamed when every file is on disk, so a crash
    leaves either no folder or a ``.tmp`` one that start-up removes.
    """
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
    vdir = versions_dir(index_dir)
    vdir.mkdir(parents=True, exist_ok=True)
    name = next_version_name(index_dir)
    tmp = vdir / f"{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_version_files(
            tmp, name, chunks, vectors, docs, embedder_id=embedder_id, chunk_size=chunk_size, extra=extra,
            hnsw_threshold=hnsw_threshold,
        )
        _crash_point("after_manifest")
        fsync_dir(tmp, strict=True)
        final = vdir / name
        os.replace(tmp, final)
        fsync_dir(vdir, strict=True)
    except BaseException:
        # a failed build (disk full, file size limit, ...) leaves nothing behind; a killed
        # one leaves the .tmp folder that the next writer removes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_version_files(
    tmp: Path,
    name: str,
    chunks: list[Chunk],
    vectors: np.ndarray,
    docs: list[SourceText],
    *,
    embedder_id: str,
    chunk_size: int,
    extra: dict | None,
    hnsw_threshold: int = HNSW_THRESHOLD,
) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[0] else int(extra.get("dim", 0) if extra else 0)
    index, vector_index = build_vector_index(vectors, dim, hnsw_threshold=hnsw_threshold)
    _write_index(tmp / "vectors.faiss", index)
    del index  # the reader loads its own copy; at 10^6 passages this one is 1.8 GB
    _crash_point("after_vectors")
    _write_lines(tmp / "chunks.jsonl", (json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in chunks))
    _crash_point("after_chunks")
    kw = KeywordIndex.build(chunk_tokens(c) for c in chunks)
    _write_bytes(tmp / "keywords.npz", kw.to_bytes())
    del kw
    _write_text(
        tmp / "documents.jsonl",
        "".join(
            json.dumps(
                {"source": d.source, "sha256": d.sha256, "kind": d.kind, "meta": d.meta, "text": d.text},
                ensure_ascii=False,
            )
            + "\n"
            for d in docs
        ),
    )
    manifest = {
        "format": FORMAT_VERSION,
        "version": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "embedder": embedder_id,
        "dim": dim,
        "vector_index": vector_index,
        "chunker": files.CHUNKER_VERSION,
        "chunk_size": chunk_size,
        "n_chunks": len(chunks),
        "n_documents": len(docs),
        "files": {d.source: d.sha256 for d in docs},
        "artifacts": {a: _sha256_file(tmp / a) for a in ARTIFACTS},
        **(extra or {}),
    }
    _write_text(tmp / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))


def _write_index(path: Path, index: faiss.Index) -> None:
    """FAISS's format written through Python's file object as it is produced: no second copy of
    the index in memory (``serialize_index``) and a full disk still raises ``OSError``."""
    with open(path, "wb") as f:
        writer = faiss.PyCallbackIOWriter(f.write)
        faiss.write_index(index, writer)
        del writer  # flushes its buffer into f
        f.flush()
        os.fsync(f.fileno())


def _write_lines(path: Path, lines) -> None:
    """Text lines written as they come, in batches of 64 MB at most: never the whole table at once."""
    with open(path, "wb") as f:
        batch, size = [], 0
        for line in lines:
            b = line.encode("utf-8")
            batch.append(b)
            size += len(b)
            if size >= 1 << 26:
                f.write(b"".join(batch))
                batch, size = [], 0
        f.write(b"".join(batch))
        f.flush()
        os.fsync(f.fileno())


def build_vector_index(vectors: np.ndarray, dim: int, *, hnsw_threshold: int = HNSW_THRESHOLD) -> tuple[faiss.Index, dict]:
    """Exact inner-product search below ``hnsw_threshold`` vectors, HNSW from it on.

    Inner product of L2-normalised vectors = cosine, for both. Returns the index and its
    description for the manifest. Does not train anything: HNSW needs no training pass.
    """
    n = len(vectors)
    if n and n >= hnsw_threshold:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        ef_search = hnsw_ef_search(n)
        index.hnsw.efSearch = ef_search
        # question-time calls run on one OpenMP thread (rag/__init__); the build's add may use
        # every core (the reindex thread runs at a lower priority, so askers still come first).
        # The setting is this thread's own and is put back afterwards.
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        try:
            index.add(vectors)
        finally:
            faiss.omp_set_num_threads(before)
        desc = {"kind": "hnsw", "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": ef_search}
    else:
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(vectors)
        desc = {"kind": "flat"}
    logger.info("vector index %s over %d vectors (HNSW from %d)", desc["kind"], n, hnsw_threshold)
    return index, {**desc, "threshold": hnsw_threshold}


