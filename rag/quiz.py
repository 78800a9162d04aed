"""Quiz items for trainers (单选/多选/判断/填空), grounded in the corpus and validated against it.

Two ways to make items:

- ``generate_quiz(chunks, documents, ...)`` (the default, no LLM): items that are correct by
  construction from the corpus's own structure. Sentences of chunks are scanned for
  enumerations ("A、B、C、D", optionally named by a counted label such as “四同”), quoted terms
  (“有事多商量”) and figures (number + unit). Choice items take their right options from one
  list and their distractors from *other* lists of the corpus (closest by character overlap and
  length); 判断 items state a clause verbatim (正确) or with one element swapped for one from
  elsewhere in the corpus (错误); 填空 items blank a quoted term, a figure or a list item.
- ``generate_with_llm(chat_model, hits, ...)``: asks a langchain chat model for one JSON item per
  passage, validates it, retries once with the problems, then drops and reports it.

Every item passes ``validate_item`` before it is returned: the evidence quote is verbatim in the
cited file (white space ignored), the answer fits the options and the type, a blank's answer is in
the quote, no distractor is in the quote, stems are not repeated.

What this module does *not* do: judge difficulty, paraphrase sentences, or guarantee that an item
is pedagogically interesting; known traps of this corpus (misplaced paragraphs, suspected typos)
are avoided by the explicit ``SKIP_PATTERNS`` list, not detected in general.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence, Union

from pydantic import BaseModel, Field, ValidationError

from .chunking import split_sentences
from .errors import QuizError
from .schema import Chunk
from .text import norm

logger = logging.getLogger(__name__)

TYPES = ("single_choice", "multi_choice", "true_false", "fill_blank")
TYPE_ALIASES = {
    "single": "single_choice", "single_choice": "single_choice", "单选": "single_choice",
    "multi": "multi_choice", "multiple": "multi_choice", "multi_choice": "multi_choice", "多选": "multi_choice",
    "judge": "true_false", "tf": "true_false", "true_false": "true_false", "判断": "true_false",
    "blank": "fill_blank", "fill": "fill_blank", "fill_blank": "fill_blank", "填空": "fill_blank",
}
TYPE_LABELS = {"single_choice": "单选题", "multi_choice": "多选题", "true_false": "判断题", "fill_blank": "填空题"}
JUDGE_OPTIONS = ["正确", "错误"]
BLANK = "______"
QUOTE_MIN, QUOTE_MAX = 20, 80  # characters, white space removed (rubric §1)

# Known traps of this corpus (rubric §6): paragraphs of the Hunan speaker that sit under the
# Chengdu speaker in 001, suspected typos, and by-lines. Sentences matching these are never used.
SKIP_PATTERNS = [
    re.compile(p)
    for p in (
        r"在“云”上", r"政协云", r"互联网\+政协”是贯彻",  # 001: Hunan's 政协云 paragraphs after Chengdu
        r"斗争一流", r"过去,通过政协云", r"思路 and", r"\band\b",  # suspected typos
        r"抓党建引领导", r"全国文明城市",  # 001's variant of 一抓双创 (typo)
        r"供图", r"记者", r"编辑", r"本期专访", r"齐鲁晚报",  # captions, by-lines, editor's notes
        r"近日,", r"今年是|去年|今年",  # relative dates (rubric §6.4): avoid rather than convert
        r"10位", r"摘登",
    )
]
SKIP_HEADINGS = ("编者按",)

CN_NUM = {"两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
UNITS = "个项条次名位家期件篇支人次场次余村亿元万元万字种所批处"
FIGURE_RE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(多|余)?(人次|场次|万字|亿元|万元|个|项|条|次|名|位|家|期|件|篇|支|种|批|所|处|人)")
LIST_ITEM = r"[\u4e00-\u9fff]{2,12}"
LIST_RE = re.compile(rf"{LIST_ITEM}(?:、{LIST_ITEM}){{2,}}")
QUOTED_TERM_RE = re.compile(r"“([\u4e00-\u9fff0-9·]{2,12})”")
CLAUSE_SPLIT = re.compile(r"(?<=[,，;；:：。！？!?])")


# ------------------------------------------------------------------ the item model
class Evidence(BaseModel):
    file: str
    quote: str


class QuizItem(BaseModel):
    """One quiz item in the format of ../shared/eval/quiz_examples.jsonl, plus its place in the article."""

    type: Literal["single_choice", "multi_choice", "true_false", "fill_blank"]
    stem: str
    options: Union[dict[str, str], list[str]] = Field(default_factory=list)
    answer: Union[str, list[str]]
    explanation: str = ""
    evidence: Evidence
    title: str = ""
    heading_path: list[str] = Field(default_factory=list)
    id: str = ""
    fact: str = ""  # key of the tested fact (file + normalised sentence): no two items per quiz share it

    def model_post_init(self, __context: Any) -> None:
        if not self.id:
            self.id = item_id(self.type, self.stem)

    @property
    def stem_key(self) -> str:
        return stem_key(self.stem)

    def to_record(self) -> dict:
        """The JSON record (examples' field order first)."""
        return self.model_dump()


def item_id(kind: str, stem: str) -> str:
    return hashlib.sha1(f"{kind}:{stem_key(stem)}".encode()).hexdigest()[:12]


def stem_key(stem: str) -> str:
    """A stem without punctuation, spaces and blanks: two stems with the same key are duplicates."""
    return norm(stem.replace(BLANK, "_"))


def squash(s: str) -> str:
    """Remove all white space (the rubric compares quotes after removing newlines and spaces)."""
    return re.sub(r"\s+", "", s or "")


# ------------------------------------------------------------------ validation
def validate_item(
    item: QuizItem, corpus_texts: dict[str, str], *, seen_stems: set[str] | None = None
) -> list[str]:
    """Problems of one item (empty list = valid).

    Args:
        corpus_texts: file name -> full text of that file (as decoded; white space is ignored).
        seen_stems: stem keys of items already in the quiz; a repeat is a problem.

    Does not judge whether the quote *implies* the answer beyond the checks below (G2 is the
    reviewer's job); it checks what can be checked mechanically.
    """
    problems: list[str] = []
    quote = squash(item.evidence.quote)
    text = corpus_texts.get(item.evidence.file)
    if text is None:
        problems.append(f"evidence file not in corpus: {item.evidence.file}")
    elif not quote or quote not in squash(text):
        problems.append("quote not verbatim in the cited file")
    if not QUOTE_MIN <= len(quote) <= QUOTE_MAX:
        problems.append(f"quote length {len(quote)} outside {QUOTE_MIN}-{QUOTE_MAX}")
    if not item.stem.strip():
        problems.append("empty stem")
    nq = norm(quote)
    t = item.type
    if t in ("single_choice", "multi_choice"):
        opts = item.options
        if not isinstance(opts, dict) or not opts:
            return problems + ["choice item needs options as a dict A, B, ..."]
        letters = list(opts)
        if letters != ["A", "B", "C", "D", "E"][: len(letters)]:
            problems.append("option letters must be A, B, C, ... in order")
        if any(not str(v).strip() for v in opts.values()):
            problems.append("empty option")
        if len({norm(v) for v in opts.values()}) != len(opts):
            problems.append("duplicate options")
        if t == "single_choice":
            if len(opts) != 4:
                problems.append("single choice needs 4 options")
            if not isinstance(item.answer, str) or item.answer not in opts:
                problems.append("answer is not one of the options")
        else:
            ans = item.answer if isinstance(item.answer, list) else None
            if not ans or any(a not in opts for a in ans):
                problems.append("answer is not among the options")
            elif ans != sorted(set(ans)):
                problems.append("multi-choice answer must be sorted letters without repeats")
            elif not 2 <= len(ans) < len(opts):
                problems.append("multi choice needs at least 2 right options and at least 1 wrong one")
            if not 4 <= len(opts) <= 5:
                problems.append("multi choice needs 4-5 options")
    elif t == "true_false":
        if list(item.options) != JUDGE_OPTIONS:
            problems.append('true/false options must be ["正确","错误"]')
        if item.answer not in JUDGE_OPTIONS:
            problems.append("answer is not one of the options")
    elif t == "fill_blank":
        if item.options not in ([], {}):
            problems.append("fill-blank item has options")
        if BLANK not in item.stem:
            problems.append(f"stem has no blank {BLANK}")
        ans = item.answer if isinstance(item.answer, str) else ""
        if not ans.strip():
            problems.append("empty answer")
        elif squash(ans) not in quote:
            problems.append("blank answer not in the quote")
    problems.extend(distractor_problems(item, nq))
    if seen_stems is not None and item.stem_key in seen_stems:
        problems.append("duplicate stem")
    return problems


def right_letters(item: QuizItem) -> list[str]:
    return [item.answer] if isinstance(item.answer, str) else list(item.answer)


def distractor_problems(item: QuizItem, nquote: str) -> list[str]:
    """A wrong option that the evidence itself lists is a second right answer."""
    if item.type == "single_choice" and isinstance(item.options, dict):
        negative = "不包括" in item.stem or "不属于" in item.stem
        if negative:  # "不包括": the answer must be absent from the quote, the others present
            ans = item.options.get(item.answer, "") if isinstance(item.answer, str) else ""
            return ["answer of a negative item appears in the evidence"] if ans and norm(ans) in nquote else []
    if item.type not in ("single_choice", "multi_choice") or not isinstance(item.options, dict):
        return []
    right = set(right_letters(item))
    return [
        f"distractor {k} appears in the evidence"
        for k, v in item.options.items()
        if k not in right and norm(v) and norm(v) in nquote
    ]


# ------------------------------------------------------------------ corpus analysis
@dataclass
class Sent:
    """A sentence of a chunk, with what a stem needs to name its context."""

    text: str
    chunk: Chunk
    lead: str  # "山西省政协秘书长张岐云介绍" ...
    key: str  # file + normalised sentence: the "fact" an item tests


@dataclass
class EnumList:
    items: list[str]
    label: str  # “四同” or ""
    sent: Sent
    span: tuple[int, int]  # span of the list in sent.text (after trimming the first item)


@dataclass
class Candidate:
    item: QuizItem
    chunk_id: str
    rank: float = 0.0


@dataclass
class QuizResult:
    items: list[QuizItem]
    stats: dict = field(default_factory=dict)

    def stats_text(self) -> str:
        return format_stats(self.stats)


def describe_source(chunk: Chunk, meta: dict | None) -> str:
    """Who says it, so that a stem is answerable on its own: "山西省政协秘书长张岐云介绍"."""
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
        return f"{who}在专访中介绍"
    if "新闻发布会" in title:
        org = title.split("：")[0].split(":")[0]
        speaker = next((h for h in chunk.heading_path if 2 <= len(h) <= 4), "")
        return f"{org}上，{speaker}介绍" if speaker else f"{org}介绍"
    if meta.get("outlet"):
        return f"{meta['outlet']}文章《{fullwidth(title)}》介绍"
    return f"《{title}》一文介绍"


def usable(sentence: str, chunk: Chunk) -> bool:
    if any(h in SKIP_HEADINGS for h in chunk.heading_path):
        return False
    return not any(p.search(sentence) for p in SKIP_PATTERNS)


def corpus_sentences(chunks: Sequence[Chunk], documents: dict[str, dict]) -> list[Sent]:
    """Every usable sentence once (chunks overlap by a sentence), in corpus order."""
    seen: set[str] = set()
    out: list[Sent] = []
    for c in chunks:
        meta = (documents.get(c.source) or {}).get("meta") or {}
        lead = describe_source(c, meta)
        for line in c.text.split("\n"):
            for a, b in split_sentences(line):
                s = line[a:b].strip()
                key = f"{c.source}:{norm(s)}"
                if len(norm(s)) < 8 or key in seen:
                    continue
                seen.add(key)
                if usable(s, c):
                    out.append(Sent(s, c, lead, key))
    return out


VERBS = frozenset(
    """建立 开展 构建 构建起 打造 推动 坚持 围绕 实现 加强 探索 建立了 形成 包括 弘扬 把准 按照 提高 提高了 深入 深入开展
    走访 定好 帮助 有效 提升 建在 建 全力 号召 采取 搭建 提出 树立 落实 完善 突出 聚焦 推进 健全 做到 增强 组织 以此 实施 强化 注重 发挥 及时 持续 共同""".split()
)
BAD_ITEM = re.compile(r"把|到做|[\u4e00-\u9fff]的[\u4e00-\u9fff]")


def _common_prefix(items: list[str]) -> str:
    p = items[0]
    for x in items[1:]:
        while p and not x.startswith(p):
            p = p[:-1]
    return p


def _common_suffix(items: list[str]) -> str:
    return _common_prefix([x[::-1] for x in items])[::-1]


def _trim_list(items: list[str]) -> tuple[list[str], int] | None:
    """Cut the regex's first item (it swallows the verb before the list: "开展组织联建") and the last
    one (it runs on: "社区治理与服务等事关群众") to the list's own shape; None when unsure."""
    import rjieba

    first, mid, last = items[0], items[1:-1], items[-1]
    # last item: stop at 等 / a trailing 的, or after the suffix the other items share
    if "等" in last[1:]:
        last = last[: last.index("等", 1)]
    last = last.rstrip("的")
    others = [first, *mid] if mid else [first]
    suffix = _common_suffix(mid) if len(mid) >= 2 else ""
    if suffix and not last.endswith(suffix) and suffix in last:
        last = last[: last.index(suffix) + len(suffix)]
    rest = [*mid, last]
    longest = max(len(x) for x in rest)
    cut = 0
    prefix = _common_prefix(rest) if len(rest) >= 2 else ""
    if prefix and not first.startswith(prefix):
        k = first.rfind(prefix)
        if k < 0:
            return None
        cut = k
    else:
        toks = list(rjieba.cut(first))
        while len(toks) > 1 and (toks[0] in VERBS or len("".join(toks)) > 1.8 * longest):
            cut += len(toks.pop(0))
    first = first[cut:]
    while first[:1] in ("起", "了", "在", "为") and len(first) > 3:  # "构建起" / "建在" leftovers
        first, cut = first[1:], cut + 1
    out = [first, *rest]
    lens = [len(x) for x in out]
    if min(lens) < 2 or max(lens) > 10 or max(lens) > 1.8 * min(lens) or len(set(out)) != len(out):
        return None
    if any(BAD_ITEM.search(x) for x in out):
        return None
    del others
    return out, cut


def find_lists(sents: Iterable[Sent]) -> list[EnumList]:
    out = []
    for s in sents:
        for m in LIST_RE.finditer(s.text):
            trimmed = _trim_list(m.group().split("、"))
            if trimmed is None:
                continue
            items, cut = trimmed
            start = m.start() + cut
            end = start + len("、".join(items))
            after = s.text[end:]
            label = ""
            lm = re.match(r"“([一二两三四五六七八九十][\u4e00-\u9fff]{1,3})”", after)
            if lm and CN_NUM.get(lm[1][0]) == len(items):
                label = lm[1]
            out.append(EnumList(items, label, s, (start, end)))
    return out


# ------------------------------------------------------------------ text helpers
def fullwidth(s: str) -> str:
    """New writing (stems, options, explanations) uses full-width punctuation (rubric §1)."""
    table = {",": "，", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"}
    return re.sub(r"(?<!\d)[,](?!\d)|[:;?!()]", lambda m: table[m.group()], s)


def window(text: str, start: int, end: int, lo: int = QUOTE_MIN, hi: int = QUOTE_MAX) -> tuple[int, int] | None:
    """Widen [start, end) to whole clauses of ``text`` until it holds >= lo characters (<= hi)."""
    bounds = [0] + [m.end() for m in CLAUSE_SPLIT.finditer(text)] + [len(text)]
    bounds = sorted(set(bounds))
    a = max(b for b in bounds if b <= start)
    z = min(b for b in bounds if b >= end)
    while len(squash(text[a:z])) < lo:
        prev = [b for b in bounds if b < a]
        nxt = [b for b in bounds if b > z]
        if nxt and (not prev or len(text[z:nxt[0]]) <= len(text[prev[-1]:a])):
            z = nxt[0]
        elif prev:
            a = prev[-1]
        else:
            break
    if not lo <= len(squash(text[a:z])) <= hi:
        return None
    return a, z


def balanced(q: str) -> bool:
    """Quotes and brackets open and close inside the quote (no half of a “…” term)."""
    return q.count("“") == q.count("”") and q.count("(") == q.count(")") and q.count("《") == q.count("》")


def clean_quote(q: str) -> str:
    return q.strip().rstrip("。;,；，")


def option_score(cand: str, targets: list[str]) -> float:
    """How plausible ``cand`` is as a distractor for a list: shared characters, endings, length."""
    cb = {cand[i : i + 2] for i in range(len(cand) - 1)}
    best = 0.0
    for t in targets:
        tb = {t[i : i + 2] for i in range(len(t) - 1)}
        overlap = len(cb & tb) / max(1, len(cb | tb))
        chars = len(set(cand) & set(t)) / max(1, len(set(cand) | set(t)))
        best = max(best, overlap + 0.5 * chars + (0.6 if cand[-1] == t[-1] else 0.0) + (0.3 if cand[:1] == t[:1] else 0))
    mean_len = sum(map(len, targets)) / len(targets)
    return best - 0.25 * abs(len(cand) - mean_len)


# ------------------------------------------------------------------ the generator
class Generator:
    """Builds candidate items of every type from a corpus; ``make`` picks n of them."""

    def __init__(self, chunks: Sequence[Chunk], documents: dict[str, dict], *, seed: int = 0) -> None:
        self.chunks = list(chunks)
        self.documents = documents
        self.texts = {s: (d.get("text") or "") for s, d in documents.items()}
        self.squashed = {s: squash(t) for s, t in self.texts.items()}
        self.all_norm = "".join(norm(t) for t in self.texts.values())
        self.sents = corpus_sentences(self.chunks, documents)
        self.lists = find_lists(self.sents)
        self.rng = random.Random(seed)
        self.terms = [(m[1], s) for s in self.sents for m in QUOTED_TERM_RE.finditer(s.text)]
        self.figures = [(m, s) for s in self.sents for m in FIGURE_RE.finditer(s.text)]

    # -- helpers
    def verbatim(self, source: str, quote: str) -> bool:
        return squash(quote) in self.squashed.get(source, "")

    def base(self, s: Sent, quote: str) -> dict:
        return {
            "evidence": Evidence(file=s.chunk.source, quote=quote),
            "title": s.chunk.title,
            "heading_path": list(s.chunk.heading_path),
            "fact": s.key,
        }

    def where(self, s: Sent) -> str:
        """Source of a quote for explanations: 《title》（heading）."""
        head = " › ".join(s.chunk.heading_path)
        return f"《{s.chunk.title}》" + (f"（{head}）" if head else "")

    def distractors(self, target: EnumList, k: int) -> list[tuple[str, EnumList]]:
        """Items of other lists, not in the target list or its sentence, most similar first."""
        sent_norm = norm(target.sent.text)
        own = {norm(x) for x in target.items}
        pool: dict[str, tuple[float, str, EnumList]] = {}
        for other in self.lists:
            if other.sent.key == target.sent.key:
                continue
            for x in other.items:
                nx = norm(x)
                if nx in own or nx in sent_norm or any(nx in o or o in nx for o in own):
                    continue
                sc = option_score(x, target.items) + self.rng.random() * 0.05
                if nx not in pool or pool[nx][0] < sc:
                    pool[nx] = (sc, x, other)
        ranked = sorted(pool.values(), key=lambda p: -p[0])
        picked: list[tuple[str, EnumList]] = []
        for _, x, other in ranked:
            if all(norm(x) not in norm(p) and norm(p) not in norm(x) for p, _ in picked):
                picked.append((x, other))
            if len(picked) == k:
                break
        return picked

    def list_quote(self, el: EnumList) -> tuple[str, str, str] | None:
        """(quote, frame with the list elided, suffix) for a list item."""
        text = el.sent.text
        lab_end = el.span[1] + (len(el.label) + 2 if el.label else 0)
        w = window(text, el.span[0], lab_end)
        if w is None:
            return None
        a, z = w
        if len(norm(text[a : el.span[0]] + text[el.span[1] : z])) < 6:  # too little frame: add a clause
            bounds = [0] + [m.end() for m in CLAUSE_SPLIT.finditer(text[:a])]
            a = max(b for b in bounds if b < a) if a > 0 else a
        quote = clean_quote(text[a:z])
        if not balanced(quote) or not QUOTE_MIN <= len(squash(quote)) <= QUOTE_MAX:
            return None
        if not self.verbatim(el.sent.chunk.source, quote):
            return None
        prefix = text[a : el.span[0]]
        if len(norm(prefix + text[el.span[1] : z])) < 6:
            return None
        suffix = clean_quote(text[el.span[1] : z])
        frame = fullwidth(clean_quote(f"{prefix}……{suffix}"))
        return quote, frame, suffix

    # -- choice items from enumerations
    def choice_items(self) -> Iterable[Candidate]:
        for i, el in enumerate(self.lists):
            q = self.list_quote(el)
            if q is None:
                continue
            quote, frame, _ = q
            s = el.sent
            label = f"“{el.label}”" if el.label else "文中“……”处列举"
            where = self.where(s)
            # multi: 2-3 right items + distractors up to 4 options
            n_right = min(len(el.items), 3)
            ds = self.distractors(el, 4 - n_right)
            if len(ds) == 4 - n_right:
                right = self.rng.sample(el.items, n_right)
                opts = [(x, True, None) for x in right] + [(x, False, o) for x, o in ds]
                self.rng.shuffle(opts)
                item = self.choice(
                    "multi_choice", s, quote,
                    f"{s.lead}：{frame}。下列各项中，属于{label}内容的有哪些？", opts, el,
                )
                yield Candidate(item, s.chunk.id)
            # single, alternating the positive and the negative form
            if i % 2 == 0 and len(el.items) >= 3:
                ds1 = self.distractors(el, 1)
                if ds1:
                    right = self.rng.sample(el.items, 3)
                    opts = [(x, False, None) for x in right] + [(ds1[0][0], True, ds1[0][1])]
                    self.rng.shuffle(opts)
                    item = self.choice(
                        "single_choice", s, quote,
                        f"{s.lead}：{frame}。下列哪一项不属于{label}的内容？", opts, el, negative=True,
                    )
                    yield Candidate(item, s.chunk.id)
            else:
                ds3 = self.distractors(el, 3)
                if len(ds3) == 3:
                    right = self.rng.choice(el.items)
                    opts = [(right, True, None)] + [(x, False, o) for x, o in ds3]
                    self.rng.shuffle(opts)
                    item = self.choice(
                        "single_choice", s, quote,
                        f"{s.lead}：{frame}。下列哪一项属于{label}的内容？", opts, el,
                    )
                    yield Candidate(item, s.chunk.id)

    def choice(self, kind, s: Sent, quote, stem, opts, el: EnumList, negative: bool = False) -> QuizItem:
        letters = "ABCDE"
        options = {letters[i]: x for i, (x, _, _) in enumerate(opts)}
        answer = [letters[i] for i, (_, ok, _) in enumerate(opts) if ok]
        lines = [f"原文：“{fullwidth(quote)}”。"]
        listed = "、".join(f"“{x}”" for x in el.items)
        lines.append(f"该处列举的是{listed}。")
        for i, (x, ok, other) in enumerate(opts):
            if other is not None:
                src = f"出自《{other.sent.chunk.title}》" if other.sent.chunk.source != s.chunk.source else "出自同一篇文章"
                head = " › ".join(other.sent.chunk.heading_path)
                in_list = f"“{other.label}”" if other.label else "另一处列举"
                lines.append(
                    f"{letters[i]} 项“{x}”{src}{('（' + head + '）') if head else ''}中{in_list}的内容，不属于本题所问的列表。"
                )
        if negative:
            lines.append(f"其余各项均在原文列举之中，故答案为 {answer[0]}。")
        return QuizItem(
            type=kind, stem=stem, options=options,
            answer=answer[0] if kind == "single_choice" else answer,
            explanation="".join(lines), **self.base(s, quote),
        )

    # -- fill in the blank
    def blank_items(self) -> Iterable[Candidate]:
        term_count = Counter(norm(t) for t, _ in self.terms)
        for term, s in self.terms:
            if term_count[norm(term)] > 3 or len(term) < 3:  # common slogans make ambiguous blanks
                continue
            pos = s.text.find(f"“{term}”")
            yield from self._blank(s, pos + 1, pos + 1 + len(term), term, "quoted term")
        for m, s in self.figures:
            yield from self._blank(s, m.start(1), m.end(1), m[1], "figure")
        for el in self.lists:
            k = self.rng.randrange(len(el.items))
            a = el.span[0] + sum(len(x) + 1 for x in el.items[:k])
            yield from self._blank(el.sent, a, a + len(el.items[k]), el.items[k], "list item")

    def _blank(self, s: Sent, a: int, z: int, answer: str, how: str) -> Iterable[Candidate]:
        w = window(s.text, a, z)
        if w is None:
            return
        wa, wz = w
        quote = clean_quote(s.text[wa:wz])
        if not balanced(quote) or not self.verbatim(s.chunk.source, quote):
            return
        stem_text = s.text[wa:a] + BLANK + s.text[z:wz]
        if norm(answer) in norm(stem_text):  # the answer must not be given away
            return
        stem = f"{s.lead}：{fullwidth(clean_quote(stem_text))}。"
        expl = f"原文：“{fullwidth(quote)}”。空格处应填“{answer}”。"
        if how == "figure":
            expl += "填阿拉伯数字或相应的汉字数字均可。"
        item = QuizItem(type="fill_blank", stem=stem, options=[], answer=answer, explanation=expl, **self.base(s, quote))
        yield Candidate(item, s.chunk.id)

    # -- true / false
    def judge_items(self) -> Iterable[Candidate]:
        by_unit: dict[str, list[str]] = defaultdict(list)
        for m, _ in self.figures:
            by_unit[m[3]].append(m[1])
        terms_by_len: dict[int, list[str]] = defaultdict(list)
        for t, _ in self.terms:
            terms_by_len[len(t)].append(t)
        flip = 0
        for m, s in self.figures:
            flip += 1
            w = window(s.text, m.start(), m.end(), hi=60)
            if w is None:
                continue
            wa, wz = w
            quote = clean_quote(s.text[wa:wz])
            if not balanced(quote) or not self.verbatim(s.chunk.source, quote):
                continue
            if flip % 2:  # the true statement
                yield self._judge(s, quote, quote, True, "")
                continue
            others = [v for v in by_unit[m[3]] if v != m[1] and "." not in v]
            # a figure with the same unit from elsewhere in the corpus, of a similar size
            others.sort(key=lambda v: abs(math.log((float(v) + 1) / (float(m[1]) + 1))))
            new = self.rng.choice(others[:3]) if others else str(int(float(m[1])) + 2)
            if "." in m[1] or new == m[1]:
                continue
            false_text = s.text[wa : m.start(1)] + new + s.text[m.end(1) : wz]
            why = f"原文是“{m[1]}{m[2] or ''}{m[3]}”，而不是“{new}{m[2] or ''}{m[3]}”。"
            yield self._judge(s, quote, clean_quote(false_text), False, why)
        for t, s in self.terms:
            flip += 1
            pos = s.text.find(f"“{t}”")
            w = window(s.text, pos, pos + len(t) + 2, hi=60)
            if w is None or flip % 2:
                continue
            wa, wz = w
            quote = clean_quote(s.text[wa:wz])
            if not balanced(quote) or not self.verbatim(s.chunk.source, quote):
                continue
            swaps = [
                o for o in terms_by_len[len(t)]
                if o != t and o[-1] == t[-1] and norm(o) not in norm(s.text)
            ]
            if not swaps:
                continue
            new = max(swaps, key=lambda o: option_score(o, [t]))
            false_text = s.text[wa:pos] + f"“{new}”" + s.text[pos + len(t) + 2 : wz]
            why = f"原文是“{t}”，而不是“{new}”。"
            yield self._judge(s, quote, clean_quote(false_text), False, why)

    def _judge(self, s: Sent, quote: str, statement: str, true: bool, why: str) -> Candidate:
        stem = f"{s.lead}：{fullwidth(statement)}。"
        if not true and norm(statement) in self.all_norm:  # the "false" version exists somewhere
            true = True
        expl = f"原文：“{fullwidth(quote)}”。" + ("该陈述与原文一致。" if true else why)
        item = QuizItem(
            type="true_false", stem=stem, options=list(JUDGE_OPTIONS), answer="正确" if true else "错误",
            explanation=expl, **self.base(s, quote),
        )
        return Candidate(item, s.chunk.id)

    def candidates(self) -> dict[str, list[Candidate]]:
        out: dict[str, list[Candidate]] = {t: [] for t in TYPES}
        for gen in (self.choice_items, self.blank_items, self.judge_items):
            for c in gen():
                out[c.item.type].append(c)
        return out


def parse_types(types: str | Iterable[str] | None) -> list[str]:
    """"single,multi,judge,blank" (or full names, or 单选/多选/判断/填空) -> canonical type names."""
    if types is None:
        return list(TYPES)
    raw = types.split(",") if isinstance(types, str) else list(types)
    out = []
    for t in raw:
        t = t.strip()
        if not t:
            continue
        if t not in TYPE_ALIASES:
            raise QuizError(
                f"未知题型：{t}（可选 single、multi、judge、blank）", f"unknown quiz type {t!r}"
            )
        if TYPE_ALIASES[t] not in out:
            out.append(TYPE_ALIASES[t])
    if not out:
        raise QuizError("至少需要一种题型", "no quiz type given")
    return out


def generate_quiz(
    chunks: Sequence[Chunk],
    documents: dict[str, dict],
    *,
    n: int = 10,
    types: str | Iterable[str] | None = None,
    focus: Sequence[str] | None = None,
    exclude_stems: set[str] | None = None,
    exclude_facts: set[str] | None = None,
    seed: int = 0,
) -> QuizResult:
    """Pick n validated items from the corpus.

    Args:
        chunks, documents: the index's chunks and ``{source: {"text", "meta"}}``; every chunk of
            the corpus is used for distractors, whatever the focus.
        focus: chunk ids to draw items from, best first (topic hits, one article); None = all.
        exclude_stems, exclude_facts: stem keys and fact keys already in the question bank.

    Types are interleaved in the given order; items from different facts and, for a whole-corpus
    quiz, spread over the articles. Fewer than n items come back when the corpus has no more.
    """
    if n < 1:
        raise QuizError("题目数量至少为 1", f"n={n}")
    kinds = parse_types(types)
    t0 = time.perf_counter()
    gen = Generator(chunks, documents, seed=seed)
    cands = gen.candidates()
    stats: dict = {
        "requested": n,
        "types": kinds,
        "candidates": {k: len(cands[k]) for k in kinds},
        "generated": {k: 0 for k in kinds},
        "dropped": Counter(),
    }
    rank = {cid: i for i, cid in enumerate(focus)} if focus is not None else None
    exclude_stems = exclude_stems or set()
    exclude_facts = exclude_facts or set()
    queues: dict[str, list[Candidate]] = {}
    for k in kinds:
        pool = cands[k]
        if rank is not None:
            pool = [c for c in pool if c.chunk_id in rank]
            gen.rng.shuffle(pool)
            pool.sort(key=lambda c: rank[c.chunk_id])  # stable: shuffled within a chunk
        else:
            pool = spread(pool, gen.rng)
        queues[k] = pool
    items: list[QuizItem] = []
    seen_stems: set[str] = set()
    seen_facts: set[str] = set()
    used_chunks: Counter = Counter()
    while len(items) < n and any(queues.values()):
        for k in kinds:
            if len(items) >= n:
                break
            q = queues[k]
            while q:
                c = q.pop(0)
                it = c.item
                if it.fact in seen_facts:
                    stats["dropped"]["same fact as another item"] += 1
                    continue
                if it.stem_key in exclude_stems or it.fact in exclude_facts:
                    stats["dropped"]["already in the question bank"] += 1
                    continue
                problems = validate_item(it, gen.texts, seen_stems=seen_stems)
                if problems:
                    for p in problems:
                        stats["dropped"][p] += 1
                    continue
                items.append(it)
                seen_stems.add(it.stem_key)
                seen_facts.add(it.fact)
                used_chunks[c.chunk_id] += 1
                stats["generated"][k] += 1
                break
    stats["dropped"] = dict(stats["dropped"])
    stats["total"] = len(items)
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    logger.info("quiz: %d items (%s) in %.2f s", len(items), stats["generated"], stats["seconds"])
    return QuizResult(items, stats)


def spread(pool: list[Candidate], rng: random.Random) -> list[Candidate]:
    """Shuffle, then interleave by article so a whole-corpus quiz covers every article."""
    by_src: dict[str, list[Candidate]] = defaultdict(list)
    shuffled = pool[:]
    rng.shuffle(shuffled)
    for c in shuffled:
        by_src[c.item.evidence.file].append(c)
    out = []
    queues = [by_src[s] for s in sorted(by_src)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def format_stats(stats: dict) -> str:
    lines = [f"共生成 {stats.get('total', 0)} 题（请求 {stats.get('requested', 0)} 题），用时 {stats.get('seconds', 0)} 秒"]
    for k, v in stats.get("generated", {}).items():
        cand = stats.get("candidates", {}).get(k, 0)
        lines.append(f"  {TYPE_LABELS.get(k, k)}：生成 {v}（候选 {cand}）")
    dropped = stats.get("dropped") or {}
    lines.append(f"  丢弃 {sum(dropped.values())} 个候选：")
    for why, count in sorted(dropped.items(), key=lambda p: -p[1]):
        lines.append(f"    {count:4d}  {why}")
    return "\n".join(lines)


# ------------------------------------------------------------------ entry point for CLI and web tab
def make_quiz(
    service,
    *,
    topic: str | None = None,
    article: str | None = None,
    n: int = 10,
    types: str | Iterable[str] | None = TYPES,
    exclude_bank: bool = True,
    bank=None,
    seed: int = 0,
) -> QuizResult:
    """Generate a quiz through a ``RagService``: by topic (retrieval), by article, or whole corpus.

    ``bank`` is a ``QuestionBank``; by default the one under ``settings.data_dir``. Items already
    in it are skipped when ``exclude_bank``. Nothing is written to the bank here.
    """
    from .quiz_bank import QuestionBank

    if n < 1:
        raise QuizError("题目数量至少为 1", f"n={n}")
    kinds = parse_types(types)
    idx, retriever, _ = service.current()
    documents = idx.documents
    focus: list[str] | None = None
    if article:
        src = resolve_article(article, documents)
        focus = [c.id for c in idx.chunks if c.source == src]
    if topic and topic.strip():
        hits = retriever.search(topic.strip(), max(12, 2 * n))
        ids = [h.chunk.id for h in hits if focus is None or h.chunk.id in focus]
        if not ids:
            raise QuizError(f"没有找到与“{topic}”相关的段落", f"no passage for topic {topic!r}")
        focus = ids
    if exclude_bank:
        bank = bank or QuestionBank.for_settings(service.settings)
        stems, facts = bank.keys()
    else:
        stems, facts = set(), set()
    result = generate_quiz(
        idx.chunks, documents, n=n, types=kinds, focus=focus, exclude_stems=stems, exclude_facts=facts, seed=seed
    )
    result.stats["topic"] = topic or ""
    result.stats["article"] = article or ""
    return result


def resolve_article(article: str, documents: dict[str, dict]) -> str:
    """A file name, its stem or its number prefix ("000") -> the source name in the index."""
    a = article.strip()
    if a in documents:
        return a
    matches = [s for s in documents if s.startswith(a) or s.split(".")[0] == a]
    if len(matches) == 1:
        return matches[0]
    raise QuizError(
        f"找不到文章：{article}（可选：{'、'.join(sorted(documents))}）", f"unknown article {article!r}"
    )


# ------------------------------------------------------------------ LLM path
LLM_QUIZ_PROMPT = """你是党建培训出题专家。请只根据下面这段原文出一道{type_label}，不得使用原文以外的知识。
只输出一个 JSON 对象，不要输出其他文字。字段：
type（"{type}"），stem（题干，简体中文；填空题用 ______ 标出空位），
options（单选/多选为 {{"A": "...", "B": "...", "C": "...", "D": "..."}}；判断为 ["正确","错误"]；填空为 []），
answer（单选 "B"；多选按字母排序的列表 ["A","C"]；判断 "正确" 或 "错误"；填空为原文中的词），
explanation（解析：引用原文，并逐一说明每个干扰项错在哪里），
evidence（{{"file": "{file}", "quote": 原文中连续的 20 到 80 个字，逐字照抄}}）。

文章：《{title}》 {heading}
原文（文件 {file}）：
{passage}
"""
LLM_RETRY_PROMPT = "上一次输出不合格：{problems}。请改正后重新只输出一个 JSON 对象。"


def parse_llm_item(reply: str) -> QuizItem:
    """The JSON object in a reply (a ```json fence is allowed) -> QuizItem; ValueError if not."""
    text = reply.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"reply is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError("reply is not a JSON object")
    try:
        return QuizItem.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"item does not fit the schema: {e.errors()[0].get('msg')}") from e


def generate_with_llm(
    chat_model,
    hits: Sequence,
    corpus_texts: dict[str, str],
    *,
    types: str | Iterable[str] | None = None,
    n: int | None = None,
    seen_stems: set[str] | None = None,
) -> QuizResult:
    """Ask a langchain chat model for one item per passage; keep only items that validate.

    Each reply is parsed and checked with ``validate_item`` (quote verbatim in the cited file,
    answer among the options, no distractor in the evidence, no duplicate stem). A failing item is
    asked for once more with its problems; if it fails again it is dropped and reported in
    ``stats["dropped_items"]``. Types rotate over the passages.
    """
    from langchain_core.messages import AIMessage, HumanMessage

    kinds = parse_types(types)
    t0 = time.perf_counter()
    seen = set(seen_stems or ())
    items: list[QuizItem] = []
    stats: dict = {"generated": Counter(), "dropped": Counter(), "dropped_items": [], "retries": 0}
    for i, hit in enumerate(hits[: n or len(hits)]):
        chunk = getattr(hit, "chunk", hit)
        kind = kinds[i % len(kinds)]
        prompt = LLM_QUIZ_PROMPT.format(
            type_label=TYPE_LABELS[kind], type=kind, file=chunk.source, title=chunk.title,
            heading=" › ".join(chunk.heading_path), passage=chunk.text,
        )
        messages: list = [HumanMessage(prompt)]
        problems: list[str] = []
        for attempt in range(2):
            reply = chat_model.invoke(messages).content
            try:
                item = parse_llm_item(str(reply))
                item.title = item.title or chunk.title
                item.heading_path = item.heading_path or list(chunk.heading_path)
                item.fact = item.fact or f"{item.evidence.file}:{norm(item.evidence.quote)}"
                problems = validate_item(item, corpus_texts, seen_stems=seen)
            except ValueError as e:
                problems = [str(e)]
            if not problems:
                items.append(item)
                seen.add(item.stem_key)
                stats["generated"][item.type] += 1
                break
            if attempt == 0:
                stats["retries"] += 1
                messages += [AIMessage(str(reply)), HumanMessage(LLM_RETRY_PROMPT.format(problems="；".join(problems)))]
        else:
            for p in problems:
                stats["dropped"][p] += 1
            stats["dropped_items"].append({"chunk_id": chunk.id, "problems": problems})
            logger.info("LLM quiz item for chunk %s dropped: %s", chunk.id, problems)
    stats["generated"] = dict(stats["generated"])
    stats["dropped"] = dict(stats["dropped"])
    stats["total"] = len(items)
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    return QuizResult(items, stats)


def corpus_texts_of(index) -> dict[str, str]:
    """``{file: full text}`` of a loaded index, for ``validate_item``."""
    return {s: (d.get("text") or "") for s, d in index.documents.items()}


__all__ = [
    "QuizItem", "Evidence", "QuizResult", "validate_item", "generate_quiz", "make_quiz",
    "generate_with_llm", "parse_types", "stem_key", "format_stats", "corpus_texts_of", "TYPES",
]
