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
from dataclasses import dataclass

import numpy as np

from .chunking import split_sentences
from .config import Settings
from .glossary import chinese_keywords
from .names import PinyinNames
from .places import PlaceResolver, place_core, place_mentions, places_in
from .schema import Answer, Chunk, Citation, Hit
from .sentvec import SentenceVectorCache
from .text import NUMBER_RE, STOPWORDS, YEAR_RE, cjk_bigrams, is_mostly_latin, norm, tokenize

REFUSAL = "资料中没有找到与该问题直接相关的内容。以下是最接近的原文，供参考。"
CLAUSE_SEP = re.compile(r"(?<=[,，;；:：])")
QUOTED = re.compile(r"[“\"「『']([^”\"」』']{2,20})[”\"」』']")
NUMBER_Q = re.compile(r"多少|(?<![这近前那哪])几[个位名家项条次期篇年天月人所批支场]|(?<![这近前那哪])几$|数量|how many|how much|number of", re.I)
# the measure word the question asks about: "多少个" -> 个, "几位" -> 位
CLASSIFIER_Q = re.compile(r"(?:多少|(?<![这近前那哪])几)([个位名家项条次期篇年天人所批支场])")
ENUMERATOR = re.compile(r"^(?:[（(][一二三四五六七八九十]+[)）]|[一二三四五六七八九十]+[、是]|第[一二三四五六七八九十]+[,，、]|首先|其次)")
TIME_Q = re.compile(r"什么时候|何时|哪一?年|哪天|几月|(?<!多长)(?<!多少)时间|when|which year|what year|what date|which date|what day", re.I)
# "这个叫法是什么？" "那个调研叫什么？": the answer is a name, which this corpus puts in quotes
NAME_Q = re.compile(r"叫什么|叫法|称为什么|称作什么|什么名字|名称|怎么称呼|什么说法|提法|what is it called|what is the name|what do they call", re.I)
PLACE_SUFFIX = re.compile(r"(?:省|市|县|区|镇|乡|村|州|盟|旗|岛)$")
NAME_GATE_Q = re.compile(r"叫什么|叫啥|什么名字|怎么称呼|简称是什么|what is it called|what is the name", re.I)
ORG_NAME = re.compile(r"[\u4e00-\u9fff]{2,12}(?:处|室|中心|平台|系统|工程|品牌|讲堂|讲坛|专栏|栏目|频道|App|APP|小程序|公众号|云)(?![\u4e00-\u9fff])")
QUOTED_NAME = re.compile(r"[“\"「『]([^”\"」』]{2,16})[”\"」』]")
LIST_Q = re.compile(r"哪些|哪几|分别|有什么|都有|包括|几个方面|哪[一二三四五六七八九十两]|what are|which", re.I)
ENUM_IN_Q = re.compile(r"[“\"]?([一二三四五六七八九十两]+)[个项条张大]?[\u4e00-\u9fff]{1,4}[”\"]?")
CN_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
ENUM_MARK = re.compile(r"[一二三四五六七八九十]是|、|（[一二三四五六七八九十]）|\([一二三四五六七八九十]\)|第[一二三四五六七八九十]|《")
CJK4 = re.compile(r"^[\u4e00-\u9fff]{4}$")
POOL_HITS = 5  # the dense sentence check reads the sentences of this many top passages
POOL_SENTENCES = 24  # … at most this many sentences (each embedded once, then cached)
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
    typ: float = 1.0  # answer-type factor (wants a number, a year, a list …)
    covered: frozenset = frozenset()
    lead: str = ""  # the inline heading it follows ("一是创新实施“党建链动”行动。"): its topic
    opens_list: bool = False  # the next sentence of its passage is item 一 of a list


def question_terms(question: str, idf) -> dict[str, float]:
    """Content terms of a question with IDF weights; quoted terms count double."""
    terms: dict[str, float] = {}
    for t in tokenize(question):
        if len(t) == 1 and not t.isdigit():
            continue
        terms[t] = max(terms.get(t, 0.0), idf(t))
        if len(t) == 4 and CJK4.match(t):  # "目前为止" also matches "截至目前": its halves count, less
            for half in (t[:2], t[2:]):
                if half not in STOPWORDS:
                    terms.setdefault(half, 0.5 * idf(half))
        if len(t) == 2 and t[0] == "最" and "\u4e00" <= t[1] <= "\u9fff":
            # "最难的地方在哪" is answered by "难就难在……"/"这个难点": the root with 在/点 counts, less
            for form in (t[1] + "在", t[1] + "点"):
                terms.setdefault(form, 0.35 * idf(t))
    for q in QUOTED.findall(question):
        key = q.lower()
        terms[key] = max(terms.get(key, 0.0), idf(key)) * 2
    return terms


def expected_count(question: str) -> int | None:
    """"哪四同"/"四个能力"/"三个表率" -> the number of items the question expects."""
    m = re.search(
        r"[“\"]([一二三四五六七八九十两])[个项条张大]?[\u4e00-\u9fff]{1,4}[”\"]|哪([一二三四五六七八九十两])[个项条张大]?", question
    )
    if not m:
        return None
    return CN_NUM.get(m.group(1) or m.group(2))


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


MONEY_Q = re.compile(r"多少钱|多少资金|多少经费|多少款|金额|how much money")


def question_classifier(question: str) -> str | None:
    """The measure word a count must carry: "多少名" -> 名, "多少钱" -> 元."""
    if MONEY_Q.search(question):
        return "元"
    m = CLASSIFIER_Q.search(question)
    return m.group(1) if m else None


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
    return places if len(places) >= 2 else []


PLACE_OFFICE = r"(?:省|市)?(?:政协机关|政协|省直机关|市直机关|机关|政府|党委|人大)?"


WHO_Q = re.compile(r"是谁|哪位|谁(?:的|说|讲|提出|介绍|负责)|什么人|\bwho\b", re.I)
# "……是谁推出的？" asks who made or runs a thing: an organisation doing it, not the speaker
AGENT_Q = re.compile(
    r"谁(?:来)?(?:推出|主办|承办|发起|打造|创办|创建|组织|牵头|开设|搭建|建立|开发|上线|联合)|由谁|哪个(?:单位|部门|机构)|哪家"
    r"|\bwho (?:launched|organi[sz]ed|created|set up|started|runs|ran|hosted|built)",
    re.I,
)
# words that name the kind of answer wanted ("取得了哪些成效？"): a sentence that repeats one
# ("服务成效“四张清单”") adds nothing to the answer for it
ANSWER_KIND = frozenset("成效 成果 效果 成绩 做法 举措 措施 经验 作用 意义 特点 内容 办法 方法 要求 情况 目的 目标 亮点 变化".split())
RESULT_Q = re.compile(r"成效|成果|成绩|效果如何|什么效果|哪些效果|见效|what (?:results|effects?|outcomes?)|achiev", re.I)
RESULT_MARK = re.compile(r"截至|累计|共[计有]?[\u4e00-\u9fff]{0,3}\d|已经?[\u4e00-\u9fff]{0,4}\d|先后|实现了|达到|被评为|荣获|获得|收到了|取得了")
# "(山东省政协供图)", "（记者 王某 摄）": a photo credit, not a sentence
CREDIT = re.compile(r"[(（][^()（）]{0,30}(?:供图|摄|图片|来源)[^()（）]{0,10}[)）]")
# a place named as the owner of an office: "浙江省政协", "浙江省直机关", "杭州市委"
OWNER_PLACE = re.compile(r"([\u4e00-\u9fff]{2,3}?)(?:省|市|自治区)?(?:政协|省直|市直|机关|政府|党委|省委|市委|人大|委员会)")
FIRST_ITEM = re.compile(r"^(?:[（(]一[)）]|一是|一、|第一[,，、]|首先)")
# how often: "多长时间查一回？" "多久开一次？" "一年几次？" -> "每两周开展一次" "每季一提示"
FREQ_Q = re.compile(r"多长时间[^？?]{0,8}(?:一次|一回|一趟)|多久[^？?]{0,6}(?:一次|一回)?|(?:一年|每年|每月|每周)[^？?]{0,6}几次|频率|how often", re.I)
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


class ExtractiveAnswerer:
    """Compose a cited answer from retrieved hits without an LLM."""

    def __init__(
        self, settings: Settings, idf, embed_query=None, embed_passages=None, chunks=None, sentence_cache=None
    ) -> None:
        self.settings = settings
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
        """Passage vectors of sentences (cached; see rag/sentvec.py)."""
        return self.sentence_cache.vectors(texts)

    def sentences_with_chunks(self) -> list[tuple[str, int]]:
        """(sentence, chunk index) for every sentence the answerer may read, as ``candidates`` cuts
        them (for the retriever's sentence list and the warm-up)."""
        out = []
        for i, ch in enumerate(self.chunks):
            for a, z in split_sentences(ch.text):
                s = ch.text[a:z].strip()
                if len(norm(s)) >= 6:
                    out.append((s, i))
        return out

    def score(self, cands: list[Candidate], question: str, extra_terms: dict[str, float]) -> None:
        latin = is_mostly_latin(question)
        terms = self.terms_of(question)
        for t, w in extra_terms.items():
            terms.setdefault(t, 0.4 * w)
        total = sum(terms.values()) or 1.0
        q_bi = cjk_bigrams(" ".join(tokenize(question)))
        want_num = bool(NUMBER_Q.search(question))
        classifier = question_classifier(question)
        want_time = bool(TIME_Q.search(question))
        want_list = bool(LIST_Q.search(question))
        quoted = QUOTED.findall(question)
        want_name = bool(NAME_Q.search(question))
        want_agent = bool(AGENT_Q.search(question))
        want_result = bool(RESULT_Q.search(question))
        want_freq = bool(FREQ_Q.search(question))
        for c in cands:
            s_norm = norm(c.text).lower()
            prev_norm = norm(c.prev).lower()
            lead_norm = norm(c.lead).lower()
            path_norm = norm(" ".join((c.hit.chunk.title, *c.hit.chunk.heading_path))).lower()
            got, covered = 0.0, set()
            for t, w in terms.items():
                tn = norm(t).lower()
                if not tn:
                    continue
                if tn in s_norm:
                    # a term that is only one item of a list ("参谋助手、综合协调、……、督办落实") is
                    # named, not explained: half its weight unless the question asks for a list
                    got += w if want_list or not _listed_only(c.text, t) else 0.5 * w
                    covered.add(t)
                elif tn in path_norm or tn in lead_norm:
                    got += 0.75 * w
                elif tn in prev_norm:
                    got += 0.5 * w
            c.coverage = got / total
            c.covered = frozenset(covered)
            overlap = len(q_bi & cjk_bigrams(c.text)) / (len(q_bi) or 1)
            typ = 1.0
            if want_num and not has_count(c.text, classifier, question):
                typ *= 0.55 if not NUMBER_RE.search(c.text) else 0.75
            if want_time and not YEAR_RE.search(c.text):
                typ *= 0.6
            if want_list and _enum_items(c.text) < 2:
                # a short lead-in right before item 一 ("建立完善三项统筹协调机制。一是……") opens the list
                typ *= 1.2 if c.opens_list and len(c.text) <= 60 else 0.85
            if want_name:  # a name asked for: a sentence that puts a new term in quotes
                names = [q for q in QUOTED_NAME.findall(c.text) if q not in quoted and norm(q) not in norm(question)]
                # the new name should sit by what the question describes ("班子成员“一岗双责”" for
                # "班子里每个人……"), not in some other clause of the sentence
                near = any(
                    any(norm(t).lower() in norm(cl).lower() for t in terms if norm(t))
                    for cl in CLAUSE_SPLIT.split(c.text)
                    if any(n in cl for n in names)
                )
                typ *= (1.2 if near else 1.0) if names else 0.8
            if want_freq:  # "多长时间查一回？": "每两周开展一次……"
                typ *= 1.3 if FREQ.search(c.text) else 0.8
            if want_result:  # "取得了哪些成效？": in these reports results come as figures
                typ *= 1.25 if RESULT_MARK.search(c.text) else 1.1 if has_count(c.text, None, question) else 1.0
            if want_agent:  # who made it: a sentence that says someone launched, hosted, built it
                typ *= 1.2 if AGENT_VERB.search(c.text) else 0.85
            if is_inline_heading(c.text) and _restates(c.text, terms):
                # "一是创新实施“党建链动”行动。" only names the topic the question names; the
                # sentences after it say what it did
                typ *= 0.6
            if _is_question(c.text):
                typ *= 0.35  # a question in the text is not an answer
            if any(q in c.text and re.search(re.escape(q) + r"[”\"]?(?:的内容)?(?:是指|就是|即|是|包括|指)", c.text) for q in quoted):
                typ *= 1.25  # a definition of the quoted term
            prior = 1.0 / (1 + c.hit_rank)
            c.typ = typ
            c.score = (0.62 * c.coverage + 0.18 * overlap + 0.12 * prior + 0.08 * max(0.0, (c.hit.dense_score - 0.8) * 5)) * typ
        # weak lexical evidence (paraphrase, another language): let the embedder judge sentences
        best = max((c.coverage for c in cands), default=0.0)
        if self.embed_query is not None and self.embed_passages is not None and cands and (latin or best < 0.45):
            pool = [c for c in cands if c.hit_rank < POOL_HITS][:POOL_SENTENCES]
            if pool:
                # a follow-up ("它取得了哪些成效？") is embedded with the topic it points back to
                topic = " ".join(t for t in extra_terms if t not in terms)
                qv = self.embed_query(f"{topic} {question}" if topic else question)
                sims = self.sentence_vectors([c.text for c in pool]) @ qv
                lo, hi = float(sims.min()), float(sims.max())
                for c, sim in zip(pool, sims):
                    if latin:  # cross-language cosines are lower: rank within the pool, gate on the passage
                        rel = (float(sim) - lo) / (hi - lo) if hi > lo else 1.0
                        dense = rel * max(0.0, (c.hit.dense_score - 0.72) * 6)
                    else:
                        dense = max(0.0, (float(sim) - 0.78) * 5)  # e5 cosines live in ~0.75-0.95
                    # English with Chinese keywords from the glossary: lexical and dense share the say
                    w = (0.5 if terms else 0.75) if latin else 0.5
                    c.score = (1 - w) * c.score + w * dense * c.typ

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

    # ------------------------------------------------------------ the answer
    def answer(
        self,
        question: str,
        hits: list[Hit],
        *,
        extra_terms: dict[str, float] | None = None,
        said: str = "",
        context: str = "",
    ) -> Answer:
        """Answer ``question`` from ``hits``; ``said`` is what the conversation already told the user,
        ``context`` the earlier question a follow-up points back to ("这个行动……" -> “三个一”扶贫行动)."""
        extra_terms = extra_terms or {}
        subjects = tuple(QUOTED.findall(context)) if context and not QUOTED.search(question) else ()
        if not hits:
            return Answer(question=question, text=REFUSAL, refused=True, hits=hits)
        if len(split_subquestions(question)) == 1:
            items, score = self.heading_list(question, hits)
            if items:
                return self.compose(question, items, hits, score)
        cands = self.candidates(hits)
        said_bi = cjk_bigrams(said) if said else set()
        parts = split_subquestions(question)
        coordinated = {place_core(p) for p in _coordinated_places(question)} - {""} if len(parts) > 1 else set()
        chosen: list[Candidate] = []
        evidence_scores = []
        for part in parts:
            ctx_terms = dict(extra_terms)
            if len(parts) > 1:
                for t, w in self.terms_of(question).items():
                    ctx_terms.setdefault(t, 0.5 * w)
            self.score(cands, part, ctx_terms)
            mine = {p for p in coordinated if p in part}
            if len(mine) == 1:  # "山东和湖南两省…": this part wants the passages of its own province
                for c in cands:
                    where = self.places.of(c.hit.chunk)
                    if where and not (mine & where):
                        c.score *= 0.3
            if said_bi:  # a follow-up wants something new, not what the last answer said
                for c in cands:
                    bi = cjk_bigrams(c.text)
                    c.score *= 1 - 0.7 * (len(bi & said_bi) / (len(bi) or 1))
            ranked = sorted(cands, key=lambda c: -c.score)
            if not ranked:
                continue
            # the best sentence that carries the kind of answer asked for (a number, a year, the items)
            top = next((c for c in ranked[:3] if c.score >= 0.6 * ranked[0].score and self.type_ok(part, c, subjects)), None)
            if top is None:
                evidence_scores.append(0.0)
                continue
            evidence_scores.append(top.score)
            if top in chosen:  # one sentence answers two parts ("谁推出的？办了几期？")
                continue
            ranked.remove(top)
            ranked.insert(0, top)
            ranked = [c for c in ranked if c is top or c not in chosen]
            chosen.append(top)
            if len(parts) > 1:
                continue
            siblings = self.enumeration(top, question)
            if siblings:
                chosen.extend(siblings)
                continue
            # add a second sentence when it covers question terms the first one misses
            budget = self.settings.max_answer_chars - len(top.text)
            # terms the first sentence's heading already answers (the speaker's name) are not new
            top_path = norm(" ".join((top.hit.chunk.title, *top.hit.chunk.heading_path))).lower()
            part_terms = self.terms_of(question)
            for c in ranked[1:4]:
                new_terms = {
                    t for t in c.covered - top.covered if norm(t).lower() not in top_path and t not in ANSWER_KIND
                }
                if (
                    c.score >= 0.8 * top.score
                    and new_terms
                    and not (is_inline_heading(c.text) and _restates(c.text, part_terms))
                    and sum(self.idf(t) for t in new_terms) >= 0.25 * sum(self.idf(t) for t in top.covered | new_terms)
                    and len(c.text) <= budget
                ):
                    chosen.append(c)
                    break
        evidence = min(evidence_scores) if evidence_scores else 0.0
        if not chosen or evidence < self.settings.min_evidence or self.missing_entity(question, hits):
            return Answer(question=question, text=REFUSAL, refused=True, hits=hits, evidence=evidence)
        return self.compose(question, chosen, hits, evidence)

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

    def enumeration(self, top: Candidate, question: str) -> list[Candidate]:
        """For a list question answered by "（一）…"/"一是…", the sibling items that follow it."""
        if not LIST_Q.search(question) or _enum_items(top.text) >= 3:
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
