"""Store figures at scale: ``python -m rag bench --scale 100000,1000000 --store faiss,milvus [--json]``.

For each store and size, on synthetic passages, in a fresh process of its own (so memory is
that store's alone):

- ``build_s``: writing one version through the store's own ``write_version`` (vector index,
  keyword index, chunk table, manifest; for Milvus, the inserts and its HNSW build);
- ``p50_ms``/``p95_ms``: ``Retriever.search`` (dense + keyword + the fusion) for one client,
  ``p95_ms_8clients`` with 8 threads asking at once; ``dense_p95_ms``/``keyword_p95_ms`` for the
  two store calls alone;
- ``recall_at_10``: the store's dense top 10 against exact search (``IndexFlatIP``) over the
  same vectors;
- ``rss_mb``: peak resident memory of that process; ``rss_build_mb`` the peak up to the end of
  the build (the input vectors and passages included), ``rss_serve_mb`` the peak from loading the
  version on (after the input is dropped; Linux only, else null); ``disk_mb``: the version on disk.

The passages: vectors are random but not uniform on the sphere, a random 48-dimensional
Gaussian mapped linearly into ``dim`` dimensions plus a little noise, then normalised. Text
embeddings have a low intrinsic dimension like that; uniform random 384-d vectors have no
near neighbours at all, and an ANN index measured on them says nothing about real use.
Token lists are Zipf-distributed over a 50,000-term vocabulary (``rag/bench._zipf_tokens``);
queries are four Zipf terms behind a short Chinese lead-in (an all-Latin query would take the
English path, whose glossary finds no keywords in ``t123``: the keyword side would not run),
and a fresh vector of the same kind.

What it does not do: embed anything (vectors are synthetic), or measure a Milvus server
(``RAG_MILVUS_URI`` pointing at one is used as configured; by default milvus-lite in a
temporary folder).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Sequence
from typing import TextIO

import numpy as np

from ..config import Settings

logger = logging.getLogger(__name__)

LATENT_DIM = 48
QUERIES = 200
CLIENTS = 8
KEYS = ("store", "n", "build_s", "p50_ms", "p95_ms", "p95_ms_8clients", "recall_at_10", "rss_mb", "disk_mb")


def synthetic_vectors(rng: np.random.Generator, n: int, dim: int, proj: np.ndarray, block: int = 100_000) -> np.ndarray:
    """``n`` normalised vectors of intrinsic dimension ``LATENT_DIM`` (see the module docstring)."""
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, block):
        m = min(block, n - s)
        v = rng.standard_normal((m, LATENT_DIM), dtype=np.float32) @ proj
        v += 0.05 * rng.standard_normal((m, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[s : s + m] = v
    return out


def _pct(values: list[float], p: float) -> float:
    from .bench import _pct as pct

    return pct(values, p)


def _du_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / 2**20


class _SyntheticChunks(Sequence):
    """The bench's input passages, made when asked for from one int32 array of term ids.

    Same texts as ``rag/eval/bench._zipf_tokens`` (the same draws from the same generator), but
    a million of them cost 4 bytes a token here instead of a ``Chunk`` and a list of strings
    each: what the build holds besides its input is then the store's, not the bench's.
    """

    def __init__(self, rng: np.random.Generator, n: int, vocab: int, mean_len: int = 40) -> None:
        weights = 1.0 / np.arange(1, vocab + 1)
        weights /= weights.sum()
        lens = rng.integers(mean_len // 2, mean_len * 3 // 2 + 1, size=n)
        self._draws = rng.choice(vocab, size=int(lens.sum()), p=weights).astype(np.int32)
        self._pos = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)

    def __len__(self) -> int:
        return len(self._pos) - 1

    def __getitem__(self, i):
        from ..schema import Chunk

        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not 0 <= i < len(self):
            raise IndexError(i)
        text = " ".join(f"t{j}" for j in self._draws[self._pos[i] : self._pos[i + 1]].tolist())
        return Chunk(id=f"s{i:07d}", source="synthetic.txt", title="", heading_path=(), text=text, start=0, end=0, ordinal=i)


def _rss_peak_mb() -> float:
    """Peak resident memory since the last ``_reset_rss_peak`` (VmHWM), else since start (MB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_rss_peak() -> bool:
    """Start VmHWM again from the current resident size (Linux: ``5`` into clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _queries(rng: np.random.Generator, queries: int, dim: int, proj: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Question texts (four Zipf terms) and vectors of the passages' kind."""
    from .bench import SYNTH_VOCAB

    qvecs = synthetic_vectors(rng, queries, dim, proj)
    weights = 1.0 / np.arange(1, SYNTH_VOCAB + 1)
    weights /= weights.sum()
    qterms = rng.choice(SYNTH_VOCAB, size=(queries, 4), p=weights)
    # a Chinese lead-in keeps the question off the English path (rag/glossary.py); its words
    # are in no synthetic passage, so only the four terms score
    return ["合成检索问题：" + " ".join(f"t{j}" for j in row) for row in qterms], qvecs


def _store_calls(idx, texts: list[str], qvecs: np.ndarray, truth: np.ndarray) -> tuple[float, list, list]:
    """Recall@10 of the dense list against exact search, and the two store calls' latencies (ms)."""
    from ..text import tokenize

    hits = 0
    dense_lat, kw_lat = [], []
    for q, v, t in zip(texts, qvecs, truth):
        t0 = time.perf_counter()
        got = idx.store.dense(v, 10)
        dense_lat.append((time.perf_counter() - t0) * 1000)
        hits += len({i for i, _ in got} & set(int(x) for x in t))
        t0 = time.perf_counter()
        idx.store.keyword(tokenize(q), 50)
        kw_lat.append((time.perf_counter() - t0) * 1000)
    return hits / (10 * len(texts)), dense_lat, kw_lat


def _search_latencies(retriever, texts: list[str], qvecs: np.ndarray, top_k: int) -> tuple[list, list]:
    """``Retriever.search`` latencies (ms): one client, then ``CLIENTS`` threads at once."""
    queries = len(texts)
    retriever.search(texts[0], top_k, query_vec=qvecs[0])  # warm-up
    lat = []
    for q, v in zip(texts, qvecs):
        t0 = time.perf_counter()
        retriever.search(q, top_k, query_vec=v)
        lat.append((time.perf_counter() - t0) * 1000)
    lat8: list[float] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        mine = []
        for j in range(k, max(queries, 2 * CLIENTS), CLIENTS):  # at least two questions per client
            t0 = time.perf_counter()
            retriever.search(texts[j % queries], top_k, query_vec=qvecs[j % queries])
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            lat8.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat, lat8


def bench_one(store_kind: str, n: int, *, dim: int = 384, seed: int = 0, settings: Settings | None = None,
              queries: int = QUERIES) -> dict:
    """Figures for one store and size (see the module docstring); run in a fresh process."""
    import faiss

    from .bench import SYNTH_VOCAB
    from ..index.store import open_store
    from ..index.retrieval import Retriever
    from ..schema import SourceText

    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((LATENT_DIM, dim), dtype=np.float32)
    vecs = synthetic_vectors(rng, n, dim, proj)
    chunks = _SyntheticChunks(rng, n, SYNTH_VOCAB)
    texts, qvecs = _queries(rng, queries, dim, proj)
    # exact search (inner product of normalised vectors = cosine) straight over the input: no
    # second copy of the vectors in an IndexFlatIP
    _, truth = faiss.knn(qvecs, vecs, 10, metric=faiss.METRIC_INNER_PRODUCT)
    doc = SourceText(source="synthetic.txt", text="", sha256="0" * 64, kind="txt")
    tmp = Path(tempfile.mkdtemp(prefix=f"rag-scale-{store_kind}-"))
    try:
        base = settings or Settings()
        s = base.with_(index_dir=tmp / "index", store=store_kind, milvus_collection=f"bench_{n}",
                       milvus_uri=base.milvus_uri if base.milvus_uri.startswith(("http://", "https://")) else "")
        store = open_store(s)
        t0 = time.perf_counter()
        name = store.write_version(chunks, vecs, [doc], embedder_id="synthetic", chunk_size=0, extra={"dim": dim})
        store.publish(name)
        build_s = time.perf_counter() - t0
        rss_build_mb = _rss_peak_mb()  # input vectors and passages + the build
        del vecs, chunks
        rss_serve_mb = None
        if _reset_rss_peak():  # from here on: loading the version and searching it
            rss_serve_mb = 0.0
        idx = store.load(name)
        retriever = Retriever(idx, None, s)  # type: ignore[arg-type]  # query_vec is always given
        recall, dense_lat, kw_lat = _store_calls(idx, texts, qvecs, truth)
        lat, lat8 = _search_latencies(retriever, texts, qvecs, s.top_k)
        # the whole run's peak: clear_refs also restarts ru_maxrss, so the larger of the two halves
        rss_mb = max(rss_build_mb, _rss_peak_mb())
        if rss_serve_mb is not None:
            rss_serve_mb = round(_rss_peak_mb(), 1)
        return {
            "store": store_kind,
            "n": n,
            "build_s": round(build_s, 1),
            "p50_ms": round(statistics.median(lat), 2),
            "p95_ms": round(_pct(lat, 95), 2),
            "p95_ms_8clients": round(_pct(lat8, 95), 2),
            "recall_at_10": round(recall, 4),
            "rss_mb": round(rss_mb, 1),
            "rss_build_mb": round(rss_build_mb, 1),
            "rss_serve_mb": rss_serve_mb,
            "disk_mb": round(_du_mb(tmp), 1),
            "dense_p95_ms": round(_pct(dense_lat, 95), 2),
            "keyword_p95_ms": round(_pct(kw_lat, 95), 2),
            "vector_index": idx.manifest.get("vector_index", {}).get("kind"),
            "keywords": idx.manifest.get("keywords", "bm25s"),
            "queries": queries,
        }
    finally:
        if store_kind == "milvus":
            from ..index.store.milvus import release

            release(str((tmp / "index" / "milvus.db").resolve()))
        shutil.rmtree(tmp, ignore_errors=True)


def _child(store_kind: str, n: int, settings: Settings, queries: int, q) -> None:
    try:
        q.put(bench_one(store_kind, n, settings=settings, queries=queries))
    except BaseException as e:  # reported by the parent, the process ends anyway
        q.put({"store": store_kind, "n": n, "error": f"{type(e).__name__}: {e}"})


def run_scale(settings: Settings, sizes: list[int], stores: list[str], out: TextIO, *, as_json: bool = False,
              queries: int = QUERIES) -> list[dict]:
    """``bench_one`` for every store and size, each in a spawned process; prints as it goes."""
    ctx = mp.get_context("spawn")
    results = []
    for n in sizes:
        for kind in stores:
            q = ctx.Queue()
            p = ctx.Process(target=_child, args=(kind, n, settings, queries, q))
            p.start()
            fig = q.get()
            p.join()
            results.append(fig)
            if as_json:
                print(json.dumps(fig, ensure_ascii=False), file=out, flush=True)
            elif "error" in fig:
                print(f"{kind} n={n}：失败（{fig['error']}）", file=out, flush=True)
            else:
                print(
                    f"{kind} n={n}：构建 {fig['build_s']} 秒；检索 p50 {fig['p50_ms']} ms，p95 {fig['p95_ms']} ms，"
                    f"8 并发 p95 {fig['p95_ms_8clients']} ms（向量 p95 {fig['dense_p95_ms']} ms，关键词 p95 "
                    f"{fig['keyword_p95_ms']} ms）；recall@10 {fig['recall_at_10']}；内存峰值 {fig['rss_mb']} MB，"
                    f"磁盘 {fig['disk_mb']} MB",
                    file=out, flush=True,
                )
    return results
