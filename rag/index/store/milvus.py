"""The Milvus backend: one collection per index version behind an alias, through pymilvus.

``RAG_MILVUS_URI`` is a local path for milvus-lite (embedded, in-process; tests and a single
machine) or ``http(s)://host:19530`` for Milvus standalone or a cluster (``RAG_MILVUS_TOKEN``).
For ``RAG_MILVUS_COLLECTION=rag_chunks``:

- ``rag_chunks_v000007``: one row per chunk, ``pos`` (its position in the version, the primary
  key) and the chunk table as scalar fields (id, source, title, heading path, text, span,
  ordinal, context), the passage vector (HNSW, COSINE) and the keyword field: our rjieba BM25
  weights as a sparse vector (``RAG_MILVUS_KEYWORDS=sparse``, the default: global IDF, the
  same scores as the embedded index) or the text for Milvus's own BM25 function with the jieba
  analyzer (``bm25``: Milvus tokenises; IDF per segment on milvus-lite);
- ``rag_chunks_v000007_meta``: the manifest (written last: a version without one is
  unfinished), the articles' decoded text and the keyword vocabulary with document
  frequencies, as JSON text in parts, each checked against the manifest's sha256;
- the alias ``rag_chunks`` names the live version. A reindex writes new collections and
  switches the alias in one call (``alter_alias``), so readers never see a mixed index;
  rollback switches it back; collections older than ``RAG_MILVUS_KEEP_VERSIONS`` are dropped.

A loaded version searches its own collection, not the alias: a reader keeps its snapshot
while the alias moves on. Chunks are read into memory once per version (the answerer and the
place/name resolvers read every chunk); dense and keyword search run in Milvus.

The pieces: ``milvus_client.py`` (one client per URI, loading, releasing milvus-lite),
``milvus_layout.py`` (the collections' schemas, rows and manifest); this module writes, reads,
publishes and prunes versions and searches one.

What it does not do: fusion (``rag/index/retrieval.py`` fuses these lists exactly as it fuses the
FAISS ones), or guard a Milvus server against two machines reindexing at once (the writer
lock is a local file: run reindexing from one machine).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from ...config import Settings
from ...errors import IndexCorruptError, IndexNotBuiltError, RagError
from ...schema import Chunk, SourceText
from .files import HNSW_EF_SEARCH, _crash_point
from .loaded import Index, chunk_tokens
from .reader import check_compatible
from .keywords import KeywordIndex
from .milvus_client import client_for, ensure_loaded, is_server_uri, milvus_uri, release  # noqa: F401  (re-exported)
from .milvus_layout import chunk_rows, chunk_schema, meta_rows, meta_schema, version_manifest

logger = logging.getLogger(__name__)

BATCH = 1_000  # rows per insert call


# ---------------------------------------------------------------- search one version
class IdfTable:
    """BM25 IDF of our rjieba tokens over one version (what the answerer weighs terms with)."""

    def __init__(self, terms: list[str], df: list[int], n_docs: int) -> None:
        self.ids = {t: i for i, t in enumerate(terms)}
        self.df = np.asarray(df, dtype=np.int64)
        self.n_docs = int(n_docs)

    def __contains__(self, term: str) -> bool:
        return term in self.ids

    def idf(self, term: str) -> float:
        i = self.ids.get(term)
        df = int(self.df[i]) if i is not None else 0
        return float(np.log(1 + (self.n_docs - df + 0.5) / (df + 0.5)))


class MilvusStore:
    """Search one version's collection (dense HNSW/COSINE, keyword sparse/BM25) in Milvus."""

    def __init__(self, client: MilvusClient, collection: str, version: str, chunks: list[Chunk], idf: IdfTable,
                 *, keywords: str, dim: int) -> None:
        self.client = client
        self.collection = collection
        self.version = version
        self.chunks = chunks
        self.table = idf
        self.keywords_mode = keywords
        self.dim = dim

    def __len__(self) -> int:
        return len(self.chunks)

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not self.chunks or k <= 0:
            return []
        k = min(k, len(self.chunks))
        res = self.client.search(
            self.collection,
            data=[np.asarray(vector, dtype=np.float32).ravel().tolist()],
            anns_field="vector",
            limit=k,
            output_fields=["pos"],
            search_params={"metric_type": "COSINE", "params": {"ef": max(HNSW_EF_SEARCH, k)}},
        )
        return [(int(h["pos"]), float(h["distance"])) for h in res[0]]

    def keyword(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        if not self.chunks or k <= 0:
            return []
        k = min(k, len(self.chunks))
        if self.keywords_mode == "bm25":
            text = " ".join(t for t in tokens if t.strip())
            if not text:
                return []
            res = self.client.search(
                self.collection, data=[text], anns_field="kw_bm25", limit=k, output_fields=["pos"],
                search_params={"metric_type": "BM25"},
            )
            # milvus-lite returns BM25 negated (smaller = better, best first); a server, positive
            found = [(int(h["pos"]), abs(float(h["distance"]))) for h in res[0]]
        else:
            ids = sorted({self.table.ids[t] for t in tokens if t in self.table.ids})  # each term once
            if not ids:
                return []
            # the chunk vectors hold BM25 weights with IDF included: the inner product with a
            # 0/1 query vector is the chunk's BM25 score for these terms
            res = self.client.search(
                self.collection, data=[{i: 1.0 for i in ids}], anns_field="kw_sparse", limit=k, output_fields=["pos"],
                search_params={"metric_type": "IP"},
            )
            found = [(int(h["pos"]), float(h["distance"])) for h in res[0]]
        found = [(i, s) for i, s in found if s > 0]
        found.sort(key=lambda p: (-p[1], p[0]))  # ties by position, as the embedded index
        return found

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        got: dict[int, list[float]] = {}
        for s in range(0, len(ids), BATCH):
            for row in self.client.get(self.collection, ids=ids[s : s + BATCH], output_fields=["pos", "vector"]):
                got[int(row["pos"])] = row["vector"]
        return np.array([got[i] for i in ids], dtype=np.float32)

    def chunk(self, i: int) -> Chunk:
        return self.chunks[i]

    def idf(self, term: str) -> float:
        return self.table.idf(term)


class _Vectors:
    """The few ``faiss.Index`` calls other stages make on ``Index.vectors`` (the quiz reads all)."""

    def __init__(self, store: MilvusStore) -> None:
        self.store = store
        self.ntotal = len(store)
        self.d = store.dim

    def reconstruct(self, i: int) -> np.ndarray:
        return self.store.vectors([i])[0]

    def reconstruct_n(self, start: int, n: int) -> np.ndarray:
        return self.store.vectors(range(start, start + n))


# ---------------------------------------------------------------- versions
class MilvusVersions:
    """Versions as collections ``<name>_vNNNNNN`` (+ ``_meta``), the live one behind the alias ``<name>``."""

    kind = "milvus"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = milvus_uri(settings)
        self.alias = settings.milvus_collection
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.alias):
            raise RagError(
                f"RAG_MILVUS_COLLECTION 只能包含字母、数字和下划线：{self.alias}", f"bad collection name {self.alias!r}"
            )
        self.keywords = settings.milvus_keywords
        self.client = client_for(self.uri, settings.milvus_token)
        self._name = re.compile(re.escape(self.alias) + r"_(v\d{6})")

    # names
    def collection(self, version: str) -> str:
        return f"{self.alias}_{version}"

    def meta(self, version: str) -> str:
        return f"{self.alias}_{version}_meta"

    def _all_versions(self) -> list[str]:
        """Every version with a chunk collection, finished or not."""
        out = set()
        for name in self.client.list_collections():
            m = self._name.fullmatch(name)
            if m:
                out.add(m.group(1))
        return sorted(out)

    def _read_manifest(self, version: str) -> dict | None:
        """The version's manifest, or None when it has none; MilvusException when it cannot be read."""
        if not self.client.has_collection(self.meta(version)):
            return None
        ensure_loaded(self.client, self.uri, self.meta(version))
        rows = self.client.query(self.meta(version), filter='key == "manifest"', output_fields=["key", "body"], limit=1)
        if not rows:
            return None
        try:
            return json.loads(rows[0]["body"])
        except (ValueError, KeyError):
            return None

    def _manifest(self, version: str) -> dict | None:
        """The manifest, or None when the version has none or its data cannot be read (milvus-lite
        killed just after a flush can leave a segment file short: such a version is not a good one)."""
        try:
            return self._read_manifest(version)
        except MilvusException as e:
            logger.error("Milvus version %s cannot be read: %s", version, e)
            return None

    def live_version(self) -> str | None:
        # list first: describe_alias on a missing alias works too, but pymilvus logs it as an error
        if self.alias not in (self.client.list_aliases().get("aliases") or []):
            return None
        target = self.client.describe_alias(self.alias).get("collection_name", "")
        m = self._name.fullmatch(target or "")
        return m.group(1) if m else None

    def list_versions(self) -> list[str]:
        return [v for v in self._all_versions() if self._manifest(v) is not None]

    # writing
    def _next_version(self) -> str:
        nums = [int(v[1:]) for v in self._all_versions()]
        return f"v{(max(nums) + 1) if nums else 1:06d}"

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
        """Write ``<name>_vN`` and ``<name>_vN_meta``; the manifest row goes in last."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 and len(vectors) else int((extra or {}).get("dim", 0))
        name = self._next_version()
        coll, meta = self.collection(name), self.meta(name)
        try:
            schema, ip = chunk_schema(self.client, dim, self.keywords)
            self.client.create_collection(coll, schema=schema, index_params=ip)
            kw = KeywordIndex.build([chunk_tokens(c) for c in chunks])
            weights = kw.doc_weights() if self.keywords == "sparse" else None
            for s in range(0, len(chunks), BATCH):
                self.client.insert(coll, chunk_rows(chunks, vectors, weights, s, min(s + BATCH, len(chunks))))
            self.client.flush(coll)
            _crash_point("after_vectors")
            schema, ip = meta_schema(self.client)
            self.client.create_collection(meta, schema=schema, index_params=ip)
            blobs, parts, rows = meta_rows(docs, kw)
            for s in range(0, len(rows), BATCH):
                self.client.insert(meta, rows[s : s + BATCH])
            _crash_point("after_chunks")
            manifest = version_manifest(
                name=name, coll=coll, embedder_id=embedder_id, dim=dim, keywords=self.keywords, chunk_size=chunk_size,
                n_chunks=len(chunks), docs=docs, parts=parts, blobs=blobs, extra=extra,
            )
            self.client.insert(meta, [{"key": "manifest", "body": json.dumps(manifest, ensure_ascii=False), "dummy": [0.0, 0.0]}])
            self.client.flush(meta)
            _crash_point("after_manifest")
        except BaseException:
            # a failed build leaves nothing behind; a killed one leaves collections without a
            # manifest, which remove_unfinished drops
            try:
                self.drop(name)
            except Exception as e:  # the original error matters more
                logger.error("could not drop the failed version %s: %s", name, e)
            raise
        logger.info("wrote Milvus version %s (%d chunks, keywords %s)", coll, len(chunks), self.keywords)
        return name

    # reading
    def load(self, version: str, *, embedder_id: str | None = None, dim: int | None = None) -> Index:
        coll, meta = self.collection(version), self.meta(version)
        manifest = self._manifest(version)
        if manifest is None or not self.client.has_collection(coll):
            raise IndexCorruptError(f"Milvus 索引版本 {version} 不完整", f"{coll}: missing collection or manifest")
        if embedder_id is not None:
            check_compatible(manifest, embedder_id=embedder_id, dim=dim)
        try:
            ensure_loaded(self.client, self.uri, coll)
            rows = self.client.query(meta, filter='key != "manifest"', output_fields=["key", "body"], limit=16_384)
        except MilvusException as e:
            raise IndexCorruptError(f"Milvus 索引版本 {version} 无法读取", f"{coll}: unreadable: {e}") from e
        bodies: dict[str, list[tuple[str, str]]] = {}
        for r in rows:
            key, _, j = r["key"].partition(":")
            bodies.setdefault(key, []).append((j, r["body"]))
        blobs = {k: "".join(b for _, b in sorted(v)) for k, v in bodies.items()}
        for key, sha in (manifest.get("artifacts") or {}).items():
            if len(bodies.get(key, ())) != manifest["parts"].get(key) or hashlib.sha256(blobs.get(key, "").encode()).hexdigest() != sha:
                raise IndexCorruptError(f"Milvus 索引版本 {version} 的 {key} 校验失败", f"{meta}: sha256 mismatch for {key}")
        try:
            documents = {}
            for line in blobs["documents"].splitlines():
                if line.strip():
                    d = json.loads(line)
                    documents[d["source"]] = d
            vocab = json.loads(blobs["vocabulary"])
            chunks = self._read_chunks(coll, int(manifest.get("n_chunks") or 0))
        except (ValueError, KeyError, TypeError, MilvusException) as e:
            raise IndexCorruptError(f"Milvus 索引版本 {version} 无法读取", f"{coll}: unreadable: {e}") from e
        if len(chunks) != manifest.get("n_chunks") or vocab.get("n_docs") != len(chunks):
            raise IndexCorruptError(f"Milvus 索引版本 {version} 的段落数量与清单不符", f"{coll}: counts disagree")
        if set(documents) != set(manifest.get("files") or {}):
            raise IndexCorruptError(f"Milvus 索引版本 {version} 的文章列表与清单不符", f"{coll}: documents disagree")
        table = IdfTable(vocab["terms"], vocab["df"], vocab["n_docs"])
        store = MilvusStore(self.client, coll, version, chunks, table, keywords=manifest.get("keywords", "sparse"),
                            dim=int(manifest.get("dim") or 0))
        idx = Index(version, Path(self.settings.index_dir) / "milvus" / coll, manifest, _Vectors(store), chunks, table,
                    documents, store=store)
        return idx

    def _read_chunks(self, coll: str, n: int) -> list[Chunk]:
        """All ``n`` chunks in position order, read by ranges of the primary key.

        Ranges rather than ``query_iterator``: milvus-lite has no server timestamps for it, and
        a query's offset + limit may not pass 16,384 on a server.
        """
        fields = ["pos", "chunk_id", "source", "title", "heading_path", "text", "start", "end", "ordinal", "context"]
        rows: list[dict] = []
        step = 8_192
        for a in range(0, n, step):
            rows.extend(self.client.query(coll, filter=f"pos >= {a} and pos < {a + step}", output_fields=fields, limit=step))
        rows.sort(key=lambda r: r["pos"])
        if [r["pos"] for r in rows] != list(range(n)):
            raise ValueError(f"chunk positions are not 0..{n - 1}")
        return [
            Chunk(id=r["chunk_id"], source=r["source"], title=r["title"], heading_path=tuple(r["heading_path"] or ()),
                  text=r["text"], start=int(r["start"]), end=int(r["end"]), ordinal=int(r["ordinal"]), context=r["context"])
            for r in rows
        ]

    def open(self, *, embedder_id: str | None = None, dim: int | None = None) -> Index:
        """The live version; an older good one (with a loud log line) when it is damaged."""
        for _ in range(5):
            live = self.live_version()
            if live is None:
                raise IndexNotBuiltError(
                    f"Milvus 集合 {self.alias} 中还没有索引，请先运行 python -m rag index", f"no alias {self.alias} in {self.uri}"
                )
            errors = []
            for v in [live] + [v for v in reversed(self.list_versions()) if v < live]:
                try:
                    idx = self.load(v, embedder_id=embedder_id, dim=dim)
                except IndexCorruptError as e:
                    logger.error("MILVUS INDEX VERSION %s IS DAMAGED: %s", v, e.log_message)
                    errors.append(e.log_message)
                    continue
                if v != live:
                    logger.error("SERVING PREVIOUS INDEX VERSION %s because the live version %s is damaged", v, live)
                return idx
            if self.live_version() == live:
                raise IndexCorruptError(
                    "Milvus 索引已损坏且没有可用的旧版本，请运行 python -m rag index --rebuild 重建",
                    "no loadable Milvus version: " + "; ".join(errors),
                )
        raise IndexCorruptError("Milvus 索引版本不断变化，无法加载", "alias kept moving while loading")

    # publishing
    def publish(self, version: str) -> None:
        coll = self.collection(version)
        if self.live_version() is None:
            try:
                self.client.create_alias(collection_name=coll, alias=self.alias)
            except Exception:  # the alias exists but points nowhere we know: move it
                self.client.alter_alias(collection_name=coll, alias=self.alias)
        else:
            self.client.alter_alias(collection_name=coll, alias=self.alias)  # one atomic switch
        logger.info("published Milvus version %s (alias %s)", coll, self.alias)

    def drop(self, version: str) -> None:
        if version == self.live_version():
            raise RagError(f"不能删除当前在用的索引版本 {version}", f"refusing to drop the live version {version}")
        for name in (self.collection(version), self.meta(version)):
            if self.client.has_collection(name):
                self.client.drop_collection(name)

    def prune(self, keep: int, *, also_keep: tuple[str, ...] = ()) -> list[str]:
        live = self.live_version()
        versions = self.list_versions()
        keep_set = {v for v in (live, *also_keep) if v}
        for v in reversed(versions):
            if len(keep_set) >= keep:
                break
            if live is None or v <= live:
                keep_set.add(v)
        removed = [v for v in versions if v not in keep_set]
        for v in removed:
            self.drop(v)
        if removed:
            logger.info("dropped Milvus versions %s", ", ".join(removed))
        return removed

    def remove_unfinished(self) -> list[str]:
        """Drop the versions a killed build left: those without a manifest row, and those whose data
        cannot be read if newer than the live one (a build writes max + 1; an older unreadable
        version is left alone, as a server hiccup must not cost the fallbacks: list_versions skips it)."""
        live = self.live_version()
        removed = []
        for v in self._all_versions():
            if v == live:
                continue
            try:
                finished = self._read_manifest(v) is not None
            except MilvusException as e:
                finished = live is not None and v < live
                logger.error("Milvus version %s cannot be read (%s): %s", v, "kept" if finished else "dropped", e)
            if not finished:
                self.drop(v)
                removed.append(v)
        return removed
