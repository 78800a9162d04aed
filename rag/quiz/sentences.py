"""The sentences items are made from: ``Sent``, ``EnumList``, ``Candidate``, speakers and sources,
and the generic screens (editorial text, scope conflicts, near-identical variants).

What it does not do: build items (``generator.py`` and the per-type modules).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from ..ingest.chunking import split_sentences
from ..schema import Chunk
from ..text import norm
from .items import TYPE_LABELS, QuizItem, _near, fullwidth


# ------------------------------------------------------------------ corpus analysis
@dataclass
class Sent:
    """A sentence of a chunk, with what a stem needs to name its context."""

    text: str
    chunk: Chunk
    lead: str  # "山西省政协秘书长张岐云介绍" ...
    key: str  # file + normalised sentence: the "fact" an item tests
    speaker: str = ""  # heading that names who says it ("山西省政协秘书长 张岐云", "隋宝文"), "" if none


@dataclass
class EnumList:
    items: list[str]
    label: str  # “四同” or ""
    sent: Sent
    span: tuple[int, int]  # span of the list in sent.text (after trimming)
    label_span: tuple[int, int] | None = None  # span of “label” in sent.text, after the list
    kind: str = "list"  # "list", or "term": a quoted term of the corpus, offered as a distractor only

    @property
    def norms(self) -> set[str]:
        return {norm(x) for x in self.items}


@dataclass
class Candidate:
    """A possible item; ``build`` makes it (distractors are ranked only for candidates that get picked)."""

    kind: str
    chunk_id: str
    fact: str
    file: str
    build: Callable[[], "QuizItem | str"]  # the item, or why none could be made
    item: QuizItem | None = None
    # other facts the item gives away: a blank on a quoted term also tests its sentence (a choice
    # item on that sentence's list would repeat it); a list item also tests the list's name
    also: frozenset = frozenset()

    @property
    def facts(self) -> set[str]:
        return {self.fact, *self.also}


@dataclass
class QuizResult:
    items: list[QuizItem]
    stats: dict = field(default_factory=dict)

    def stats_text(self) -> str:
        return format_stats(self.stats)


ORG_SPEAKER = re.compile(r"^(?P<org>\S*?(?:省|市|自治区|州|县|区)政协)\S*?[ \u3000]*(?P<name>[\u4e00-\u9fff·]{2,5})$")
PERSON = re.compile(r"^[\u4e00-\u9fff·]{2,4}$")
EDITOR_HEADINGS = ("编者按", "导语", "编者的话", "按语")
# reporting vocabulary: by-lines, captions, the reporter's own narration (generic for news text)
META_RE = re.compile(r"记者|通讯员|责任编辑|编辑[:：]|供图|摄影|[（(]摄[)）]|专访|采访|本期|栏目|摘登|本报讯|答记者问")
LATIN_WORD = re.compile(r"(?<![A-Za-z])[a-z]{2,}(?![A-Za-z])")  # a lower-case English word inside Chinese
RELATIVE_TIME = re.compile(r"今年|去年|前年|明年|近日|日前|今天|昨天|本月|上月|近年来|[0-9一二三四五六七八九十]+年来")
ORDINAL_PREFIX = re.compile(
    r"^(?:[一二三四五六七八九十]+是|第[一二三四五六七八九十]+[,，、]?|首先[,，]?|其次[,，]?|再次[,，]?|最后[,，]?"
    r"|[一二三四五六七八九十]{1,3}、|[（(][一二三四五六七八九十]{1,3}[)）])"
)
DEPENDENT_START = re.compile(
    r"^(?:并|还|也|又|而|且|及|以及|和|与|同时|从而|进而|此外|另外|其中|其|这|此|该|现在|对此|为此|由此|分别|均|即|就|则)"
)
CONTINUATION = set("的了、，,;；:：之着")  # a sentence cannot start with these: layout cut it
PROVINCE_SCOPE = re.compile(r"全省|省政协|省委省政府")  # what a city or county speaker does not speak for
LOWER_LEVEL_ORG = re.compile(r"(?:市|州|县|区)政协")
HEADING_NUMBER = re.compile(r"^(?:[一二三四五六七八九十]{1,3}、|[（(][一二三四五六七八九十]{1,3}[)）])")  # "三、…" "(二)…"


def speaker_of(chunk: Chunk) -> str:
    """The heading that names who says a passage; "" for narration or a reporter's question."""
    for h in reversed(chunk.heading_path):
        if h.endswith("提问"):
            return ""
        if ORG_SPEAKER.match(h) or (PERSON.match(h) and h not in EDITOR_HEADINGS):
            return h
    return ""


def describe_source(chunk: Chunk, meta: dict | None, *, year: str = "") -> str:
    """Who says it, so that a stem is answerable on its own: "山西省政协秘书长张岐云介绍".

    ``year`` (from the article's date) is named when the sentence uses relative time ("今年").
    """
    meta = meta or {}
    for h in chunk.heading_path:
        m = re.match(r"^(\S*?(?:省|市|自治区)政协)秘书长\s*(\S+)$", h)
        if m:
            return f"{m[1]}秘书长{m[2]}介绍"
    title = chunk.title or meta.get("title", "")
    m = re.search(r"—+专访(.+)$", title)
    if m:
        who = m[1].strip()
        if who.startswith("省") and meta.get("region"):
            who = meta["region"] + who
        return f"{who}在{year}年的专访中介绍" if year else f"{who}在专访中介绍"
    if "新闻发布会" in title:
        org = title.split("：")[0].split(":")[0]
        speaker = next((h for h in chunk.heading_path if PERSON.match(h)), "")
        return f"{org}上，{speaker}介绍" if speaker else f"{org}介绍"
    if meta.get("outlet"):
        return f"{meta['outlet']}文章《{fullwidth(title)}》介绍"
    return f"《{title}》一文介绍"


def short_source(s: Sent) -> str:
    """Where a distractor comes from, briefly: "山西省政协秘书长张岐云的发言"."""
    lead = s.lead
    for tail, repl in (("在专访中介绍", "的专访"), ("的专访中介绍", "的专访"), ("介绍", "的介绍")):
        if lead.endswith(tail):
            lead = lead[: -len(tail)] + repl
            break
    if re.search(r"秘书长\S+的介绍$", lead):
        lead = lead[: -len("的介绍")] + "的发言"
    return lead.replace("上，", "上")


def strip_ordinal(s: str) -> str:
    """"一是加强……" -> "加强……" (the enumeration marker is layout, not content)."""
    return ORDINAL_PREFIX.sub("", s.strip(), count=1).lstrip(",，、 ")


def sentence_problem(s: str, chunk: Chunk, speaker: str, doc_has_speakers: bool) -> str | None:
    """Why a sentence must not become an item (generic checks), or None."""
    if any(h in EDITOR_HEADINGS for h in chunk.heading_path) or any(h.endswith("提问") for h in chunk.heading_path):
        return "editorial text (editor's note or a reporter's question)"
    if META_RE.search(s):
        return "reporting text (reporter, interview, by-line)"
    if doc_has_speakers and not speaker:
        return "not attributed to a speaker"
    if LATIN_WORD.search(s):
        return "Latin word inside Chinese text (suspected typo)"
    body = norm(strip_ordinal(s))
    if any(body == norm(strip_ordinal(h)) for h in chunk.heading_path) or HEADING_NUMBER.match(s) or (
        ORDINAL_PREFIX.match(s) and not re.search(r"[。！？!?]", s) and len(body) <= 30 and "是" not in s[:3]
    ):
        return "a heading, not a statement"
    if s[0] in CONTINUATION:
        return "sentence fragment"
    return None


def trigrams(s: str) -> set[str]:
    t = norm(s)
    return {t[i : i + 3] for i in range(len(t) - 2)}


def scope_conflicts(sents: list[Sent]) -> set[str]:
    """Keys of sentences that probably belong to another speaker (paragraphs misplaced by layout).

    A sentence whose speaker is a city or county body (“成都市政协秘书长”) but that speaks for a
    whole province (“全省三级政协……”) is a seed; the run grows to neighbouring sentences of the
    same speaker that share a trigram with the run which the speaker's own text on the other side
    of the run never uses.
    """
    out: set[str] = set()
    by_speaker: dict[tuple[str, str], list[Sent]] = defaultdict(list)
    for s in sents:
        if s.speaker:
            by_speaker[(s.chunk.source, s.speaker)].append(s)
    for (_, speaker), group in by_speaker.items():
        m = ORG_SPEAKER.match(speaker)
        if not m or not LOWER_LEVEL_ORG.search(m["org"]):
            continue
        tris = [trigrams(s.text) for s in group]
        seeds = [i for i, s in enumerate(group) if PROVINCE_SCOPE.search(s.text)]
        for seed in seeds:
            run = {seed}
            grew = True
            while grew:
                grew = False
                lo, hi = min(run), max(run)
                run_tris = set().union(*(tris[i] for i in run))
                # forward: what the run shares with the next sentence must be foreign to the speaker's
                # text before the run; backward, to the speaker's text after it
                for j, known in ((hi + 1, range(0, lo)), (lo - 1, range(hi + 1, len(group)))):
                    if not 0 <= j < len(group):
                        continue
                    own = set().union(*(tris[i] for i in known)) if len(known) else set()
                    if (tris[j] & run_tris) - own:
                        run.add(j)
                        grew = True
            out.update(group[i].key for i in run)
    return out


def corpus_sentences(chunks: Sequence[Chunk], documents: dict[str, dict]) -> tuple[list[Sent], Counter]:
    """Every usable sentence once (chunks overlap by a sentence), in corpus order; and why others were skipped."""
    seen: set[str] = set()
    allsents: list[tuple[Sent, str | None]] = []
    with_speakers = {c.source for c in chunks if speaker_of(c)}
    for c in chunks:
        meta = (documents.get(c.source) or {}).get("meta") or {}
        year_m = re.search(r"(?:19|20)\d{2}", str(meta.get("date") or ""))
        speaker = speaker_of(c)
        lead = describe_source(c, meta)
        for line in c.text.split("\n"):
            for a, b in split_sentences(line):
                s = line[a:b].strip()
                key = f"{c.source}:{norm(s)}"
                if len(norm(s)) < 8 or key in seen:
                    continue
                seen.add(key)
                this_lead = describe_source(c, meta, year=year_m[0]) if year_m and RELATIVE_TIME.search(s) else lead
                sent = Sent(s, c, this_lead, key, speaker)
                allsents.append((sent, sentence_problem(s, c, speaker, c.source in with_speakers)))
    conflicts = scope_conflicts([s for s, _ in allsents])
    skipped: Counter = Counter()
    out = []
    for s, why in allsents:
        why = why or ("may belong to another speaker (scope conflict)" if s.key in conflicts else None)
        if why:
            skipped[why] += 1
        else:
            out.append(s)
    return out, skipped


def variant_phrases(phrases: Iterable[str], squashed_texts: Iterable[str]) -> set[str]:
    """Phrases with a near-identical wording elsewhere in the corpus (one character changed, added or dropped).

    A phrase that occurs once while its variant occurs as often or more is a suspected typo or a
    conflicting version (rubric §6.3); items are not built around it. A phrase inside a longer
    variant ("抓党建引领" in "抓党建引领导") is the majority form when it occurs more often.
    """
    corpus = "\n".join(squashed_texts)
    out: set[str] = set()
    for p in dict.fromkeys(phrases):
        n = len(p)
        if n < 5:
            continue
        mine = corpus.count(p)
        half = n // 2
        found: set[str] = set()
        for part, is_prefix in ((p[:half], True), (p[half:], False)):
            at = corpus.find(part)
            while at >= 0:
                for size in (n - 1, n, n + 1):
                    a = at if is_prefix else at + len(part) - size
                    v = corpus[max(a, 0) : max(a, 0) + size]
                    if a >= 0 and v != p and p not in v and _near(v, p) and "\n" not in v:
                        found.add(v)
                at = corpus.find(part, at + 1)
        if mine > 1:  # an established wording, not a slip
            continue
        # a variant inside p ("抓党建引领" in "抓党建引领导") counts only where it stands on its own
        if any(corpus.count(v) - (mine if v in p else 0) >= 1 for v in found):
            out.add(p)
    return out


# generic governing verbs that the enumeration regex swallows with the first item ("开展组织联建")


def term_fact(s: Sent, term: str) -> str:
    """Items on a quoted term test the term, wherever the article repeats it ("最先一公里" twice)."""
    return f"{s.chunk.source}:term:{norm(term)}"


def format_stats(stats: dict) -> str:
    mode = {"rules": "规则出题（不用大模型）", "llm": "大模型出题"}.get(stats.get("mode", "rules"), stats.get("mode"))
    lines = [
        f"共生成 {stats.get('total', 0)} 题（请求 {stats.get('requested', 0)} 题，{mode}），用时 {stats.get('seconds', 0)} 秒"
    ]
    if stats.get("notice"):
        lines.append(f"  注意：{stats['notice']}")
    for k, v in stats.get("generated", {}).items():
        cand = stats.get("candidates", {}).get(k)
        lines.append(f"  {TYPE_LABELS.get(k, k)}：生成 {v}" + (f"（候选 {cand}）" if cand is not None else ""))
    if stats.get("llm"):
        llm = stats["llm"]
        lines.append(
            f"  大模型：生成 {llm.get('total', 0)} 题，重试 {llm.get('retries', 0)} 次，"
            f"丢弃 {len(llm.get('dropped_items', []))} 题"
        )
        for d in llm.get("dropped_items", []):
            lines.append(f"    丢弃（段落 {d['chunk_id']}）：{'；'.join(d['problems'])}")
    dropped = stats.get("dropped") or {}
    lines.append(f"  丢弃 {sum(dropped.values())} 个候选：")
    for why, count in sorted(dropped.items(), key=lambda p: -p[1]):
        lines.append(f"    {count:4d}  {why}")
    skipped = stats.get("skipped") or {}
    if skipped:
        lines.append(f"  出题前跳过 {sum(skipped.values())} 个句子：")
        for why, count in sorted(skipped.items(), key=lambda p: -p[1]):
            lines.append(f"    {count:4d}  {why}")
    return "\n".join(lines)
