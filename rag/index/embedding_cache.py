"""Embedding with a cache: vectors keyed by the sha256 of the text given to the embedder, per embedder.

``embed_chunks`` embeds only the chunks whose text the cache does not hold (in batches, with
progress). The cache (``index/cache/<embedder slug>/``, .npy + keys JSON, no pickle) is an
optimisation, not a source of truth: checked for shape, skipped when unreadable, and a failure to
save it only costs embedding time next build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import Settings
from ..schema import Chunk
from .embeddings import VectorEmbeddings

logger = logging.getLogger("rag.index.indexing")  # the build's one log

Progress = Callable[[int, int, str], None]  # (done, total, what)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def embedder_cache_dir(index_dir: Path, embedder_id: str) -> Path:
    """``index/cache/<embedder slug>/``: vectors that outlive index versions, per embedder."""
    return Path(index_dir) / "cache" / hashlib.sha1(embedder_id.encode()).hexdigest()[:12]


class EmbeddingCache:
    """Vectors keyed by text hash, for one embedder, stored as .npy + keys JSON (no pickle).

    The file names carry a format tag: caches written before the fix of the incremental
    build (which stored an older chunker's vectors under today's texts) are never read.
    """

    KEYS, VECTORS = "keys-v2.json", "vectors-v2.npy"
    LEGACY = ("keys.json", "vectors.npy")

    def __init__(self, index_dir: Path, embedder_id: str) -> None:
        self.dir = embedder_cache_dir(index_dir, embedder_id)
        self.vectors: dict[str, np.ndarray] = {}
        try:
            keys = json.loads((self.dir / self.KEYS).read_text(encoding="utf-8"))
            mat = np.load(self.dir / self.VECTORS, allow_pickle=False)
            if len(keys) == len(mat):
                self.vectors = dict(zip(keys, mat))
        except (OSError, ValueError, json.JSONDecodeError):
            self.vectors = {}

    def save(self, keep: set[str]) -> None:
        """Keep only ``keep``; a failure (disk full) only loses the cache and is logged."""
        keys = [k for k in self.vectors if k in keep]
        if not keys:
            return
        tmp_v, tmp_k = self.dir / "vectors.tmp.npy", self.dir / "keys.tmp.json"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            mat = np.vstack([self.vectors[k] for k in keys]).astype(np.float32)
            # keys and vectors are two files: a crash between the two replaces leaves a
            # pair whose lengths may still agree; then a key could map to another text's
            # vector. Drop the keys file first, so the pair is either old, new or absent.
            (self.dir / self.KEYS).unlink(missing_ok=True)
            np.save(tmp_v, mat, allow_pickle=False)
            tmp_k.write_text(json.dumps(keys), encoding="utf-8")
            os.replace(tmp_v, self.dir / self.VECTORS)
            os.replace(tmp_k, self.dir / self.KEYS)
            for name in self.LEGACY:
                (self.dir / name).unlink(missing_ok=True)
        except OSError as e:
            logger.warning("embedding cache not saved (%s); the next build embeds more", e)
            for t in (tmp_v, tmp_k):
                t.unlink(missing_ok=True)


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
