"""Hybrid retrieval: dense (FAISS, cosine) + keyword (BM25 over rjieba tokens), fused by RRF.

``Retriever.search(query, k)`` returns ranked ``Hit`` objects with the fused score and both
component scores. Questions written mostly in Latin letters (English) are matched by the
multilingual embedder and, on the keyword side, by their Chinese keywords (rag/glossary.py). An optional
cross-encoder reranks the fused top candidates when a local model is configured.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from .config import Settings
from .chunking import split_sentences
from .embeddings import CrossEncoderReranker, VectorEmbeddings
from .schema import Hit
from .store import Index
from .glossary import chinese_keywords
from .names import PinyinNames
from .places import PlaceResolver, places_in
from .text import is_mostly_latin, norm, tokenize

logger = logging.getLogger(__name__)

CANDIDATES = 50  # per side, before fusion
QUESTION_PASSAGE = 0.7  # fused-score factor for a passage that is mostly questions
PLACE_MISMATCH = 0.6  # fused-score factor for a passage of another province than the one asked about
# a name the question puts in quotes (“以下看上”) is a phrase: passages that hold it verbatim form a
# third ranked list in the fusion, so a passage the embedder scores low is not lost for it
KW_WEIGHT = 1.3
PHRASE_WEIGHT = 1.0
# passages ranked by their best sentence's cosine (rag/sentvec.SentenceIndex) are a fourth list:
# a paraphrase often matches one sentence closely and the passage as a whole loosely
SENT_WEIGHT = 1.0
QUOTED_PHRASE = re.compile(r"[“\"「『]([^”\"」』]{2,20})[”\"」』]")


class Retriever:
    """Search one loaded index version. Holds no mutable state but caches: safe to share between threads."""

    def __init__(
        self,
        index: Index,
        embeddings: VectorEmbeddings,
        settings: Settings,
        reranker: CrossEncoderReranker | None = None,
        sentences=None,
    ) -> None:
        self.index = index
        self.embeddings = embeddings
        self.settings = settings
        self.reranker = reranker
        self.sentences = sentences  # SentenceIndex: passages by their best sentence (optional)
        self.places = PlaceResolver(index.chunks)
        self.names = PinyinNames(index.chunks)
        self._qshare: dict[int, float] = {}

    def _question_share(self, i: int) -> float:
        """Share of a passage's characters that are in questions ("……？"), cached per chunk."""
        share = self._qshare.get(i)
        if share is None:
            text = self.index.chunks[i].text
            total = asked = 0
            for a, z in split_sentences(text):
                sent = text[a:z].strip()
                total += len(sent)
                if sent.rstrip("”’」』)）").endswith(("?", "？")):
                    asked += len(sent)
            share = self._qshare[i] = asked / total if total else 0.0
        return share

    def phrase_rank(self, query: str, keyword_rank: dict[int, int]) -> dict[int, int]:
        """Keyword candidates that hold the question's quoted names verbatim (in the text or the
        heading path), most names first, then in keyword order."""
        phrases = [p for p in (norm(q) for q in QUOTED_PHRASE.findall(query)) if re.search(r"[\u4e00-\u9fff]", p)]
        if not phrases or not keyword_rank:
            return {}
        held = []
        for i, r in keyword_rank.items():
            c = self.index.chunks[i]
            text = norm(" ".join((*c.heading_path, c.text)))  # a section's heading names it for its passages
            n = sum(p in text for p in phrases)
            if n:
                held.append((-n, r, i))
        return {i: rank for rank, (_, _, i) in enumerate(sorted(held), 1)}

    def dense_scores(self, query_vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top candidates (ids, cosine scores) by inner product of normalised vectors."""
        found = self.index.store.dense(query_vec, CANDIDATES)
        return np.array([i for i, _ in found], dtype=np.int64), np.array([s for _, s in found], dtype=np.float32)

    def search(self, query: str, k: int | None = None, *, query_vec: np.ndarray | None = None) -> list[Hit]:
        k = k or self.settings.top_k
        chunks = self.index.chunks
        if not chunks:
            return []
        if query_vec is None:
            query_vec = self.embeddings.embed_query_vector(query)
        d_ids, d_scores = self.dense_scores(query_vec)
        dense = {int(i): float(s) for i, s in zip(d_ids, d_scores)}
        dense_rank = {int(i): r for r, i in enumerate(d_ids, 1)}

        keyword_rank: dict[int, int] = {}
        kw_scores = np.zeros(len(chunks), dtype=np.float32)
        # an English question is matched by its Chinese keywords (glossary terms, Chinese
        # fragments, figures, people); with none, the dense side alone decides
        if is_mostly_latin(query):  # people by their pinyin ("Shi Guangliang" -> 石光亮)
            tokens = tokenize(" ".join([chinese_keywords(query), *self.names.in_english(query)]))
        else:
            tokens = tokenize(query)
        if tokens:
            found = self.index.store.keyword(tokens, CANDIDATES)
            for i, s in found:
                kw_scores[i] = s
            keyword_rank = {int(i): r for r, (i, _) in enumerate(found, 1)}

        rrf_k = self.settings.rrf_k
        fused: dict[int, float] = {}
        for i, r in dense_rank.items():
            fused[i] = fused.get(i, 0.0) + 1.0 / (rrf_k + r)
        for i, r in keyword_rank.items():
            fused[i] = fused.get(i, 0.0) + KW_WEIGHT / (rrf_k + r)
        for i, r in self.phrase_rank(query, keyword_rank).items():
            fused[i] = fused.get(i, 0.0) + PHRASE_WEIGHT / (rrf_k + r)
        if self.sentences is not None:
            for i, r in self.sentences.rank(query_vec, CANDIDATES).items():
                fused[i] = fused.get(i, 0.0) + SENT_WEIGHT / (rrf_k + r)
        order = sorted(fused, key=lambda i: -fused[i])
        # a passage that is mostly questions (an interviewer's, an editor's lead) asks, it does not answer
        for i in order[: max(k, 20) * 2]:
            if self._question_share(i) > 0.5:
                fused[i] *= QUESTION_PASSAGE
        order = sorted(fused, key=lambda i: -fused[i])
        # a question about one province/city: passages that speak for another one go down
        asked = set(places_in(chinese_keywords(query) if is_mostly_latin(query) else query))
        if asked:
            for i in order[: max(k, 20) * 2]:
                where = self.places.of(chunks[i])
                if where and not (where & asked):
                    fused[i] *= PLACE_MISMATCH
            order = sorted(fused, key=lambda i: -fused[i])
        missing = [i for i in order[: max(k, 20)] if i not in dense]
        if missing:  # cosine for keyword-only candidates, so every hit carries a dense score
            vecs = self.index.store.vectors([int(i) for i in missing])
            for i, s in zip(missing, vecs @ query_vec):
                dense[i] = float(s)
        hits = [
            Hit(
                chunk=chunks[i],
                score=fused[i],
                dense_score=dense.get(i, 0.0),
                keyword_score=float(kw_scores[i]),
                dense_rank=dense_rank.get(i),
                keyword_rank=keyword_rank.get(i),
            )
            for i in order[: max(k, 20)]
        ]
        if self.reranker is not None and hits:
            rr = self.reranker.score(query, [h.chunk.text for h in hits])
            hits = [h for _, h in sorted(zip(rr, hits), key=lambda p: -p[0])]
        return hits[:k]
