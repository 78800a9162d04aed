"""What the retriever and the indexer may ask of any store backend.

Two protocols, because a loaded version and the versions of a store have different lives:

- ``Store`` searches one loaded, immutable version. The retriever keeps the one it started
  with, so a publish never changes the lists of a query in flight. Chunk ``i`` is the i-th
  chunk of the version (the position the ``Index`` lists it at); every backend returns these
  positions, so chunk ids, citations and spans are the same whichever backend served them.
- ``VersionStore`` writes, checks, publishes and rolls back versions (``index/versions/vN`` +
  ``CURRENT`` for FAISS; one collection per version behind an alias for Milvus).

Neither does fusion or ranking beyond its own list: that stays in ``rag/index/retrieval.py``, so
every backend feeds the same fusion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ...schema import Chunk, SourceText
    from .loaded import Index


@runtime_checkable
class Store(Protocol):
    """Search one loaded index version."""

    version: str

    def __len__(self) -> int: ...

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` chunks nearest to a normalised vector, as (position, cosine), best first."""
        ...

    def keyword(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best BM25 chunks for rjieba tokens, as (position, score > 0), best first."""
        ...

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of the chunks at ``ids`` (one row each, in that order)."""
        ...

    def chunk(self, i: int) -> Chunk: ...

    def idf(self, term: str) -> float:
        """BM25 IDF of one token over the whole version (unseen terms get the maximum)."""
        ...


class VersionStore(Protocol):
    """The versions of one store: write, check, publish, roll back, prune, open."""

    kind: str  # "faiss" | "milvus"

    def live_version(self) -> str | None: ...

    def list_versions(self) -> list[str]:
        """Every complete version, oldest first (names sort by age: ``v000007``)."""
        ...

    def write_version(
        self,
        chunks: list[Chunk],
        vectors: np.ndarray,
        docs: list[SourceText],
        *,
        embedder_id: str,
        chunk_size: int,
        extra: dict | None = None,
    ) -> str:
        """Write a complete new version (not published); returns its name."""
        ...

    def load(self, version: str, *, embedder_id: str | None = None, dim: int | None = None) -> Index:
        """Load and verify one version (``IndexCorruptError`` / ``IndexMismatchError``)."""
        ...

    def open(self, *, embedder_id: str | None = None, dim: int | None = None) -> Index:
        """Load the live version, falling back to an older good one when it is damaged."""
        ...

    def publish(self, version: str) -> None:
        """Make ``version`` the live one in one atomic step."""
        ...

    def drop(self, version: str) -> None:
        """Delete a version that is not live (a build that failed its checks)."""
        ...

    def prune(self, keep: int, *, also_keep: tuple[str, ...] = ()) -> list[str]:
        """Delete old versions beyond ``keep``; never the live one or ``also_keep``."""
        ...

    def remove_unfinished(self) -> list[str]:
        """Delete what a crashed build left behind; returns what was removed."""
        ...
