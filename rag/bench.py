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

from .config import ROOT, Settings

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
    from .eval.data import read_gold

    rows = read_gold(Path(path))
    return [(r["question"], r.get("history")) for r in rows], str(path)


def bench_build(settings: Settings, out: TextIO) -> tuple[dict, Path, tempfile.TemporaryDirectory]:
    """Full build into a temporary index folder; returns figures, the folder and its owner."""
    from .ingest.chunking import chunk_documents
    from .index.embeddings import make_embeddings
    from .index.indexing import build_index
    from .ingest.loaders import load_corpus

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
    from .errors import RagError

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
    from .service import RagService

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

    from .index.retrieval import Retriever
    from .schema import Chunk
    from .index.store.loaded import Index
    from .index.store.keywords import KeywordIndex

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
    from .index import indexing

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
        from .index.embeddings import make_embeddings

        dim = make_embeddings(settings).dim
        result["synthetic"] = bench_synthetic(settings, synthetic, dim, out)
        result["memory"]["peak_rss_after_synthetic_mb"] = round(_maxrss_mb(), 1)
        print(f"内存（合成语料之后）：峰值 {result['memory']['peak_rss_after_synthetic_mb']} MB", file=out)
    inc = _incremental(settings, out)
    if inc is not None:
        result["incremental"] = inc
    if settings.llm_base_url or settings.llm_gguf_path:  # time to first token and tokens/s (issue 6)
        from .llm.generation import bench_llm

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

    from .index.embeddings import make_embeddings
    from .index.indexing import build_index
    from .ingest.loaders import _corpus_files

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


# ---------------------------------------------------------------- load: python -m rag bench --load
def _p(values: list[float], p: float) -> float:
    return _pct(values, p) if values else math.nan  # a phase may have no sample (a reindex over all of it)


def _phase_figures(lat: list[tuple[float, float]], errors: int, window: tuple[float, float] | None) -> dict:
    """Answers, errors and p50/p95 (ms) of (start time, seconds) samples, overall and in ``window``."""
    ms = [d * 1000 for _, d in lat]
    out = {"answers": len(ms), "errors": errors, "p50_ms": _p(ms, 50), "p95_ms": _p(ms, 95)}
    if window is not None:
        a, b = window
        inside = [t <= b and t + d >= a for t, d in lat]  # the ask overlaps the window
        during = [d * 1000 for (_, d), i in zip(lat, inside) if i]
        outside = [d * 1000 for (_, d), i in zip(lat, inside) if not i]
        out.update(reindex_answers=len(during), reindex_p50_ms=_p(during, 50), reindex_p95_ms=_p(during, 95),
                   outside_answers=len(outside), outside_p95_ms=_p(outside, 95))
    return out


def run_load(settings: Settings, out: TextIO, *, seconds: float = 60.0, alone_seconds: float = 20.0,
             askers: int = 8, flooders: int = 4) -> dict:
    """8 signed-in askers for ``seconds`` with a full reindex in the middle and a login flood, vs one asker alone.

    Serves the real page (``app.build_app`` + ``app.launch``, the web layer: imported here, at run
    time, because this is an entry point like the CLI) on 127.0.0.1 at a free port over a copy of
    the corpus, with the index and users in a temporary folder (argon2 with its real cost). Every
    asker is a ``gradio_client`` signed in as its own cadre and asks the built-in questions in
    turn; a full rebuild starts a third of the way in
    (``RagService.reindex(rebuild=True)`` in the serving process, what the admin tab's button runs); the flood
    posts wrong passwords to ``/login`` from 127.0.0.2 in ``flooders`` threads. Loops are bounded
    by the clock and by a cap on requests. Prints both phases side by side and returns the figures.
    """
    import http.client
    import shutil
    import socket
    import threading
    import urllib.parse

    from gradio_client import Client

    import app as webapp

    from .index.documents import DocumentManager
    from .service import RagService
    from .users import UserStore

    tmp = tempfile.TemporaryDirectory(prefix="rag-load-")
    base = Path(tmp.name)
    shutil.copytree(settings.corpus_dir, base / "corpus")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    st = settings.with_(corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data",
                        host="127.0.0.1", port=port)
    users = UserStore(st.data_dir / "users.json")
    names = [f"asker{i}" for i in range(askers)]
    pw = {n: users.add(n, "cadre") for n in names}
    service = RagService(st)
    print(f"负载测试：建立索引（{st.corpus_dir.name}，临时目录）…", file=out, flush=True)
    service.ensure_index()
    service.wait_warm(900)
    docs = DocumentManager(st)
    demo = webapp.build_app(service, st, users, docs)
    webapp.launch(demo, st, users, docs, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    max_requests = 100_000  # a bound on every loop besides the clock

    def ask_loop(client: Client, k: int, until: float, lat: list, errs: list) -> None:
        i = k
        while time.perf_counter() < until and len(lat) < max_requests:
            q = BUILTIN_QUESTIONS[i % len(BUILTIN_QUESTIONS)]
            i += 1
            t0 = time.perf_counter()
            try:
                client.predict(q, [], api_name="/ask")
                lat.append((t0, time.perf_counter() - t0))
            except Exception as e:  # counted, and the loop goes on
                errs.append(repr(e)[:200])

    def flood(until: float, codes: dict, lock: threading.Lock) -> None:
        n = 0
        while time.perf_counter() < until and n < max_requests:
            n += 1
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=("127.0.0.2", 0))
                conn.request("POST", "/login", body=urllib.parse.urlencode({"username": names[n % askers], "password": f"guess-{n}"}),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                code = conn.getresponse().status
                conn.close()
            except OSError:
                code = -1
            with lock:
                codes[code] = codes.get(code, 0) + 1

    try:
        clients = [Client(url, auth=(n, pw[n]), verbose=False) for n in names]
        # phase 1: one asker alone
        lat1: list = []
        err1: list = []
        ask_loop(clients[0], 0, time.perf_counter() + alone_seconds, lat1, err1)
        alone = _phase_figures(lat1, len(err1), None)
        print(f"单人：{alone['answers']} 次回答，p50 {alone['p50_ms']:.0f} ms，p95 {alone['p95_ms']:.0f} ms", file=out, flush=True)
        # phase 2: 8 askers, a reindex at a third, a login flood all along
        lat2: list = []
        err2: list = []
        codes: dict = {}
        code_lock = threading.Lock()
        start = time.perf_counter()
        until = start + seconds
        threads = [threading.Thread(target=ask_loop, args=(c, k, until, lat2, err2), daemon=True)
                   for k, c in enumerate(clients)]
        threads += [threading.Thread(target=flood, args=(until, codes, code_lock), daemon=True) for _ in range(flooders)]
        for t in threads:
            t.start()
        window: dict = {}

        def reindex() -> None:
            # a full rebuild (every passage embedded again) in the serving process, as the admin
            # tab's 重建索引 runs it; through /reindex an unchanged corpus would be a no-op
            time.sleep(seconds / 3)
            window["start"] = time.perf_counter()
            try:
                window["ok"] = service.reindex(rebuild=True, user="boss").version is not None
            except Exception as e:
                window["error"] = repr(e)[:200]
            window["end"] = time.perf_counter()

        rt = threading.Thread(target=reindex, daemon=True)
        rt.start()
        rt.join(seconds + 600)
        for t in threads:
            t.join(120)
        win = (window.get("start", 0.0), window.get("end", 0.0))
        load = _phase_figures(lat2, len(err2), win)
        load["reindex_s"] = win[1] - win[0]
        load["reindex_ok"] = bool(window.get("ok"))
        load["login_flood"] = dict(sorted(codes.items()))
        rows = [
            ("回答数 answers", alone["answers"], load["answers"]),
            ("错误 errors", alone["errors"], load["errors"]),
            ("p50 ms", f"{alone['p50_ms']:.0f}", f"{load['p50_ms']:.0f}"),
            ("p95 ms", f"{alone['p95_ms']:.0f}", f"{load['p95_ms']:.0f}"),
            ("重建索引期间回答数 answers during reindex", "", load["reindex_answers"]),
            ("重建索引期间 p50 ms", "", f"{load['reindex_p50_ms']:.0f}"),
            ("重建索引期间 p95 ms", "", f"{load['reindex_p95_ms']:.0f}"),
            ("重建索引之外回答数 answers outside reindex", "", load["outside_answers"]),
            ("重建索引之外 p95 ms", "", f"{load['outside_p95_ms']:.0f}"),
        ]
        print(f"\n{'':44}{'1 人单独 (' + str(int(alone_seconds)) + ' s)':>18}{str(askers) + ' 人并发 (' + str(int(seconds)) + ' s)':>18}", file=out)
        for label, a, b in rows:
            print(f"{label:44}{a!s:>18}{b!s:>18}", file=out)
        print(f"\n重建索引：{load['reindex_s']:.1f} s（{'成功' if load['reindex_ok'] else '失败 ' + window.get('error', '')}）；"
              f"登录洪泛（127.0.0.2，{flooders} 线程）：{load['login_flood']}", file=out)
        ratio = load["reindex_p95_ms"] / alone["p95_ms"] if alone["p95_ms"] else math.nan
        print(f"重建索引期间 p95 / 单人 p95 = {ratio:.2f}（目标 ≤ 2）；"
              f"/ 同样并发、重建索引之外的 p95 = {load['reindex_p95_ms'] / load['outside_p95_ms']:.2f}", file=out)
        if err2:
            print("错误示例：" + "；".join(err2[:3]), file=out)
        return {"alone": alone, "load": load, "p95_ratio": ratio}
    finally:
        demo.close()
        service.close()
        tmp.cleanup()
