"""``generate_quiz`` and ``make_quiz``: choose items by type and spread, with or without an LLM.

What it does not do: store items (``bank.py``) or export them (``export.py``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import QuizError
from ..schema import Chunk
from .generator import Generator
from .items import TYPES, QuizItem, parse_types
from .llm_items import generate_with_llm
from .sentences import Candidate, QuizResult
from .validator import validate_item

logger = logging.getLogger(__name__)


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
    queues = _queues(cands, kinds, rank, gen.rng)
    items: list[QuizItem] = []
    seen_stems: set[str] = set()
    seen_facts: set[str] = set()
    while len(items) < n and any(queues.values()):
        for k in kinds:
            if len(items) >= n:
                break
            it = _next_item(queues[k], gen.texts, stats["dropped"], seen_stems=seen_stems, seen_facts=seen_facts,
                            exclude_stems=exclude_stems, exclude_facts=exclude_facts)
            if it is None:
                continue
            items.append(it)
            stats["generated"][k] += 1
            if progress is not None:
                progress(len(items), n, f"已生成 {len(items)}/{n} 题")
    stats["dropped"] = dict(stats["dropped"])
    stats["total"] = len(items)
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    logger.info("quiz: %d items (%s) in %.2f s", len(items), stats["generated"], stats["seconds"])
    return QuizResult(items, stats)


def _queues(cands: dict[str, list[Candidate]], kinds: list[str], rank: dict[str, int] | None,
            rng: random.Random) -> dict[str, list[Candidate]]:
    """Candidates per type in the order they are tried: by ``rank`` (the focus), else spread over articles."""
    queues: dict[str, list[Candidate]] = {}
    for k in kinds:
        pool = cands[k]
        if rank is not None:
            pool = [c for c in pool if c.chunk_id in rank]
            rng.shuffle(pool)
            pool.sort(key=lambda c: rank[c.chunk_id])  # stable: shuffled within a chunk
        else:
            pool = spread(pool, rng)
        if k in ("true_false", "fill_blank") and {"single_choice", "multi_choice"} & set(kinds):
            # lists are scarce and a list's fact can be tested once: leave them to the choice items
            list_facts = set().union(*(c.facts for c in cands["multi_choice"]))
            pool = sorted(pool, key=lambda c: bool(c.facts & list_facts))  # stable
        queues[k] = pool
    return queues


def _next_item(q: list[Candidate], texts, dropped: Counter, *, seen_stems: set[str], seen_facts: set[str],
               exclude_stems: set[str], exclude_facts: set[str]) -> QuizItem | None:
    """Pop candidates off ``q`` until one builds and validates (counting why the others were dropped);
    marks its stem and facts as seen. None when ``q`` runs out."""
    while q:
        c = q.pop(0)
        if c.facts & seen_facts:
            dropped["same fact as another item"] += 1
            continue
        if c.facts & exclude_facts:
            dropped["already in the question bank"] += 1
            continue
        built = c.build()
        if isinstance(built, str):
            dropped[built] += 1
            continue
        it = built
        it.fact = c.fact  # what the item tests (a sentence, or a term wherever it recurs)
        if it.stem_key in exclude_stems:
            dropped["already in the question bank"] += 1
            continue
        problems = validate_item(it, texts, seen_stems=seen_stems)
        if problems:
            for p in problems:
                dropped[p] += 1
            continue
        seen_stems.add(it.stem_key)
        seen_facts |= c.facts
        return it
    return None


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
    from .bank import QuestionBank

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
