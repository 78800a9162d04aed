"""One loaded, immutable FAISS index version (``Index``) and the ``Store`` that searches it (``FaissStore``).

What it does not do: read or write the version folders (``files.py``, ``reader.py``, ``writer.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import overload

import faiss
import numpy as np

from ...schema import Chunk
from ...text import tokenize
from .keywords import KeywordIndex


# ---------------------------------------------------------------- keyword index
def chunk_tokens(chunk: Chunk) -> list[str]:
    """What the keyword index sees of a chunk: title, path, question context and text."""
    return tokenize(" ".join((chunk.title, *chunk.heading_path, chunk.context, chunk.text)))


# ---------------------------------------------------------------- the chunk table
class ChunkTable(Sequence):
    """The chunks of a loaded version as the ``chunks.jsonl`` bytes and where each line starts.

    A chunk is decoded when it is asked for; the last ``RECENT`` asked for by index are kept
    decoded (``Chunk`` is frozen: the same object serves every reader), since retrieval asks for
    the same few dozen passages several times per question. A million Python ``Chunk`` objects
    took about 1 KB each; this keeps the UTF-8 lines and two int64 offsets per chunk. Lines are split at ``\n`` only (JSON escapes it inside
    strings); blank lines are skipped, as before.
    """

    RECENT = 4096

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._decoded = lru_cache(maxsize=self.RECENT)(self._decode)
        raw = np.frombuffer(blob, dtype=np.uint8)
        ends = np.flatnonzero(raw == 10)
        starts = np.concatenate(([0], ends + 1))
        ends = np.concatenate((ends, [len(blob)]))
        keep = ends > starts
        starts, ends = starts[keep], ends[keep]
        blank = [j for j in np.flatnonzero(ends - starts < 8).tolist() if not blob[starts[j] : ends[j]].strip()]
        if blank:  # whitespace-only lines (no writer of ours makes them)
            starts, ends = np.delete(starts, blank), np.delete(ends, blank)
        self._starts, self._ends = starts.astype(np.int64), ends.astype(np.int64)

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, i: int) -> Chunk: ...
    @overload
    def __getitem__(self, i: slice) -> list[Chunk]: ...
    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._decoded(i)

    def _decode(self, i: int) -> Chunk:
        return Chunk.from_dict(json.loads(self._blob[self._starts[i] : self._ends[i]]))

    def __iter__(self) -> Iterator[Chunk]:
        blob = self._blob
        for a, z in zip(self._starts.tolist(), self._ends.tolist()):
            yield Chunk.from_dict(json.loads(blob[a:z]))  # a full pass does not churn the cache

    def check(self) -> None:
        """Parse every line once (a load-time check: ``ValueError``/``TypeError`` on a bad one)."""
        for _ in self:
            pass

    @property
    def nbytes(self) -> int:
        return len(self._blob) + self._starts.nbytes + self._ends.nbytes


# ---------------------------------------------------------------- the loaded index
@dataclass
class Index:
    """One loaded, immutable index version. Readers keep the object they started with."""

    version: str
    path: Path
    manifest: dict
    vectors: faiss.Index
    chunks: Sequence[Chunk]  # a ChunkTable when read from disk; any sequence of Chunk otherwise
    keywords: KeywordIndex
    documents: dict[str, dict] = field(default_factory=dict)  # source -> {"text", "sha256", "meta", ...}
    store: object = None  # the search seam (rag/index/store/base.Store); FaissStore over this object by default
    _by_id: dict[str, int] | None = field(default=None, repr=False)  # built on the first chunk_by_id

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = FaissStore(self)

    @property
    def dim(self) -> int:
        if self.vectors is not None:
            return int(self.vectors.d)
        return int(self.manifest.get("dim") or 0)

    def chunk_by_id(self, chunk_id: str) -> Chunk | None:
        if self._by_id is None:
            self._by_id = {c.id: i for i, c in enumerate(self.chunks)}
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
