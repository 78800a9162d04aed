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

The pieces: ``planning.py`` (what to parse again, what changed), ``embedding_cache.py`` (the
cache and the batched embedding); this module chunks, writes, verifies, publishes and rolls back.

A refused file (hostile, too large, undecodable, ...) is reported by name and reason and
changes nothing: if an earlier version of it was indexed, that version stays.
"""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..db.audit import append_audit
from ..ingest.chunking import CHUNKER_VERSION, chunk_document
from ..config import Settings
from .embeddings import VectorEmbeddings
from ..errors import IndexBusyError, IndexCorruptError, RagError
from .locking import writer_lock
from ..schema import Chunk
from .store import VersionStore, open_store
from .store.files import KEEP_VERSIONS, _crash_point
from .store.loaded import Index, chunk_tokens
from .store.reader import check_compatible
from .embedding_cache import EmbeddingCache, Progress, embed_chunks, embedder_cache_dir, text_key  # noqa: F401
from .planning import Plan, file_key, load_corpus_incremental, plan_files  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)


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
        append_audit(settings, event)
    except (OSError, RagError) as e:  # the audit log must not turn a good build into a failure
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
    plan = plan_files(settings, prev, rebuild=rebuild)
    chunks = _chunk_all(settings, plan, prev, rebuild=rebuild)
    cache = None if rebuild else _seeded_cache(index_dir, embeddings, prev)
    te = time.perf_counter()
    vectors, embedded = embed_chunks(chunks, embeddings, settings, cache=cache, progress=progress)
    embed_seconds = time.perf_counter() - te
    _crash_point("after_embed")
    if rebuild:
        cache = EmbeddingCache(index_dir, embeddings.model_id)
        cache.vectors = {text_key(c.embed_text()): v for c, v in zip(chunks, vectors)}
    if progress:
        progress(embedded, max(embedded, 1), "写入索引")
    name = _write_and_publish(store, settings, embeddings, plan, chunks, vectors, prev)
    if cache is not None:
        cache.save({text_key(c.embed_text()) for c in chunks})
    report = BuildReport(
        version=name,
        n_documents=len(plan.docs),
        n_chunks=len(chunks),
        embedded=embedded,
        seconds=time.perf_counter() - t0,
        embed_seconds=embed_seconds,
        added=plan.added,
        changed=plan.changed,
        removed=plan.removed,
        kept=plan.kept,
        rejected=plan.rejected,
        parsed=sorted(plan.parsed),
        unfinished_removed=unfinished,
        sha256={f: plan.new_files[f] for f in (*plan.added, *plan.changed)},
    )
    logger.info(
        "index %s built: %d docs (%d parsed), %d chunks, %d embedded in %.1fs",
        name, len(plan.docs), len(plan.parsed), len(chunks), embedded, report.seconds,
    )
    return report


def _chunk_all(settings: Settings, plan: Plan, prev: Index | None, *, rebuild: bool) -> list[Chunk]:
    """The chunks of every document: the previous version's for a file that was not parsed again,
    when the chunker and its settings are the same; fresh ones otherwise."""
    prev_m = prev.manifest if prev else {}
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
    chunks: list[Chunk] = []
    for d in plan.docs:
        reuse = prev_chunks.get(d.source)
        if reuse is not None and d.source not in plan.parsed and plan.old_files.get(d.source) == d.sha256:
            chunks.extend(reuse)
        else:
            chunks.extend(chunk_document(d, settings))
    return chunks


def _seeded_cache(index_dir: Path, embeddings: VectorEmbeddings, prev: Index | None) -> EmbeddingCache:
    """The embedder's cache, with the previous version's vectors as a second source."""
    cache = EmbeddingCache(index_dir, embeddings.model_id)
    prev_m = prev.manifest if prev else {}
    if prev is not None and prev_m.get("embedder") == embeddings.model_id and prev_m.get("chunker") == CHUNKER_VERSION:
        # the previous version's vectors are a second cache (e.g. when the cache folder is gone);
        # keyed by today's embed text, so only when the chunker (which makes that text) is the same
        wanted = [(i, k) for i, k in enumerate(text_key(c.embed_text()) for c in prev.chunks) if k not in cache.vectors]
        if wanted:
            for (_, k), v in zip(wanted, prev.store.vectors([i for i, _ in wanted])):
                cache.vectors[k] = v
    return cache


def _write_and_publish(
    store: VersionStore, settings: Settings, embeddings: VectorEmbeddings, plan: Plan, chunks: list[Chunk],
    vectors: np.ndarray, prev: Index | None,
) -> str:
    """Write the new version, verify it by reloading (dropped if it fails), publish it, prune old ones."""
    name = store.write_version(
        chunks,
        vectors,
        plan.docs,
        embedder_id=embeddings.model_id,
        chunk_size=settings.chunk_size,
        extra={"dim": embeddings.dim, "chunk_overlap": settings.chunk_overlap_sentences, "file_keys": plan.keys},
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
    return name


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
