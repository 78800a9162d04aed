"""One loaded, immutable FAISS index version (``Index``) and the ``Store`` that searches it (``FaissStore``).

What it does not do: read or write the version folders (``files.py``, ``reader.py``, ``writer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

from ...schema import Chunk
from ...text import tokenize
from .keywords import KeywordIndex


# ---------------------------------------------------------------- keyword index
def chunk_tokens(chunk: Chunk) -> list[str]:
    """What the keyword index sees of a chunk: title, path, question context and text."""
    return tokenize(" ".join((chunk.title, *chunk.heading_path, chunk.context, chunk.text)))


# ---------------------------------------------------------------- the loaded index
@dataclass
class Index:
    """One loaded, immutable index version. Readers keep the object they started with."""

    version: str
    path: Path
    manifest: dict
    vectors: faiss.Index
    chunks: list[Chunk]
    keywords: KeywordIndex
    documents: dict[str, dict] = field(default_factory=dict)  # source -> {"text", "sha256", "meta", ...}
    store: object = None  # the search seam (rag/index/store/base.Store); FaissStore over this object by default
    _by_id: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {c.id: i for i, c in enumerate(self.chunks)}
        if self.store is None:
            self.store = FaissStore(self)

    @property
    def dim(self) -> int:
        if self.vectors is not None:
            return int(self.vectors.d)
        return int(self.manifest.get("dim") or 0)

    def chunk_by_id(self, chunk_id: str) -> Chunk | None:
        i = self._by_id.get(chunk_id)
        return None if i is None else self.chunks[i]

    def document_text(self, source: str) -> str:
        return self.documents.get(source, {}).get("text", "")

    def vocabulary_has(self, term: str) -> bool:
        return self.keywords.idf(term) < self.keywords.idf("\uffff__never__")


class FaissStore:
    """Search one loaded ``Index`` (FAISS + keyword index in memory)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.version = index.version

    def __len__(self) -> int:
        return len(self.index.chunks)

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        vectors = self.index.vectors
        n = vectors.ntotal
        if n == 0 or k <= 0:
            return []
        scores, ids = vectors.search(np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1), min(k, n))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def keyword(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        return self.index.keywords.top(tokens, k)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        dim = self.index.dim
        if not len(ids):
            return np.zeros((0, dim), dtype=np.float32)
        return np.vstack([self.index.vectors.reconstruct(int(i)) for i in ids])

    def chunk(self, i: int) -> Chunk:
        return self.index.chunks[i]

    def idf(self, term: str) -> float:
        return self.index.keywords.idf(term)
