"""Build an index version from the corpus folder: load -> chunk -> embed -> write -> verify -> publish.

Embeddings are cached per embedder, keyed by the sha256 of the text given to the embedder, so a
rebuild after adding one article embeds only that article's chunks. The cache is an
optimisation, not a source of truth: it is checked for shape and skipped when unreadable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .chunking import chunk_documents
from .config import Settings
from .embeddings import VectorEmbeddings
from .errors import EmptyCorpusError
from .loaders import load_corpus
from .schema import Chunk
from .store import (
    live_version,
    load_version,
    open_index,
    prune_versions,
    publish,
    remove_unfinished,
    write_version,
)

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, what)


@dataclass
class BuildReport:
    version: str
    n_documents: int
    n_chunks: int
    embedded: int  # chunks embedded now (the rest came from the cache)
    seconds: float
    embed_seconds: float
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # "file: reason"

    def summary(self) -> str:
        return (
            f"索引版本 {self.version}：{self.n_documents} 篇文章，{self.n_chunks} 个段落"
            f"（新嵌入 {self.embedded} 个），用时 {self.seconds:.1f} 秒；"
            f"新增 {len(self.added)}，修改 {len(self.changed)}，删除 {len(self.removed)}，未变 {len(self.kept)}"
            + (f"，拒绝 {len(self.rejected)}" if self.rejected else "")
        )


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    """Vectors keyed by text hash, for one embedder, stored as .npy + keys JSON (no pickle)."""

    def __init__(self, index_dir: Path, embedder_id: str) -> None:
        slug = hashlib.sha1(embedder_id.encode()).hexdigest()[:12]
        self.dir = Path(index_dir) / "cache" / slug
        self.vectors: dict[str, np.ndarray] = {}
        try:
            keys = json.loads((self.dir / "keys.json").read_text(encoding="utf-8"))
            mat = np.load(self.dir / "vectors.npy", allow_pickle=False)
            if len(keys) == len(mat):
                self.vectors = dict(zip(keys, mat))
        except (OSError, ValueError, json.JSONDecodeError):
            self.vectors = {}

    def save(self, keep: set[str]) -> None:
        keys = [k for k in self.vectors if k in keep]
        if not keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        mat = np.vstack([self.vectors[k] for k in keys]).astype(np.float32)
        tmp_v, tmp_k = self.dir / "vectors.tmp.npy", self.dir / "keys.tmp.json"
        np.save(tmp_v, mat, allow_pickle=False)
        tmp_k.write_text(json.dumps(keys), encoding="utf-8")
        os.replace(tmp_v, self.dir / "vectors.npy")
        os.replace(tmp_k, self.dir / "keys.json")


def embed_chunks(
    chunks: list[Chunk],
    embeddings: VectorEmbeddings,
    settings: Settings,
    *,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for ``chunks`` in order; returns (matrix, number embedded now)."""
    texts = [c.embed_text() for c in chunks]
    keys = [text_key(t) for t in texts]
    todo = [i for i, k in enumerate(keys) if cache is None or k not in cache.vectors]
    new: dict[str, np.ndarray] = {}
    bs = max(1, settings.embed_batch_size)
    total = len(todo)
    if progress:
        progress(0, total, "嵌入段落")
    for s in range(0, total, bs):
        batch = todo[s : s + bs]
        vecs = embeddings.embed_passages([texts[i] for i in batch], batch_size=bs)
        for i, v in zip(batch, vecs):
            new[keys[i]] = v
        if progress:
            progress(min(s + bs, total), total, "嵌入段落")
    if cache is not None:
        cache.vectors.update(new)
    dim = embeddings.dim
    mat = np.zeros((len(chunks), dim), dtype=np.float32)
    for i, k in enumerate(keys):
        mat[i] = new[k] if k in new else cache.vectors[k]  # type: ignore[union-attr]
    return mat, total


def build_index(
    settings: Settings,
    embeddings: VectorEmbeddings,
    *,
    progress: Progress | None = None,
    rebuild: bool = False,
) -> BuildReport:
    """Build, verify and publish a new index version from ``settings.corpus_dir``."""
    t0 = time.perf_counter()
    index_dir = Path(settings.index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    remove_unfinished(index_dir)
    docs, errors = load_corpus(Path(settings.corpus_dir), max_bytes=settings.upload_max_bytes)
    if not docs:
        raise EmptyCorpusError(
            f"文件夹 {settings.corpus_dir} 中没有可读取的文章", f"no readable article in {settings.corpus_dir}"
        )
    old_files: dict[str, str] = {}
    if live_version(index_dir):
        try:
            old_files = open_index(index_dir).manifest.get("files", {})
        except Exception:  # a damaged or foreign old index only means "everything is new"
            old_files = {}
    new_files = {d.source: d.sha256 for d in docs}
    added = sorted(f for f in new_files if f not in old_files)
    changed = sorted(f for f in new_files if f in old_files and old_files[f] != new_files[f])
    removed = sorted(f for f in old_files if f not in new_files)
    kept = sorted(f for f in new_files if old_files.get(f) == new_files[f])

    chunks = chunk_documents(docs, settings)
    cache = None if rebuild else EmbeddingCache(index_dir, embeddings.model_id)
    te = time.perf_counter()
    vectors, embedded = embed_chunks(chunks, embeddings, settings, cache=cache, progress=progress)
    embed_seconds = time.perf_counter() - te
    if rebuild:
        cache = EmbeddingCache(index_dir, embeddings.model_id)
        cache.vectors = {text_key(c.embed_text()): v for c, v in zip(chunks, vectors)}
    if progress:
        progress(embedded, max(embedded, 1), "写入索引")
    path = write_version(
        index_dir,
        chunks,
        vectors,
        docs,
        embedder_id=embeddings.model_id,
        chunk_size=settings.chunk_size,
        extra={"dim": embeddings.dim},
    )
    # validate by reloading before publishing: counts, hashes, embedder, a sanity query
    idx = load_version(path, embedder_id=embeddings.model_id, dim=embeddings.dim)
    if idx.vectors.ntotal and chunks:
        _, ids = idx.vectors.search(vectors[:1], 1)
        if int(ids[0][0]) < 0:
            raise RuntimeError("sanity query on the new index returned no hit")
    publish(index_dir, path.name)
    prune_versions(index_dir)
    if cache is not None:
        cache.save({text_key(c.embed_text()) for c in chunks})
    report = BuildReport(
        version=path.name,
        n_documents=len(docs),
        n_chunks=len(chunks),
        embedded=embedded,
        seconds=time.perf_counter() - t0,
        embed_seconds=embed_seconds,
        added=added,
        changed=changed,
        removed=removed,
        kept=kept,
        rejected=[str(e) for e in errors],
    )
    logger.info("index %s built: %d docs, %d chunks, %d embedded in %.1fs", path.name, len(docs), len(chunks), embedded, report.seconds)
    return report
