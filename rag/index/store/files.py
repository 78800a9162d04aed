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

This module keeps the folder layout, the ``CURRENT`` pointer and pruning; ``writer.py`` writes a
version, ``reader.py`` verifies and loads one, ``loaded.py`` holds the loaded ``Index``.
"""


from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
from pathlib import Path

from ...fsutil import fsync_dir
from ...ingest.chunking import CHUNKER_VERSION  # noqa: F401  (read at call time by writer and reader: tests pin it here)

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
# efSearch (the search's candidate list) by the number of vectors: a larger graph needs a longer
# list for the same recall. At 10^6 synthetic passages efSearch 128 gave recall@10 0.843 against
# exact search, 384 gave 0.978 (efSearch 256: 0.941, 512: 0.988; README, "The embedded store at scale").
# Below that, 128 as before (recall@10 0.97 at 10^5).
HNSW_EF_SEARCH_BY_SIZE = ((0, HNSW_EF_SEARCH), (500_000, 384))


def hnsw_ef_search(n: int) -> int:
    """efSearch for an HNSW index over ``n`` vectors (written in the manifest, set again at load)."""
    return max(ef for start, ef in HNSW_EF_SEARCH_BY_SIZE if n >= start)
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


