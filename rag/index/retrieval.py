"""Hybrid retrieval: dense (FAISS, cosine) + keyword (BM25 over rjieba tokens), fused by RRF.

``Retriever.search(query, k)`` returns ranked ``Hit`` objects with the fused score and both
component scores. Questions written mostly in Latin letters (English) are matched by the
multilingual embedder and, on the keyword side, by their Chinese keywords (rag/glossary.py). An optional
cross-encoder reranks the fused top candidates when a local model is configured.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from ..config import Settings
from ..ingest.chunking import split_sentences
from .embeddings import CrossEncoderReranker, VectorEmbeddings
from ..schema import Hit
from .store.loaded import Index
from ..glossary import chinese_keywords
from ..limits import embedding_text
from ..names import names_of
from ..places import PlaceResolver, places_in, resolve_aliases
from ..text import is_mostly_latin, norm, tokenize

logger = logging.getLogger(__name__)

CANDIDATES = 50  # per side, before fusion


@dataclass(frozen=True)
class Fusion:
    """How the ranked lists are combined: a weight per list (0 = unused) and two passage factors.

    The lists: dense (passage cosine), keyword (BM25 over rjieba tokens), phrase (passages holding
    the question's quoted names verbatim, in keyword order) and sentence (passages by their best
    single sentence's cosine). The values shipped are chosen by leave-one-article-out
    cross-validation (``python -m rag train``, ``rag/answer/weights.json``), not by hand.
    """

    weights: dict = field(default_factory=lambda: {"dense": 1.0, "keyword": 1.3, "phrase": 1.0, "sentence": 1.0})
    question_passage: float = 0.7  # factor for a passage that is mostly questions
    place_mismatch: float = 0.6  # factor for a passage of another province than the one asked about

    def to_dict(self) -> dict:
        return {"weights": dict(self.weights), "question_passage": self.question_passage, "place_mismatch": self.place_mismatch}

    @classmethod
    def from_dict(cls, d: dict) -> Fusion:
        return cls(weights=dict(d["weights"]), question_passage=d["question_passage"], place_mismatch=d["place_mismatch"])


@dataclass
class RankedLists:
    """What one query retrieved before fusion (computed once; fusion is cheap to redo)."""

    query: str
    query_vec: np.ndarray
    ranks: dict  # list name -> {chunk index: rank}
    dense: dict  # chunk index -> cosine
    kw_scores: np.ndarray
    asked_places: frozenset
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
        fusion: Fusion | None = None,
    ) -> None:
        self.index = index
        self.embeddings = embeddings
        self.settings = settings
        self.reranker = reranker
        self.sentences = sentences  # SentenceIndex: passages by their best sentence (optional)
        self.places = PlaceResolver(index.chunks)
        self._qshare: dict[int, float] = {}
        self.fusion = fusion or Fusion()

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

    def lists(self, query: str, *, query_vec: np.ndarray | None = None) -> RankedLists:
        """The ranked lists that fusion combines: chunk index -> rank (1 = best) in each, plus the
        cosine of every dense candidate and the BM25 score of every chunk."""
        query = resolve_aliases(query, self.index.vocabulary_has)  # "羊城" -> 广州 where the articles never say 羊城
        if query_vec is None:
            query_vec = self.embeddings.embed_query_vector(embedding_text(query, self.settings))
        d_ids, d_scores = self.dense_scores(query_vec)
        dense = {int(i): float(s) for i, s in zip(d_ids, d_scores)}
        dense_rank = {int(i): r for r, i in enumerate(d_ids, 1)}
        keyword_rank: dict[int, int] = {}
        kw_scores = np.zeros(len(self.index.chunks), dtype=np.float32)
        # an English question is matched by its Chinese keywords (glossary terms, Chinese
        # fragments, figures, people); with none, the dense side alone decides
        if is_mostly_latin(query):  # people by their pinyin ("Shi Guangliang" -> 石光亮)
            tokens = tokenize(" ".join([chinese_keywords(query), *names_of(self.index.chunks).in_english(query)]))
        else:
            tokens = tokenize(query)
        if tokens:
            found = self.index.store.keyword(tokens, CANDIDATES)
            for i, s in found:
                kw_scores[i] = s
            keyword_rank = {int(i): r for r, (i, _) in enumerate(found, 1)}
        sentence_rank = self.sentences.rank(query_vec, CANDIDATES) if self.sentences is not None else {}
        asked = frozenset(places_in(chinese_keywords(query) if is_mostly_latin(query) else query))
        return RankedLists(
            query=query,
            query_vec=query_vec,
            ranks={
                "dense": dense_rank,
                "keyword": keyword_rank,
                "phrase": self.phrase_rank(query, keyword_rank),
                "sentence": sentence_rank,
            },
            dense=dense,
            kw_scores=kw_scores,
            asked_places=asked,
        )

    TITLE_PLACES = True

    def _titled(self, chunk, places) -> bool:
        """Does the passage's title or heading path name an asked place? A report on "岫梁区" by
        the office of the city above it ("柘原市委直属机关工委调研组") speaks for 柘原 and is about
        岫梁: no place the gazetteer or the index taught us has a hierarchy, so the title decides."""
        if not self.TITLE_PLACES:
            return False
        head = " ".join((chunk.title, *chunk.heading_path))
        return any(p and p in head for p in places)

    def fuse(self, lists: RankedLists, k: int, fusion: Fusion | None = None) -> list[Hit]:
        """Weighted reciprocal rank fusion of ``lists`` (weights learned by ``python -m rag train``),
        then the passage-level factors: mostly-questions passages and passages of another place
        than the one asked about go down."""
        fusion = fusion or self.fusion
        chunks = self.index.chunks
        rrf_k = self.settings.rrf_k
        fused: dict[int, float] = {}
        for name, ranks in lists.ranks.items():
            w = fusion.weights.get(name, 0.0)
            if w <= 0:
                continue
            for i, r in ranks.items():
                fused[i] = fused.get(i, 0.0) + w / (rrf_k + r)
        order = sorted(fused, key=lambda i: -fused[i])
        # a passage that is mostly questions (an interviewer's, an editor's lead) asks, it does not answer
        for i in order[: max(k, 20) * 2]:
            if self._question_share(i) > 0.5:
                fused[i] *= fusion.question_passage
        order = sorted(fused, key=lambda i: -fused[i])
        # a question about one province/city: passages that speak for another one go down
        if lists.asked_places:
            for i in order[: max(k, 20) * 2]:
                ch = chunks[i]
                where = self.places.of(ch)
                if where and not (where & lists.asked_places) and not self._titled(ch, lists.asked_places):
                    fused[i] *= fusion.place_mismatch
            order = sorted(fused, key=lambda i: -fused[i])
        dense = lists.dense
        missing = [i for i in order[: max(k, 20)] if i not in dense]
        if missing:  # cosine for keyword-only candidates, so every hit carries a dense score
            vecs = self.index.store.vectors([int(i) for i in missing])
            for i, s in zip(missing, vecs @ lists.query_vec):
                dense[i] = float(s)
        return [
            Hit(
                chunk=chunks[i],
                score=fused[i],
                dense_score=dense.get(i, 0.0),
                keyword_score=float(lists.kw_scores[i]),
                dense_rank=lists.ranks["dense"].get(i),
                keyword_rank=lists.ranks["keyword"].get(i),
            )
            for i in order[: max(k, 20)]
        ]

    def search(self, query: str, k: int | None = None, *, query_vec: np.ndarray | None = None) -> list[Hit]:
        k = k or self.settings.top_k
        if not self.index.chunks:
            return []
        return self.rerank(query, self.fuse(self.lists(query, query_vec=query_vec), k))[:k]

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        """The optional cross-encoder's order (a local model; none by default)."""
        if self.reranker is None or not hits:
            return hits
        rr = self.reranker.score(query, [h.chunk.text for h in hits])
        return [h for _, h in sorted(zip(rr, hits), key=lambda p: -p[0])]
