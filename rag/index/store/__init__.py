"""The store seam: one interface for the retriever and the indexer, one module per backend.

- ``base.py``: ``Store`` (search one loaded version: dense, keyword, vectors, chunk, IDF) and
  ``VersionStore`` (write a version, publish it, roll back, prune, open the live one);
- ``factory.py``: ``open_store(settings)`` picks the backend from ``RAG_STORE`` (faiss | milvus);
- ``faiss.py``: the embedded default (FAISS + bm25s in ``index/versions/vN``), over ``files.py`` (layout,
  ``CURRENT``), ``writer.py``, ``reader.py`` and ``loaded.py`` (``Index``, ``FaissStore``);
- ``milvus.py``: Milvus or milvus-lite (one collection per version behind an alias), with
  ``milvus_client.py`` (connections) and ``milvus_layout.py`` (schemas, rows, manifest).
"""

from .base import Store, VersionStore
from .factory import open_store

__all__ = ["Store", "VersionStore", "open_store"]
