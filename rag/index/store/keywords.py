"""BM25 over rjieba token lists on bm25s: one sparse matrix of precomputed weights.

bm25s computes, at build time, the weight of every (term, chunk) pair and keeps them as a
CSC matrix (one column per term); a query adds up the columns of its terms. Saved as one
``.npz`` (numeric arrays, the vocabulary as UTF-8 JSON bytes) and read back with
``allow_pickle=False``: bm25s's own ``save`` is not used, so nothing it may add is unpickled.

Scores equal the textbook BM25 the hand-written postings computed before (Lucene's IDF
``log(1 + (N - df + 0.5) / (df + 0.5))``, k1 = 1.5, b = 0.75): bm25s's Lucene variant leaves
the constant factor (k1 + 1) out, which ``scores`` puts back, so the figures stay comparable.

What it does not do: tokenise (the caller passes ``rag.text.tokenize`` tokens, the same at
build and query time), or update in place (a version's index is built once).
"""

from __future__ import annotations

import io
import json
import math
from array import array
from collections.abc import Iterable

import bm25s
import numpy as np

BM25_K1, BM25_B = 1.5, 0.75


def _bm25_weights(ids: np.ndarray, lens: np.ndarray, n_terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSC arrays (data, indices, indptr) bm25s builds for these token ids, same operations.

    ``ids``: every document's term ids one after another; ``lens``: tokens per document. bm25s
    computes per document ``idf * tf / (tf + k1 * ((1 - b) + b * l_d / l_avg))`` in float64
    (float32 tf and idf, NumPy 2 promotion) and stores it as float32; here the same expression
    runs over all (term, document) pairs, sorted by term and then document as in its CSC matrix.
    """
    n = len(lens)
    idx_t = np.int32 if max(n, len(ids)) < 2**31 - 1 else np.int64
    doc = np.repeat(np.arange(n, dtype=np.int64), lens)
    keys, tf = np.unique(ids.astype(np.int64) * n + doc, return_counts=True)
    del doc
    term, row = np.divmod(keys, n)
    del keys
    df = np.bincount(term, minlength=n_terms)
    idf = np.array([math.log(1 + (n - int(d) + 0.5) / (int(d) + 0.5)) if d else 0.0 for d in df], dtype=np.float32)
    l_avg = lens.mean()  # bm25s: np.array([len(doc_ids) ...]).mean()
    tf32 = tf.astype(np.float32)
    del tf
    tfc = tf32 / (BM25_K1 * ((1 - BM25_B) + BM25_B * lens[row].astype(np.float64) / l_avg) + tf32)
    data = (idf[term] * tfc).astype(np.float32)
    indptr = np.zeros(n_terms + 1, dtype=np.int64)  # as bm25s gives it
    np.cumsum(df, out=indptr[1:])
    return data, row.astype(idx_t), indptr


class KeywordIndex:
    """BM25 over token lists; ``scores``/``top`` for queries, ``idf`` for the answerer."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, vocab: list[str], n_docs: int,
                 doc_len: np.ndarray) -> None:
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.terms = vocab
        self.n_docs = int(n_docs)
        self.doc_len = doc_len  # tokens per chunk (kept for checks and the average length)
        self.df = np.diff(indptr).astype(np.int64)  # every stored weight is > 0: column length = document frequency
        self._bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
        self._bm25.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": self.n_docs}
        self._bm25.vocab_dict = self.vocab
        self._bm25.nonoccurrence_array = None  # only BM25L/BM25+ have one

    @classmethod
    def build(cls, token_lists: Iterable[list[str]]) -> KeywordIndex:
        """Build from token lists, read once (a generator is fine: nothing holds all of them).

        The weights are bm25s's own (``_build_scores_and_indices_for_matrix``, Lucene variant),
        computed over all pairs at once: each list becomes term ids as it arrives, so a million
        passages cost one int32 per token instead of a Python string per token twice over.
        tests/test_keywords.py checks them equal to bm25s.BM25.index, bit for bit.
        """
        vocab: dict[str, int] = {}  # term -> id in first-seen order, while streaming
        seen: set[str] = set()  # bm25s's vocabulary: a set updated passage by passage, enumerated
        ids, lens = array("i"), array("q")
        for toks in token_lists:
            ids.extend([vocab.setdefault(t, len(vocab)) for t in toks])
            seen.update(toks)
            lens.append(len(toks))
        doc_len = np.frombuffer(lens, dtype=np.int64).astype(np.int32)
        n, v = len(lens), len(vocab)
        if not v:
            empty = np.zeros(0, dtype=np.float32)
            return cls(empty, np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int32), [], n, doc_len)
        # bm25s's column order (the set's), so a query sums its terms' columns in the same order
        # and the scores stay the same to the last bit (rag train's weights depend on them)
        terms = list(seen)
        column = {t: j for j, t in enumerate(terms)}
        perm = np.empty(v, dtype=np.int32)
        for t, first in vocab.items():
            perm[first] = column[t]
        del vocab, column
        data, indices, indptr = _bm25_weights(perm[np.frombuffer(ids, dtype=np.int32)], np.frombuffer(lens, dtype=np.int64), v)
        return cls(data, indices, indptr, terms, n, doc_len)

    def __len__(self) -> int:
        return self.n_docs

    def __contains__(self, term: str) -> bool:
        return term in self.vocab

    @property
    def avgdl(self) -> float:
        return float(self.doc_len.mean()) if len(self.doc_len) else 0.0

    def idf(self, term: str) -> float:
        i = self.vocab.get(term)
        df = int(self.df[i]) if i is not None else 0
        return math.log(1 + (self.n_docs - df + 0.5) / (df + 0.5))

    def _ids(self, terms: list[str]) -> list[int]:
        return sorted({self.vocab[t] for t in terms if t in self.vocab})  # each term once, as before

    def scores(self, terms: list[str]) -> np.ndarray:
        """BM25 of every chunk for the query terms (0 for chunks sharing none)."""
        ids = self._ids(terms)
        if not ids or not self.n_docs:
            return np.zeros(self.n_docs, dtype=np.float32)
        return self._bm25.get_scores_from_ids(ids) * np.float32(BM25_K1 + 1)

    def top(self, terms: list[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best chunks with a score above 0, best first (ties by position)."""
        scores = self.scores(terms)
        if k <= 0 or not scores.size:
            return []
        k = min(k, scores.size)
        part = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        part = part[np.lexsort((part, -scores[part]))]
        return [(int(i), float(scores[i])) for i in part if scores[i] > 0]

    def doc_weights(self):
        """The chunk-by-term weight matrix (CSR, one row per chunk), BM25 with IDF included."""
        from scipy.sparse import csc_matrix

        s = self._bm25.scores
        m = csc_matrix((s["data"] * np.float32(BM25_K1 + 1), s["indices"], s["indptr"]), shape=(self.n_docs, len(self.terms)))
        return m.tocsr()

    def to_bytes(self) -> bytes:
        s = self._bm25.scores
        buf = io.BytesIO()
        np.savez(
            buf,
            data=s["data"], indices=s["indices"], indptr=s["indptr"], doc_len=self.doc_len,
            n_docs=np.array([self.n_docs], dtype=np.int64),
            vocab=np.frombuffer(json.dumps(self.terms, ensure_ascii=False).encode("utf-8"), dtype=np.uint8),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> KeywordIndex:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            vocab = json.loads(z["vocab"].tobytes().decode("utf-8"))
            return cls(z["data"], z["indices"], z["indptr"], vocab, int(z["n_docs"][0]), z["doc_len"])
