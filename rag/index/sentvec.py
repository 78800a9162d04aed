"""Passage vectors of single sentences, for the answerer's dense sentence check.

The extractive answerer compares a question with the sentences of its top passages when the
words alone do not decide (paraphrases, English). Embedding those sentences at question time
costs ~20 ms each on two cores, so they are cached: in memory, on disk beside the index's
embedding cache (``index/cache/<embedder>/sentences.npz``, no pickle), and
filled ahead of the questions by a background warm-up after an index version is loaded.

The warm-up is not part of the index build (a build embeds passages only); until it has
reached a sentence, the first question that needs it embeds it on the spot.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

logger = logging.getLogger(__name__)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class SentenceVectorCache:
    """Thread-safe text -> vector cache with optional persistence in ``directory``."""

    def __init__(
        self,
        embed_passages: Callable[[list[str]], np.ndarray],
        directory: Path | None = None,
        *,
        max_items: int = 200_000,
    ) -> None:
        self.embed_passages = embed_passages
        self.directory = Path(directory) if directory else None
        self.max_items = max_items
        self._lock = threading.Lock()
        self._vecs: dict[str, np.ndarray] = {}
        self._unsaved = 0
        self._load()

    def __len__(self) -> int:
        return len(self._vecs)

    def _load(self) -> None:
        if self.directory is None:
            return
        try:
            with np.load(self.directory / "sentences.npz", allow_pickle=False) as z:
                keys, mat = z["keys"], z["vectors"]
            if len(keys) == len(mat):
                self._vecs = {str(k): v for k, v in zip(keys, mat.astype(np.float32))}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError) as e:
            logger.warning("sentence vector cache in %s unreadable (%s): starting empty", self.directory, e)

    def missing(self, texts: Iterable[str]) -> list[str]:
        with self._lock:
            return [t for t in dict.fromkeys(texts) if _key(t) not in self._vecs]

    def cached(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The vectors the cache already holds for ``texts`` (nothing is embedded)."""
        with self._lock:
            return {t: self._vecs[_key(t)] for t in texts if _key(t) in self._vecs}

    def vectors(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts`` in order, embedding the ones not cached yet (in one call)."""
        todo = self.missing(texts)
        fresh = dict(zip(todo, self.embed_passages(todo))) if todo else {}
        if fresh:
            self._add(list(fresh), np.vstack(list(fresh.values())))
        with self._lock:  # a full cache may have been started over meanwhile: the fresh ones are at hand
            return np.vstack([np.asarray(fresh[t], dtype=np.float32) if t in fresh else self._vecs[_key(t)]
                              for t in texts])

    def _add(self, texts: list[str], vecs: np.ndarray) -> None:
        with self._lock:
            if len(self._vecs) + len(texts) > self.max_items:
                self._vecs.clear()  # bounded: start over rather than grow without limit
            for t, v in zip(texts, vecs):
                self._vecs[_key(t)] = np.asarray(v, dtype=np.float32)
            self._unsaved += len(texts)

    def warm(self, texts: list[str], *, stop: threading.Event, batch: int = 16, embed=None) -> int:
        """Embed the missing ``texts`` in small batches (queries get the embedder in between).

        ``embed`` (default: the cache's own function) lets a background caller use an embedder of its own.
        """
        embed = embed or self.embed_passages
        todo = self.missing(texts)
        done = 0
        t0 = time.perf_counter()
        for i in range(0, len(todo), batch):
            if stop.is_set():
                break
            part = self.missing(todo[i : i + batch])  # a question may have embedded some meanwhile
            if part:
                self._add(part, embed(part))
                done += len(part)
        if done:
            logger.info("sentence vectors warmed: %d embedded in %.1f s (%d cached)", done, time.perf_counter() - t0, len(self))
        self.save()
        return done

    def save(self) -> None:
        """Write the cache atomically; a failure only costs re-embedding later."""
        if self.directory is None:
            return
        with self._lock:
            if not self._unsaved or not self._vecs:
                return
            keys = list(self._vecs)
            mat = np.vstack([self._vecs[k] for k in keys]).astype(np.float32)
            self._unsaved = 0
        # one file, replaced atomically: keys and vectors can never come from two writers
        tmp = self.directory / f"sentences.{os.getpid()}.{threading.get_ident()}.tmp.npz"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, keys=np.array(keys, dtype="<U32"), vectors=mat)
            os.replace(tmp, self.directory / "sentences.npz")
        except OSError as e:
            logger.warning("sentence vector cache not saved (%s)", e)
            tmp.unlink(missing_ok=True)


class SentenceIndex:
    """Passages ranked by their best single sentence: a paraphrase often matches one sentence of a
    passage closely while the passage vector, averaged over the rest, does not ("拖拖拉拉、混日子"
    for the sentence on “庸懒散”). Uses the sentence cache only; until the warm-up has embedded every
    sentence of the index, ``rank`` returns nothing (no embedding on the query path)."""

    def __init__(self, sentences: list[tuple[str, int]], cache: "SentenceVectorCache") -> None:
        self.texts = list(dict.fromkeys(t for t, _ in sentences))
        where: dict[str, list[int]] = {}
        for t, i in sentences:
            where.setdefault(t, []).append(i)
        self.chunks_of = [where[t] for t in self.texts]
        self.cache = cache
        self._matrix: np.ndarray | None = None
        self._todo = self.texts  # sentences not yet seen in the cache
        self._cache_size = -1  # cache size at the last look: no new look until it grows
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """True once every sentence has a cached vector. Cheap on the query path: it looks again
        only when the cache has changed size, and then only at the sentences still missing."""
        with self._lock:
            if self._matrix is None and self.texts and len(self.cache) != self._cache_size:
                self._cache_size = len(self.cache)
                self._todo = self.cache.missing(self._todo)
                if not self._todo:
                    self._matrix = self.cache.vectors(self.texts)
            return self._matrix is not None

    def rank(self, query_vec: np.ndarray, top: int = 50) -> dict[int, int]:
        """chunk index -> rank (1 = best) by the cosine of its best sentence."""
        if not self.ready():
            return {}
        sims = self._matrix @ np.asarray(query_vec, dtype=np.float32)
        # the best few sentences are enough for ``top`` passages: partial sort, not a full one
        n = min(len(sims), 8 * top)
        best = np.argpartition(-sims, n - 1)[:n] if n < len(sims) else np.arange(len(sims))
        out: dict[int, int] = {}
        for j in best[np.argsort(-sims[best])]:
            for i in self.chunks_of[int(j)]:
                if i not in out:
                    out[i] = len(out) + 1
            if len(out) >= top:
                break
        return out
