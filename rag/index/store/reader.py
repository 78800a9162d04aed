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
import numpy as np

from ...errors import IndexCorruptError, IndexMismatchError, IndexNotBuiltError, IndexOutdatedError
from ...schema import Chunk
from . import files
from .files import ARTIFACTS, FORMAT_VERSION, HNSW_EF_SEARCH, list_versions, live_version, versions_dir
from .keywords import KeywordIndex
from .loaded import Index

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
