"""Clean an article's layout and recognise its structure: SourceText -> list[Block].

What it does, line by line over the decoded text:
- classifies each line: title, subtitle ("——专访……"), by-line / outlet, caption ("……（供图）"),
  editor's note label ("编者按"), section heading (a short line without sentence punctuation,
  "一、", "（一）", markdown "#"), speaker line ("山西省政协秘书长 张岐云"), interview question
  ("齐鲁晚报·齐鲁壹点:……?" or "人民网记者:" followed by the question) and answer ("刘永巨:……");
- rejoins body lines broken in the middle of a sentence, but never glues a heading, by-line or
  caption onto body text;
- moves a news lead (导语) that layout pasted into the middle of a sentence out of that sentence;
- gives every block its heading path (section › speaker › numbered section) and its span in the
  source text, so a citation can name the speaker even when the passage only says "我们".

It does not change characters: ASCII ``,:;?`` and full-width ``。、“”`` stay as they are, so quotes
are verbatim. It does not split paragraphs into sentences (see ``rag.ingest.chunking``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..schema import Block, SourceText

# Sentence-final punctuation, full-width and the ASCII forms this corpus uses.
TERMINALS = "。！？!?…；;"
CLOSERS = "”’」』》)）\"'"
ENUM_START = re.compile(r"^(?:[一二三四五六七八九十]+是|第[一二三四五六七八九十]+[,，、:：]|首先|其次|再次|最后|此外)")
H1_NUM = re.compile(r"^[一二三四五六七八九十]{1,3}、")
H2_NUM = re.compile(r"^[（(][一二三四五六七八九十]{1,3}[)）]")
MD_HEADING = re.compile(r"^(#{1,6})\s+(.+)$")
# An official's title followed by a space and a two-to-four character name.
SPEAKER = re.compile(
    r"^(?P<role>\S{2,30}?(?:秘书长|主席|副主席|书记|副书记|部长|主任|厅长|局长|主委|委员|巡视员|处长|市长|省长|会长|社长|总编辑|院长|校长|代表|组长))"
    r"[ \u3000]+(?P<name>[\u4e00-\u9fff·]{2,5})$"
)
# "label:text" where the label is an outlet, a reporter or a person (interviews, press conferences).
QA_LABEL = re.compile(r"^(?P<label>[^\s,，。:：?？!！“”\"]{2,16})[:：](?P<rest>.*)$")
BYLINE = re.compile(r"^(?:记者|通讯员|编辑|责任编辑|作者|来源|文/|文／|摄影|摄|图/|供稿)[\s:：/]")
CAPTION = re.compile(r"[（(][^()（）]{0,20}(?:供图|摄|图)[)）]$")
SOURCE_LINE = re.compile(r"^[（(][^()（）]{2,30}[)）]$")
EDITOR_NOTE = re.compile(r"^(?:编者按|导语|编者的话)[:：]?$")
LEAD_HINT = re.compile(r"记者.{0,30}(?:专访|采访)|(?:专访|采访)了")
CONTINUATION_START = set("的了和与及或等、，,;；:：之而并且但则也就都所为地得着过")
ORG_SUFFIX = re.compile(r"(?:办公厅|办公室|委员会|工委|报社|日报|晚报|网|新闻办公室|新闻办)$")

HEADING_MAX = 40
HEADING_PREFIX_MAX = 60  # "一、heading。body…" lines: the heading part before the first 。


@dataclass
class _Line:
    text: str  # stripped
    start: int  # offset of text[0] in the source
    kind: str = "body"
    label: str = ""  # speaker / questioner for question, answer and speaker lines
    level: int = 0  # heading level (1 plain, 3 "一、", 4 "（一）")
    body_from: int = 0  # for "heading。body" lines: where the body starts inside text


@dataclass
class _Para:
    """A paragraph under construction: text with a source offset for every character."""

    kind: str
    offsets: list[int] = field(default_factory=list)
    text: str = ""
    label: str = ""

    def add(self, text: str, start: int) -> None:
        self.text += text
        self.offsets.extend(range(start, start + len(text)))


def ends_sentence(text: str) -> bool:
    """True when ``text`` ends a sentence (allowing closing quotes and brackets after the stop)."""
    t = text.rstrip()
    while t and t[-1] in CLOSERS:
        t = t[:-1]
    return bool(t) and t[-1] in TERMINALS + ":："


def _split_lines(text: str) -> list[_Line]:
    lines, pos = [], 0
    for raw in text.split("\n"):
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            lines.append(_Line(stripped, pos + lead))
        pos += len(raw) + 1
    return lines


def _is_heading_like(text: str) -> bool:
    return (
        len(text) <= HEADING_MAX
        and not any(c in text for c in "。！？!?；;")
        and not ENUM_START.match(text)
        and text[-1] not in ",，、:："
    )


def _classify(lines: list[_Line], title_parts: list[str]) -> None:
    labels_seen: set[str] = set()
    prev_body_open = False  # previous body line ended mid-sentence
    title_done = False
    for i, ln in enumerate(lines):
        t = ln.text
        m_md = MD_HEADING.match(t)
        if title_parts and i < 20 and t in title_parts:
            ln.kind = "title"
            continue
        if m_md:
            ln.kind, ln.level, ln.text = "heading", len(m_md.group(1)), m_md.group(2).strip()
            ln.start += m_md.start(2)
            prev_body_open = False
            continue
        if EDITOR_NOTE.match(t):
            ln.kind = "note_label"
            prev_body_open = False
            continue
        if t.startswith(("—", "――", "--")) and len(t) <= 60:
            ln.kind = "subtitle"
            title_done = True
            continue
        if BYLINE.match(t) or (SOURCE_LINE.match(t) and len(t) <= 32):
            ln.kind = "byline"
            continue
        if CAPTION.search(t):
            ln.kind = "caption"
            continue
        m_sp = SPEAKER.match(t)
        if m_sp and not prev_body_open:
            ln.kind, ln.label, ln.level = "speaker", t, 2
            continue
        m_qa = QA_LABEL.match(t)
        if m_qa and not prev_body_open:
            label, rest = m_qa.group("label"), m_qa.group("rest").strip()
            is_reporter = label.endswith("记者") or "·" in label or label in labels_seen
            if not rest:  # "人民网记者:" alone: the next paragraph is the question
                ln.kind, ln.label = ("question_label" if is_reporter else "answer_label"), label
                continue
            if is_reporter or rest.rstrip().endswith(("?", "？")):
                ln.kind, ln.label = "question", label
            else:
                ln.kind, ln.label = "answer", label
            ln.body_from = m_qa.start("rest") + (len(m_qa.group("rest")) - len(m_qa.group("rest").lstrip()))
            prev_body_open = not ends_sentence(t)
            continue
        if H1_NUM.match(t) or H2_NUM.match(t):
            level = 3 if H1_NUM.match(t) else 4
            head_end = t.find("。")
            if head_end == -1 and len(t) <= HEADING_MAX and not ends_sentence(t):
                ln.kind, ln.level = "heading", level
                prev_body_open = False
                continue
            if 0 < head_end <= HEADING_PREFIX_MAX:
                ln.kind, ln.level, ln.body_from = "heading_body", level, head_end + 1
                prev_body_open = not ends_sentence(t)
                continue
        if _is_heading_like(t) and not prev_body_open:
            # a by-line of an organisation right under the title ("省政协办公厅")
            if i > 0 and lines[i - 1].kind in {"title", "subtitle"} and len(t) <= 12 and ORG_SUFFIX.search(t):
                ln.kind = "byline"
                continue
            nxt = lines[i + 1].text if i + 1 < len(lines) else ""
            if not title_done and not title_parts:
                ln.kind = "title"
                if not _is_heading_like(nxt) or SPEAKER.match(nxt) or QA_LABEL.match(nxt):
                    title_done = True
                continue
            ln.kind, ln.level = "heading", 1
            title_done = True
            continue
        ln.kind = "body"
        title_done = True
        prev_body_open = not ends_sentence(t)
    # an outlet name on its own line that later labels questions is a by-line, not a heading
    labels_seen = {ln.label for ln in lines if ln.kind in {"question", "question_label"}}
    for ln in lines:
        if ln.kind in {"heading", "title"} and ln.text in labels_seen:
            ln.kind = "byline"


def _mark_leads(lines: list[_Line]) -> None:
    """The paragraph after "编者按" is the editor's lead."""
    for i, ln in enumerate(lines[:-1]):
        if ln.kind == "note_label" and lines[i + 1].kind == "body":
            lines[i + 1].kind = "lead"


def parse_blocks(doc: SourceText) -> list[Block]:
    """Clean ``doc`` and return its paragraphs with kinds, spans and heading paths."""
    meta = doc.meta or {}
    title_parts = [str(p).strip() for p in meta.get("title_lines") or [meta.get("title", "")] if str(p).strip()]
    lines = _split_lines(doc.text)
    _classify(lines, title_parts)
    _mark_leads(lines)

    paras: list[_Para] = []
    pending_label = ""  # "人民网记者:" / "隋宝文:" on a line of their own
    pending_kind = ""
    i = 0
    open_para: _Para | None = None  # a body paragraph whose last line ended mid-sentence
    while i < len(lines):
        ln = lines[i]
        k = ln.kind
        if k in {"question_label", "answer_label"}:
            pending_label, pending_kind = ln.label, ("question" if k == "question_label" else "answer")
            open_para = None
            i += 1
            continue
        if k in {"title", "subtitle", "byline", "caption", "note_label", "speaker", "heading"}:
            p = _Para(kind=k, label=ln.label)
            p.add(ln.text, ln.start)
            p.level = ln.level  # type: ignore[attr-defined]
            paras.append(p)
            if k == "heading" and ln.level >= 3:  # "一、…" / "（一）…" also open their section's text
                b = _Para(kind="body")
                b.add(ln.text, ln.start)
                paras.append(b)
            open_para = None
            i += 1
            continue
        if k == "heading_body":
            # "（一）heading。body…": the heading goes into the path and stays in the text, since
            # numbered headings are the author's own words (lists of them answer questions)
            h = _Para(kind="heading")
            h.add(ln.text[: ln.body_from - 1], ln.start)
            h.level = ln.level  # type: ignore[attr-defined]
            paras.append(h)
            p = _Para(kind="body")
            p.add(ln.text, ln.start)
            paras.append(p)
            open_para = p if not ends_sentence(ln.text) else None
            i += 1
            continue
        # body-ish line: body, lead, question, answer
        if open_para is not None and k == "body" and not ENUM_START.match(ln.text):
            # Is this line a displaced lead pasted into the open sentence? Then it stands
            # apart and the sentence continues on the line after it.
            nxt = lines[i + 1] if i + 1 < len(lines) else None
            if (
                nxt is not None
                and nxt.kind == "body"
                and ends_sentence(ln.text)
                and len(ln.text) >= 60
                and (nxt.text[0] in CONTINUATION_START or LEAD_HINT.search(ln.text))
            ):
                lead = _Para(kind="lead")
                lead.add(ln.text, ln.start)
                open_para.add(nxt.text, nxt.start)
                paras.append(lead)
                if ends_sentence(nxt.text):
                    open_para = None
                i += 2
                continue
            open_para.add(ln.text, ln.start)
            if ends_sentence(ln.text):
                open_para = None
            i += 1
            continue
        kind = k
        label = ln.label
        if k == "body" and pending_kind:
            kind, label = pending_kind, pending_label
        pending_kind = pending_label = ""
        p = _Para(kind=kind, label=label)
        p.add(ln.text[ln.body_from :], ln.start + ln.body_from)
        paras.append(p)
        open_para = p if not ends_sentence(ln.text) else None
        i += 1

    return _with_paths(paras)


def _with_paths(paras: list[_Para]) -> list[Block]:
    """Attach heading paths: plain heading (1) › speaker (2) › "一、" (3) › "（一）" (4)."""
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    answerer = ""
    merged: list[_Para] = []
    for p in paras:  # consecutive plain headings form one heading ("找准职责定位 / 积极主动作为")
        if (
            merged
            and p.kind == "heading"
            and merged[-1].kind == "heading"
            and getattr(p, "level", 1) == 1
            and getattr(merged[-1], "level", 1) == 1
        ):
            prev = merged[-1]
            prev.text += " " + p.text
            prev.offsets.append(prev.offsets[-1])  # the joining space maps to the previous char
            prev.offsets.extend(p.offsets)
            prev.offsets = prev.offsets[: len(prev.text)]
            continue
        merged.append(p)

    for p in merged:
        level = getattr(p, "level", 0)
        if p.kind in {"heading", "speaker"}:
            lvl = 2 if p.kind == "speaker" else (level or 1)
            while stack and stack[-1][0] >= lvl:
                stack.pop()
            stack.append((lvl, p.text))
            answerer = ""
        elif p.kind == "question":
            answerer = ""
            path = tuple(label for _, label in stack) + (f"{p.label or '记者'}提问",)
            start = p.offsets[0] if p.offsets else 0
            end = (p.offsets[-1] + 1) if p.offsets else 0
            blocks.append(
                Block(text=p.text, start=start, end=end, kind=p.kind, heading_path=path, offsets=tuple(p.offsets))
            )
            continue
        elif p.kind == "answer":
            answerer = p.label
        path = tuple(label for _, label in stack)
        if p.kind in {"answer", "body"} and answerer and answerer not in path:
            path = path + (answerer,)
        if p.kind == "lead":
            path = ("编者按",) if not path else path
        start = p.offsets[0] if p.offsets else 0
        end = (p.offsets[-1] + 1) if p.offsets else 0
        blocks.append(
            Block(text=p.text, start=start, end=end, kind=p.kind, heading_path=path, offsets=tuple(p.offsets))
        )
    return blocks


def detect_title(doc: SourceText, blocks: list[Block] | None = None) -> str:
    """The article title: the sidecar's, else the title lines found by the parser, else the file name."""
    meta_title = (doc.meta or {}).get("title")
    if meta_title:
        return str(meta_title).replace("\n", " ")
    blocks = blocks if blocks is not None else parse_blocks(doc)
    parts = [b.text for b in blocks if b.kind == "title"]
    if parts:
        return " ".join(parts)
    return doc.source.rsplit(".", 1)[0]
