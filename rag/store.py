"""The index on disk: FAISS vectors + chunk table + BM25 keyword index + manifest, versioned.

Layout under ``index_dir``::

    CURRENT                 name of the live version (replaced atomically)
    versions/v000007/       one complete build
        vectors.faiss       faiss.IndexFlatIP over L2-normalised vectors (inner product = cosine)
        chunks.jsonl        one Chunk per line, in vector order
        keywords.npz        BM25 over rjieba tokens (bm25s sparse matrix, numeric arrays; built here, never per query)
        documents.jsonl     the decoded text of each article, for showing a citation in place
        manifest.json       embedder, dimension, chunker, per-file sha256, sha256 of every artifact
    versions/v000008.tmp/   a build in progress (removed at start-up if a crash left it)

No pickle anywhere: FAISS's own format, ``.npz`` read with ``allow_pickle=False``, JSON and JSONL. ``open_index`` refuses a version built
with another embedder, dimension or chunker (``IndexMismatchError``; an older chunker of ours gives ``IndexOutdatedError``, which the service rebuilds) and checks every artifact
against the manifest's hashes before loading it; a damaged live version falls back to the
previous one with a loud log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from .ingest.chunking import CHUNKER_VERSION
from .errors import IndexCorruptError, IndexMismatchError, IndexNotBuiltError, IndexOutdatedError
from .fsutil import fsync_dir
from .index.store.keywords import BM25_B, BM25_K1, KeywordIndex  # noqa: F401  (re-exported: the old home)
from .schema import Chunk, SourceText
from .text import tokenize

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: keywords.npz (bm25s) instead of keywords.json (hand-written postings)
ARTIFACTS = ("vectors.faiss", "chunks.jsonl", "keywords.npz", "documents.jsonl")
# vector search: exact (IndexFlatIP) below this many chunks, HNSW from it on. Exact search grows
# linearly with the chunks and HNSW logarithmically, at a recall@10 against exact that
# `python -m rag bench --scale` measures (figures in the README). The choice and its parameters
# are written in the manifest ("vector_index") and restored at load (efSearch is not a build
# parameter, so it is set again after reading).
HNSW_THRESHOLD = 100_000
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
KEEP_VERSIONS = 2  # the live one and the previous one (rollback)
CRASH_POINTS = ("after_embed", "after_vectors", "after_chunks", "after_manifest", "before_publish", "after_publish")


def _crash_point(name: str) -> None:
    """Test-only fault injection: SIGKILL this process when ``RAG_CRASH_AT`` names this point.

    This is the one deliberate exception to "Settings.from_env is the only reader of
    os.environ": a fault-injection hook must reach deep into a build without every caller
    passing it along, and it is not configuration. tests/test_crash.py sets the variable on a
    ``python -m rag index`` subprocess; unset (always, in production) it does nothing.
    """
    if os.environ.get("RAG_CRASH_AT") == name:
        logger.error("RAG_CRASH_AT=%s: killing this process (test fault injection)", name)
        os.kill(os.getpid(), signal.SIGKILL)


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
            from .index.store.faiss import FaissStore  # late: that module builds on this one

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


# ---------------------------------------------------------------- writing
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    # Python's own write, not faiss.write_index: a full disk (ENOSPC) or a file size limit
    # (EFBIG) then surfaces as an OSError the caller can report, not a C++ RuntimeError
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def versions_dir(index_dir: Path) -> Path:
    return Path(index_dir) / "versions"


def next_version_name(index_dir: Path) -> str:
    vdir = versions_dir(index_dir)
    nums = []
    if vdir.exists():
        for p in vdir.iterdir():
            name = p.name.split(".")[0]
            if name.startswith("v") and name[1:].isdigit():
                nums.append(int(name[1:]))
    return f"v{(max(nums) + 1) if nums else 1:06d}"


def write_version(
    index_dir: Path,
    chunks: list[Chunk],
    vectors: np.ndarray,
    docs: list[SourceText],
    *,
    embedder_id: str,
    chunk_size: int,
    extra: dict | None = None,
    hnsw_threshold: int = HNSW_THRESHOLD,
) -> Path:
    """Write a complete version folder (``vNNNNNN``) and fsync it; does not publish it.

    The folder is written as ``vNNNNNN.tmp`` and renamed when every file is on disk, so a crash
    leaves either no folder or a ``.tmp`` one that start-up removes.
    """
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
    vdir = versions_dir(index_dir)
    vdir.mkdir(parents=True, exist_ok=True)
    name = next_version_name(index_dir)
    tmp = vdir / f"{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_version_files(
            tmp, name, chunks, vectors, docs, embedder_id=embedder_id, chunk_size=chunk_size, extra=extra,
            hnsw_threshold=hnsw_threshold,
        )
        _crash_point("after_manifest")
        fsync_dir(tmp, strict=True)
        final = vdir / name
        os.replace(tmp, final)
        fsync_dir(vdir, strict=True)
    except BaseException:
        # a failed build (disk full, file size limit, ...) leaves nothing behind; a killed
        # one leaves the .tmp folder that the next writer removes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_version_files(
    tmp: Path,
    name: str,
    chunks: list[Chunk],
    vectors: np.ndarray,
    docs: list[SourceText],
    *,
    embedder_id: str,
    chunk_size: int,
    extra: dict | None,
    hnsw_threshold: int = HNSW_THRESHOLD,
) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[0] else int(extra.get("dim", 0) if extra else 0)
    index, vector_index = build_vector_index(vectors, dim, hnsw_threshold=hnsw_threshold)
    _write_bytes(tmp / "vectors.faiss", faiss.serialize_index(index).tobytes())
    _crash_point("after_vectors")
    _write_text(tmp / "chunks.jsonl", "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in chunks))
    _crash_point("after_chunks")
    kw = KeywordIndex.build([chunk_tokens(c) for c in chunks])
    _write_bytes(tmp / "keywords.npz", kw.to_bytes())
    _write_text(
        tmp / "documents.jsonl",
        "".join(
            json.dumps(
                {"source": d.source, "sha256": d.sha256, "kind": d.kind, "meta": d.meta, "text": d.text},
                ensure_ascii=False,
            )
            + "\n"
            for d in docs
        ),
    )
    manifest = {
        "format": FORMAT_VERSION,
        "version": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "embedder": embedder_id,
        "dim": dim,
        "vector_index": vector_index,
        "chunker": CHUNKER_VERSION,
        "chunk_size": chunk_size,
        "n_chunks": len(chunks),
        "n_documents": len(docs),
        "files": {d.source: d.sha256 for d in docs},
        "artifacts": {a: _sha256_file(tmp / a) for a in ARTIFACTS},
        **(extra or {}),
    }
    _write_text(tmp / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))


def build_vector_index(vectors: np.ndarray, dim: int, *, hnsw_threshold: int = HNSW_THRESHOLD) -> tuple[faiss.Index, dict]:
    """Exact inner-product search below ``hnsw_threshold`` vectors, HNSW from it on.

    Inner product of L2-normalised vectors = cosine, for both. Returns the index and its
    description for the manifest. Does not train anything: HNSW needs no training pass.
    """
    n = len(vectors)
    if n and n >= hnsw_threshold:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        index.add(vectors)
        desc = {"kind": "hnsw", "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}
    else:
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(vectors)
        desc = {"kind": "flat"}
    logger.info("vector index %s over %d vectors (HNSW from %d)", desc["kind"], n, hnsw_threshold)
    return index, {**desc, "threshold": hnsw_threshold}


def publish(index_dir: Path, version: str) -> None:
    """Make ``version`` live: write CURRENT.tmp, fsync, atomically replace CURRENT."""
    index_dir = Path(index_dir)
    tmp = index_dir / "CURRENT.tmp"
    _write_text(tmp, version + "\n")
    os.replace(tmp, index_dir / "CURRENT")
    fsync_dir(index_dir, strict=True)
    logger.info("published index version %s", version)


def live_version(index_dir: Path) -> str | None:
    cur = Path(index_dir) / "CURRENT"
    if not cur.exists():
        return None
    name = cur.read_text(encoding="utf-8").strip()
    return name or None


def list_versions(index_dir: Path) -> list[str]:
    vdir = versions_dir(index_dir)
    if not vdir.exists():
        return []
    return sorted(p.name for p in vdir.iterdir() if p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit())


def prune_versions(index_dir: Path, keep: int = KEEP_VERSIONS, *, also_keep: tuple[str, ...] = ()) -> list[str]:
    """Remove old versions; keep the live one, ``also_keep`` and the newest ones up to ``keep``.

    The builder passes the version it was serving before the publish as ``also_keep``, so
    "previous" means "previously served" (the rollback target), not "second newest by name".
    A reader that already loaded a pruned version keeps working: a loaded ``Index`` holds its
    data in memory and never goes back to the folder. Call only while holding the writer lock.
    """
    live = live_version(index_dir)
    versions = list_versions(index_dir)
    keep_set = {v for v in (live, *also_keep) if v}
    for v in reversed(versions):
        if len(keep_set) >= keep:
            break
        if live is None or v <= live:
            keep_set.add(v)
    removed = []
    for v in versions:
        if v not in keep_set:
            shutil.rmtree(versions_dir(index_dir) / v, ignore_errors=True)
            removed.append(v)
    if removed:
        logger.info("pruned index versions %s", ", ".join(removed))
    return removed


def remove_unfinished(index_dir: Path) -> list[str]:
    """Delete ``*.tmp`` build folders a crashed build left behind."""
    removed = []
    vdir = versions_dir(index_dir)
    if vdir.exists():
        for p in vdir.iterdir():
            if p.name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
    stale = Path(index_dir) / "CURRENT.tmp"
    if stale.exists():
        stale.unlink()
    return removed


# ---------------------------------------------------------------- reading
def read_manifest(path: Path) -> dict:
    mf = path / "manifest.json"
    if not mf.is_file():
        raise IndexCorruptError(f"索引版本 {path.name} 缺少 manifest.json", f"{path}: manifest.json missing")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexCorruptError(f"索引版本 {path.name} 的 manifest.json 已损坏", f"{path}: bad manifest: {e}") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), dict):
        raise IndexCorruptError(f"索引版本 {path.name} 的 manifest.json 已损坏", f"{path}: manifest is not an object")
    return manifest


def check_compatible(manifest: dict, *, embedder_id: str, dim: int | None) -> None:
    """Refuse an index from another embedder, dimension or chunker."""
    if manifest.get("embedder") != embedder_id:
        raise IndexMismatchError(
            f"索引由向量模型 {manifest.get('embedder')} 构建，与当前配置 {embedder_id} 不一致，"
            "请运行 python -m rag index --rebuild 重建索引",
            f"index embedder {manifest.get('embedder')!r} != configured {embedder_id!r}",
        )
    if dim is not None and manifest.get("dim") != dim:
        raise IndexMismatchError(
            f"索引向量维度 {manifest.get('dim')} 与当前模型维度 {dim} 不一致，请重建索引",
            f"index dimension {manifest.get('dim')} != model dimension {dim}",
        )
    if manifest.get("format") != FORMAT_VERSION and isinstance(manifest.get("format"), int) and manifest["format"] < FORMAT_VERSION:
        raise IndexOutdatedError(
            f"索引格式 {manifest.get('format')} 已过期（当前 {FORMAT_VERSION}），请重建索引",
            f"index format {manifest.get('format')!r} != {FORMAT_VERSION!r}",
        )
    if manifest.get("chunker") != CHUNKER_VERSION:
        raise IndexOutdatedError(
            f"索引的切分版本 {manifest.get('chunker')} 已过期（当前 {CHUNKER_VERSION}），请重建索引",
            f"index chunker {manifest.get('chunker')!r} != {CHUNKER_VERSION!r}",
        )


def _read_vouched(path: Path, manifest: dict) -> dict[str, bytes]:
    """Read every artifact once and check it against the manifest's sha256 before parsing.

    The bytes that were hashed are the bytes that get parsed (no window between a check and
    a second read), and only the names in ARTIFACTS are ever opened.
    """
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"索引版本 {path.name} 的格式 {manifest.get('format')} 不受支持", f"{path}: unsupported format"
        )
    listed = manifest["artifacts"]
    if set(listed) != set(ARTIFACTS):
        raise IndexCorruptError(f"索引版本 {path.name} 的清单不完整", f"{path}: manifest lists wrong artifacts")
    data: dict[str, bytes] = {}
    for name in ARTIFACTS:
        f = path / name
        try:
            blob = f.read_bytes()
        except FileNotFoundError:
            raise IndexCorruptError(f"索引版本 {path.name} 缺少文件 {name}", f"{path}: missing {name}") from None
        except OSError as e:
            raise IndexCorruptError(f"索引版本 {path.name} 的文件 {name} 无法读取", f"{path}: cannot read {name}: {e}") from e
        if hashlib.sha256(blob).hexdigest() != listed[name]:
            raise IndexCorruptError(
                f"索引版本 {path.name} 的文件 {name} 校验失败（已损坏或被改动）", f"{path}: sha256 mismatch for {name}"
            )
        data[name] = blob
    return data


def verify_version(path: Path) -> dict:
    """Check every artifact of a version against its manifest; return the manifest.

    Checks hashes only; :func:`load_version` also parses and compares counts.
    """
    manifest = read_manifest(path)
    _read_vouched(path, manifest)
    return manifest


def load_version(path: Path, *, embedder_id: str | None = None, dim: int | None = None) -> Index:
    """Load one version after verifying it. Only files the manifest vouches for are read."""
    path = Path(path)
    manifest = read_manifest(path)
    if embedder_id is not None:
        check_compatible(manifest, embedder_id=embedder_id, dim=dim)
    data = _read_vouched(path, manifest)
    try:
        vectors = faiss.deserialize_index(np.frombuffer(data["vectors.faiss"], dtype=np.uint8))
        vi = manifest.get("vector_index") or {}
        if vi.get("kind") == "hnsw":
            faiss.downcast_index(vectors).hnsw.efSearch = int(vi.get("ef_search", HNSW_EF_SEARCH))
        chunks = [
            Chunk.from_dict(json.loads(line))
            for line in data["chunks.jsonl"].decode("utf-8").splitlines()
            if line.strip()
        ]
        keywords = KeywordIndex.from_bytes(data["keywords.npz"])
        documents = {}
        for line in data["documents.jsonl"].decode("utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                documents[d["source"]] = d
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, OSError, zipfile.BadZipFile) as e:
        raise IndexCorruptError(f"索引版本 {path.name} 无法读取", f"{path}: unreadable: {e}") from e
    if vectors.ntotal != len(chunks) or manifest.get("n_chunks") != len(chunks) or len(keywords.doc_len) != len(chunks):
        raise IndexCorruptError(f"索引版本 {path.name} 的向量与段落数量不一致", f"{path}: counts disagree")
    if int(vectors.d) != manifest.get("dim"):
        raise IndexCorruptError(f"索引版本 {path.name} 的维度与清单不符", f"{path}: dimension disagrees")
    if set(documents) != set(manifest.get("files") or {}):
        raise IndexCorruptError(f"索引版本 {path.name} 的文章列表与清单不符", f"{path}: documents disagree with manifest")
    return Index(path.name, path, manifest, vectors, chunks, keywords, documents)


def open_index(index_dir: Path, *, embedder_id: str | None = None, dim: int | None = None) -> Index:
    """Load the live version; fall back to the newest older good one when it is damaged.

    A mismatch of embedder/dimension is not "damage": it is raised at once, so an index from
    another model is never served. When CURRENT moves while we load (a writer published and
    pruned meanwhile), start again from the new CURRENT instead of falling back.
    """
    index_dir = Path(index_dir)
    for _ in range(5):
        live = live_version(index_dir)
        try:
            return _open_once(index_dir, live, embedder_id=embedder_id, dim=dim)
        except IndexCorruptError:
            if live_version(index_dir) == live:
                raise
            logger.info("CURRENT moved while loading %s; loading the new one", live)
    return _open_once(index_dir, live_version(index_dir), embedder_id=embedder_id, dim=dim)


def _open_once(index_dir: Path, live: str | None, *, embedder_id: str | None, dim: int | None) -> Index:
    versions = list_versions(index_dir)
    if live is None and not versions:
        raise IndexNotBuiltError(
            f"{index_dir} 中还没有索引，请先运行 python -m rag index", f"no index in {index_dir}"
        )
    # fall back to older versions only: a newer one is a build that was rolled back from
    candidates = ([live] if live else []) + [v for v in reversed(versions) if live is None or v < live]
    errors = []
    for v in candidates:
        path = versions_dir(index_dir) / v
        if not path.is_dir():
            logger.error("INDEX VERSION %s IS MISSING", v)
            errors.append(f"{v}: missing")
            continue
        try:
            idx = load_version(path, embedder_id=embedder_id, dim=dim)
        except IndexCorruptError as e:
            logger.error("INDEX VERSION %s IS DAMAGED: %s", v, e.log_message)
            errors.append(e.log_message)
            continue
        if v != live:
            logger.error(
                "SERVING PREVIOUS INDEX VERSION %s because the live version %s is damaged or missing", v, live
            )
        return idx
    raise IndexCorruptError(
        "索引已损坏且没有可用的旧版本，请运行 python -m rag index --rebuild 重建",
        "no loadable index version: " + "; ".join(errors),
    )
