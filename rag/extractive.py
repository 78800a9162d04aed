"""The embedded answerer: pick the sentences of the retrieved passages that answer the question.

No language model: every sentence of an answer is a verbatim sentence (or clause run) of a cited
passage, followed by its marker [n]. The evidence gate decides first whether the passages answer
the question at all; when they do not, the answer is a refusal that still lists the closest
passages as related material.

Sentence score (all parts in [0, 1]):
- coverage: IDF-weighted share of the question's terms found in the sentence (terms found only in
  the passage's heading path, e.g. the speaker's name, count half);
- bigram overlap of the question's characters with the sentence (paraphrases share few words
  but some characters);
- answer type: a "多少/几" question wants a number, "哪一年/什么时候" a date, "哪些/哪几" an
  enumeration, "叫什么/叫法" a name in quotes; a sentence without it scores lower, and no such
  sentence at all means "refuse" (names excepted: they only rank);
- "最难/最大……" also matches the root with 在/点 ("难就难在", "这个难点") at a lower weight;
- the passage's retrieval rank and cosine similarity.

Answer types beyond those: "谁推出的" wants a sentence that says who launched it, "成效" one that
reports figures, "多长时间……一次" a frequency, "多少钱" an amount in 元; a count must sit by its quoted
subject (in the sentence, the one before it or its heading; for a follow-up, the subject of the
question it points back to). Sentences carry the inline heading they follow ("一是……。"), also from
the passages before theirs. Lists come from numbered sub-headings (of the parent section or of one
above it), from the siblings of a numbered sentence, or from the items that follow a short lead-in in
sequence ("建立完善三项……机制。一是……二是……").

What it does not do: paraphrase, summarise, or join facts into new sentences (the LLM mode does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .ingest.chunking import split_sentences
from .config import Settings
from .glossary import chinese_keywords
from .names import PinyinNames
from .places import PlaceResolver, place_core, place_mentions, places_in
from .schema import Answer, Chunk, Citation, Hit
from .index.sentvec import SentenceVectorCache
from .answer.learned import REFUSAL, LearnedAnswering
from .answer.query import (  # noqa: F401 - re-exported: the question's patterns live with the Query
    AGENT_Q, CLASSIFIER_Q, CN_NUM, FREQ_Q, LIST_Q, MONEY_Q, NAME_GATE_Q, NAME_Q, NUMBER_Q, QUOTED, RESULT_Q, TIME_Q,
    WHO_Q, expected_count, question_classifier, question_terms,
)
from .answer.ranker import Model, default_model, load_model
from .text import NUMBER_RE, STOPWORDS, YEAR_RE, cjk_bigrams, is_mostly_latin, norm, tokenize

CLAUSE_SEP = re.compile(r"(?<=[,，;；:：])")
ENUMERATOR = re.compile(r"^(?:[（(][一二三四五六七八九十]+[)）]|[一二三四五六七八九十]+[、是]|第[一二三四五六七八九十]+[,，、]|首先|其次)")
PLACE_SUFFIX = re.compile(r"(?:省|市|县|区|镇|乡|村|州|盟|旗|岛)$")
ORG_NAME = re.compile(r"[\u4e00-\u9fff]{2,12}(?:处|室|中心|平台|系统|工程|品牌|讲堂|讲坛|专栏|栏目|频道|App|APP|小程序|公众号|云)(?![\u4e00-\u9fff])")
QUOTED_NAME = re.compile(r"[“\"「『]([^”\"」』]{2,16})[”\"」』]")
ENUM_MARK = re.compile(r"[一二三四五六七八九十]是|、|（[一二三四五六七八九十]）|\([一二三四五六七八九十]\)|第[一二三四五六七八九十]|《")
SENT_MAX = 120  # longer sentences are cut to their best clause run
SENT_ENDS = ("。", "！", "？", "；", "!", "?", ";", "”", "…")


@dataclass(eq=False)
class Candidate:
    text: str
    hit_rank: int
    hit: Hit
    prev: str = ""  # the sentence before it in the passage (context for short lead-ins)
    pos: int = 0  # sentence position in its passage
    coverage: float = 0.0
    score: float = 0.0
    covered: frozenset = frozenset()
    lead: str = ""  # the inline heading it follows ("一是创新实施“党建链动”行动。"): its topic
    opens_list: bool = False  # the next sentence of its passage is item 一 of a list
    kind: str = "sent"  # "sent" | "label" (a speaker label or by-line) | "run" (list items)
    items: list = field(default_factory=list)  # a run's members, in order


def _enum_items(text: str) -> int:
    """Rough number of enumerated items in a text (“A”“B”“C” side by side are items too)."""
    quoted_run = text.count("”“") + text.count('""')
    return max(
        text.count("、") + 1 if "、" in text else 0,
        len(ENUM_MARK.findall(text)),
        quoted_run + 1 if quoted_run else 0,
    )


def _listed_only(text: str, term: str) -> bool:
    """Every occurrence of ``term`` in ``text`` is an item of a 、-separated list."""
    if len(term) < 2:
        return False
    at, found = text.find(term), False
    while at >= 0:
        before = text[:at].rstrip("“\"「『")[-1:]
        after = text[at + len(term) :].lstrip("”\"」』")[:1]
        if before != "、" and after != "、":
            return False
        found = True
        at = text.find(term, at + 1)
    return found


def is_inline_heading(sentence: str) -> bool:
    """"一是创新实施“党建链动”行动。": a short numbered item that only names its topic."""
    return bool(ENUMERATOR.match(sentence)) and len(norm(sentence)) <= 20 and not re.search(r"[,，;；:：]", sentence)


def _restates(heading: str, terms) -> bool:
    """Is an inline heading mostly the question's own words ("一是创新实施“党建链动”行动。" for
    "党建链动行动取得了什么效果？")? Then it tells the asker nothing."""
    body = norm(ENUMERATOR.sub("", heading, count=1))
    if not body:
        return True
    hit = [False] * len(body)
    for t in terms:
        tn = norm(t)
        for m in re.finditer(re.escape(tn), body) if len(tn) >= 2 else ():
            hit[m.start() : m.end()] = [True] * (m.end() - m.start())
    return sum(hit) >= 0.5 * len(body)


def _is_question(sentence: str) -> bool:
    return sentence.rstrip("”’」』)）").endswith(("?", "？"))




def has_count(text: str, classifier: str | None, question: str = "") -> bool:
    """A number, followed by the measure word the question asks about when it names one; a
    number the question itself states ("4.1亿元资金里……各占多少？") does not answer it."""
    given = set(re.findall(r"\d+(?:\.\d+)?", question))
    if classifier:
        unit = r"[万亿]?(?:多|余)?元" if classifier == "元" else classifier
        found = re.finditer(rf"(?:\d+(?:\.\d+)?|[一二两三四五六七八九十百千万]+)(?:多|余|几)?{unit}", text)
    else:
        found = NUMBER_RE.finditer(text)
    return any(
        (re.sub(r"[^\d.]", "", m.group(0)) not in given or not re.search(r"\d", m.group(0)))
        and not re.fullmatch(r"一\D?", m.group(0))  # "今后一个时期", "一项工作": an article, not a count
        for m in found
    )


def split_subquestions(question: str) -> list[str]:
    """Split "…？…？", "… and how many …" and "A和B两省…" questions into parts answered one by one."""
    parts = [p.strip() for p in re.split(r"[？?；;]\s*", question) if len(norm(p)) >= 4]
    if len(parts) <= 1 and is_mostly_latin(question):
        parts = [
            p.strip()
            for p in re.split(r",? and (?=(?:on|in|at|for|from|to) (?:what|which)|how|what|which|when|where|who)", question, flags=re.I)
            if p.strip()
        ]
    if len(parts) <= 1 and not is_mostly_latin(question):
        places = _coordinated_places(question)
        if len(places) >= 2:
            parts = []
            for p in places:
                others = [o for o in places if o != p]
                q = question
                for o in others:
                    # "山东省政协和广州市政协各自……" -> "山东省政协各自……": the other place with its office
                    o_full = rf"{re.escape(o)}(?:{PLACE_OFFICE})?"
                    q2 = re.sub(rf"[和与及、]{o_full}", "", q, count=1)
                    q = q2 if q2 != q else re.sub(rf"{o_full}[和与及、]?", "", q, count=1)
                parts.append(p + q.replace(p, "", 1) if p not in q else q)
    return parts or [question]


def _coordinated_places(question: str) -> list[str]:
    """Place names joined by 和/与/及/、 ("山东和湖南两省政协…")."""
    import rjieba

    toks = rjieba.tag(question)
    places = []
    for i, (w, tag) in enumerate(toks):
        if tag == "ns":
            nxt = toks[i + 1][0] if i + 1 < len(toks) else ""
            prv = toks[i - 1][0] if i > 0 else ""
            if nxt in {"和", "与", "及", "、"} or prv in {"和", "与", "及", "、"}:
                places.append(w)
    if len(places) < 2:  # "山东省政协和广州市政协": known places whose offices are joined
        found = [(m.start(), m.end(), m.group(0)) for m in place_mentions(question)]
        for (a1, z1, p1), (a2, z2, p2) in zip(found, found[1:]):
            if re.fullmatch(rf"(?:{PLACE_OFFICE})?[和与及、]", question[z1:a2]):
                known = {place_core(x) for x in places}
                places += [p for p in (p1, p2) if place_core(p) not in known]
    if len(places) < 2:  # places no gazetteer knows (a new article's county): "绿水县政协和青岩县政协"
        m = NAMED_PAIR.search(question)
        if m:
            places = [m.group(1), m.group(2)]
    return places if len(places) >= 2 else []


# two names that end like places, each with its office, joined by 和/与/及/、
NAMED_PAIR = re.compile(
    r"([\u4e00-\u9fff]{2,5}?[省市县区州])(?:政协机关|政协|省直机关|市直机关|机关|政府|党委|人大|委员会)?[和与及、]"
    r"([\u4e00-\u9fff]{2,5}?[省市县区州])(?:政协机关|政协|省直机关|市直机关|机关|政府|党委|人大|委员会)"
)


PLACE_OFFICE = r"(?:省|市)?(?:政协机关|政协|省直机关|市直机关|机关|政府|党委|人大)?"


# words that name the kind of answer wanted ("取得了哪些成效？"): a sentence that repeats one
# ("服务成效“四张清单”") adds nothing to the answer for it
ANSWER_KIND = frozenset("成效 成果 效果 成绩 做法 举措 措施 经验 作用 意义 特点 内容 办法 方法 要求 情况 目的 目标 亮点 变化".split())
RESULT_MARK = re.compile(r"截至|累计|共[计有]?[\u4e00-\u9fff]{0,3}\d|已经?[\u4e00-\u9fff]{0,4}\d|先后|实现了|达到|被评为|荣获|获得|收到了|取得了")
# "(山东省政协供图)", "（记者 王某 摄）": a photo credit, not a sentence
CREDIT = re.compile(r"[(（][^()（）]{0,30}(?:供图|摄|图片|来源)[^()（）]{0,10}[)）]")
# a place named as the owner of an office: "浙江省政协", "浙江省直机关", "杭州市委"
OWNER_PLACE = re.compile(r"([\u4e00-\u9fff]{2,3}?)(?:省|市|自治区)?(?:政协|省直|市直|机关|政府|党委|省委|市委|人大|委员会)")
FIRST_ITEM = re.compile(r"^(?:[（(]一[)）]|一是|一、|第一[,，、]|首先)")
FREQ = re.compile(r"每(?:[一二两三四五六七八九十\d]+)?(?:个)?(?:年|季度|季|月|周|星期|天|日|半年)|定期|常态化")
CLAUSE_SPLIT = re.compile(r"[,，;；、。:：!！?？]")
AGENT_VERB = re.compile(r"推出|主办|承办|发起|打造|创办|创建|牵头|开设|搭建|开发|联合|联手|建立|举办|组建")
SPEAKER_LABEL = re.compile(r"(?:[\u4e00-\u9fff·（）()、]{2,30}\s+)?[\u4e00-\u9fff]{2,4}")
NOT_SPEAKERS = {"编者按", "引言", "前言", "结语", "后记", "附件", "导语", "按语"}


def speaker_of(chunk: Chunk) -> str:
    """The speaker or interviewee a passage is attributed to ("湖南省政协秘书长 卿渐伟"), or ""."""
    for h in reversed(chunk.heading_path):
        if h.endswith("提问") or h in NOT_SPEAKERS or ENUMERATOR.match(h):
            continue
        if SPEAKER_LABEL.fullmatch(h):
            return h
    return ""


class ExtractiveAnswerer(LearnedAnswering):
    """Compose a cited answer from retrieved hits without an LLM."""

    def __init__(
        self, settings: Settings, idf, embed_query=None, embed_passages=None, chunks=None, sentence_cache=None, model=None
    ) -> None:
        self.settings = settings
        self.model: Model = model or load_model() or default_model()
        self.idf = idf  # term -> IDF from the keyword index
        self.embed_query = embed_query  # for weak lexical matches and other languages
        self.embed_passages = embed_passages
        self.chunks = chunks or []  # the index's chunks, to complete enumerations
        if sentence_cache is None and embed_passages is not None:
            sentence_cache = SentenceVectorCache(embed_passages)  # in memory only
        self.sentence_cache = sentence_cache
        self.places = PlaceResolver(self.chunks)
        self._names: PinyinNames | None = None  # built on the first English question
        self._sections: dict | None = None
        self._order: tuple[dict[str, Chunk], dict[str, Chunk]] | None = None
        self._known: frozenset[str] | None = None

    # ------------------------------------------------------------ candidates
    def candidates(self, hits: list[Hit]) -> list[Candidate]:
        out, seen = [], set()
        for r, h in enumerate(hits[: self.settings.answer_passages]):
            prev, pos, lead = "", 0, self.lead_before(h.chunk)
            headings = {norm(x) for x in h.chunk.heading_path}
            for a, z in split_sentences(h.chunk.text):
                # a line break in a chunk is a block boundary: a heading line is context, not a sentence
                for line in h.chunk.text[a:z].split("\n"):
                    s = line.strip()
                    key = norm(s)
                    if not key:
                        continue
                    heading = key in headings or (ENUMERATOR.match(s) and not s.endswith(SENT_ENDS)) or CREDIT.fullmatch(s)
                    if ENUMERATOR.match(s):
                        lead = ""  # the next item starts: the old topic ends
                    if out and out[-1].hit is h and out[-1].pos == pos - 1 and FIRST_ITEM.match(s):
                        out[-1].opens_list = True
                    if not heading and len(key) >= 6 and key not in seen:
                        seen.add(key)
                        out.append(Candidate(s, r, h, prev=prev, pos=pos, lead=lead))
                    if heading or is_inline_heading(s):
                        lead = s
                    prev, pos = s, pos + 1
        return out

    def lead_before(self, chunk: Chunk) -> str:
        """The inline heading ("一是……。") still open where ``chunk`` starts, from the passages
        before it in the same section (a passage may start in the middle of an item)."""
        before, _ = self._neighbours()
        boundary, cur = chunk.start, chunk
        for _ in range(3):  # an item rarely runs longer than a few passages
            prev = before.get(cur.id)
            if prev is None or prev.heading_path != chunk.heading_path:
                return ""
            items = [
                line.strip()
                for a, z in split_sentences(prev.text)
                if prev.start + a < boundary  # what overlaps this passage, it reads itself
                for line in prev.text[a:z].split("\n")
            ]
            for s in reversed(items):
                if ENUMERATOR.match(s):
                    return s if is_inline_heading(s) else ""
            boundary, cur = prev.start, prev
        return ""

    def terms_of(self, question: str) -> dict[str, float]:
        """Weighted terms to look for in sentences; an English question's are its Chinese keywords."""
        if is_mostly_latin(question):
            if self._names is None:
                self._names = PinyinNames(self.chunks)
            keywords = [chinese_keywords(question, alternatives=False), *self._names.in_english(question)]
            return question_terms(" ".join(keywords), self.idf)
        return question_terms(question, self.idf)

    def sentence_vectors(self, texts: list[str]) -> np.ndarray:
        """Passage vectors of sentences (cached; see rag/index/sentvec.py)."""
        return self.sentence_cache.vectors(texts)

    def sentences_with_chunks(self) -> list[tuple[str, int]]:
        """(sentence, chunk index) for every sentence the answerer may read, as ``candidates`` cuts
        them (for the retriever's sentence list and the warm-up)."""
        out = []
        for i, ch in enumerate(self.chunks):
            for a, z in split_sentences(ch.text):
                whole = ch.text[a:z].strip()
                pieces = [whole] + ([ln.strip() for ln in whole.split("\n")] if "\n" in whole else [])
                for s in pieces:  # a line break is a block boundary: candidates take its lines
                    if len(norm(s)) >= 6:
                        out.append((s, i))
        return out

    # ------------------------------------------------------------ clauses
    def trim(self, text: str, question: str) -> str:
        """Cut a long sentence to the run of clauses that covers the question best."""
        if len(text) <= SENT_MAX:
            return text
        clauses = [c for c in CLAUSE_SEP.split(text) if c]
        terms = self.terms_of(question)  # an English question's are its Chinese keywords
        want_num = bool(NUMBER_Q.search(question))
        want_time = bool(TIME_Q.search(question))
        want_list = bool(LIST_Q.search(question))
        best, best_score = text[:SENT_MAX], -1.0
        for i in range(len(clauses)):
            run = ""
            for j in range(i, len(clauses)):
                run += clauses[j]
                if len(run) > SENT_MAX:
                    break
                rn = norm(run).lower()
                sc = sum(w for t, w in terms.items() if norm(t).lower() in rn)
                if want_num and NUMBER_RE.search(run):
                    sc += 0.5
                if want_time and YEAR_RE.search(run):
                    sc += 0.5
                if want_list:  # the items asked for: keep the clauses that name them
                    sc += 0.2 * len(QUOTED_NAME.findall(run)) + 0.1 * run.count("、")
                sc -= 0.001 * len(run)
                if sc > best_score:
                    best, best_score = run, sc
        best = best.rstrip(",，;；:：")
        return best if best.endswith(("。", "!", "?", "！", "？", "”")) else best + "……"

    # ------------------------------------------------------------ the answer (rag/answer/learned.py)
    def compose(self, question: str, chosen: list[Candidate], hits: list[Hit], evidence: float) -> Answer:
        """Number citations by passage in order of first use; every sentence ends with its marker."""
        citations: list[Citation] = []
        by_chunk: dict[str, int] = {}
        pieces = []
        # "……是谁？": the person is often only in the heading ("山西省政协秘书长 张岐云") while
        # the passage says "我们"; name each speaker before their sentence, from its own heading
        who_q, named = bool(WHO_Q.search(question)) and not AGENT_Q.search(question), set()
        for c in chosen:
            if who_q:
                who = speaker_of(c.hit.chunk)
                if who and who not in named and who.split()[-1] not in c.text:
                    named.add(who)
                    pieces.append(f"{who}：")
            cid = c.hit.chunk.id
            if cid not in by_chunk:
                by_chunk[cid] = len(citations) + 1
                citations.append(Citation(n=by_chunk[cid], chunk=c.hit.chunk, quote=c.text, score=c.score))
            else:
                i = by_chunk[cid] - 1
                old = citations[i]
                citations[i] = Citation(n=old.n, chunk=old.chunk, quote=old.quote + c.text, score=old.score)
            pieces.append(f"{self.trim(c.text, question)}[{by_chunk[cid]}]")
        return Answer(question=question, text="".join(pieces), refused=False, citations=citations, hits=hits, evidence=evidence)

    def enumeration(self, top: Candidate, question: str, force: bool = False) -> list[Candidate]:
        """For a list question answered by "（一）…"/"一是…", the sibling items that follow it
        (``force``: whatever the question's wording)."""
        if (not force and not LIST_Q.search(question)) or _enum_items(top.text) >= 3:
            return []
        if not ENUMERATOR.match(top.text):
            return self.announced_items(top)
        want = expected_count(question) or 6
        parent = top.hit.chunk.heading_path[:-1] if top.text.startswith(("(", "（")) else top.hit.chunk.heading_path
        out: list[Candidate] = []
        # siblings in the same passage first, then in passages of the same parent section
        pool = []
        for a, z in split_sentences(top.hit.chunk.text):
            pool.append((top.hit, top.hit.chunk.text[a:z].strip()))
        for ch in self.chunks:
            if ch.source == top.hit.chunk.source and ch.id != top.hit.chunk.id and ch.heading_path[: len(parent)] == parent:
                first = split_sentences(ch.text)
                if first:
                    a, z = first[0]
                    pool.append((Hit(chunk=ch, score=0.0), ch.text[a:z].strip()))
        kind = top.text[:1] if top.text[:1] in "(（" else ("是" if re.match(r"^[一二三四五六七八九十]+是", top.text) else "、")
        seen = {norm(top.text)}
        for hit, s in pool:
            if not ENUMERATOR.match(s) or norm(s) in seen:
                continue
            s_kind = s[:1] if s[:1] in "(（" else ("是" if re.match(r"^[一二三四五六七八九十]+是", s) else "、")
            if s_kind != kind or len(s) > 60:
                continue
            seen.add(norm(s))
            out.append(Candidate(s, top.hit_rank, hit))
            if len(out) + 1 >= want:
                break
        total = len(top.text) + sum(len(c.text) for c in out)
        return out if out and total <= self.settings.max_answer_chars * 1.3 else []

    def announced_items(self, top: Candidate) -> list[Candidate]:
        """"建立完善三项统筹协调机制。一是……。（细节）二是……三是……": the numbered items that
        follow a short lead-in sentence at once, in sequence (一, 二, 三 …), from its passage or the
        next, without the details under them. The lead-in's own count ("两大主题") need not be the
        items'; the sequence decides."""
        if len(top.text) > 60:
            return []
        chunk = top.hit.chunk
        at = chunk.text.find(top.text)
        if at < 0:
            return []
        texts = [(chunk, chunk.text[at + len(top.text):])]
        nxt = self.next_chunk(chunk)
        if nxt is not None and nxt.heading_path == chunk.heading_path:
            texts.append((nxt, nxt.text[max(0, chunk.end - nxt.start):]))
        numerals = "一二三四五六七八九十"
        out: list[Candidate] = []
        form = None
        for ch, s in ((ch, text[a:z].strip()) for ch, text in texts for a, z in split_sentences(text)):
            if len(out) == len(numerals):
                break
            want = numerals[len(out)]
            m = re.match(rf"^(?:[（(]{want}[)）]|{want}是|{want}、|第{want}[,，、])", s)
            if m is None:
                if not out:
                    return []  # the items must follow the lead-in at once
                if ENUMERATOR.match(s) or "\n" in s:
                    break  # another list or a heading: the sequence has ended
                continue  # details under the last item
            shape = re.sub(r"[一二三四五六七八九十]", "N", s[: m.end()])
            if form is None:
                form = shape
            elif shape != form:
                break
            out.append(Candidate(s if len(s) <= SENT_MAX else self.trim(s, s), top.hit_rank, Hit(chunk=ch, score=0.0)))
        if len(out) < 2:
            return []
        total = len(top.text) + sum(len(c.text) for c in out)
        return out if total <= self.settings.max_answer_chars * 1.3 else []

    def sentence_before(self, chunk: Chunk) -> str:
        """The last sentence before ``chunk`` starts, from the passage before it in its section."""
        prev = self._neighbours()[0].get(chunk.id)
        if prev is None or prev.heading_path != chunk.heading_path:
            return ""
        before = [prev.text[a:z].strip() for a, z in split_sentences(prev.text) if prev.start + z <= chunk.start]
        return before[-1] if before else ""

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        return self._neighbours()[1].get(chunk.id)

    def _neighbours(self) -> tuple[dict[str, Chunk], dict[str, Chunk]]:
        """(chunk id -> the passage before it, chunk id -> the passage after it) in each article."""
        if self._order is None:
            order = sorted(self.chunks, key=lambda c: (c.source, c.start))
            pairs = [(a, b) for a, b in zip(order, order[1:]) if a.source == b.source]
            self._order = ({b.id: a for a, b in pairs}, {a.id: b for a, b in pairs})
        return self._order

    def sections(self) -> dict[tuple[str, tuple[str, ...]], dict[str, Chunk]]:
        """(source, parent heading path) -> {child heading: first passage of that child}, in order."""
        if self._sections is None:
            out: dict[tuple[str, tuple[str, ...]], dict[str, Chunk]] = {}
            for ch in self.chunks:
                path = ch.heading_path
                for depth in range(1, len(path)):
                    out.setdefault((ch.source, path[:depth]), {}).setdefault(path[depth], ch)
            self._sections = out
        return self._sections

    def heading_list(self, question: str, hits: list[Hit]) -> tuple[list[Candidate], float]:
        """A list question about a section whose items are its numbered sub-headings.

        "“三个表率”分别是哪些？" is answered by the sub-headings "（一）在助力脱贫攻坚上当表率" … of
        the section headed "…在“三个表率”中充分彰显": the items are the headings, not a sentence.
        Triggers when a retrieved passage's parent heading carries the question's quoted term
        (or most of its terms) and has two or more numbered children (as many as the question
        names, when it names a number). Returns the children (each cited from the first passage
        of its section) and a score, or ([], 0).
        """
        if not (LIST_Q.search(question) or expected_count(question)) or is_mostly_latin(question):
            return [], 0.0
        want = expected_count(question)
        quoted = [norm(q) for q in QUOTED.findall(question)]
        terms = question_terms(question, self.idf)
        total = sum(terms.values()) or 1.0
        sections = self.sections()
        # parents to try: those of the retrieved passages, then any section whose heading
        # carries the question's quoted term ("“三个强化”") even when retrieval missed it
        parents: list[tuple[int, tuple[str, tuple[str, ...]]]] = []
        for rank, h in enumerate(hits[: self.settings.answer_passages]):
            path = h.chunk.heading_path
            parents.extend((rank, (h.chunk.source, path[:depth])) for depth in range(1, len(path)))
        if quoted:
            asked = set(places_in(question))
            for key in sections:
                if any(q and q.lower() in norm(h).lower() for q in quoted for h in key[1]):
                    first = next(iter(sections[key].values()))
                    where = self.places.of(first)
                    if not asked or not where or (asked & where):
                        parents.append((self.settings.answer_passages, key))
        best: tuple[list[Candidate], float] = ([], 0.0)
        tried = set()
        for rank, key in parents:
            if key in tried or key not in sections:
                continue
            tried.add(key)
            head = norm(key[1][-1]).lower()
            if quoted:
                # the quoted term in this heading, or in one above it (the speech titled “火柴”
                # whose speaker block holds the numbered sections): the further up, the weaker
                match = 0.0
                for up, h in enumerate(reversed(key[1])):
                    if any(q and q.lower() in norm(h).lower() for q in quoted):
                        match = 1.0 - 0.1 * up
                        break
            else:
                match = sum(w for t, w in terms.items() if norm(t).lower() in head) / total
            if match < 0.6:
                continue
            items = [(t, ch) for t, ch in sections[key].items() if ENUMERATOR.match(t)]
            if len(items) < 2 or (want and len(items) != want):
                continue
            if sum(len(t) for t, _ in items) > self.settings.max_answer_chars * 1.3:
                continue
            score = match * (1.0 if want else 0.8) / (1 + 0.1 * rank)
            if score > best[1]:
                cands = [
                    Candidate(t.rstrip("。.") + "。", rank, Hit(chunk=ch, score=0.0), score=score, coverage=match)
                    for t, ch in items
                ]
                best = (cands, score)
        return best

    # ------------------------------------------------------------ gate
    def type_ok(self, question: str, top: Candidate, subjects: tuple[str, ...] = ()) -> bool:
        """Does the best sentence carry the kind of answer the question asks for? ``subjects``: the
        quoted names a follow-up's pronoun stands for."""
        if NUMBER_Q.search(question) and not is_mostly_latin(question):
            classifier = question_classifier(question)
            if not has_count(top.text, classifier, question):
                return False
            # "“万户帮扶行动”……多少钱？": a count in the sentence after another campaign's does not
            # answer; the subject must be in the sentence, the one before it or its heading
            prev = top.prev or self.sentence_before(top.hit.chunk)
            context = norm(" ".join((prev, top.text, top.lead, *top.hit.chunk.heading_path)))
            quoted = QUOTED.findall(question)
            if quoted:
                missing = any(norm(q) not in context for q in quoted)
            else:  # a follow-up ("这个行动……"): one of the names it points back to
                quoted = list(subjects)
                missing = bool(quoted) and not any(norm(q) in context for q in quoted)
            if missing:
                return False
            # "31名……获得“百名最美扶贫人物”称号,多名……被评为“全国脱贫攻坚先进个人”": a count
            # stated before the subject asked about belongs to something else
            for q in quoted:
                at = top.text.find(q)
                if at > 0 and not has_count(top.text[at:], classifier, question):
                    return False
        if re.search(r"哪一?年|何年|which year|what year", question, re.I):
            if not re.search(r"(?:19|20)\d{2}", top.text):
                return False
        if NAME_GATE_Q.search(question) and not self.names_in(top.text, question):
            return False  # "……叫什么名字？" and the sentence names nothing
        n = expected_count(question)
        if n and n >= 2 and not NUMBER_Q.search(question):
            # a term like “四级五方” named in the question must come with its items: in the clause
            # that names it, or exactly that many in the next one ("完善“四联机制”,推动……开展组织联建、
            # 理论联学、活动联办、品牌联创");
            # a sentence without the term must list items itself
            named = [q for q in QUOTED.findall(question) if q in top.text]
            if not named and QUOTED.search(question) and _enum_items(top.text) < 2 and not top.opens_list:
                return False
            for q in named:
                clauses = re.split(r"[,，。;；]", top.text)
                at = next((i for i, cl in enumerate(clauses) if q in cl), 0)
                nxt = clauses[at + 1] if at + 1 < len(clauses) else ""
                if _enum_items(clauses[at]) < 2 and _enum_items(nxt) != n:
                    return False
        return True

    @staticmethod
    def names_in(text: str, question: str) -> list[str]:
        """Names in ``text`` that the question does not already say: quoted terms, 《titles》 and
        names of offices, platforms, columns ("党建业务指导处", "政协云")."""
        q = norm(question)
        found = QUOTED_NAME.findall(text) + re.findall(r"《([^》]{2,30})》", text) + ORG_NAME.findall(text)
        return [x for x in found if norm(x) and norm(x) not in q]

    def missing_entity(self, question: str, hits: list[Hit]) -> bool:
        """A place or organisation named in the question that the retrieved passages never mention."""
        if is_mostly_latin(question):
            return False
        import rjieba

        corpus_text = norm(" ".join(h.chunk.text + " ".join(h.chunk.heading_path) + h.chunk.title for h in hits))
        for word, tag in rjieba.tag(question):
            if tag not in {"ns", "nt"} or word in STOPWORDS:
                continue
            if tag == "ns" and not (places_in(word) or PLACE_SUFFIX.search(word)):
                continue  # rjieba tags "东西" (things) as a place: a place is known or looks like one
            core = re.sub(r"(省|市|自治区|县|区)?(政协|政府|委员会|机关|人大|党委)?$", "", word)
            core = core or word
            if len(core) >= 2 and norm(core) not in corpus_text and not self._in_index(core):
                return True
        # "浙江省政协机关……": the corpus says "浙江大学" somewhere, but no passage speaks for 浙江
        for m in OWNER_PLACE.finditer(question):
            place = place_core(m.group(1))
            if place and place not in self.known_places():
                return True
        return False

    def known_places(self) -> frozenset[str]:
        """Every province or city some passage of the index speaks for or names as "X省"/"X市"
        (computed once per index version)."""
        if self._known is None:
            known = set().union(*(self.places.of(ch) for ch in self.chunks))
            for ch in self.chunks:
                known.update(m.group(0) for m in place_mentions(ch.text) if ch.text[m.end() : m.end() + 1] in ("省", "市"))
            self._known = frozenset(known)
        return self._known

    def _in_index(self, term: str) -> bool:
        return self.idf(term) < self.idf("\uffff__never__") - 1e-6


def idf_lookup(index) -> callable:
    """IDF from the keyword index; unseen terms get the maximum."""
    cache: dict[str, float] = {}
    kw = index.keywords

    def idf(term: str) -> float:
        if term not in cache:
            toks = tokenize(term) or [term]
            vals = [kw.idf(t) for t in toks]
            cache[term] = float(np.mean(vals)) if vals else kw.idf(term)
        return cache[term]

    return idf
