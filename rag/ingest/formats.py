"""The text of a .docx, a .pdf and an HTML page (per-format readers; plain text is ``decoding.py``'s).

``docx_text``: paragraphs and table cells in document order (python-docx, zip checked first);
``pdf_text``: the pages' text layer (pypdf in a child process, ``safety.extract_pdf_pages``);
``html_text``: text of block elements and the page title (BeautifulSoup + lxml, no recursion).

Not done here: headers, footers, footnotes, text boxes; OCR; CSS rendering.
"""

from __future__ import annotations

import io
import re

from . import safety
from ..errors import LoaderError
from .decoding import decode_html, strip_invisible

def docx_text(data: bytes, source: str) -> str:
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


def pdf_text(data: bytes, source: str) -> str:
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


def html_text(data: bytes, source: str) -> tuple[str, str]:
    """Text of block elements separated by blank lines, and the page title ("" if none).

    Does not render CSS (hidden elements are kept) and does not keep ``<pre>`` spacing.
    """
    from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

    markup = decode_html(data, source)
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
