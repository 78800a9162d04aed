"""Build an index version from the corpus folder: load -> chunk -> embed -> write -> verify -> publish.

A build is a transaction under the writer lock (``rag/index/locking.py``): it writes a new version
folder, reloads and checks it, and only then flips CURRENT; whatever happens before the flip,
the live version is untouched, and a killed build leaves a ``.tmp`` folder the next one removes.

Incremental: a file whose bytes and sidecar metadata are unchanged is not parsed again (its
text comes from the previous version's ``documents.jsonl``) and, when the chunker settings are
unchanged, not chunked again either. Embeddings are cached per embedder, keyed by the sha256 of
the text given to the embedder, and seeded from the previous version's vectors, so adding one
article embeds only that article's chunks. The cache is an optimisation, not a source of truth:
it is checked for shape and skipped when unreadable. ``rebuild=True`` parses and embeds all.

A refused file (hostile, too large, undecodable, ...) is reported by name and reason and
changes nothing: if an earlier version of it was indexed, that version stays.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..audit import append_audit
from ..ingest.chunking import CHUNKER_VERSION, chunk_document
from ..config import Settings
from .embeddings import VectorEmbeddings
from ..errors import IndexBusyError, IndexCorruptError, LoaderError, RagError
from ..ingest.loaders import load_corpus
from .locking import writer_lock
from ..schema import Chunk, SourceText
from .store import VersionStore, open_store
from .store.files import KEEP_VERSIONS, _crash_point
from .store.loaded import Index, chunk_tokens
from .store.reader import check_compatible

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
    parsed: list[str] = field(default_factory=list)  # files parsed now (the rest reused)
    unfinished_removed: list[str] = field(default_factory=list)  # .tmp folders a crash left
    sha256: dict[str, str] = field(default_factory=dict)  # added/changed file -> sha256

    def summary(self) -> str:
        return (
            f"索引版本 {self.version}：{self.n_documents} 篇文章，{self.n_chunks} 个段落"
            f"（解析 {len(self.parsed)} 篇，新嵌入 {self.embedded} 个），用时 {self.seconds:.1f} 秒；"
            f"新增 {len(self.added)}，修改 {len(self.changed)}，删除 {len(self.removed)}，未变 {len(self.kept)}"
            + (f"，拒绝 {len(self.rejected)}" if self.rejected else "")
        )


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



# ---------------------------------------------------------------- incremental loading
def file_key(sha256: str, sidecar: dict | None) -> str:
    """What decides whether a file must be parsed again: its bytes and its metadata.json entry."""
    blob = json.dumps(sidecar or {}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(f"{sha256}\n{blob}".encode()).hexdigest()[:32]


def _doc_from_record(d: dict) -> SourceText:
    return SourceText(source=d["source"], text=d["text"], sha256=d["sha256"], kind=d["kind"], meta=dict(d.get("meta") or {}))


def _hash_if_small(path: Path, max_bytes: int) -> str | None:
    """sha256 of a regular file no larger than ``max_bytes``; None when it must go to the loader."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None
        h = hashlib.sha256()
        n = 0
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                n += len(block)
                if n > max_bytes:
                    return None
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


@dataclass
class _Loaded:
    docs: list[SourceText]
    errors: list[LoaderError]
    keys: dict[str, str]  # source -> file_key
    parsed: list[str]


def load_corpus_incremental(
    corpus_dir: Path, *, max_bytes: int, previous: dict[str, tuple[str, SourceText]] | None
) -> _Loaded:
    """:func:`rag.ingest.loaders.load_corpus`, reusing ``previous[source] = (file_key, text)``.

    A file is reused only when its bytes hash and its sidecar entry give the same key as in
    the previous version; everything else goes through ``load_file`` and its safety checks.
    """
    previous = previous or {}
    sidecars: dict[str, dict | None] = {}
    reused: set[str] = set()

    def reuse(name: str, path: Path, sidecar: dict | None) -> SourceText | None:
        sidecars[name] = sidecar
        prev = previous.get(name)
        if prev is None:
            return None
        sha = _hash_if_small(path, max_bytes)
        if sha is None or file_key(sha, sidecar) != prev[0]:
            return None
        reused.add(name)
        return prev[1]

    docs, errors = load_corpus(corpus_dir, max_bytes=max_bytes, reuse=reuse)
    keys = {d.source: file_key(d.sha256, sidecars.get(d.source)) for d in docs}
    return _Loaded(docs, errors, keys, [d.source for d in docs if d.source not in reused])


# ---------------------------------------------------------------- the build transaction
def _disk_error(e: OSError) -> RagError:
    if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return RagError(
            "磁盘空间不足（或超出文件大小限制），索引构建失败；当前索引未改动，请清理磁盘后重试",
            f"index build failed, disk full or file size limit: {e}",
        )
    return RagError(f"索引构建失败：写入文件出错（{e.strerror}）；当前索引未改动", f"index build failed: {e}")


def _audit(settings: Settings, event: dict) -> None:
    try:
        append_audit(Path(settings.data_dir), event)
    except OSError as e:  # the audit log must not turn a good build into a failure
        logger.error("could not append to the audit log: %s", e)


def build_index(
    settings: Settings,
    embeddings: VectorEmbeddings,
    *,
    progress: Progress | None = None,
    rebuild: bool = False,
    user: str | None = None,
) -> BuildReport:
    """Build, verify and publish a new index version from ``settings.corpus_dir``.

    Holds the writer lock for the whole build (``IndexBusyError`` if another build runs) and
    appends the result, good or bad, to the audit log. A failure of any kind leaves the live
    version as it was. Does not wait for a busy lock.
    """
    t0 = time.perf_counter()
    base = {"action": "reindex", "user": user or "system", "rebuild": bool(rebuild)}
    try:
        with writer_lock(Path(settings.index_dir)):
            report = _build_locked(settings, embeddings, progress=progress, rebuild=rebuild, t0=t0)
    except IndexBusyError as e:
        _audit(settings, {**base, "result": "busy", "error": e.log_message})
        raise
    except OSError as e:
        err = _disk_error(e)
        logger.error("%s", err.log_message)
        _audit(settings, {**base, "result": "error", "error": err.log_message, "seconds": round(time.perf_counter() - t0, 3)})
        raise err from e
    except BaseException as e:
        msg = e.log_message if isinstance(e, RagError) else f"{type(e).__name__}: {e}"
        _audit(settings, {**base, "result": "error", "error": msg, "seconds": round(time.perf_counter() - t0, 3)})
        raise
    _audit(
        settings,
        {
            **base,
            "result": "ok",
            "version": report.version,
            "documents": report.n_documents,
            "chunks": report.n_chunks,
            "embedded": report.embedded,
            "seconds": round(report.seconds, 3),
            "added": report.added,
            "changed": report.changed,
            "removed": report.removed,
            "kept": len(report.kept),
            "rejected": report.rejected,
            "files": report.sha256,  # file -> sha256 of each added or changed file
        },
    )
    return report


def _previous_index(store: VersionStore) -> Index | None:
    if store.live_version() is None and not store.list_versions():
        return None
    try:
        return store.open()
    except RagError as e:  # a damaged old index only means "everything is new"
        logger.warning("previous index not usable for an incremental build: %s", e.log_message)
        return None


def _build_locked(
    settings: Settings, embeddings: VectorEmbeddings, *, progress: Progress | None, rebuild: bool, t0: float
) -> BuildReport:
    index_dir = Path(settings.index_dir)
    store = open_store(settings)
    unfinished = store.remove_unfinished()
    if unfinished:
        logger.warning("removed unfinished index builds left by a crash: %s", ", ".join(unfinished))
    prev = _previous_index(store)
    prev_m = prev.manifest if prev else {}
    old_files: dict[str, str] = dict(prev_m.get("files") or {})
    prev_docs = {s: _doc_from_record(d) for s, d in (prev.documents if prev else {}).items()}
    prev_keys: dict[str, str] = dict(prev_m.get("file_keys") or {})
    previous = None if rebuild else {s: (prev_keys[s], d) for s, d in prev_docs.items() if s in prev_keys}

    loaded = load_corpus_incremental(Path(settings.corpus_dir), max_bytes=settings.upload_max_bytes, previous=previous)
    docs, keys = loaded.docs, dict(loaded.keys)
    rejected = []
    present = {d.source for d in docs}
    for e in loaded.errors:
        src = getattr(e, "source", "")
        if src in prev_docs and src not in present:
            # a refused replacement changes nothing: the version indexed before stays
            docs.append(prev_docs[src])
            present.add(src)
            if src in prev_keys:
                keys[src] = prev_keys[src]
            rejected.append(f"{e}（保留此前已索引的版本）")
        else:
            rejected.append(str(e))
    docs.sort(key=lambda d: d.source)

    new_files = {d.source: d.sha256 for d in docs}
    added = sorted(f for f in new_files if f not in old_files)
    changed = sorted(f for f in new_files if f in old_files and old_files[f] != new_files[f])
    removed = sorted(f for f in old_files if f not in new_files)
    kept = sorted(f for f in new_files if old_files.get(f) == new_files[f])

    # chunks: reuse the previous version's chunks of a file that was not parsed again,
    # when the chunker and its settings are the same
    same_chunker = (
        not rebuild
        and prev_m.get("chunker") == CHUNKER_VERSION
        and prev_m.get("chunk_size") == settings.chunk_size
        and prev_m.get("chunk_overlap") == settings.chunk_overlap_sentences
    )
    prev_chunks: dict[str, list[Chunk]] = {}
    if prev and same_chunker:
        for c in prev.chunks:
            prev_chunks.setdefault(c.source, []).append(c)
    parsed = set(loaded.parsed)
    chunks: list[Chunk] = []
    for d in docs:
        reuse = prev_chunks.get(d.source)
        if reuse is not None and d.source not in parsed and old_files.get(d.source) == d.sha256:
            chunks.extend(reuse)
        else:
            chunks.extend(chunk_document(d, settings))

    cache = None if rebuild else EmbeddingCache(index_dir, embeddings.model_id)
    if (
        cache is not None
        and prev is not None
        and prev_m.get("embedder") == embeddings.model_id
        and prev_m.get("chunker") == CHUNKER_VERSION
    ):
        # the previous version's vectors are a second cache (e.g. when the cache folder is gone);
        # keyed by today's embed text, so only when the chunker (which makes that text) is the same
        wanted = [(i, k) for i, k in enumerate(text_key(c.embed_text()) for c in prev.chunks) if k not in cache.vectors]
        if wanted:
            for (_, k), v in zip(wanted, prev.store.vectors([i for i, _ in wanted])):
                cache.vectors[k] = v
    te = time.perf_counter()
    vectors, embedded = embed_chunks(chunks, embeddings, settings, cache=cache, progress=progress)
    embed_seconds = time.perf_counter() - te
    _crash_point("after_embed")
    if rebuild:
        cache = EmbeddingCache(index_dir, embeddings.model_id)
        cache.vectors = {text_key(c.embed_text()): v for c, v in zip(chunks, vectors)}
    if progress:
        progress(embedded, max(embedded, 1), "写入索引")
    name = store.write_version(
        chunks,
        vectors,
        docs,
        embedder_id=embeddings.model_id,
        chunk_size=settings.chunk_size,
        extra={"dim": embeddings.dim, "chunk_overlap": settings.chunk_overlap_sentences, "file_keys": keys},
    )
    try:
        validate_version(store, name, embeddings, chunks, vectors)
    except BaseException:
        store.drop(name)
        raise
    _crash_point("before_publish")
    before = store.live_version()
    store.publish(name)
    _crash_point("after_publish")
    keep = settings.milvus_keep_versions if store.kind == "milvus" else KEEP_VERSIONS
    store.prune(keep, also_keep=tuple(v for v in (prev.version if prev else None, before) if v)[:1])
    if cache is not None:
        cache.save({text_key(c.embed_text()) for c in chunks})
    report = BuildReport(
        version=name,
        n_documents=len(docs),
        n_chunks=len(chunks),
        embedded=embedded,
        seconds=time.perf_counter() - t0,
        embed_seconds=embed_seconds,
        added=added,
        changed=changed,
        removed=removed,
        kept=kept,
        rejected=rejected,
        parsed=sorted(parsed),
        unfinished_removed=unfinished,
        sha256={f: new_files[f] for f in (*added, *changed)},
    )
    logger.info(
        "index %s built: %d docs (%d parsed), %d chunks, %d embedded in %.1fs",
        name, len(docs), len(parsed), len(chunks), embedded, report.seconds,
    )
    return report


def validate_version(
    store: VersionStore, name: str, embeddings: VectorEmbeddings, chunks: list[Chunk], vectors: np.ndarray
) -> Index:
    """Reload a written version and check it before it may be published.

    Hashes, counts, embedder and dimension (``store.load``), the chunk ids in order, and a
    few sanity queries: a chunk's own vector must find itself (cosine ~ 1) and its words must
    find it in the keyword index.
    """
    idx = store.load(name, embedder_id=embeddings.model_id, dim=embeddings.dim)
    if [c.id for c in idx.chunks] != [c.id for c in chunks]:
        raise IndexCorruptError(f"新索引版本 {name} 的段落与写入的不一致", f"{name}: chunk ids differ after reload")
    n = len(chunks)
    for i in sorted({0, n // 2, n - 1}) if n else []:
        found = idx.store.dense(np.ascontiguousarray(vectors[i], dtype=np.float32), 1)
        if not found or found[0][1] < 0.99:
            raise IndexCorruptError(f"新索引版本 {name} 未通过检索自检", f"{name}: vector sanity query failed for chunk {i}")
        toks = chunk_tokens(chunks[i])
        # a chunk's own tokens may tie with near-duplicates, so it need only be among the best
        found = idx.store.keyword(toks, 50) if toks else [(i, 1.0)]
        if not found or (i not in {j for j, _ in found} and len(found) < 50):
            raise IndexCorruptError(f"新索引版本 {name} 未通过关键词自检", f"{name}: keyword sanity query failed for chunk {i}")
    return idx


def rollback_index(settings: Settings, *, user: str | None = None) -> str:
    """Publish the newest good version older than the live one; returns its name.

    Takes the writer lock, verifies the target (hashes, counts, embedder) before the flip and
    audits the result. Does not delete the version rolled back from.
    """
    index_dir = Path(settings.index_dir)
    base = {"action": "rollback", "user": user or "system"}
    try:
        with writer_lock(index_dir):
            store = open_store(settings)
            live = store.live_version()
            older = [v for v in store.list_versions() if live is None or v < live]
            errors = []
            for v in reversed(older):
                try:
                    idx = store.load(v)
                    check_compatible(idx.manifest, embedder_id=settings.embedder_id, dim=None)
                except RagError as e:
                    logger.error("cannot roll back to %s: %s", v, e.log_message)
                    errors.append(f"{v}: {e}")
                    continue
                store.publish(v)
                _audit(settings, {**base, "result": "ok", "from": live, "version": v})
                return v
            raise RagError(
                "没有可回滚的旧版本" + (f"（{'；'.join(errors)}）" if errors else ""),
                f"no good version older than {live} to roll back to",
            )
    except RagError as e:
        _audit(settings, {**base, "result": "error", "error": e.log_message})
        raise
