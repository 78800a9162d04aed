"""RagService: wires the stages together; the one object the CLI and the web page talk to.

- ``ask(question, history)`` -> ``Answer`` (retrieval, evidence gate, cited answer);
- ``stream_answer(question, history)`` yields the answer text as it is composed;
- ``reindex()`` builds and publishes a new index version while queries keep being served from
  the version they started with; the next query picks the new version up, no restart needed.

Models and the index are loaded lazily, once, and shared between threads.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterator

from .config import Settings
from .index.embeddings import VectorEmbeddings, make_embeddings, make_reranker
from .errors import IndexCorruptError, IndexNotBuiltError, IndexOutdatedError, InputError
from .answer.extractive import ExtractiveAnswerer
from .answer.spans import idf_lookup, split_subquestions
from .answer.query import CONTRAST, DANGLING, DEPENDENT, question_subject, question_terms
from . import limits
from .priority import lower_this_thread, run_low_priority
from .index.indexing import BuildReport, Progress, build_index, embedder_cache_dir
from .index.retrieval import Fusion, Retriever
from .answer.learned import REFUSAL
from .schema import Answer, Hit
from .index.sentvec import SentenceIndex, SentenceVectorCache
from .index.locking import try_writer_lock
from .index.store import VersionStore, open_store
from .index.store.loaded import Index
from .text import norm, tokenize

logger = logging.getLogger(__name__)

def content_terms(text: str) -> set[str]:
    """Words of two or more characters that carry content (no stop words, no question words)."""
    return {t for t in tokenize(text) if len(t) >= 2}


def rewrite_keeps(question: str, rewrite: str, context: str) -> bool:
    """Is a model's standalone rewrite of a follow-up usable? It must keep most of the question's
    own content words, one of the conversation subject's (when the question depends on it), and
    read as a question of sensible length; otherwise the extractive history handling is used."""
    rq = norm(rewrite)
    own = content_terms(question)
    if own and sum(norm(t) in rq for t in own) < 0.5 * len(own):
        return False
    subject = content_terms(context) - own
    if subject and not any(norm(t) in rq for t in subject):
        return False
    return len(question) // 2 <= len(rewrite) <= 3 * len(question) + len(context) + 40


def history_user_turns(history: list[dict] | None) -> list[str]:
    out = []
    for m in history or []:
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            out.append(m["content"])
    return out


def history_assistant_text(history: list[dict] | None) -> str:
    """What the conversation already told the user (the gate prefers new sentences for a follow-up)."""
    return " ".join(
        m["content"] for m in history or [] if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str)
    )


class RagService:
    def __init__(self, settings: Settings, *, embeddings: VectorEmbeddings | None = None, llm=None) -> None:
        self.settings = settings
        self._embeddings = embeddings
        self._reranker = None
        self._lock = threading.RLock()
        self.slots = limits.AnswerSlots.for_settings(settings)
        self._store: VersionStore | None = None
        self._index: Index | None = None
        self._index_version: str | None = None
        self._retriever: Retriever | None = None
        self._answerer: ExtractiveAnswerer | None = None
        self._llm = llm  # chat model for answer_mode="llm"; created on first use
        self.recovery_report: BuildReport | None = None  # set when current() had to rebuild
        self._sentence_cache: SentenceVectorCache | None = None
        self._warm_stop: threading.Event | None = None
        self._warm_thread: threading.Thread | None = None
        self._background_embeddings: VectorEmbeddings | None = None

    # ------------------------------------------------------------ lazy parts
    @property
    def store(self) -> VersionStore:
        """The configured index store (``RAG_STORE``): FAISS folders or Milvus collections."""
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)
            return self._store

    @property
    def embeddings(self) -> VectorEmbeddings:
        with self._lock:
            if self._embeddings is None:
                self._embeddings = make_embeddings(self.settings)
            return self._embeddings

    @property
    def background_embeddings(self) -> VectorEmbeddings:
        """The embedder of background work (reindex, warm-up): not the one questions wait for."""
        with self._lock:
            if self._background_embeddings is None:
                self._background_embeddings = self.embeddings.fork()
            return self._background_embeddings

    def current(self) -> tuple[Index, Retriever, ExtractiveAnswerer]:
        """The live index version and its retriever/answerer; reloads when CURRENT changed.

        On the first load, ``.tmp`` folders a crashed build left are removed (only when no
        build is running). A damaged live version is replaced by the previous good one with a
        loud log line (``open_index``); when no version is good, the index is rebuilt from the
        corpus before any query is answered. Callers keep the ``Index`` they got: a newer
        version never changes it under them.
        """
        live = self.store.live_version()
        with self._lock:
            if self._index is None or live != self._index_version:
                if self._index is None:
                    self._remove_unfinished()
                if live is None:
                    raise IndexNotBuiltError(
                        f"{self.settings.index_dir} 中还没有索引，请先运行 python -m rag index",
                        f"no index in {self.settings.index_dir}",
                    )
                emb = self.embeddings
                try:
                    idx = self.store.open(embedder_id=emb.model_id, dim=emb.dim)
                except IndexCorruptError as e:
                    logger.error("NO GOOD INDEX VERSION (%s): rebuilding from %s", e.log_message, self.settings.corpus_dir)
                    self.recovery_report = build_index(self.settings, emb, user="recovery")
                    live = self.store.live_version()
                    idx = self.store.open(embedder_id=emb.model_id, dim=emb.dim)
                if self._reranker is None and self.settings.reranker_model:
                    self._reranker = make_reranker(self.settings)
                self._index, self._index_version = idx, live
                if self._sentence_cache is None:
                    self._sentence_cache = SentenceVectorCache(
                        emb.embed_passages, embedder_cache_dir(self.settings.index_dir, emb.model_id)
                    )
                self._answerer = ExtractiveAnswerer(
                    self.settings, idf_lookup(idx), emb.embed_query_vector, emb.embed_passages, idx.chunks,
                    sentence_cache=self._sentence_cache,
                )
                sentences = SentenceIndex(self._answerer.sentences_with_chunks(), self._sentence_cache)
                fusion = Fusion.from_dict(self._answerer.model.fusion)
                self._retriever = Retriever(idx, emb, self.settings, self._reranker, sentences=sentences, fusion=fusion)
                self._start_warmup(sentences.texts)
                logger.info("serving index version %s (%d chunks)", idx.version, len(idx.chunks))
            return self._index, self._retriever, self._answerer  # type: ignore[return-value]

    def _start_warmup(self, texts: list[str]) -> None:
        """Embed the new version's sentences in a background thread (the previous warm-up stops)."""
        if self._warm_stop is not None:
            self._warm_stop.set()
        if not self.settings.sentence_warmup:
            return
        stop = threading.Event()
        self._warm_stop = stop
        cache = self._sentence_cache
        embed = self.background_embeddings.embed_passages

        def run() -> None:
            lower_this_thread()
            try:
                cache.warm(texts, stop=stop, embed=embed)
            except Exception as e:  # the warm-up is an optimisation: never let it take the service down
                logger.warning("sentence warm-up stopped: %s", e)

        self._warm_thread = threading.Thread(target=run, name="sentence-warmup", daemon=True)
        self._warm_thread.start()

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Wait for the background sentence warm-up (bench, tests); True when it has finished."""
        t = self._warm_thread
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()

    def close(self) -> None:
        """Stop background work (the warm-up); the service stays usable."""
        if self._warm_stop is not None:
            self._warm_stop.set()

    def _remove_unfinished(self) -> None:
        with try_writer_lock(self.settings.index_dir) as mine:
            if mine:  # a running build owns its .tmp folder: leave it alone
                removed = self.store.remove_unfinished()
                if removed:
                    logger.warning("removed unfinished index builds left by a crash: %s", ", ".join(removed))

    def ensure_index(self, progress: Progress | None = None) -> BuildReport | None:
        """Make sure a good index is served before the first query; returns a build report if one ran.

        Builds from the corpus when none is published yet, when the live one was built by an
        older chunker of this program, or when no published version is good (see
        :meth:`current`); a damaged live version with a good previous one is served
        from the previous one without a build.
        """
        if self.store.live_version() is None:
            logger.info("no index yet: building it from %s", self.settings.corpus_dir)
            return self.reindex(progress=progress)
        self.recovery_report = None
        try:
            self.current()
        except IndexOutdatedError as e:  # built by an older version of this program: rebuild it
            logger.warning("%s: rebuilding the index from %s", e.log_message, self.settings.corpus_dir)
            return self.reindex(progress=progress, rebuild=True)
        return self.recovery_report

    def reindex(self, *, progress: Progress | None = None, rebuild: bool = False, user: str | None = None) -> BuildReport:
        """Build and publish a new version (IndexBusyError when another build runs); serve it at once.

        The build runs in a thread at lower CPU priority with an embedder of its own
        (``background_embeddings``), so questions asked meanwhile do not wait for it.
        """
        emb = self.background_embeddings
        report = run_low_priority(
            lambda: build_index(self.settings, emb, progress=progress, rebuild=rebuild, user=user), name="reindex"
        )
        self.current()  # switch this process to the new version at once
        return report

    # ------------------------------------------------------------ asking
    def check_question(self, question: str) -> str:
        q = limits.clean_question(question)  # invisible characters out; no letter or digit: InputError
        if len(q) > self.settings.max_question_chars:
            raise InputError(
                f"问题过长（{len(q)} 字），请控制在 {self.settings.max_question_chars} 字以内",
                f"question too long: {len(q)} chars",
            )
        return q

    def retrieval_query(self, question: str, history: list[dict] | None) -> str:
        """A follow-up that points back ("它……") is retrieved together with the previous question;
        one that turns to another topic of the same subject ("那督办落实这一块呢？") with the
        previous question's subject only."""
        context = self.followup_context(question, history)
        return f"{context} {question}" if context else question

    def followup_context(self, question: str, history: list[dict] | None) -> str:
        """What of the conversation a follow-up question depends on ("" for a standalone one)."""
        turns = history_user_turns(history)
        if not turns or not (DEPENDENT.search(question) or len(norm(question)) < 8):
            return ""
        if CONTRAST.search(question.strip()):
            subject = question_subject(turns[-1])
            if len(norm(subject)) >= 2:
                return limits.cap_context(subject, self.settings)
        return limits.cap_context(turns[-1], self.settings)

    def search_parts(self, retriever: Retriever, query: str, *, fusion=None, lists=None) -> list[Hit]:
        """Retrieve a many-part question ("…？…？", "山东和湖南…") part by part and interleave the results.

        ``lists``: the ranked lists of the whole query and each part, when already computed
        (training and cross-validation fuse the same lists under other weights)."""
        k = self.settings.top_k
        lists = lists if lists is not None else self.query_lists(retriever, query)
        fused = [retriever.rerank(lst.query, retriever.fuse(lst, k, fusion))[:k] for lst in lists]
        if len(fused) == 1:
            return fused[0]
        out, seen = [], set()
        for rank in range(k):  # the whole question's best first, then each part's
            for lst in fused:
                if rank < len(lst) and lst[rank].chunk.id not in seen:
                    seen.add(lst[rank].chunk.id)
                    out.append(lst[rank])
        return out[: max(k, 10)]

    @staticmethod
    def query_lists(retriever: Retriever, query: str) -> list:
        """The ranked lists of the whole query, then of each of its parts (when it has several)."""
        parts = split_subquestions(query)
        queries = [query] + (parts if len(parts) > 1 else [])
        return [retriever.lists(q) for q in queries]

    def retrieve(self, question: str, history: list[dict] | None = None, k: int | None = None) -> list[Hit]:
        _, retriever, _ = self.current()
        return retriever.search(self.retrieval_query(question, history), k or self.settings.top_k)

    def ask(self, question: str, history: list[dict] | None = None, *, user: str | None = None) -> Answer:
        """Answer ``question``; ``user`` holds one of the answer slots meanwhile (``limits.AnswerSlots``:
        BusyError when that user already has ``max_answers_per_user`` questions in flight)."""
        with self.slots.hold(user):
            if self.settings.answer_mode == "llm":
                final = None
                for _, final in self.stream_llm(question, history):
                    pass
                return final  # type: ignore[return-value]
            return self._ask_extractive(question, history)

    def _ask_extractive(self, question: str, history: list[dict] | None) -> Answer:
        t0 = time.perf_counter()
        q = self.check_question(question)
        history = limits.cap_history(history, self.settings)
        idx, retriever, answerer = self.current()
        rq = self.retrieval_query(q, history)
        hits = self.search_parts(retriever, rq)
        extra, said, context = {}, "", ""
        if rq != q:
            context = self.followup_context(q, history)
            extra = question_terms(context, answerer.idf)
            said = history_assistant_text(history)
        ans = answerer.answer(q, hits, extra_terms=extra, said=said, context=context)
        if not ans.refused and DANGLING.match(q) and not history_user_turns(history):
            # "它的采摘时间是什么时候？" with no conversation: what "它" is, the material cannot say
            ans = Answer(question=q, text=REFUSAL, refused=True, hits=ans.hits, evidence=ans.evidence)
        ans.retrieval_query = rq
        ans.latency_ms = (time.perf_counter() - t0) * 1000
        logger.info(
            "ask: %d chars, refused=%s, evidence=%.3f, %.1f ms, index %s",
            len(q), ans.refused, ans.evidence, ans.latency_ms, idx.version,
        )
        return ans

    def stream_answer(
        self, question: str, history: list[dict] | None = None, *, user: str | None = None
    ) -> Iterator[tuple[str, Answer | None]]:
        """Yield (text so far, None) while composing, then (full text, Answer). The answer slot is
        held while the answer is computed (an LLM's: until its stream ends or the client leaves,
        which closes this generator)."""
        with self.slots.hold(user):
            if self.settings.answer_mode == "llm":
                yield from self.stream_llm(question, history)
                return
            ans = self._ask_extractive(question, history)
        text = ans.text
        step = 6
        for i in range(step, len(text), step):
            yield text[:i], None
        yield text, ans

    # ------------------------------------------------------------ LLM mode (issue 6)
    @property
    def chat_model(self):
        with self._lock:
            if self._llm is None:
                from .llm.models import make_chat_model

                self._llm = make_chat_model(self.settings)
            return self._llm

    def stream_llm(self, question: str, history: list[dict] | None = None) -> Iterator[tuple[str, Answer | None]]:
        """LLM mode: rewrite a follow-up, retrieve, gate, generate (streamed), check citations.

        Yields (text so far, None) as tokens arrive, then (checked text, Answer). Model failures
        end in the extractive answer with a notice (rag/llm/generation.py), never in an exception.
        """
        from .llm.generation import LLMAnswerer, failure_notice, rewrite_question

        t0 = time.perf_counter()
        q = self.check_question(question)
        history = limits.cap_history(history, self.settings)
        idx, retriever, answerer = self.current()
        model = self.chat_model
        rq, gate_kwargs, failed = q, {}, None
        if history_user_turns(history):
            try:
                rq = rewrite_question(model, q, history, deadline=self.settings.llm_deadline)
                if rq != q and not rewrite_keeps(q, rq, self.followup_context(q, history)):
                    logger.info("rewrite dropped (loses the question's terms or the conversation's subject): %r", rq[:80])
                    rq = self.retrieval_query(q, history)
            except Exception as e:  # model down or slow: keep the heuristic, skip generation below
                logger.warning("follow-up rewrite failed (%s: %s)", type(e).__name__, e)
                failed = e
                rq = self.retrieval_query(q, history)
            if rq != q:  # a follow-up (rewritten or joined): gated as ask() answers it, on what is new
                gate_kwargs["extra_terms"] = question_terms(self.followup_context(q, history), answerer.idf)
                gate_kwargs["said"] = history_assistant_text(history)
                gate_kwargs["context"] = self.followup_context(q, history)
        hits = self.search_parts(retriever, rq)
        if failed is not None:
            ans = answerer.answer(q, hits, **gate_kwargs)
            if not ans.refused:
                ans.notice = failure_notice(failed)
            steps = iter([(ans.text, ans)])
        else:
            llm = LLMAnswerer(self.settings, model, self.embeddings.embed_passages)
            steps = llm.stream(rq, hits, answerer, gate_question=q, **gate_kwargs)
        for text, ans in steps:
            if ans is not None:
                ans.question = q
                ans.retrieval_query = rq
                ans.latency_ms = (time.perf_counter() - t0) * 1000
                logger.info(
                    "ask (llm): %d chars, mode=%s, refused=%s, evidence=%.3f, %.1f ms, index %s",
                    len(q), ans.mode, ans.refused, ans.evidence, ans.latency_ms, idx.version,
                )
            yield text, ans

    # ------------------------------------------------------------ status
    def status(self) -> dict:
        try:
            idx, _, _ = self.current()
        except Exception as e:  # status must never raise: it is shown on the page
            return {"ok": False, "error": str(e)}
        m = idx.manifest
        return {
            "ok": True,
            "version": idx.version,
            "chunks": len(idx.chunks),
            "documents": m.get("n_documents"),
            "embedder": m.get("embedder"),
            "dim": m.get("dim"),
            "built": m.get("created"),
            "path": str(Path(idx.path)),
        }

    # ------------------------------------------------------------ quiz
    def quiz(self, **kwargs):
        """Generate a quiz (see ``rag.quiz.make_quiz``: topic, article, n, types, exclude_bank)."""
        from .quiz.make import make_quiz

        return make_quiz(self, **kwargs)
