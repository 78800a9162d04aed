"""Read, verify and load an index version: manifest checks, artifact hashes, fallback to the previous one.

What it does not do: write versions (``writer.py``) or search them (``loaded.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import faiss

from ...errors import IndexCorruptError, IndexMismatchError, IndexNotBuiltError, IndexOutdatedError
from . import files
from .files import ARTIFACTS, FORMAT_VERSION, HNSW_EF_SEARCH, list_versions, live_version, versions_dir
from .keywords import KeywordIndex
from .loaded import ChunkTable, Index

logger = logging.getLogger(__name__)


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
    if manifest.get("chunker") != files.CHUNKER_VERSION:
        raise IndexOutdatedError(
            f"索引的切分版本 {manifest.get('chunker')} 已过期（当前 {files.CHUNKER_VERSION}），请重建索引",
            f"index chunker {manifest.get('chunker')!r} != {files.CHUNKER_VERSION!r}",
        )


STREAMED = ("vectors.faiss",)  # hashed as a stream and parsed from the file by load_version, never held as bytes


def _sha256_stream(f, path: Path, name: str, h=None) -> str:
    h = h or hashlib.sha256()
    try:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    except OSError as e:
        raise IndexCorruptError(f"索引版本 {path.name} 的文件 {name} 无法读取", f"{path}: cannot read {name}: {e}") from e
    return h.hexdigest()


def _open_artifact(path: Path, name: str):
    try:
        return open(path / name, "rb")
    except FileNotFoundError:
        raise IndexCorruptError(f"索引版本 {path.name} 缺少文件 {name}", f"{path}: missing {name}") from None
    except OSError as e:
        raise IndexCorruptError(f"索引版本 {path.name} 的文件 {name} 无法读取", f"{path}: cannot read {name}: {e}") from e


def _mismatch(path: Path, name: str) -> IndexCorruptError:
    return IndexCorruptError(
        f"索引版本 {path.name} 的文件 {name} 校验失败（已损坏或被改动）", f"{path}: sha256 mismatch for {name}"
    )


def _read_vouched(path: Path, manifest: dict) -> dict[str, bytes]:
    """Check every artifact against the manifest's sha256 before parsing any of them.

    The bytes that were hashed are the bytes that get parsed (no window between a check and
    a second read), and only the names in ARTIFACTS are ever opened. The ``STREAMED`` ones
    (the vector index: 1.8 GB at a million passages) are hashed here without being kept, and
    ``_load_vectors`` hashes the bytes it parses a second time as it reads them.
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
        with _open_artifact(path, name) as f:
            if name in STREAMED:
                digest = _sha256_stream(f, path, name)
            else:
                try:
                    blob = f.read()
                except OSError as e:
                    raise IndexCorruptError(f"索引版本 {path.name} 的文件 {name} 无法读取", f"{path}: cannot read {name}: {e}") from e
                digest = hashlib.sha256(blob).hexdigest()
                data[name] = blob
        if digest != listed[name]:
            raise _mismatch(path, name)
    return data


def _load_vectors(path: Path, manifest: dict) -> faiss.Index:
    """Read ``vectors.faiss`` through FAISS's reader, hashing every byte it is given; the index
    is kept only when that hash is the manifest's (the file did not change after the check)."""
    name = "vectors.faiss"
    h = hashlib.sha256()
    with _open_artifact(path, name) as f:

        def read(n: int) -> bytes:
            b = f.read(n)
            h.update(b)
            return b

        try:
            index = faiss.read_index(faiss.PyCallbackIOReader(read))
        except (RuntimeError, ValueError, MemoryError) as e:
            if _sha256_stream(f, path, name, h) != manifest["artifacts"][name]:
                raise _mismatch(path, name) from e
            raise
        if _sha256_stream(f, path, name, h) != manifest["artifacts"][name]:  # bytes after the index: none expected
            raise _mismatch(path, name)
    vi = manifest.get("vector_index") or {}
    if vi.get("kind") == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = int(vi.get("ef_search", HNSW_EF_SEARCH))
    return index


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
        # one artifact at a time, each one's bytes dropped once parsed: the peak is the loaded
        # index plus one file, not every file twice
        keywords = KeywordIndex.from_bytes(data.pop("keywords.npz"))
        documents = {}
        for line in data.pop("documents.jsonl").decode("utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                documents[d["source"]] = d
        chunks = ChunkTable(data.pop("chunks.jsonl"))
        chunks.check()
        vectors = _load_vectors(path, manifest)
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
