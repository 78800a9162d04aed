"""Files -> :class:`~rag.schema.SourceText`: decode, extract, refuse what is hostile or broken.

Supported: ``.txt``/``.md`` (UTF-8 with or without BOM, UTF-16 with or without BOM, GB18030),
``.docx`` (python-docx), ``.pdf`` (pypdf, in a child process) and ``.html``/``.htm``
(BeautifulSoup + lxml). A folder may carry ``metadata.json`` mapping file names to
``{"title", "outlet", "date", ...}``.

Every loaded text has zero-width, bidi-override and tag characters removed and newlines
normalised to ``\\n``; nothing else is touched (no NFKC, no punctuation folding: the corpus
mixes ASCII ``,:;?`` with full-width ``。、“”`` on purpose and citations quote it verbatim).

The readers are beside it: ``decoding.py`` (bytes -> text, invisible characters) and ``formats.py``
(.docx, .pdf, HTML); this module picks the reader by suffix, checks size and magic bytes
(``safety.py``), and walks a corpus folder.

What this module does *not* do: split or clean text into paragraphs (``rag.ingest.chunking``),
OCR scanned PDFs, read ``.doc``/``.rtf``/``.epub``, or act on anything an article says.
Text that looks like an instruction ("忽略以上指令……") is kept as inert text.

Example::

    >>> texts, errors = load_corpus(Path("corpus"))
    >>> texts[0].source, texts[0].kind
    ('000_aa051e8584efc7b6.txt', 'txt')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from . import safety
from ..errors import EmptyCorpusError, LoaderError
from ..schema import SourceText
from .decoding import GB18030_MIN_PLAUSIBLE, check_text, decode_bytes, strip_invisible  # noqa: F401  (re-exported)
from .formats import docx_text, html_text, pdf_text

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".txt", ".md", ".docx", ".pdf", ".html", ".htm"})
METADATA_FILE = "metadata.json"  # sidecar in the corpus folder, not an article
DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # per file; checked before the file is read
METADATA_MAX_BYTES = 5 * 1024 * 1024

_KIND_BY_SUFFIX = {".txt": "txt", ".md": "md", ".docx": "docx", ".pdf": "pdf", ".html": "html", ".htm": "html"}
_ALLOWED_ZH = "、".join(sorted(SUPPORTED_SUFFIXES))


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (the raw file bytes, before decoding)."""
    return hashlib.sha256(data).hexdigest()


# -- public loading --------------------------------------------------------------------------
def _kind_for(name: str, source: str) -> tuple[str, str]:
    suffix = PurePosixPath(name).suffix.lower()
    kind = _KIND_BY_SUFFIX.get(suffix)
    if kind is None:
        raise LoaderError(
            source,
            f"不支持的文件类型“{suffix or '（无扩展名）'}”，支持的类型：{_ALLOWED_ZH}",
            f"unsupported file type {suffix or '(none)'!r}; allowed: {', '.join(sorted(SUPPORTED_SUFFIXES))}",
        )
    return kind, suffix


def _too_large(source: str, size: int, max_bytes: int) -> LoaderError:
    return LoaderError(
        source,
        f"文件过大（{size / 1048576:.1f} MB），上限为 {max_bytes / 1048576:.1f} MB",
        f"file too large: {size} bytes > {max_bytes}",
    )


def _parse(data: bytes, source: str, kind: str, suffix: str, meta: dict | None) -> SourceText:
    """Check, extract and wrap one file's bytes (the size was checked by the caller)."""
    meta = dict(meta or {})
    safety.check_magic(data, kind, source, suffix)
    if kind in ("txt", "md"):
        text = decode_bytes(data, source)
    elif kind == "docx":
        text = docx_text(data, source)
    elif kind == "pdf":
        text = pdf_text(data, source)
    else:
        text, title = html_text(data, source)
        if title and not meta.get("title"):
            meta["title"] = title
    if kind in ("docx", "pdf", "html"):
        text = check_text(text, source, kind)
    text = strip_invisible(text)
    if not text.strip():
        raise LoaderError(source, "文档为空，没有可提取的文字", f"empty document ({kind}): no text after extraction")
    return SourceText(source=source, text=text, sha256=sha256_bytes(data), kind=kind, meta=meta)


def _refused(err: LoaderError) -> LoaderError:
    logger.warning("refused file %s", err.log_message)
    return err


def load_file(
    path: Path,
    *,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    meta: dict | None = None,
) -> SourceText:
    """Load one file; ``source`` defaults to the file name.

    Raises :class:`LoaderError` (and logs a warning) for an unsupported type, a file over
    ``max_bytes`` (checked before reading), content that does not match the suffix, hostile
    archives or PDFs, undecodable text or an empty document. Does not follow the file's
    content anywhere: no links, no embedded objects, no remote resources.
    """
    path = Path(path)
    source = source or path.name
    try:
        kind, suffix = _kind_for(path.name, source)
        try:
            st = path.stat()
        except OSError as e:
            raise LoaderError(source, "文件不存在或无法读取", f"cannot stat {path}: {e}") from e
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise LoaderError(source, "不是普通文件，无法读取", f"{path} is not a regular file")
        if st.st_size > max_bytes:
            raise _too_large(source, st.st_size, max_bytes)
        try:
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)  # the file may have grown since stat()
        except OSError as e:
            raise LoaderError(source, "文件无法读取", f"cannot read {path}: {e}") from e
        if len(data) > max_bytes:
            raise _too_large(source, len(data), max_bytes)
        return _parse(data, source, kind, suffix, meta)
    except LoaderError as e:
        _refused(e)
        raise


def load_bytes(
    data: bytes,
    filename: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    meta: dict | None = None,
) -> SourceText:
    """Load an uploaded file's bytes; the suffix of ``filename`` gives the type.

    ``source`` is the base name of ``filename`` (any client-side folder is dropped). Raises
    :class:`LoaderError` like :func:`load_file`. Does not write anything to disk.
    """
    source = PurePosixPath(str(filename).replace("\\", "/")).name
    try:
        if source in ("", ".", ".."):
            raise LoaderError(str(filename) or "(unnamed)", "文件名无效", f"invalid upload file name {filename!r}")
        kind, suffix = _kind_for(source, source)
        if len(data) > max_bytes:
            raise _too_large(source, len(data), max_bytes)
        return _parse(bytes(data), source, kind, suffix, meta)
    except LoaderError as e:
        _refused(e)
        raise


def read_metadata(corpus_dir: Path) -> dict[str, dict]:
    """Read ``metadata.json`` (``{"file name": {"title": ..., "outlet": ..., "date": ...}}``).

    A missing file gives ``{}``; entries that are not objects are skipped with a warning.
    Raises :class:`LoaderError` when the file is too large, not clean text or not a JSON
    object. Does not check that the named files exist.
    """
    path = Path(corpus_dir) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > METADATA_MAX_BYTES:
            raise LoaderError(
                METADATA_FILE, "metadata.json 过大", f"metadata file larger than {METADATA_MAX_BYTES} bytes"
            )
        raw = decode_bytes(path.read_bytes(), METADATA_FILE)
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise LoaderError(METADATA_FILE, f"metadata.json 不是有效的 JSON：{e}", f"invalid JSON: {e}") from e
        if not isinstance(data, dict):
            raise LoaderError(METADATA_FILE, "metadata.json 顶层必须是对象（文件名 -> 信息）", "top level is not an object")
    except OSError as e:
        raise _refused(LoaderError(METADATA_FILE, "metadata.json 无法读取", f"cannot read: {e}")) from e
    except LoaderError as e:
        _refused(e)
        raise
    result: dict[str, dict] = {}
    for name, info in data.items():
        if isinstance(info, dict):
            result[str(name)] = dict(info)
        else:
            logger.warning("%s: entry %r is not an object; ignored", METADATA_FILE, name)
    return result


def _corpus_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix name, path) of every non-hidden file below ``root``, sorted by name."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow directory symlinks
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def load_corpus(
    corpus_dir: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    reuse: Callable[[str, Path, dict | None], SourceText | None] | None = None,
) -> tuple[list[SourceText], list[LoaderError]]:
    """Load every supported article below ``corpus_dir``, sorted by relative file name.

    Returns the texts and the errors of refused files (each logged as a warning); one bad
    file never stops the rest. Skips ``metadata.json``, hidden files and folders, and files
    with unsupported suffixes (logged at info). A symlink pointing outside the folder is
    refused. Raises :class:`EmptyCorpusError` when the folder is missing or yields no text.
    Does not deduplicate identical articles.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise EmptyCorpusError(
            f"语料目录 {corpus_dir} 不存在或不是文件夹，请检查路径",
            f"corpus folder {corpus_dir} does not exist or is not a directory",
        )
    root = corpus_dir.resolve()
    errors: list[LoaderError] = []
    try:
        metadata = read_metadata(corpus_dir)
    except LoaderError as e:
        errors.append(e)
        metadata = {}
    texts: list[SourceText] = []
    for name, path in _corpus_files(corpus_dir):
        if name == METADATA_FILE:
            continue
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            logger.info("skipping %s: unsupported file type", name)
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            errors.append(
                _refused(LoaderError(name, "符号链接指向语料目录之外，已拒绝", "symlink points outside the corpus folder"))
            )
            continue
        if reuse is not None:  # an incremental build hands back the text it already has
            kept = reuse(name, path, metadata.get(name))
            if kept is not None:
                texts.append(kept)
                continue
        try:
            texts.append(load_file(path, source=name, max_bytes=max_bytes, meta=metadata.get(name)))
        except LoaderError as e:
            errors.append(e)
    if not texts:
        extra = f"（另有 {len(errors)} 个文件被拒绝，详见日志）" if errors else ""
        raise EmptyCorpusError(
            f"语料目录 {corpus_dir} 中没有可读取的文章{extra}，支持的类型：{_ALLOWED_ZH}",
            f"corpus folder {corpus_dir} holds no readable article ({len(errors)} refused)",
        )
    logger.info("loaded %d articles from %s (%d refused)", len(texts), corpus_dir, len(errors))
    return texts, errors
