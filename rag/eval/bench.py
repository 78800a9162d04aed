"""Performance figures for this machine: ``python -m rag bench``.

``run_bench(settings, gold_path, synthetic, out)`` measures, and returns as a dict:

- ``build``: a full index build of the configured corpus into a temporary folder (no embedding
  cache), in seconds and chunks per second, beside the raw embedder's passages per second on the
  same chunk texts in the same batch size (the limit a build can reach; timed before and after
  the build and averaged) and their ratio, and the build's seconds outside embedding;
- ``ask``: ``RagService.ask`` latency p50/p95 over the gold questions, cold (no sentence vectors
  cached) and warm (after the background sentence warm-up a running server does);
- ``memory``: peak resident memory (``ru_maxrss``) and the current RSS (psutil);
- ``synthetic``: ``Retriever.search`` latency p50/p95 on ``synthetic`` chunks made of random
  normalised vectors (FAISS ``IndexFlatIP``) and random Zipf-distributed token lists (BM25), with
  the keyword index build time and the memory it takes.

What it does not do: it never touches the configured ``index/`` folder (everything is built in a
``tempfile`` folder that is removed afterwards), and it does not embed the synthetic corpus
(embedding 100,000 passages on 2 cores takes hours; synthetic vectors exercise the same search).
"""

from __future__ import annotations

import json
import logging
import math
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from ..config import ROOT, Settings

logger = logging.getLogger(__name__)

DEFAULT_GOLD = ROOT.parent / "shared" / "eval" / "dev.jsonl"
BUILTIN_QUESTIONS = [
    "“一抓双创”的内容是什么？",
    "全国地方政协秘书长工作交流座谈会是什么时候、在哪儿开的？",
    "山东省政协机关有没有叫得响的品牌党支部？",
    "“党建链动”行动取得了哪些成效？",
    "湖南省政协的政协云有什么作用？",
    "石光亮说机关党建工作难在哪里？",
    "省直机关“双报到”工作是怎么开展的？",
    "山西省政协办公厅的职能定位是什么？",
    "广州市政协机关建设的是什么类型的机关？",
    "What is the Party building chain action in Shandong?",
]
SYNTH_VOCAB = 50_000
SYNTH_QUERIES = 200


def _pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def _maxrss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS)
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / (1024 * 1024)


def _bar(iterable, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)


def load_questions(gold_path: Path | None) -> tuple[list[tuple[str, list | None]], str]:
    """(question, history) pairs from the gold file, or the built-in list when there is none."""
    path = gold_path or (DEFAULT_GOLD if DEFAULT_GOLD.exists() else None)
    if path is None:
        return [(q, None) for q in BUILTIN_QUESTIONS], "built-in"
    from .data import read_gold

    rows = read_gold(Path(path))
    return [(r["question"], r.get("history")) for r in rows], str(path)


def bench_build(settings: Settings, out: TextIO) -> tuple[dict, Path, tempfile.TemporaryDirectory]:
    """Full build into a temporary index folder; returns figures, the folder and its owner."""
    from ..ingest.chunking import chunk_documents
    from ..index.embeddings import make_embeddings
    from ..index.indexing import build_index
    from ..ingest.loaders import load_corpus

    tmp = tempfile.TemporaryDirectory(prefix="rag-bench-")
    index_dir = Path(tmp.name) / "index"
    bsettings = settings.with_(index_dir=index_dir)
    emb = make_embeddings(bsettings)
    emb.embed_passages(["预热"])  # load the model outside the timings

    # the limit: the raw embedder on the same texts, in the same batch size. Timed before and
    # after the build and averaged (A-B-A), so that a change in machine load during the run
    # does not pass for build overhead.
    docs, _ = load_corpus(Path(settings.corpus_dir), max_bytes=settings.upload_max_bytes)
    texts = [c.embed_text() for c in chunk_documents(docs, settings)]
    bs = max(1, settings.embed_batch_size)

    def raw_pass(desc: str) -> float:
        t0 = time.perf_counter()
        for s in _bar(range(0, len(texts), bs), total=math.ceil(len(texts) / bs), desc=desc):
            emb.embed_passages(texts[s : s + bs], batch_size=bs)
        return time.perf_counter() - t0

    raw_before = raw_pass("raw embed (before)")
    t0 = time.perf_counter()
    report = build_index(bsettings, emb, rebuild=True)
    build_s = time.perf_counter() - t0
    raw_after = raw_pass("raw embed (after)")
    raw_s = (raw_before + raw_after) / 2

    chunks_per_s = report.n_chunks / build_s if build_s else 0.0
    raw_per_s = len(texts) / raw_s if raw_s else 0.0
    fig = {
        "documents": report.n_documents,
        "chunks": report.n_chunks,
        "seconds": round(build_s, 3),
        "embed_seconds": round(report.embed_seconds, 3),
        "chunks_per_s": round(chunks_per_s, 2),
        "overhead_seconds": round(build_s - report.embed_seconds, 3),  # parse, chunk, BM25, FAISS, write, verify
        "raw_embed_seconds": round(raw_s, 3),
        "raw_embed_seconds_before_after": [round(raw_before, 3), round(raw_after, 3)],
        "raw_passages_per_s": round(raw_per_s, 2),
        "ratio": round(chunks_per_s / raw_per_s, 3) if raw_per_s else None,
        "batch_size": bs,
        "embedder": emb.model_id,
    }
    print(
        f"建索引：{fig['documents']} 篇文章，{fig['chunks']} 个段落，用时 {build_s:.2f} 秒，"
        f"{chunks_per_s:.1f} 段/秒（嵌入以外 {fig['overhead_seconds']:.2f} 秒）；"
        f"向量模型直接嵌入 {raw_per_s:.1f} 段/秒（建索引前后各测一次取平均）；"
        f"比值 {fig['ratio']}（目标 ≥ 0.8）",
        file=out,
    )
    return fig, index_dir, tmp


def _ask_pass(service, questions) -> tuple[list[float], int]:
    from ..errors import RagError

    lat: list[float] = []
    errors = 0
    for q, history in _bar(questions, total=len(questions), desc="ask"):
        t0 = time.perf_counter()
        try:
            service.ask(q, history)
        except RagError:  # e.g. an over-long question in a hand-written gold file
            errors += 1
            continue
        lat.append((time.perf_counter() - t0) * 1000)
    return lat, errors


def bench_ask(settings: Settings, index_dir: Path, gold_path: Path | None, out: TextIO) -> dict:
    """``ask`` latency over the gold questions on the freshly built index, twice:

    cold — right after the index is loaded, no sentence vectors cached yet (each question that
    needs the dense sentence check embeds its sentences on the spot); warm — after the
    background sentence warm-up a running server does (rag/index/sentvec.py), i.e. steady state.
    """
    from ..service import RagService

    questions, origin = load_questions(gold_path)
    cold_service = RagService(settings.with_(index_dir=index_dir, sentence_warmup=False))
    cold_service.ask("预热")
    cold, errors = _ask_pass(cold_service, questions)
    # a new service: the cold one kept its sentence vectors in memory only (it never saves), so
    # this warm-up starts from an empty disk cache and its time is the full warm-up time
    service = RagService(settings.with_(index_dir=index_dir, sentence_warmup=True))
    t0 = time.perf_counter()
    service.ask("预热")
    service.wait_warm()
    warm_s = time.perf_counter() - t0
    lat, errors = _ask_pass(service, questions)
    service.close()
    fig = {
        "questions": len(questions),
        "source": origin,
        "errors": errors,
        "p50_ms": round(statistics.median(lat), 2) if lat else None,
        "p95_ms": round(_pct(lat, 95), 2) if lat else None,
        "max_ms": round(max(lat), 2) if lat else None,
        "cold_p50_ms": round(statistics.median(cold), 2) if cold else None,
        "cold_p95_ms": round(_pct(cold, 95), 2) if cold else None,
        "sentence_warmup_s": round(warm_s, 2),
        "sentences_cached": len(service._sentence_cache or ()),
    }
    print(
        f"问答延迟（{fig['questions']} 个问题，来自 {origin}）：p50 {fig['p50_ms']} ms，p95 {fig['p95_ms']} ms"
        f"（目标 p50 < 100 ms；句向量预热 {fig['sentence_warmup_s']} 秒，{fig['sentences_cached']} 句）；"
        f"冷启动（未预热）p50 {fig['cold_p50_ms']} ms，p95 {fig['cold_p95_ms']} ms",
        file=out,
    )
    return fig


def _zipf_tokens(rng: np.random.Generator, n_docs: int, vocab: int, mean_len: int = 40) -> list[list[str]]:
    """Token lists whose term frequencies follow ~1/rank (a Zipf-ish vocabulary)."""
    weights = 1.0 / np.arange(1, vocab + 1)
    weights /= weights.sum()
    lens = rng.integers(mean_len // 2, mean_len * 3 // 2 + 1, size=n_docs)
    draws = rng.choice(vocab, size=int(lens.sum()), p=weights)
    names = [f"t{i}" for i in range(vocab)]
    out, pos = [], 0
    for n in lens:
        out.append([names[j] for j in draws[pos : pos + n]])
        pos += n
    return out


def bench_synthetic(settings: Settings, n: int, dim: int, out: TextIO, *, seed: int = 0) -> dict:
    """Retriever.search on ``n`` synthetic chunks: random unit vectors + Zipf token lists."""
    import faiss

    from ..index.retrieval import Retriever
    from ..schema import Chunk
    from ..index.store.loaded import Index
    from ..index.store.keywords import KeywordIndex

    rng = np.random.default_rng(seed)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(dim)  # inner product of normalised vectors = cosine
    flat.add(vecs)
    del vecs
    vec_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    tokens = _zipf_tokens(rng, n, SYNTH_VOCAB)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    keywords = KeywordIndex.build(tokens)
    kw_s = time.perf_counter() - t0
    chunks = [
        Chunk(id=f"s{i:07d}", source="synthetic.txt", title="", heading_path=(), text=" ".join(t[:8]), start=0, end=0)
        for i, t in enumerate(tokens)
    ]
    del tokens
    index = Index("synthetic", Path("."), {"dim": dim}, flat, chunks, keywords)
    rss_built = _rss_mb()

    # token queries: space-separated synthetic terms, which rag.text.tokenize keeps whole
    retriever = Retriever(index, None, settings)  # type: ignore[arg-type]  # query_vec is always given
    qvecs = rng.standard_normal((SYNTH_QUERIES, dim), dtype=np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, SYNTH_VOCAB + 1)
    weights /= weights.sum()
    qterms = rng.choice(SYNTH_VOCAB, size=(SYNTH_QUERIES, 4), p=weights)
    queries = [" ".join(f"t{j}" for j in row) for row in qterms]
    retriever.search(queries[0], settings.top_k, query_vec=qvecs[0])  # warm-up
    lat = []
    for q, v in _bar(zip(queries, qvecs), total=SYNTH_QUERIES, desc=f"search {n}"):
        t0 = time.perf_counter()
        retriever.search(q, settings.top_k, query_vec=v)
        lat.append((time.perf_counter() - t0) * 1000)
    fig = {
        "chunks": n,
        "dim": dim,
        "vocabulary": SYNTH_VOCAB,
        "queries": SYNTH_QUERIES,
        "vector_index_seconds": round(vec_s, 3),
        "token_generation_seconds": round(gen_s, 3),
        "keyword_index_seconds": round(kw_s, 3),
        "search_p50_ms": round(statistics.median(lat), 2),
        "search_p95_ms": round(_pct(lat, 95), 2),
        "rss_added_mb": round(rss_built - rss0, 1),
    }
    print(
        f"合成语料检索（{n} 个段落，{dim} 维，词表 {SYNTH_VOCAB}）：p50 {fig['search_p50_ms']} ms，"
        f"p95 {fig['search_p95_ms']} ms；关键词索引构建 {kw_s:.2f} 秒，向量索引 {vec_s:.2f} 秒，"
        f"占用内存约 {fig['rss_added_mb']} MB",
        file=out,
    )
    return fig


def _incremental(settings: Settings, out: TextIO) -> dict | None:
    """Figures of ``bench_incremental(settings)`` when rag.index.indexing or this module offers it."""
    from ..index import indexing

    fn = getattr(indexing, "bench_incremental", None) or globals().get("bench_incremental")
    if fn is None:
        return None
    fig = fn(settings)
    print(f"增量索引：{json.dumps(fig, ensure_ascii=False, default=str)}", file=out)
    return fig


def run_bench(settings: Settings, gold_path: Path | None, synthetic: int, out: TextIO) -> dict:
    """Measure build, ask latency, memory and synthetic retrieval; print and return the figures."""
    result: dict = {}
    build, index_dir, tmp = bench_build(settings, out)
    try:
        result["build"] = build
        result["ask"] = bench_ask(settings, index_dir, gold_path, out)
    finally:
        tmp.cleanup()
    result["memory"] = {"peak_rss_mb": round(_maxrss_mb(), 1), "rss_mb": round(_rss_mb(), 1)}
    print(
        f"内存（真实语料）：峰值 {result['memory']['peak_rss_mb']} MB，当前 {result['memory']['rss_mb']} MB",
        file=out,
    )
    if synthetic > 0:
        from ..index.embeddings import make_embeddings

        dim = make_embeddings(settings).dim
        result["synthetic"] = bench_synthetic(settings, synthetic, dim, out)
        result["memory"]["peak_rss_after_synthetic_mb"] = round(_maxrss_mb(), 1)
        print(f"内存（合成语料之后）：峰值 {result['memory']['peak_rss_after_synthetic_mb']} MB", file=out)
    inc = _incremental(settings, out)
    if inc is not None:
        result["incremental"] = inc
    if settings.llm_base_url or settings.llm_gguf_path:  # time to first token and tokens/s (issue 6)
        from ..llm.generation import bench_llm

        try:
            result["llm"] = llm = bench_llm(settings)
            print(f"LLM（{llm['model']}）：首 token {llm['ttft_s']} 秒，{llm['tokens_per_s']} token/秒", file=out)
        except Exception as e:  # a model server that is down must not lose the other figures
            result["llm"] = {"configured": True, "error": f"{type(e).__name__}: {e}"}
            print(f"LLM：无法测量（{type(e).__name__}）", file=out)
    logger.info("bench: %s", result)
    return result


def bench_incremental(settings: Settings) -> dict:
    """Time to add one article and reindex, next to a full rebuild of the same corpus.

    Works on temporary copies of the corpus and index: builds the corpus minus its last
    article, adds that article and reindexes incrementally (only it is parsed and embedded),
    then rebuilds everything with ``rebuild=True``. Does not touch the live index.
    """
    import shutil

    from ..index.embeddings import make_embeddings
    from ..index.indexing import build_index
    from ..ingest.loaders import _corpus_files

    files = [(n, p) for n, p in _corpus_files(Path(settings.corpus_dir)) if not n.startswith("metadata")]
    if len(files) < 2:
        return {"error": "corpus has fewer than two articles"}
    with tempfile.TemporaryDirectory(prefix="rag-bench-inc-") as tmp:
        corpus = Path(tmp) / "corpus"
        shutil.copytree(settings.corpus_dir, corpus)
        last_name, _ = files[-1]
        held = Path(tmp) / "held"
        (corpus / last_name).replace(held)
        s = settings.with_(corpus_dir=corpus, index_dir=Path(tmp) / "index", data_dir=Path(tmp) / "data")
        emb = make_embeddings(s)
        emb.embed_passages(["预热"])  # load the model outside the timings
        build_index(s, emb, rebuild=True)
        held.replace(corpus / last_name)
        t0 = time.perf_counter()
        inc = build_index(s, emb)
        inc_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = build_index(s, emb, rebuild=True)
        full_s = time.perf_counter() - t0
    return {
        "added_file": last_name,
        "documents": full.n_documents,
        "chunks": full.n_chunks,
        "add_one_seconds": round(inc_s, 3),
        "add_one_parsed": len(inc.parsed),
        "add_one_embedded": inc.embedded,
        "full_rebuild_seconds": round(full_s, 3),
        "full_rebuild_embedded": full.embedded,
        "speedup": round(full_s / inc_s, 1) if inc_s else None,
    }
