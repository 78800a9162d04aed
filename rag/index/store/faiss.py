"""The embedded backend: FAISS vectors + the bm25s keyword index, one folder per version.

The files, their checks and the atomic ``CURRENT`` pointer are ``files.py``, ``writer.py`` and ``reader.py``'s (its
``Index`` API is unchanged); this module puts them behind the ``Store``/``VersionStore`` seam.
Everything runs in-process: another process sees a new version when it next reads ``CURRENT``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...schema import Chunk, SourceText
from . import files, reader, writer
from .loaded import FaissStore, Index  # noqa: F401  (FaissStore: the backend's search half)


class FaissVersions:
    """Versions under ``index_dir/versions`` with the ``CURRENT`` pointer (see ``files.py``)."""

    kind = "faiss"

    def __init__(self, index_dir: Path, *, hnsw_threshold: int = files.HNSW_THRESHOLD) -> None:
        self.index_dir = Path(index_dir)
        self.hnsw_threshold = hnsw_threshold

    def live_version(self) -> str | None:
        return files.live_version(self.index_dir)

    def list_versions(self) -> list[str]:
        return files.list_versions(self.index_dir)

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
        path = writer.write_version(
            self.index_dir, chunks, vectors, docs, embedder_id=embedder_id, chunk_size=chunk_size, extra=extra,
            hnsw_threshold=self.hnsw_threshold,
        )
        return path.name

    def load(self, version: str, *, embedder_id: str | None = None, dim: int | None = None) -> Index:
        return reader.load_version(files.versions_dir(self.index_dir) / version, embedder_id=embedder_id, dim=dim)

    def open(self, *, embedder_id: str | None = None, dim: int | None = None) -> Index:
        return reader.open_index(self.index_dir, embedder_id=embedder_id, dim=dim)

    def publish(self, version: str) -> None:
        files.publish(self.index_dir, version)

    def drop(self, version: str) -> None:
        import shutil

        shutil.rmtree(files.versions_dir(self.index_dir) / version, ignore_errors=True)

    def prune(self, keep: int = files.KEEP_VERSIONS, *, also_keep: tuple[str, ...] = ()) -> list[str]:
        return files.prune_versions(self.index_dir, keep, also_keep=also_keep)

    def remove_unfinished(self) -> list[str]:
        return files.remove_unfinished(self.index_dir)
