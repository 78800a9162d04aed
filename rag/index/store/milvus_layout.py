"""What one index version looks like in Milvus: the schemas of its two collections and their rows.

``<name>_vN``: one row per chunk (``pos`` the primary key, the chunk table as scalar fields, the
passage vector under HNSW/COSINE, and the keyword field: our BM25 weights as a sparse vector, or
the text for Milvus's own BM25 with the jieba analyzer); ``<name>_vN_meta``: the manifest, the
articles' text and the keyword vocabulary as JSON text in parts of ``PART_CHARS``.

Not done here: talking to Milvus (``milvus.py`` writes what these functions describe).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient

from ...ingest.chunking import CHUNKER_VERSION
from ...schema import Chunk, SourceText
from .files import FORMAT_VERSION, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M
from .keywords import BM25_B, BM25_K1, KeywordIndex

PART_CHARS = 16_000  # a VARCHAR holds 65,535 bytes; 16,000 characters stay below it in any UTF-8
TEXT_MAX = 65_535


def chunk_schema(client: MilvusClient, dim: int, keywords: str):
    """Schema and index parameters of a version's chunk collection."""
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("pos", DataType.INT64, is_primary=True)
    s.add_field("chunk_id", DataType.VARCHAR, max_length=64)
    s.add_field("source", DataType.VARCHAR, max_length=1024)
    s.add_field("title", DataType.VARCHAR, max_length=4096)
    s.add_field("heading_path", DataType.JSON)
    s.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("start", DataType.INT64)
    s.add_field("end", DataType.INT64)
    s.add_field("ordinal", DataType.INT64)
    s.add_field("context", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    ip = client.prepare_index_params()
    ip.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
    if keywords == "bm25":
        s.add_field("kw_text", DataType.VARCHAR, max_length=TEXT_MAX, enable_analyzer=True,
                    analyzer_params={"tokenizer": "jieba"})
        s.add_field("kw_bm25", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(Function(name="kw_bm25_fn", function_type=FunctionType.BM25,
                                input_field_names=["kw_text"], output_field_names=["kw_bm25"]))
        ip.add_index("kw_bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                     params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
    else:
        s.add_field("kw_sparse", DataType.SPARSE_FLOAT_VECTOR)
        ip.add_index("kw_sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    return s, ip


def meta_schema(client: MilvusClient):
    """Schema and index parameters of a version's ``_meta`` collection."""
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
    s.add_field("body", DataType.VARCHAR, max_length=TEXT_MAX)
    s.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    ip = client.prepare_index_params()
    ip.add_index("dummy", index_type="FLAT", metric_type="L2")
    return s, ip


def chunk_rows(chunks: list[Chunk], vectors: np.ndarray, weights, start: int, stop: int) -> list[dict]:
    """Rows ``start:stop`` of the chunk collection (``weights``: sparse BM25 weights, or None for bm25)."""
    rows = []
    for i in range(start, stop):
        c = chunks[i]
        row = {
            "pos": i, "chunk_id": c.id, "source": c.source, "title": c.title,
            "heading_path": list(c.heading_path), "text": c.text, "start": c.start, "end": c.end,
            "ordinal": c.ordinal, "context": c.context, "vector": vectors[i],
        }
        if weights is not None:
            a, z = weights.indptr[i], weights.indptr[i + 1]
            sparse = {int(t): float(w) for t, w in zip(weights.indices[a:z], weights.data[a:z])}
            row["kw_sparse"] = sparse or {0: 0.0}
        else:
            row["kw_text"] = " ".join((c.title, *c.heading_path, c.context, c.text))
        rows.append(row)
    return rows


def meta_rows(docs: list[SourceText], kw: KeywordIndex) -> tuple[dict[str, str], dict[str, int], list[dict]]:
    """(blobs, parts per blob, rows) of the ``_meta`` collection, the manifest row aside."""
    blobs = {
        "documents": "".join(
            json.dumps({"source": d.source, "sha256": d.sha256, "kind": d.kind, "meta": d.meta, "text": d.text},
                       ensure_ascii=False) + "\n"
            for d in docs
        ),
        "vocabulary": json.dumps({"terms": kw.terms, "df": kw.df.tolist(), "n_docs": kw.n_docs}, ensure_ascii=False),
    }
    parts = {}
    rows = []
    for key, body in blobs.items():
        pieces = [body[j : j + PART_CHARS] for j in range(0, len(body), PART_CHARS)] or [""]
        parts[key] = len(pieces)
        rows += [{"key": f"{key}:{j:06d}", "body": p, "dummy": [0.0, 0.0]} for j, p in enumerate(pieces)]
    return blobs, parts, rows


def version_manifest(
    *, name: str, coll: str, embedder_id: str, dim: int, keywords: str, chunk_size: int, n_chunks: int,
    docs: list[SourceText], parts: dict[str, int], blobs: dict[str, str], extra: dict | None,
) -> dict:
    return {
        "format": FORMAT_VERSION,
        "store": "milvus",
        "version": name,
        "collection": coll,
        "embedder": embedder_id,
        "dim": dim,
        "vector_index": {"kind": "milvus-hnsw", "metric": "COSINE", "M": HNSW_M,
                         "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH},
        "keywords": keywords,
        "chunker": CHUNKER_VERSION,
        "chunk_size": chunk_size,
        "n_chunks": n_chunks,
        "n_documents": len(docs),
        "files": {d.source: d.sha256 for d in docs},
        "parts": parts,
        "artifacts": {k: hashlib.sha256(v.encode("utf-8")).hexdigest() for k, v in blobs.items()},
        **(extra or {}),
    }
