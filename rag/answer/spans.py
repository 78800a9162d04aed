"""The answerer's text helpers: the sentence ``Candidate``, enumerations, sub-questions, speakers,
the patterns of answer types, and the IDF lookup of an index.

What it does not do: rank or choose (``learned.py``), or compose an answer (``compose.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..places import place_core, place_mentions
from ..schema import Chunk, Hit
from ..text import NUMBER_RE, is_mostly_latin, norm, tokenize


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


def heads_a_section(sentence: str) -> bool:
    """"第四,聚焦夯实基层基础重点攻坚。", "二是持续开展“以下看上”专题调研。": a numbered sentence
    that only names its topic (at most 24 characters, no clause after the number's own comma); what
    it is comes in the sentences after it. Broader than ``is_inline_heading`` (the ranker's feature):
    "第四," keeps its comma."""
    m = ENUMERATOR.match(sentence)
    if not m:
        return False
    body = sentence[m.end():].lstrip(",，、 ")
    return len(norm(body)) <= 24 and not re.search(r"[,，;；:：]", body)


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


MAX_PARTS = 4  # more "parts" than this (every labeled question has at most 2) cost a retrieval each


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
                q = question
                for o in places:
                    if o != p:
                        q = drop_conjunct(q, o, places)
                parts.append(p + q.replace(p, "", 1) if p not in q else q)
        elif COORDINATED_CONJUNCTS:
            parts = coordinated_conjuncts(question) or parts
    if len(parts) > MAX_PARTS:  # a pasted paragraph, not a many-part question: one question, one retrieval
        return [question]
    return parts or [question]


CONJUNCT_MAX = 14  # characters of a conjunct ("黛岩市自然资源和规划局"): longer is a clause, not a name


NOMINAL_TAGS = frozenset("n ns nr nt nz nrt j l b g zg ng an vn".split())  # rjieba's tags of a noun phrase's words


def drop_conjunct(question: str, place: str, places: list[str]) -> str:
    """``question`` without the conjunct that ``place`` opens, one of the coordinated ``places``:
    "望川市直机关和棠溪市在……" without 望川 is "棠溪市在……" (the first conjunct: from the place up to
    the conjunction before the next place), without 棠溪 "望川市直机关在……" (the conjunction and the
    second conjunct: the place and the noun-phrase words after it, "黛岩市自然资源和规划局", up to
    ``CONJUNCT_MAX`` characters). A place in no such conjunct is dropped with its office."""
    import rjieba

    at = question.find(place)
    if at < 0:
        return question
    later = [i for i in (question.find(o, at + len(place)) for o in places if o != place) if i > at]
    if later:  # a first conjunct: up to the next place, when a conjunction stands right before it
        nxt = min(later)
        gap = question[at + len(place) : nxt]
        if gap and gap[-1] in "和与及、" and len(gap) <= CONJUNCT_MAX and not any(ch in CLAUSE_MARKS for ch in gap):
            return question[:at] + question[nxt:]
    if at > 0 and question[at - 1] in "和与及、":  # a second (or later) conjunct
        toks = rjieba.tag(question[at:])
        pos = 0  # characters of the conjunct read so far, from the place on
        for k, (w, tag) in enumerate(toks):
            end = pos + len(w)
            if end > len(place):  # past the place's own tokens
                nominal = tag in NOMINAL_TAGS or w in "和与及" and k + 1 < len(toks) and toks[k + 1][1] in NOMINAL_TAGS
                if not nominal or w.startswith(("各", "都", "均", "两")) or end > CONJUNCT_MAX or pos >= len(place) and place_core(w):
                    break
            pos = end
        return question[: at - 1] + question[at + max(pos, len(place)) :]
    o_full = rf"{re.escape(place)}(?:{PLACE_OFFICE})?"
    return re.sub(rf"{o_full}[和与及、]?", "", question, count=1)


COORDINATED_CONJUNCTS = True  # "A的X和B的Y，……" is two parts (CV: docs/ablations.md)
CLAUSE_MARKS = "，,。？?！!；;：:"
CONJUNCT_STOP = frozenset(CLAUSE_MARKS) | {"在", "对", "把", "各", "各自", "分别", "都", "均", "是", "有", "哪个", "谁"}


def coordinated_conjuncts(question: str) -> list[str]:
    """"砚溪的“周三夜学”和荇州的“晨读十分钟”，学习时间安排上有什么不同？" -> the two conjuncts, each
    with the rest of the question: two places (known or learned) that are not joined directly, one
    before a 和/与/及/、 and the other right after it. The second conjunct ends at the first word
    that starts the shared predicate (a comma, 在/对/把/各/分别/都 …), else after as many characters
    as the first has and a few more (no parser here tells where a Chinese noun phrase ends)."""
    import rjieba

    found = [(m.start(), m.end(), m.group(0)) for m in place_mentions(question)]
    for c in re.finditer(r"[和与及、]", question):
        left = [f for f in found if f[1] <= c.start()]
        right = [f for f in found if c.end() <= f[0] <= c.end() + 2]
        if not left or not right or place_core(left[-1][2]) == place_core(right[0][2]):
            continue
        a = left[-1][0]
        while a > 0 and question[a - 1] not in "，,。？?！!；;：: 在对把和与及、":
            a -= 1  # "云岫县的钟禾生和……": the conjunct starts at the phrase, not the place
        first = question[a : c.start()].rstrip("，,、 ")
        if not 2 <= len(norm(first)) <= 24:
            continue  # a long left side: a sentence, not a noun phrase
        b = z = c.end()
        for tok in rjieba.cut(question[b:]):
            if tok in CONJUNCT_STOP or tok[0] in "各都均" or z - b >= len(first) + 6:
                break
            z += len(tok)
        second = question[b:z]
        if len(norm(second)) < 2:
            continue
        head, tail = question[:a], question[z:]
        return [head + first + tail, head + second + tail]
    return []


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
    places = [p for p in dict.fromkeys(places) if not any(p != o and p in o for o in places)]  # 榆 in 榆溆
    return places if len(places) >= 2 else []


# two names that end like places, each with its office, joined by 和/与/及/、
NAMED_PAIR = re.compile(
    r"([\u4e00-\u9fff]{2,5}?[省市县区州])(?:政协机关|政协|省直机关|市直机关|机关|政府|党委|人大|委员会)?[和与及、]"
    r"([\u4e00-\u9fff]{2,5}?[省市县区州])(?:政协机关|政协|省直机关|市直机关|机关|政府|党委|人大|委员会)"
)


PLACE_OFFICE = r"(?:省|市|县|区|自治区)?(?:政协机关|政协|省直机关|市直机关|直属机关|机关|政府|党委|人大)?"


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
