"""Bytes -> text, and the invisible characters taken out of it.

``decode_bytes``: a BOM (UTF-8, UTF-16, UTF-32), UTF-16 without a BOM (NUL bytes), strict UTF-8,
then strict GB18030 if the result reads as Chinese text; ``decode_html`` first tries a declared
``<meta charset>``. ``check_text`` refuses U+FFFD and control characters and normalises newlines;
``strip_invisible`` removes zero-width, bidi-control, BOM and tag characters.

Not done here: never ``errors="ignore"``/``"replace"``, no guessing of other legacy encodings
(Big5, Shift-JIS, Latin-1), no NFKC or punctuation folding.
"""

from __future__ import annotations

import codecs
import logging
import re

from . import safety
from ..errors import LoaderError

logger = logging.getLogger("rag.ingest.loaders")  # the loaders' one log

GB18030_MIN_PLAUSIBLE = 0.9  # share of "usual" characters a GB18030 decode must reach

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
            return check_text(text, source, codec)
    if b"\x00" in data and len(data) % 2 == 0:  # UTF-8 and GB18030 text never holds NUL bytes
        found = safety.utf16_without_bom(data)
        if found is not None:
            return check_text(found[1], source, "utf-16")
    try:
        return check_text(data.decode("utf-8"), source, "utf-8")
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
    return check_text(text, source, "gb18030")


def _undecodable(source: str, why: str) -> LoaderError:
    return LoaderError(
        source,
        "文件编码无法识别（不是 UTF-8、UTF-16 或 GB18030 文本），请另存为 UTF-8 后重新上传",
        f"undecodable text: {why}",
    )


def check_text(text: str, source: str, codec: str) -> str:
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


def decode_html(data: bytes, source: str) -> str:
    """Decode HTML by BOM, then a declared ``<meta charset>``, then like plain text."""
    if not data.startswith(tuple(bom for bom, _ in _BOMS)):
        m = _HTML_CHARSET.search(data[:4096])
        if m:
            label = m.group(1).decode("ascii").lower()
            codec = "gb18030" if label in _GB_ALIASES else label
            try:
                codecs.lookup(codec)
                return check_text(data.decode(codec), source, codec)
            except (LookupError, UnicodeDecodeError):
                # pages often declare the wrong charset; fall back to sniffing
                logger.info("%s: declared charset %r does not decode; sniffing instead", source, label)
    return decode_bytes(data, source)
