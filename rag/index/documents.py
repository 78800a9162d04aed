"""Document management for the web page: list, add, replace and delete articles in the corpus folder.

Every upload is validated with :func:`rag.ingest.loaders.load_bytes` (size, allowed type, content that
matches the suffix, decodable text) *before* anything is written. The original upload is kept
under ``<data_dir>/uploads/<uuid>`` (its original name only as metadata, never served); the article
itself goes into the corpus folder under a safe name: the uploaded name when it is a plain safe
name, else a generated ``upload_<hex>.<suffix>``. Per-file metadata (title, size, sha256, who
added it and when) lives in ``<data_dir>/documents.json``; every change is appended to the audit log.

Files are written to a temp file in the target folder and moved into place (``os.link`` for a new
name, so an add never overwrites; ``os.replace`` for a replacement), so an error leaves nothing half
written. The index is not touched: the caller reindexes.

Example::

    docs = DocumentManager(settings)
    name = docs.add("青松县.txt", data, user="admin")   # "青松县.txt"
    docs.delete(name, user="admin")

Not done here: versioning of replaced files beyond the kept upload, per-user quotas, virus scanning.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from filelock import FileLock, Timeout

from ..db.audit import append_audit
from ..config import Settings
from ..errors import InputError, LoaderError, RagError
from ..fsutil import atomic_write, fsync_dir, write_temp
from ..ingest.loaders import METADATA_FILE, SUPPORTED_SUFFIXES, load_bytes, read_metadata, sha256_bytes
from .store.files import live_version, versions_dir

logger = logging.getLogger(__name__)

DOCUMENTS_FILE = "documents.json"
UPLOADS_DIR = "uploads"
# a plain file name: letters, digits, CJK, _ - . and (not leading) spaces; no separators, no "..", not hidden
_SAFE_NAME = re.compile(r"[A-Za-z0-9_\-\u3400-\u4dbf\u4e00-\u9fff（）()【】《》“”·，、][A-Za-z0-9_\-. \u3400-\u4dbf\u4e00-\u9fff（）()【】《》“”·，、]{0,99}")
_lock = threading.Lock()


@dataclass(frozen=True)
class DocumentRow:
    """One article of the corpus as the admin page lists it."""

    name: str  # file name in the corpus folder
    title: str
    size: int
    chunks: int | None  # None when no index is published or the file is not in it yet
    sha256: str  # prefix
    added: str
    added_by: str
    original_name: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def safe_name(filename: str) -> str | None:
    """Return ``filename`` when it is a safe plain file name of a supported type, else None.

    >>> safe_name("青松县.txt"), safe_name("../x.txt"), safe_name("/etc/passwd"), safe_name("..%2Fx.txt")
    ('青松县.txt', None, None, None)
    """
    if not isinstance(filename, str) or filename != filename.strip():
        return None
    if not _SAFE_NAME.fullmatch(filename) or ".." in filename or filename == METADATA_FILE:
        return None
    if _suffix(filename) not in SUPPORTED_SUFFIXES or filename.startswith("."):
        return None
    return filename


def _write_new(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if ``path`` does not exist yet; return False if it does."""
    tmp = write_temp(path.parent, data, prefix=".upload-")
    try:
        os.link(tmp, path)  # fails with FileExistsError instead of overwriting
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def live_chunk_counts(index_dir: Path) -> dict[str, int]:
    """Chunks per source in the published index version ({} when there is none)."""
    live = live_version(index_dir)
    if not live:
        return {}
    counts: dict[str, int] = {}
    try:
        with open(versions_dir(index_dir) / live / "chunks.jsonl", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    src = json.loads(line).get("source", "")
                    counts[src] = counts.get(src, 0) + 1
    except (OSError, ValueError) as e:
        logger.warning("cannot count chunks of index %s: %s", live, e)
        return {}
    return counts


class DocumentManager:
    """The corpus folder as a managed collection of articles (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.corpus_dir = Path(settings.corpus_dir)
        self.data_dir = Path(settings.data_dir)
        self.meta_path = self.data_dir / DOCUMENTS_FILE
        self.uploads_dir = self.data_dir / UPLOADS_DIR
        self._flock = FileLock(self.data_dir / ".documents.lock", timeout=10, mode=0o600)

    # ------------------------------------------------------------ metadata file
    def _read_meta(self) -> dict[str, dict]:
        try:
            data = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise RagError(
                f"文档信息文件已损坏，请检查或从备份恢复：{self.meta_path}", f"cannot read {self.meta_path}: {e}"
            ) from e
        docs = data.get("documents") if isinstance(data, dict) else None
        return docs if isinstance(docs, dict) else {}

    def _write_meta(self, docs: dict[str, dict]) -> None:
        payload = json.dumps({"version": 1, "documents": docs}, ensure_ascii=False, indent=1, sort_keys=True)
        atomic_write(self.meta_path, (payload + "\n").encode("utf-8"))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the documents lock (threads of this process, then other processes) for one change."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _lock:
            try:
                self._flock.acquire()
            except Timeout as e:
                raise RagError("文档正在被其他操作修改，请稍后再试", "timed out waiting for the documents lock") from e
            try:
                yield
            finally:
                self._flock.release()

    # ------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """File names of the articles in the corpus folder, sorted."""
        if not self.corpus_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.corpus_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != METADATA_FILE
            and p.suffix.lower() in SUPPORTED_SUFFIXES
        )

    def list(self) -> list[DocumentRow]:
        """Return one row per article: title, size, chunk count in the live index, who added it."""
        meta = self._read_meta()
        try:
            sidecar = read_metadata(self.corpus_dir)
        except LoaderError:
            sidecar = {}
        counts = live_chunk_counts(self.settings.index_dir)
        rows = []
        for name in self.names():
            path = self.corpus_dir / name
            info = meta.get(name, {})
            try:
                size = path.stat().st_size
            except OSError:
                continue
            title = info.get("title") or sidecar.get(name, {}).get("title") or self._first_line(path)
            sha = info.get("sha256") or ""
            if not sha:
                try:
                    sha = sha256_bytes(path.read_bytes())
                except OSError:
                    sha = ""
            rows.append(
                DocumentRow(
                    name=name,
                    title=title,
                    size=size,
                    chunks=counts.get(name) if counts else None,
                    sha256=sha[:12],
                    added=info.get("added", ""),
                    added_by=info.get("added_by", ""),
                    original_name=info.get("original_name", ""),
                )
            )
        return rows

    @staticmethod
    def _first_line(path: Path) -> str:
        if path.suffix.lower() not in {".txt", ".md"}:
            return path.name
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.strip():
                        return line.strip().lstrip("#").strip()[:80]
        except OSError:
            pass
        return path.name

    # ------------------------------------------------------------ changing
    def _validate(self, filename: str, data: bytes):
        if not isinstance(data, (bytes, bytearray)):
            raise InputError("上传内容无效", "upload data is not bytes")
        return load_bytes(bytes(data), filename, max_bytes=self.settings.upload_max_bytes)

    def _keep_upload(self, data: bytes) -> str:
        upload_id = uuid.uuid4().hex
        atomic_write(self.uploads_dir / upload_id, bytes(data))
        return upload_id

    def _existing(self, name: str) -> Path:
        if safe_name(name) is None and name not in self.names():
            raise InputError(f"文档名无效：{name}", f"invalid document name {name!r}")
        if name not in self.names():
            raise InputError(f"文档不存在：{name}", f"no such document {name!r}")
        return self.corpus_dir / name

    def add(self, filename: str, data: bytes, user: str) -> str:
        """Validate and add one article; return its file name in the corpus folder."""
        return self.add_many([(filename, data)], user)[0]

    def add_many(self, files: list[tuple[str, bytes]], user: str) -> list[str]:
        """Validate every file first, then add them all; return their corpus file names.

        Raises InputError for an empty batch or more than ``upload_max_files`` files, and the
        first LoaderError of a bad file; in both cases nothing is written.
        """
        if not files:
            raise InputError("请选择要上传的文件", "empty upload batch")
        if len(files) > self.settings.upload_max_files:
            raise InputError(
                f"一次最多上传 {self.settings.upload_max_files} 个文件（本次 {len(files)} 个）",
                f"batch of {len(files)} files over limit {self.settings.upload_max_files}",
            )
        parsed = [(filename, bytes(data), self._validate(filename, data)) for filename, data in files]
        names: list[str] = []
        with self._locked():
            meta = self._read_meta()
            for filename, data, st in parsed:
                original = str(filename)
                suffix = _suffix(st.source)
                wanted = safe_name(st.source) if st.source == original else None
                upload_id = self._keep_upload(data)
                self.corpus_dir.mkdir(parents=True, exist_ok=True)
                name = wanted
                if name is None or not _write_new(self.corpus_dir / name, data):
                    while True:
                        name = f"upload_{uuid.uuid4().hex[:12]}{suffix}"
                        if _write_new(self.corpus_dir / name, data):
                            break
                meta[name] = {
                    "title": self._title(st),
                    "original_name": original,
                    "upload": upload_id,
                    "sha256": st.sha256,
                    "size": len(data),
                    "added": _now(),
                    "added_by": user,
                }
                self._write_meta(meta)
                append_audit(
                    self.settings,
                    {"action": "add", "user": user, "file": name, "original_name": original, "sha256": st.sha256},
                )
                logger.info("user %r added document %s (%d bytes)", user, name, len(data))
                names.append(name)
        return names

    @staticmethod
    def _title(st) -> str:
        title = (st.meta or {}).get("title")
        if title:
            return str(title)
        for line in st.text.splitlines():
            if line.strip():
                return line.strip().lstrip("#").strip()[:80]
        return st.source

    def replace(self, name: str, filename: str, data: bytes, user: str) -> str:
        """Replace article ``name`` with a new upload of the same type; return ``name``."""
        path = self._existing(name)
        st = self._validate(filename, data)
        if _suffix(st.source) != _suffix(name):
            raise InputError(
                f"替换文件的类型须与原文件相同（{_suffix(name)}）",
                f"replacement type {_suffix(st.source)!r} differs from {name!r}",
            )
        with self._locked():
            meta = self._read_meta()
            upload_id = self._keep_upload(data)
            atomic_write(path, bytes(data))
            old = meta.get(name, {})
            meta[name] = {
                **old,
                "title": self._title(st),
                "original_name": str(filename),
                "upload": upload_id,
                "sha256": st.sha256,
                "size": len(data),
                "added": old.get("added") or _now(),
                "added_by": old.get("added_by") or user,
                "replaced": _now(),
                "replaced_by": user,
            }
            self._write_meta(meta)
            append_audit(
                self.settings,
                {"action": "replace", "user": user, "file": name, "original_name": str(filename), "sha256": st.sha256},
            )
        logger.info("user %r replaced document %s", user, name)
        return name

    def delete(self, name: str, user: str) -> None:
        """Remove article ``name`` from the corpus folder (its original upload stays in uploads/)."""
        path = self._existing(name)
        with self._locked():
            meta = self._read_meta()
            try:
                sha = sha256_bytes(path.read_bytes())
                path.unlink()
            except FileNotFoundError as e:
                raise InputError(f"文档不存在：{name}", f"document vanished: {name!r}") from e
            fsync_dir(path.parent)
            if meta.pop(name, None) is not None:
                self._write_meta(meta)
            append_audit(self.settings, {"action": "delete", "user": user, "file": name, "sha256": sha})
        logger.info("user %r deleted document %s", user, name)
