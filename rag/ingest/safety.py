"""Checks that keep hostile or broken files away from the parsers.

Every check raises :class:`~rag.errors.LoaderError` (Chinese for people, English for logs)
and returns nothing useful otherwise; ``rag.ingest.loaders`` calls them before python-docx,
pypdf or BeautifulSoup ever see a byte.

The limits are module constants so that a deployment (or a test) can tighten them:
``rag.ingest.safety.PDF_TIMEOUT_SECONDS = 5``. Functions read them at call time.

What this module does *not* do: it does not sanitise content. Text that reads like an
instruction ("忽略以上指令……") is data and is passed through untouched; nothing downstream
of the loader executes or obeys article text. It also does not scan for malware, macros
(a .docx cannot hold VBA; .docm is not accepted) or embedded objects, which are never opened.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import zipfile
from io import BytesIO

from defusedxml.ElementTree import fromstring as defused_fromstring

from ..errors import LoaderError

logger = logging.getLogger(__name__)

# -- docx (zip) limits ---------------------------------------------------------------------
DOCX_MAX_ENTRIES = 1000  # a Word file has a few dozen parts
DOCX_MAX_UNCOMPRESSED = 100 * 1024 * 1024  # sum of the parts' sizes, declared and actually read
DOCX_MAX_RATIO = 100  # uncompressed / compressed, checked for parts above DOCX_RATIO_MIN_SIZE
DOCX_RATIO_MIN_SIZE = 1024 * 1024  # small parts may compress very well and are harmless
DOCX_MAIN_PART = "word/document.xml"
_CONTENT_TYPES = "[Content_Types].xml"
_CONTENT_TYPES_MAX = 1024 * 1024  # a real one is a few KiB
_ZIP_READ_CHUNK = 64 * 1024
# Word writes deflate or stored; bzip2/lzma decompress without an output bound in zipfile,
# so one small read could expand to gigabytes before any check sees it.
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})

# -- pdf limits (the parse runs in a child process) ----------------------------------------
PDF_TIMEOUT_SECONDS = 30.0  # wall time for parsing and text extraction, then the child is killed
PDF_MEMORY_BYTES = 1024 * 1024 * 1024  # RLIMIT_AS of the child (POSIX only)
PDF_MAX_PAGES = 2000
PDF_MAX_TEXT_CHARS = 5_000_000  # extracted characters, all pages together
PDF_HEADER_WINDOW = 1024  # "%PDF-" may follow this many bytes of leading whitespace

# Known file signatures, to tell a mislabelled file from text. Order matters only for display.
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"PK\x03\x04", "zip", "ZIP 压缩包或 Office 文档"),
    (b"PK\x05\x06", "zip", "ZIP 压缩包或 Office 文档"),
    (b"PK\x07\x08", "zip", "ZIP 压缩包或 Office 文档"),
    (b"\x89PNG\r\n\x1a\n", "png", "PNG 图片"),
    (b"\xff\xd8\xff", "jpeg", "JPEG 图片"),
    (b"GIF87a", "gif", "GIF 图片"),
    (b"GIF89a", "gif", "GIF 图片"),
    (b"\x7fELF", "elf", "ELF 可执行程序"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole2", "旧版 Office 文档（.doc/.xls/.ppt）"),
    (b"\x1f\x8b", "gzip", "gzip 压缩包"),
    (b"7z\xbc\xaf\x27\x1c", "7z", "7z 压缩包"),
    (b"Rar!\x1a\x07", "rar", "RAR 压缩包"),
)
_LABEL_ZH = {name: label for _, name, label in _MAGIC} | {"pdf": "PDF 文档"}

# BOMs that legitimately put NUL bytes into a text file.
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")


_TEXT_CHAR = re.compile("[\t\n\r\f\x20-\x7e\u00a0-\u00ff\u2000-\u206f\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """(codec, text) when ``data`` is plainly UTF-16 text without a BOM, else None.

    Both byte orders are decoded strictly; the one where at least 90 % of the characters are
    ASCII, CJK, CJK or general punctuation and fullwidth forms wins (the wrong order gives rare
    ideographs, private-use or unassigned characters). Not tried on odd lengths.
    """
    if len(data) % 2 or len(data) < 4:
        return None
    best: tuple[float, str, str] | None = None
    for codec in ("utf-16-le", "utf-16-be"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        share = len(_TEXT_CHAR.findall(text)) / len(text)
        if share >= 0.9 and (best is None or share > best[0]):
            best = (share, codec, text)
    return (best[1], best[2]) if best else None


def is_pdf(data: bytes) -> bool:
    """Whether ``data`` starts with ``%PDF-``, after at most 1 KiB of ASCII whitespace."""
    head = data[: PDF_HEADER_WINDOW + 5]
    at = head.find(b"%PDF-")
    return at >= 0 and not head[:at].strip()


def sniff(data: bytes) -> str | None:
    """Name the binary format ``data`` starts with ("zip", "pdf", "png", ...), or None.

    Only a handful of signatures are known; None does not mean the bytes are text.
    """
    if is_pdf(data):
        return "pdf"
    for magic, name, _ in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def _mismatch(source: str, suffix: str, found: str | None) -> LoaderError:
    if found is None:
        return LoaderError(
            source,
            f"文件内容与扩展名 {suffix} 不符，文件可能已损坏或被改名",
            f"content does not match the {suffix} extension",
        )
    hint = "，请另存为 .docx 后重新上传" if found == "ole2" and suffix == ".docx" else ""
    return LoaderError(
        source,
        f"文件内容与扩展名 {suffix} 不符：内容是{_LABEL_ZH[found]}{hint}",
        f"content does not match the {suffix} extension: found {found} data",
    )


def check_magic(data: bytes, kind: str, source: str, suffix: str = "") -> None:
    """Refuse ``data`` whose leading bytes contradict ``kind`` ("txt", "md", "html", "docx", "pdf").

    Text kinds must not carry a known binary signature or NUL bytes (UTF-16/32 text with a
    BOM, and plain UTF-16 text without one, is let through; its decoding is checked later). This does not prove a file is
    well-formed; the parsers and :func:`check_docx_zip` do the rest.
    """
    suffix = suffix or f".{kind}"
    found = sniff(data)
    if kind == "docx":
        if not data.startswith(b"PK\x03\x04"):
            raise _mismatch(source, suffix, found)
    elif kind == "pdf":
        if found != "pdf":
            raise _mismatch(source, suffix, found)
    else:
        if found is not None:
            raise _mismatch(source, suffix, found)
        if b"\x00" in data and not data.startswith(_WIDE_BOMS) and utf16_without_bom(data) is None:
            raise LoaderError(
                source,
                f"文件包含二进制内容（NUL 字节），不是 {suffix} 文本文件",
                f"binary content (NUL bytes) in a {suffix} text file",
            )


def check_docx_zip(data: bytes, source: str) -> None:
    """Refuse a .docx that is not a sane zip: bombs, XXE/billion-laughs XML, odd compression.

    Checks, before python-docx opens the file: at most ``DOCX_MAX_ENTRIES`` entries, no
    encrypted entries, only stored/deflate compression, declared sizes summing to at most
    ``DOCX_MAX_UNCOMPRESSED``, no part above 1 MiB compressed more than ``DOCX_MAX_RATIO``
    times, and ``word/document.xml`` and ``[Content_Types].xml`` present. Then every part
    python-docx may parse as XML (by name or declared content type) is streamed in 64 KiB
    pieces (declared sizes can lie), counting real bytes against the same limit, and
    refused if it declares a DOCTYPE or ENTITY or is not UTF-8 XML.

    Does not validate the OOXML schema; python-docx does what it does with the rest.
    """
    try:
        zf = zipfile.ZipFile(BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as e:
        raise LoaderError(source, "Word 文件已损坏（不是有效的 ZIP 结构）", f"broken docx zip: {e}") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > DOCX_MAX_ENTRIES:
            raise _bomb(source, f"{len(infos)} zip entries > {DOCX_MAX_ENTRIES}")
        declared = 0
        for info in infos:
            declared += info.file_size
            if info.flag_bits & 0x1:
                raise LoaderError(source, "Word 文件已加密，请解除密码后重新上传", f"encrypted zip entry {info.filename!r}")
            if info.compress_type not in _ZIP_METHODS:
                raise LoaderError(
                    source,
                    "Word 文件使用了不支持的压缩方式，请用 Word 重新另存为 .docx",
                    f"zip entry {info.filename!r} uses compression method {info.compress_type}",
                )
            if info.file_size > DOCX_RATIO_MIN_SIZE and info.file_size > DOCX_MAX_RATIO * max(info.compress_size, 1):
                raise _bomb(
                    source,
                    f"entry {info.filename!r} ratio {info.file_size}/{info.compress_size} > {DOCX_MAX_RATIO}",
                )
        if declared > DOCX_MAX_UNCOMPRESSED:
            raise _bomb(source, f"declared uncompressed size {declared} > {DOCX_MAX_UNCOMPRESSED}")
        names = {info.filename for info in infos}
        if DOCX_MAIN_PART not in names:
            raise LoaderError(
                source,
                "不是有效的 Word（.docx）文件：缺少正文部分 word/document.xml",
                f"zip has no {DOCX_MAIN_PART}",
            )
        budget = DOCX_MAX_UNCOMPRESSED
        try:
            types = _content_types(zf, names, source)
            for info in infos:
                scan = _scan_mode(info.filename, types)
                if scan is not None:
                    budget -= _scan_xml_part(zf, info, source, budget, require_xml=scan == "xml")
        except LoaderError:
            raise
        except Exception as e:  # zlib.error, BadZipFile (bad CRC), EOFError: a damaged stream
            raise LoaderError(
                source, "Word 文件已损坏，无法解压", f"broken docx zip entry: {type(e).__name__}: {e}"
            ) from e


def _bomb(source: str, why: str) -> LoaderError:
    return LoaderError(
        source,
        "Word 文件解压后过大或压缩比异常（疑似 zip 炸弹），已拒绝",
        f"docx refused as a possible zip bomb: {why}",
    )


def _content_types(zf: zipfile.ZipFile, names: set[str], source: str) -> dict[str, str]:
    """Map lower-cased part names and ``.ext`` keys to content types from [Content_Types].xml."""
    if _CONTENT_TYPES not in names:
        raise LoaderError(
            source, "不是有效的 Word（.docx）文件：缺少 [Content_Types].xml", f"zip has no {_CONTENT_TYPES}"
        )
    info = zf.getinfo(_CONTENT_TYPES)
    if info.file_size > _CONTENT_TYPES_MAX:
        raise _bomb(source, f"{_CONTENT_TYPES} declares {info.file_size} bytes")
    _scan_xml_part(zf, info, source, _CONTENT_TYPES_MAX)
    try:
        root = defused_fromstring(zf.read(info))
    except Exception as e:  # defusedxml refuses DTDs/entities; ParseError for broken XML
        raise LoaderError(
            source, "Word 文件的 [Content_Types].xml 已损坏", f"bad {_CONTENT_TYPES}: {type(e).__name__}: {e}"
        ) from e
    types: dict[str, str] = {}
    for el in root:
        tag = el.tag.rsplit("}", 1)[-1]
        ct = el.get("ContentType", "")
        if tag == "Default" and el.get("Extension"):
            types["." + el.get("Extension", "").lower()] = ct
        elif tag == "Override" and el.get("PartName"):
            types[el.get("PartName", "").lstrip("/").lower()] = ct
    return types


def _scan_mode(name: str, types: dict[str, str]) -> str | None:
    """How to scan a part: "xml" (must be UTF-8 XML), "blob" (unknown type), or None (skip).

    python-docx parses a part as XML according to its content type, so a part is skipped
    only when its declared type is known and not XML (images, fonts, embedded objects).
    SVG images are skipped too: python-docx never parses them and real SVGs often carry a
    DOCTYPE. Defence in depth: python-docx's own parser does not resolve entities either.
    """
    lower = name.lower()
    if lower.endswith("/") or lower == _CONTENT_TYPES.lower():
        return None
    base = lower.rsplit("/", 1)[-1]
    ext = "." + base.rsplit(".", 1)[-1] if "." in base else ""
    ct = types.get(lower) or (types.get(ext, "") if ext else "")
    if lower.endswith((".xml", ".rels")) or (ct.endswith("xml") and ct != "image/svg+xml"):
        return "xml"
    return None if ct else "blob"


def _scan_xml_part(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, budget: int, *, require_xml: bool = True
) -> int:
    """Stream one part; refuse DTDs, entities, non-UTF-8 XML and overruns. Returns bytes read."""
    total = 0
    tail = b""
    first = True
    with zf.open(info) as fh:
        while True:
            piece = fh.read(_ZIP_READ_CHUNK)
            if not piece:
                break
            total += len(piece)
            if total > info.file_size or total > budget:
                raise _bomb(source, f"entry {info.filename!r} expands past its declared size or the limit")
            if first:
                first = False
                start = piece.lstrip(b"\xef\xbb\xbf").lstrip()
                # UTF-16/32 or EBCDIC XML would hide "<!DOCTYPE" from a byte scan; Word writes UTF-8
                if require_xml and start[:1] not in (b"<", b""):
                    raise LoaderError(
                        source,
                        "Word 文件中的 XML 部分不是 UTF-8 编码，已拒绝",
                        f"XML part {info.filename!r} is not UTF-8 XML",
                    )
            window = (tail + piece).upper()
            if b"<!DOCTYPE" in window or b"<!ENTITY" in window:
                raise LoaderError(
                    source,
                    "Word 文件包含 DOCTYPE/ENTITY 声明（可能是 XXE 或“十亿笑声”攻击），已拒绝",
                    f"XML part {info.filename!r} declares a DOCTYPE or ENTITY",
                )
            tail = piece[-16:]
    return total


# -- pdf ------------------------------------------------------------------------------------
# Runs in a fresh interpreter (`python -c`), so a loop, a recursion blow-up or a memory
# explosion inside pypdf costs a killed child, not the server. Only pypdf is imported
# there; the current directory is dropped from sys.path so a stray pypdf.py cannot shadow it.
_PDF_WORKER = r"""
import io, json, sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]

def run():
    mem, max_pages, max_chars = (int(a) for a in sys.argv[1:4])
    if mem > 0:
        try:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        except (ImportError, ValueError, OSError):
            pass
    try:
        data = sys.stdin.buffer.read()
        from pypdf import PdfReader
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                return {"error": "encrypted"}
        n = len(reader.pages)
        if n > max_pages:
            return {"error": "pages", "detail": str(n)}
        pages, total = [], 0
        for page in reader.pages:
            text = page.extract_text() or ""
            total += len(text)
            if total > max_chars:
                return {"error": "chars", "detail": str(total)}
            pages.append(text)
        return {"pages": pages}
    except MemoryError:
        return {"error": "memory"}
    except BaseException as e:
        return {"error": "parse", "detail": (type(e).__name__ + ": " + str(e))[:300]}

result = run()
sys.stdout.write(json.dumps(result))
sys.stdout.flush()
"""


def extract_pdf_pages(
    data: bytes,
    source: str,
    *,
    timeout: float | None = None,
    memory_bytes: int | None = None,
    max_pages: int | None = None,
) -> list[str]:
    """Extract the text of each page with pypdf in a child process under time/memory limits.

    Args:
        timeout: wall seconds before the child is killed (default ``PDF_TIMEOUT_SECONDS``).
        memory_bytes: address-space limit of the child (default ``PDF_MEMORY_BYTES``; 0 = none).
        max_pages: refuse documents with more pages (default ``PDF_MAX_PAGES``).

    Does not OCR: a scanned page yields "" and the caller decides what an empty PDF means.
    The memory limit needs POSIX ``resource``; elsewhere only the timeout applies.
    """
    timeout = PDF_TIMEOUT_SECONDS if timeout is None else timeout
    memory_bytes = PDF_MEMORY_BYTES if memory_bytes is None else memory_bytes
    max_pages = PDF_MAX_PAGES if max_pages is None else max_pages
    cmd = [sys.executable, "-c", _PDF_WORKER, str(int(memory_bytes)), str(int(max_pages)), str(PDF_MAX_TEXT_CHARS)]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise LoaderError(source, "无法启动 PDF 解析进程", f"cannot start the pdf worker: {e}") from e
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise LoaderError(
            source,
            f"PDF 解析超时（超过 {timeout:g} 秒），文件可能已损坏或结构异常，已拒绝",
            f"pdf parse timed out after {timeout:g} s; worker killed",
        ) from None
    if err:
        logger.debug("pdf worker stderr for %s: %s", source, err[-2000:].decode("utf-8", "replace"))
    try:
        result = json.loads(out) if out else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise LoaderError(
            source,
            "PDF 解析进程异常退出（可能超出内存限制或文件已损坏），已拒绝",
            f"pdf worker crashed (exit code {proc.returncode})",
        )
    error = result.get("error")
    if error is None:
        pages = result.get("pages")
        if isinstance(pages, list) and all(isinstance(p, str) for p in pages):
            return pages
        error = "parse"
    detail = str(result.get("detail", ""))
    messages = {
        "encrypted": ("PDF 文件已加密，请解除密码后重新上传", "pdf is encrypted"),
        "pages": (f"PDF 页数过多（{detail} 页，上限 {max_pages} 页）", f"pdf has {detail} pages > {max_pages}"),
        "chars": (
            f"PDF 提取出的文字过多（上限 {PDF_MAX_TEXT_CHARS} 字）",
            f"pdf text exceeds {PDF_MAX_TEXT_CHARS} characters",
        ),
        "memory": ("PDF 解析超出内存限制，已拒绝", f"pdf parse exceeded the memory limit of {memory_bytes} bytes"),
    }
    zh, en = messages.get(error, ("PDF 文件已损坏或无法解析", f"pdf parse failed: {detail}"))
    raise LoaderError(source, zh, en)
