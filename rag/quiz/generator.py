"""Quiz items for trainers (单选/多选/判断/填空), grounded in the corpus and validated against it.

Two ways to make items:

- ``generate_quiz(chunks, documents, ...)`` (the default, no LLM): items that are correct by
  construction from the corpus's own structure. Sentences are scanned for enumerations
  ("A、B、C", "一是……二是……三是……", optionally named by a counted label such as “四同”),
  quoted terms (“有事多商量”) and figures (number + unit). Choice items take their right options
  from one list and their distractors from *other* lists of the corpus, ranked by the embedding
  similarity of the items (the service's embedder) and of their passages (the index's vectors),
  checked not to belong to the right list or any version of it; 判断 items state a clause
  verbatim (正确) or with one figure, term or list member swapped for one from elsewhere
  (错误); 填空 items blank a quoted term, a figure or a list item whose context admits no other
  filler in the corpus.
- ``generate_with_llm(chat_model, hits, ...)``: asks a langchain chat model (``rag.llm.models.make_chat_model``
  through ``RagService.chat_model``) for one JSON item per passage, validates it, retries once
  with the problems, then drops and reports it. ``make_quiz(mode="llm")`` tops up with rule-made items.

Sentences are screened by generic checks before any item is built (``sentence_problem``,
``scope_conflicts``, ``variant_phrases``): editorial and reporting text, passages not attributed
to a speaker, paragraphs a city speaker uses to speak for a whole province (misplaced by layout),
Latin words inside Chinese text, headings, fragments, and wordings with a near-identical variant
elsewhere (suspected typos, conflicting versions). Sentences with relative dates ("今年") name the
article's year in the stem when the article has one.

Every item passes ``validate_item`` before it is returned: the evidence quote is verbatim in the
cited file (white space ignored), the answer fits the options and the type, a blank's answer is in
the quote, no distractor is in the quote, options do not contain each other, stems are not repeated.

What this module does *not* do: judge difficulty, paraphrase sentences, or guarantee that an item
is pedagogically interesting; whether the quote *implies* the answer (rubric G2) beyond the
mechanical checks is left to the trainer's review.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..schema import Chunk
from ..text import norm
from .blank import BlankItems
from .choice import ChoiceItems
from .items import CLAUSE_SPLIT, FIGURE_RE, QUOTE_MAX, QUOTE_MIN, QUOTED_TERM_RE, TYPES, Evidence, _near, squash
from .judge import JudgeItems
from .lists import find_lists, find_ordinal_lists
from .phrasing import (
    SEM_FLOOR,
    ItemVectors,
    _pct,
    balanced,
    clean_quote,
    option_score,
    quoted,
    shape_fits,
    statement,
    window,
)
from .sentences import Candidate, EnumList, Sent, corpus_sentences, short_source, strip_ordinal, variant_phrases


# ------------------------------------------------------------------ the generator
class Generator(ChoiceItems, BlankItems, JudgeItems):
    """Analyses a corpus once (sentences, lists, terms, figures) and builds candidate items of every type.

    With ``embeddings`` (the service's embedder) distractors are ranked by the cosine of their
    passage vectors to the right items, plus the topic similarity of their passages (the index's
    chunk vectors, ``chunk_vectors``); without, by surface similarity only.
    """

    def __init__(
        self,
        chunks: Sequence[Chunk],
        documents: dict[str, dict],
        *,
        seed: int = 0,
        embeddings=None,
        chunk_vectors: dict[str, np.ndarray] | None = None,
        vector_cache: Path | None = None,
    ) -> None:
        self.chunks = list(chunks)
        self.documents = documents
        self.texts = {s: (d.get("text") or "") for s, d in documents.items()}
        self.squashed = {s: squash(t) for s, t in self.texts.items()}
        self.all_norm = "".join(norm(t) for t in self.texts.values())
        self.headings = {norm(strip_ordinal(h)) for c in self.chunks for h in c.heading_path}
        self.sents, self.skipped = corpus_sentences(self.chunks, documents)
        self.rng = random.Random(seed)
        self.vectors = ItemVectors(embeddings, vector_cache) if embeddings is not None else None
        self.chunk_vectors = chunk_vectors or {}
        # suspected typos and conflicting versions (of a list member, a quoted term or slogan):
        # no item is built on a sentence that holds one
        lists = find_lists(self.sents, self.headings)
        phrases = [x for el in lists for x in el.items] + [
            squash(m[1]) for s in self.sents for m in re.finditer(r"“([^“”]{2,30})”", s.text)
        ]
        self.variants = variant_phrases(phrases, self.squashed.values())
        keep = [s for s in self.sents if not any(v in squash(s.text) for v in self.variants)]
        if len(keep) < len(self.sents):
            self.skipped["holds a suspected typo or a conflicting version"] += len(self.sents) - len(keep)
        self.sents = keep
        self.lists = find_lists(self.sents, self.headings) + find_ordinal_lists(self.sents, self.headings)
        self.terms = [(m[1], s) for s in self.sents for m in QUOTED_TERM_RE.finditer(s.text)]
        self.figures = [(m, s) for s in self.sents for m in FIGURE_RE.finditer(s.text)]
        # quoted names of mechanisms, brands and slogans elsewhere: distractors too ("别的主体的做法")
        self.term_sources = [
            EnumList([t], "", s, (s.text.find(f"“{t}”") + 1, s.text.find(f"“{t}”") + 1 + len(t)), kind="term")
            for t, s in self.terms if not re.search(r"\d", t)
        ]

    # -- helpers
    def verbatim(self, source: str, quote: str) -> bool:
        return squash(quote) in self.squashed.get(source, "")

    def base(self, s: Sent, quote: str) -> dict:
        return {
            "evidence": Evidence(file=s.chunk.source, quote=quote),
            "title": s.chunk.title,
            "heading_path": list(s.chunk.heading_path),
            "fact": s.key,
        }

    def versions(self, target: EnumList) -> list[EnumList]:
        """Lists that are a version of ``target`` (two items in common): their members may be right too."""
        own = target.norms
        return [o for o in self.lists if len(o.norms & own) >= 2]

    def topic(self, a: Chunk, b: Chunk) -> float:
        va, vb = self.chunk_vectors.get(a.id), self.chunk_vectors.get(b.id)
        return float(va @ vb) if va is not None and vb is not None else 0.0

    def distractors(self, target: EnumList, k: int) -> list[tuple[str, EnumList]]:
        """Items of other lists that look like the target's items but are checked not to be in it.

        Filters: not in the target list, any version of it, its sentence or its passage; no
        substring or near-variant of a right item; similar length; the affix the right items
        share. Ranking: embedding similarity to the right items (0.6), topic similarity of the
        passages (0.25), surface shape (0.15); at most one distractor per source list when possible.
        """
        own = target.norms
        banned = set(own)
        for v in self.versions(target):
            banned |= v.norms
        context = norm(target.sent.chunk.text) + norm(target.sent.text)
        pool: dict[str, tuple[str, EnumList]] = {}
        versions = self.versions(target)
        for other in self.lists + self.term_sources:
            if other.sent.key == target.sent.key or other in versions:
                continue
            for x in other.items:
                nx = norm(x)
                if nx in banned or nx in context or nx in pool:
                    continue
                if any(nx in o or o in nx or _near(nx, o) for o in own):
                    continue
                if not shape_fits(x, target.items):
                    continue
                pool[nx] = (x, other)
        if not pool:
            return []
        cands = list(pool.values())
        shape = [option_score(x, target.items) for x, _ in cands]
        if self.vectors is not None:
            vecs = self.vectors.get([*target.items, *(x for x, _ in cands)])
            right = np.vstack([vecs[t] for t in target.items])
            sem = [float(np.mean(right @ vecs[x])) for x, _ in cands]
            if len(target.items) >= 2:  # far less like the items than they are like each other: implausible
                pair = right @ right.T
                intra = float((pair.sum() - np.trace(pair)) / (len(target.items) * (len(target.items) - 1)))
                keep = [i for i, v in enumerate(sem) if v >= intra - SEM_FLOOR]
                cands, sem, shape = [cands[i] for i in keep], [sem[i] for i in keep], [shape[i] for i in keep]
                if not cands:
                    return []
            topic = [self.topic(target.sent.chunk, o.sent.chunk) for _, o in cands]
            score = [
                0.6 * a + 0.25 * b + 0.15 * c + 0.02 * self.rng.random()
                for a, b, c in zip(_pct(sem), _pct(topic), _pct(shape))
            ]
        else:
            score = [s + 0.05 * self.rng.random() for s in shape]
        ranked = sorted(zip(score, cands), key=lambda p: -p[0])
        picked: list[tuple[str, EnumList]] = []
        for strict in (True, False):  # first one per source list, then fill up
            for _, (x, other) in ranked:
                if len(picked) == k:
                    break
                if any(x == p for p, _ in picked):
                    continue
                if strict and any(o is other for _, o in picked):
                    continue
                if all(norm(x) not in norm(p) and norm(p) not in norm(x) for p, _ in picked):
                    picked.append((x, other))
        return picked[:k]

    def list_quote(self, el: EnumList) -> tuple[str, str] | None:
        """(quote, stem frame with the list elided) for a list; the quote holds the whole list and its label."""
        text = el.sent.text
        lo, hi = el.span
        if el.label_span:
            lo, hi = min(lo, el.label_span[0]), max(hi, el.label_span[1])
        w = window(text, lo, hi)
        if w is None:
            return None
        a, z = w
        bounds = [0] + [m.end() for m in CLAUSE_SPLIT.finditer(text[:a])]
        while len(norm(strip_ordinal(text[a : el.span[0]]))) < 4 and a > 0:  # the clause before says what the list is
            prev = max(b for b in bounds if b < a)
            if len(squash(text[prev:z])) > QUOTE_MAX:
                break
            a = prev
        quote = clean_quote(text[a:z])
        if not balanced(quote) or not QUOTE_MIN <= len(squash(quote)) <= QUOTE_MAX:
            return None
        if not self.verbatim(el.sent.chunk.source, quote):
            return None
        prefix, suffix = text[a : el.span[0]], clean_quote(text[el.span[1] : z])
        if len(norm(strip_ordinal(prefix))) < 4 and len(norm(suffix)) < 8:
            return None  # the stem needs what the list is about around the elided list
        frame = statement(f"{prefix}……{suffix}")
        return quote, frame

    def _where(self, other: EnumList) -> str:
        """Where a distractor comes from, for the explanation (rubric: say which list it belongs to)."""
        if other.kind == "term":
            text = other.sent.text
            a = max([0] + [m.end() for m in CLAUSE_SPLIT.finditer(text[: other.span[0]])])
            z = min([len(text)] + [a + m.end() for m in CLAUSE_SPLIT.finditer(text[a:]) if a + m.end() > other.span[1]])
            return f"见于{short_source(other.sent)}：{quoted(clean_quote(text[a:z]))}"
        listed = f"“{other.label}”" if other.label else f"“{'、'.join(other.items)}”这一列举"
        return f"见于{short_source(other.sent)}，属于{listed}"


    def candidates(self) -> dict[str, list[Candidate]]:
        out: dict[str, list[Candidate]] = {t: [] for t in TYPES}
        for gen in (self.choice_items, self.blank_items, self.judge_items):
            for c in gen():
                out[c.kind].append(c)
        return out


