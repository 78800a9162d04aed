"""Test doubles that do real arithmetic (like simonw/llm's ``EmbedDemo``), not mocks.

``CharBigramEmbeddings`` is a real langchain ``Embeddings`` (and a ``VectorEmbeddings``, so the
indexer and retriever accept it): each text becomes a bag of character bigrams hashed with crc32
into ``dim`` buckets, L2-normalised. Texts that share bigrams get a positive cosine, so
"大熊猫吃什么？" lands nearest to the panda passage. It loads in no time and needs no model.
It does not understand meaning, synonyms or other languages.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

from rag.index.embeddings import VectorEmbeddings


class CharBigramEmbeddings(VectorEmbeddings):
    """crc32-hashed character bigrams (and single characters), normalised.

    >>> e = CharBigramEmbeddings()
    >>> v = e.embed_query_vector("大熊猫")
    >>> round(float(v @ v), 5)
    1.0
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.model_id = f"fake:char-bigram-{dim}"

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        t = "".join(text.split())
        grams = [t[i : i + 2] for i in range(len(t) - 1)] + list(t)
        for g in grams:
            v[zlib.crc32(g.encode("utf-8")) % self.dim] += 1.0
        n = float(np.linalg.norm(v))
        return v / n if n else v

    def embed_passages(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._vector(t) for t in texts])

    def embed_query_vector(self, text: str) -> np.ndarray:
        return self._vector(text)
