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
   label, after one worked example turn (``rag/llm/prompts.py``).
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
from typing import Callable, Iterator, Sequence

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from . import prompts
from .citations import _THINK, SupportChecker, check_reply, clean_reply, compose, passage_label
from ..config import Settings
from ..answer.extractive import ExtractiveAnswerer
from ..schema import Answer, Chunk, Hit

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------- prompt
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
    from .models import make_chat_model

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
