"""One Query per question (or per part of a many-part question), built once and passed along.

It holds what every later step asks of the question: its weighted terms (an English question's
are its Chinese keywords), its character bigrams, its quoted names, the kind of answer it expects
(a count, a date, the items of a list, a name, who did it …), and the follow-up context (the
terms of the question it points back to, the names they stand for, what was already said).

What it does not do: decide anything. The answer-type flags are inputs of the learned ranker and
gate (rag/answer/features.py), not branches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..text import cjk_bigrams, is_mostly_latin, norm, tokenize

QUOTED = re.compile(r"[“\"「『']([^”\"」』']{2,20})[”\"」』']")
NUMBER_Q = re.compile(
    r"多少|(?<![这近前那哪])几[个位名家项条次期篇年天月人所批支场]|(?<![这近前那哪])几$|数量|how many|how much|number of", re.I
)
CLASSIFIER_Q = re.compile(r"(?:多少|(?<![这近前那哪])几)([个位名家项条次期篇年天人所批支场])")
MONEY_Q = re.compile(r"多少钱|多少资金|多少经费|多少款|金额|how much money")
TIME_Q = re.compile(
    r"什么时候|何时|哪一?年|哪天|几月|(?<!多长)(?<!多少)时间|when|which year|what year|what date|which date|what day", re.I
)
YEAR_Q = re.compile(r"哪一?年|何年|which year|what year", re.I)
NAME_Q = re.compile(
    r"叫什么|叫法|称为什么|称作什么|什么名字|名称|怎么称呼|什么说法|提法|what is it called|what is the name|what do they call", re.I
)
NAME_GATE_Q = re.compile(r"叫什么|叫啥|什么名字|怎么称呼|简称是什么|what is it called|what is the name", re.I)
LIST_Q = re.compile(r"哪些|哪几|分别|有什么|都有|包括|几个方面|哪[一二三四五六七八九十两]|what are|which", re.I)
WHO_Q = re.compile(r"是谁|哪位|谁(?:的|说|讲|提出|介绍|负责)|什么人|\bwho\b", re.I)
AGENT_Q = re.compile(
    r"谁(?:来)?(?:推出|主办|承办|发起|打造|创办|创建|组织|牵头|开设|搭建|建立|开发|上线|联合)|由谁|哪个(?:单位|部门|机构)|哪家"
    r"|\bwho (?:launched|organi[sz]ed|created|set up|started|runs|ran|hosted|built)",
    re.I,
)
ROLE_Q = re.compile(r"什么职务|什么职位|担任|任什么|身份|头衔|什么官|哪个岗位|what (?:post|position|role|title)|\bposition\b", re.I)
RESULT_Q = re.compile(r"成效|成果|成绩|效果如何|什么效果|哪些效果|见效|what (?:results|effects?|outcomes?)|achiev", re.I)
FREQ_Q = re.compile(
    r"多长时间[^？?]{0,8}(?:一次|一回|一趟)|多久[^？?]{0,6}(?:一次|一回)?|(?:一年|每年|每月|每周)[^？?]{0,6}几次|频率|how often", re.I
)
CN_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
CJK4 = re.compile(r"^[\u4e00-\u9fff]{4}$")


def expected_count(question: str) -> int | None:
    """"哪四同"/"四个能力"/"三个表率" -> the number of items the question expects."""
    m = re.search(
        r"[“\"]([一二三四五六七八九十两])[个项条张大]?[\u4e00-\u9fff]{1,4}[”\"]|哪([一二三四五六七八九十两])[个项条张大]?", question
    )
    if not m:
        return None
    return CN_NUM.get(m.group(1) or m.group(2))


def question_classifier(question: str) -> str | None:
    """The measure word a count must carry: "多少名" -> 名, "多少钱" -> 元."""
    if MONEY_Q.search(question):
        return "元"
    m = CLASSIFIER_Q.search(question)
    return m.group(1) if m else None


# follow-ups (rag/service.py): what points back to the conversation: the pronouns ("他讲的……"), a
# demonstrative with its classifier ("这位同志", "那次会议", "这份报告" …), an ordinal of a list already
# given at the start ("第一项里面……", "第四个方面……")
DEPENDENT = re.compile(
    r"它|他|她|其[中他]?|[这那](?:个|些|项|位|名|次|份|种|类|件|条|家|篇|场|轮|批|里|边|样|方面|一)|该|此项|上述"
    r"|^那|^还有|^那么|^第[一二三四五六七八九十\d]+(?:个|项|条|点|种|类|方面|部分)"
)
# a question whose subject is a pronoun ("它的……", "他们……"): without a conversation it has no referent
DANGLING = re.compile(r"^(?:那么?|那)?(?:它们?|他们?|她们?|其|该)")
# "那督办落实这一块呢？": the same subject, another topic; the last question's topic is left behind
CONTRAST = re.compile(r"^(?:那么?|还有|另外|至于)[^，,。？?]{1,30}?呢")


def question_subject(question: str) -> str:
    """The leading noun phrase of a question: who or what it is about ("山西省政协办公厅在……" ->
    "山西省政协办公厅"; a quoted name at the start counts as a noun)."""
    import rjieba

    out, quote = [], False
    for w, t in rjieba.tag(question.strip()):
        if w in "“\"「『" and not quote:
            quote = True
        elif quote:
            quote = w not in "”\"」』"
        elif not t.startswith(("n", "j")):  # nouns, names, places, abbreviations
            break
        out.append(w)
    return "".join(out) if not quote else ""


def question_terms(question: str, idf) -> dict[str, float]:
    """Content terms of a question with IDF weights; quoted terms count double."""
    from ..text import STOPWORDS

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


@dataclass
class Query:
    """A question (or one part of it) as every step of the answerer reads it."""

    text: str  # the question or the part, as asked
    whole: str  # the whole question (equal to ``text`` for a one-part question)
    terms: dict[str, float]  # weighted terms to look for (with the follow-up's at 0.4)
    own_terms: dict[str, float]  # the question's own terms, without the follow-up's
    latin: bool
    bigrams: set
    quoted: list[str]
    classifier: str | None
    expected: int | None
    want: dict[str, bool]
    subjects: tuple[str, ...] = ()  # names a follow-up's pronoun stands for
    topic: str = ""  # follow-up terms not in the question (embedded with it)
    said_bigrams: set = field(default_factory=set)  # what the conversation already told the user
    parts: int = 1
    exclusive: dict = field(default_factory=dict)  # a part's terms that no other part of the question has

    @property
    def total(self) -> float:
        return sum(self.terms.values()) or 1.0


def build_query(
    text: str,
    own_terms: dict[str, float],
    *,
    whole: str | None = None,
    extra_terms: dict[str, float] | None = None,
    context: str = "",
    said: str = "",
    parts: int = 1,
    others: tuple[str, ...] = (),
) -> Query:
    """Build the Query of ``text`` (own_terms from the answerer: English questions map to Chinese)."""
    whole = whole or text
    terms = dict(own_terms)
    for t, w in (extra_terms or {}).items():
        terms.setdefault(t, 0.4 * w)
    quoted = QUOTED.findall(text)
    subjects = tuple(QUOTED.findall(context)) if context and not QUOTED.search(text) else ()
    want = {
        "num": bool(NUMBER_Q.search(text)) and not is_mostly_latin(text),
        "time": bool(TIME_Q.search(text)),
        "year": bool(YEAR_Q.search(text)),
        "list": bool(LIST_Q.search(text)),
        "name": bool(NAME_Q.search(text)),
        "name_gate": bool(NAME_GATE_Q.search(text)),
        "who": bool(WHO_Q.search(text)) and not AGENT_Q.search(text),
        "agent": bool(AGENT_Q.search(text)),
        "role": bool(ROLE_Q.search(text)),
        "result": bool(RESULT_Q.search(text)),
        "freq": bool(FREQ_Q.search(text)),
    }
    return Query(
        text=text,
        whole=whole,
        terms=terms,
        own_terms=dict(own_terms),
        latin=is_mostly_latin(text),
        bigrams=cjk_bigrams(" ".join(tokenize(text))),
        quoted=quoted,
        classifier=question_classifier(text),
        expected=expected_count(text),
        want=want,
        subjects=subjects,
        topic=" ".join(t for t in (extra_terms or {}) if t not in own_terms),
        said_bigrams=cjk_bigrams(said) if said else set(),
        parts=parts,
        exclusive={t: w for t, w in own_terms.items() if norm(t) and not any(norm(t) in norm(o) for o in others)},
    )


def numbers_in(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", norm(text)))
