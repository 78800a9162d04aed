"""``open_store(settings)``: the backend ``RAG_STORE`` names (faiss, the default, or milvus)."""

from __future__ import annotations

from ...config import Settings
from ...errors import ConfigError
from .base import VersionStore


def open_store(settings: Settings) -> VersionStore:
    """The version store of the configured backend.

    pymilvus is imported only here and in ``milvus*.py``, and only for ``RAG_STORE=milvus``: the
    embedded default needs none of it, and a missing package is a clear message, not a traceback.
    """
    if settings.store == "milvus":
        try:
            from .milvus import MilvusVersions
        except ImportError as e:
            raise ConfigError(
                "RAG_STORE=milvus 需要安装 pymilvus：pip install \"pymilvus[milvus-lite]\"（本地 milvus-lite 另需 "
                "\"milvus-lite[chinese]\"）",
                f"RAG_STORE=milvus but pymilvus cannot be imported: {e}",
            ) from e
        return MilvusVersions(settings)
    from .faiss import FaissVersions

    return FaissVersions(settings.index_dir, hnsw_threshold=settings.hnsw_threshold)
