"""Files -> :class:`~rag.schema.SourceText`: decode, extract, refuse what is hostile or broken.

Supported: ``.txt``/``.md`` (UTF-8 with or without BOM, UTF-16 with or without BOM, GB18030),
``.docx`` (python-docx), ``.pdf`` (pypdf, in a child process) and ``.html``/``.htm``
(BeautifulSoup + lxml). A folder may carry ``metadata.json`` mapping file names to
``{"title", "outlet", "date", ...}``.

Every loaded text has zero-width, bidi-override and tag characters removed and newlines
normalised to ``\\n``; nothing else is touched (no NFKC, no punctuation folding: the corpus
mixes ASCII ``,:;?`` with full-width ``。、“”`` on purpose and citations quote it verbatim).

What this module does *not* do: split or clean text into paragraphs (``rag.ingest.chunking``),
OCR scanned PDFs, read ``.doc``/``.rtf``/``.epub``, or act on anything an article says.
Text that looks like an instruction ("忽略以上指令……") is kept as inert text.

Example::

    >>> texts, errors = load_corpus(Path("corpus"))
    >>> texts[0].source, texts[0].kind
    ('000_aa051e8584efc7b6.txt', 'txt')
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from . import safety
from ..errors import EmptyCorpusError, LoaderError
from ..schema import SourceText

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".txt", ".md", ".docx", ".pdf", ".html", ".htm"})
METADATA_FILE = "metadata.json"  # sidecar in the corpus folder, not an article
DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # per file; checked before the file is read
METADATA_MAX_BYTES = 5 * 1024 * 1024
GB18030_MIN_PLAUSIBLE = 0.9  # share of "usual" characters a GB18030 decode must reach

_KIND_BY_SUFFIX = {".txt": "txt", ".md": "md", ".docx": "docx", ".pdf": "pdf", ".html": "html", ".htm": "html"}
_ALLOWED_ZH = "、".join(sorted(SUPPORTED_SUFFIXES))

# -- invisible characters --------------------------------------------------------------------
_INVISIBLE_RANGES = (
    (0x200B, 0x200F),  # zero-width space/non-joiner/joiner, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x2069),  # bidi isolates
    (0xFEFF, 0xFEFF),  # BOM / zero-width no-break space inside text
    (0xE0000, 0xE007F),  # tag characters (can smuggle hidden ASCII)
)
_INVISIBLE_TABLE = {cp: None for lo, hi in _INVISIBLE_RANGES for cp in range(lo, hi + 1)}

# -- decoding --------------------------------------------------------------------------------
_BOMS = (  # longest first: the UTF-32 LE BOM begins with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# C0 controls other than \t \n \r (and \f, which pdftotext puts between pages), DEL, C1
# controls and lone surrogates: none belongs in an article; they mean binary or mojibake.
_BAD_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NEWLINES = re.compile(r"\r\n?")
# Ranges a real Chinese text is made of, beyond ASCII: Latin-1 punctuation, Greek, Cyrillic
# (both in GB2312), general punctuation, symbols (①, Ⅰ, ※, ★, box drawing), CJK punctuation,
# kana, bopomofo, enclosed CJK, CJK ideographs (Ext A, URO, compatibility) and full-width forms.
_USUAL_RANGES = (
    (0x00A0, 0x00FF),
    (0x0370, 0x04FF),
    (0x2000, 0x206F),
    (0x2100, 0x27BF),
    (0x3000, 0x33FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFE30, 0xFE4F),
    (0xFF00, 0xFFEF),
)
_UNUSUAL = re.compile(
    "[^\t\n\r\f\x20-\x7e" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _USUAL_RANGES) + "]"
)
_HTML_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)
# Declared labels that are subsets of GB18030: decode with the superset.
_GB_ALIASES = {"gb2312", "gbk", "cp936", "gb_2312-80", "x-gbk", "euc-cn", "hz-gb-2312"}


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (the raw file bytes, before decoding)."""
    return hashlib.sha256(data).hexdigest()


def strip_invisible(text: str) -> str:
    """Remove zero-width, bidi-control, BOM and tag characters; keep every other character.

    >>> strip_invisible("党\u200b建\U000e0041,：")
    '党建,：'

    Does not normalise punctuation, width or whitespace (no NFKC).
    """
    return text.translate(_INVISIBLE_TABLE)


def decode_bytes(data: bytes, source: str) -> str:
    """Decode text bytes: BOM sniffing, UTF-16 without BOM (NUL bytes), strict UTF-8, strict GB18030.

    Newlines are normalised to ``\\n``. Raises :class:`LoaderError` naming ``source`` when no
    encoding decodes cleanly, when a GB18030 decode does not look like Chinese text, or when
    the result holds U+FFFD (a file already mangled) or control characters.

    Never decodes with ``errors="ignore"``/``"replace"``; does not remove invisible
    characters (see :func:`strip_invisible`) and does not guess other legacy encodings
    (Big5, Shift-JIS, Latin-1).
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as e:
                raise LoaderError(
                    source,
                    f"文件以 {codec.upper().replace('-SIG', '')} 字节序标记开头，但内容无法按该编码解码，请另存为 UTF-8 后重新上传",
                    f"has a {codec} BOM but does not decode: {e}",
                ) from e
            return _check_text(text, source, codec)
    if b"\x00" in data and len(data) % 2 == 0:  # UTF-8 and GB18030 text never holds NUL bytes
        found = safety.utf16_without_bom(data)
        if found is not None:
            return _check_text(found[1], source, "utf-16")
    try:
        return _check_text(data.decode("utf-8"), source, "utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as e:
        raise _undecodable(source, f"not UTF-8 and not GB18030 ({e})") from e
    # GB18030 maps almost any byte string to something; accept it only if it reads as text.
    share = _plausible_share(text)
    if share < GB18030_MIN_PLAUSIBLE:
        raise _undecodable(source, f"GB18030 decode is implausible ({share:.2f} usual characters)")
    return _check_text(text, source, "gb18030")


def _undecodable(source: str, why: str) -> LoaderError:
    return LoaderError(
        source,
        "文件编码无法识别（不是 UTF-8、UTF-16 或 GB18030 文本），请另存为 UTF-8 后重新上传",
        f"undecodable text: {why}",
    )


def _check_text(text: str, source: str, codec: str) -> str:
    """Refuse replacement and control characters; normalise newlines."""
    if "\ufffd" in text:
        raise LoaderError(
            source,
            "文件编码无法识别或包含乱码（替换字符 U+FFFD），请另存为 UTF-8 后重新上传",
            f"text ({codec}) contains U+FFFD replacement characters; the file is already mangled",
        )
    bad = _BAD_CONTROLS.search(text)
    if bad:
        raise LoaderError(
            source,
            f"文件包含控制字符（U+{ord(bad.group()):04X}），不像是正常的文本，可能是二进制文件或编码错误",
            f"text ({codec}) contains control character U+{ord(bad.group()):04X} at {bad.start()}",
        )
    return _NEWLINES.sub("\n", text)


def _plausible_share(text: str) -> float:
    """Share of characters that ordinary Chinese text is made of (1.0 for "")."""
    if not text:
        return 1.0
    return 1.0 - len(_UNUSUAL.findall(text)) / len(text)


# -- per-kind extraction ---------------------------------------------------------------------
def _docx_text(data: bytes, source: str) -> str:
    """Paragraphs and table-cell paragraphs in document order, separated by blank lines.

    Does not read headers, footers, footnotes, comments or text boxes.
    """
    safety.check_docx_zip(data, source)
    from docx import Document
    from docx.text.paragraph import Paragraph

    try:
        document = Document(io.BytesIO(data))
        paragraphs: list[str] = []
        seen: set = set()  # merged cells repeat in row.cells; keep each <w:tc> once

        def walk(container) -> None:
            for item in container.iter_inner_content():
                if isinstance(item, Paragraph):
                    if item.text.strip():
                        paragraphs.append(item.text)
                    continue
                for row in item.rows:
                    for cell in row.cells:
                        if cell._tc in seen:
                            continue
                        seen.add(cell._tc)
                        walk(cell)

        walk(document)
    except LoaderError:
        raise
    except Exception as e:  # python-docx raises KeyError, ValueError, lxml errors ... on odd files
        raise LoaderError(
            source, "无法解析 Word 文档，文件可能已损坏，请用 Word 另存为 .docx 后重试", f"python-docx failed: {type(e).__name__}: {e}"
        ) from e
    return "\n\n".join(paragraphs)


def _pdf_text(data: bytes, source: str) -> str:
    pages = safety.extract_pdf_pages(data, source)
    text = "\n\n".join(p.strip("\n") for p in pages if p.strip())
    if not strip_invisible(text).strip():
        raise LoaderError(
            source,
            "PDF 中没有可提取的文字（可能是扫描件或图片），请提供带文字层的 PDF，或先做文字识别（OCR）",
            f"pdf has no extractable text ({len(pages)} pages; scanned?)",
        )
    return text


_HTML_DROP = ("script", "style", "noscript", "template", "iframe", "head", "svg", "object", "embed", "canvas")
_HTML_BLOCKS = frozenset(
    "p div h1 h2 h3 h4 h5 h6 li br tr section article blockquote header footer main nav aside "
    "ul ol dl dt dd table thead tbody tfoot caption figure figcaption pre hr address form".split()
)
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")  # HTML collapses ASCII whitespace only, not U+3000


def _decode_html(data: bytes, source: str) -> str:
    """Decode HTML by BOM, then a declared ``<meta charset>``, then like plain text."""
    if not data.startswith(tuple(bom for bom, _ in _BOMS)):
        m = _HTML_CHARSET.search(data[:4096])
        if m:
            label = m.group(1).decode("ascii").lower()
            codec = "gb18030" if label in _GB_ALIASES else label
            try:
                codecs.lookup(codec)
                return _check_text(data.decode(codec), source, codec)
            except (LookupError, UnicodeDecodeError):
                # pages often declare the wrong charset; fall back to sniffing
                logger.info("%s: declared charset %r does not decode; sniffing instead", source, label)
    return decode_bytes(data, source)


def _html_text(data: bytes, source: str) -> tuple[str, str]:
    """Text of block elements separated by blank lines, and the page title ("" if none).

    Does not render CSS (hidden elements are kept) and does not keep ``<pre>`` spacing.
    """
    from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

    markup = _decode_html(data, source)
    try:
        soup = BeautifulSoup(markup, "lxml")
    except Exception as e:
        raise LoaderError(source, "无法解析 HTML 文件", f"html parse failed: {type(e).__name__}: {e}") from e
    title = ""
    for tag_name in ("title", "h1"):
        tag = soup.find(tag_name)
        if tag is not None:
            title = _HTML_SPACE.sub(" ", tag.get_text()).strip()
            if title:
                break
    for tag in soup.find_all(list(_HTML_DROP)):
        tag.decompose()

    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        line = _HTML_SPACE.sub(" ", "".join(current)).strip(" ")  # keep U+3000 indents
        current.clear()
        if line:
            blocks.append(line)

    # explicit stack, not recursion: hostile pages nest thousands of levels deep
    stack: list[tuple[object, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            flush()
            continue
        if isinstance(node, (Comment, Declaration, Doctype, ProcessingInstruction)):
            continue
        if isinstance(node, NavigableString):
            current.append(str(node))
            continue
        if not isinstance(node, Tag):
            continue
        block = node.name in _HTML_BLOCKS
        if block:
            flush()
            stack.append((node, True))
        elif node.name in ("td", "th"):
            current.append(" ")
        stack.extend((child, False) for child in reversed(node.contents))
    flush()
    return "\n\n".join(blocks), title


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
        text = _docx_text(data, source)
    elif kind == "pdf":
        text = _pdf_text(data, source)
    else:
        text, title = _html_text(data, source)
        if title and not meta.get("title"):
            meta["title"] = title
    if kind in ("docx", "pdf", "html"):
        text = _check_text(text, source, kind)
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
