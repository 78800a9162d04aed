"""Blocks -> sentences -> chunks: sentence-aware for Chinese, with sentence overlap and stable ids.

A chunk holds whole sentences of one section (one heading path), packed up to
``settings.chunk_size`` characters; the next chunk repeats the last sentence(s) of the previous one
(``chunk_overlap_sentences``). A sentence longer than the chunk size becomes a chunk of its own:
sentences are never cut. Interview questions are not chunk text: they travel as ``context`` of the
answer's chunks (embedded and keyword-indexed with them, never quoted as an answer).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..config import Settings
from ..schema import Block, Chunk, SourceText
from .structure import CLOSERS, detect_title, parse_blocks

# v3: shorter embed text (title without subtitle, last two headings)
# v4: same chunks; forces one rebuild of indexes whose incremental builds reused an older chunker's vectors
CHUNKER_VERSION = "sent-v4"
SENTENCE_END = "。！？!?；;…"
CONTENT_KINDS = {"body", "answer", "lead", "caption", "question"}
_SPACE = re.compile(r"\s+")


# a sentence: anything up to an end mark, the marks and closing quotes/brackets after it; or the
# unterminated rest (one regex scan, as fast as the answerer needs: it splits every passage it reads)
_END, _TAIL = re.escape(SENTENCE_END), re.escape(SENTENCE_END + CLOSERS)
_SENTENCE = re.compile(f"[^{_END}]*[{_END}][{_TAIL}]*|[^{_END}]+")


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # source offset of the first character
    end: int  # source offset after the last character
    block: int  # index of the block it comes from


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return (start, end) index pairs of the sentences of ``text``.

    Ends at 。！？；… and the ASCII ``!?;``, keeping closing quotes/brackets with the sentence.
    ASCII ``,`` and ``:`` do not end a sentence (this corpus uses them as full-width comma/colon).

    >>> t = "一是加强政治建设。我们讲政治;“好!”二是"
    >>> [t[a:b] for a, b in split_sentences(t)]
    ['一是加强政治建设。', '我们讲政治;', '“好!”', '二是']
    """
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()]


def block_sentences(blocks: list[Block], index: int) -> list[Sentence]:
    b = blocks[index]
    out = []
    for a, z in split_sentences(b.text):
        seg = b.text[a:z]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg) - len(seg.rstrip())
        a, z = a + lead, z - trail
        if a >= z:
            continue
        out.append(Sentence(b.text[a:z], b.offsets[a], b.offsets[z - 1] + 1, index))
    return out


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    return hashlib.sha1(f"{source}:{start}:{end}:{text}".encode()).hexdigest()[:16]


def chunk_document(doc: SourceText, settings: Settings) -> list[Chunk]:
    """Split one article into chunks that carry title, heading path, context and source span."""
    blocks = parse_blocks(doc)
    title = detect_title(doc, blocks)
    chunks: list[Chunk] = []

    # group consecutive content blocks by heading path; remember the question that opens a group
    groups: list[tuple[tuple[str, ...], str, list[int]]] = []
    question = ""
    for i, b in enumerate(blocks):
        if b.kind == "question":
            question = b.text  # also the context of the answer that follows
            groups.append((b.heading_path, "", [i]))
            continue
        if b.kind in {"heading", "speaker"}:
            question = ""
            continue
        if b.kind not in CONTENT_KINDS:
            continue
        ctx = question if b.kind in {"answer", "body"} else ""
        if groups and groups[-1][0] == b.heading_path and groups[-1][1] == ctx:
            groups[-1][2].append(i)
        else:
            groups.append((b.heading_path, ctx, [i]))

    # a group that is only a numbered heading ("一、…" with no text of its own before its
    # sub-sections) is not a passage: its line opens the next group instead
    merged_groups: list[tuple[tuple[str, ...], str, list[int]]] = []
    carry: list[int] = []
    for path, ctx, idxs in groups:
        if len(idxs) == 1 and len(blocks[idxs[0]].text) <= 40 and not any(c in blocks[idxs[0]].text for c in "。！？!?"):
            carry.extend(idxs)
            continue
        merged_groups.append((path, ctx, carry + idxs))
        carry = []
    if carry:
        merged_groups.append((blocks[carry[0]].heading_path, "", carry))

    for path, ctx, idxs in merged_groups:
        sents = [s for i in idxs for s in block_sentences(blocks, i)]
        for window in _pack(sents, settings.chunk_size, settings.chunk_overlap_sentences):
            parts = []
            for k, s in enumerate(window):
                if k and s.block != window[k - 1].block:
                    parts.append("\n")
                parts.append(s.text)
            text = "".join(parts)
            start, end = window[0].start, window[-1].end
            chunks.append(
                Chunk(
                    id=chunk_id(doc.source, start, end, text),
                    source=doc.source,
                    title=title,
                    heading_path=path,
                    text=text,
                    start=start,
                    end=end,
                    ordinal=len(chunks),
                    context=ctx,
                )
            )
    return chunks


def _pack(sents: list[Sentence], size: int, overlap: int) -> list[list[Sentence]]:
    """Greedy packing of whole sentences into windows of at most ``size`` characters."""
    windows: list[list[Sentence]] = []
    i = 0
    while i < len(sents):
        window = [sents[i]]
        length = len(sents[i].text)
        j = i + 1
        while j < len(sents) and length + len(sents[j].text) <= size:
            window.append(sents[j])
            length += len(sents[j].text)
            j += 1
        windows.append(window)
        if j >= len(sents):
            break
        # next window starts with the last `overlap` sentences, when they are short enough
        back = 0
        while back < overlap and j - back - 1 > i and len(sents[j - back - 1].text) <= size // 2:
            back += 1
        i = j - back
    return windows


def chunk_documents(docs: list[SourceText], settings: Settings) -> list[Chunk]:
    return [c for d in docs for c in chunk_document(d, settings)]
