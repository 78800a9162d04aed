"""Which further sentences join the best one: a learned, calibrated choice.

After the ranker has picked the best candidate of each part of a question, the answer may still
lack facts the question asks for: the other side of a comparison (the best candidate of both
parts is the same sentence, about one of the two offices), the sentence after a lead-in, the
figure in the next sentence. Each of the next candidates of each part's ranking gets a row of
general features (its ranker score and cosine against the best one's, whether it is in the same
passage or article, next to a chosen sentence, how much of the question's IDF-weighted terms it
adds, whether it names a place the question coordinates and no chosen sentence covers, the
question's shape: parts, "各自/分别", a list or a number asked for). A logistic model, fitted on
the labeled questions (does the candidate hold a key fact the chosen sentences lack?), gives each
row a probability; rows at or above the learned threshold join, best first, within the answer's
length budget. The threshold is chosen on the training questions for key facts plus citation
precision, so a joiner that does not help is switched off (threshold above 1).

What it does not do: write new text, or reach beyond the passages the answerer read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..text import norm

JOIN_FEATURES = (
    "rel_score", "rank", "same_passage", "same_article", "adjacent", "new_cov", "cov", "rel_cos", "cos",
    "length", "detail_q", "coord_q", "new_place", "dup_part", "chosen_length", "want_list", "want_num",
    "inline_heading", "parts", "evidence",
)
JOIN_DEPTH = 6  # candidates of each part's ranking after its best one that may join
JOIN_MAX = 1  # at most this many sentences join (CV, 810 q: 2 adds no key facts and costs precision)
NEVER = 1.01  # a threshold above every probability: no sentence joins


@dataclass
class PartChoice:
    """One part of a question as the answerer ranked it."""

    query: object  # Query
    scores: np.ndarray
    order: np.ndarray
    top: int
    dup: bool  # its best candidate was already chosen for an earlier part


def join_rows(answerer, prep, choices: list[PartChoice], chosen: list, evidence: float):
    """(candidate indices, feature rows) of the candidates that may join ``chosen``."""
    from ..text import cjk_bigrams
    from .features import DETAIL_Q, SAID_MAX
    from .spans import is_inline_heading

    cands, sims = prep.cands, prep.sims
    if sims is None:
        sims = np.zeros(len(cands))
    chosen_ids = {id(c) for c in chosen}
    chosen_texts = {norm(c.text) for c in chosen}  # a run's items are other objects than the same sentences
    chosen_terms = frozenset().union(*(c.covered for c in chosen)) if chosen else frozenset()
    chosen_len = sum(len(c.text) for c in chosen)
    spots = {(c.hit.chunk.id, c.pos) for c in chosen if c.kind == "sent"}
    chunks = {c.hit.chunk.id for c in chosen}
    sources = {c.hit.chunk.source for c in chosen}
    cores = answerer.coordinated_cores(prep.question)
    placed = set()
    for c in chosen:
        placed |= {p for p in cores if any(p in w for w in answerer.places.of(c.hit.chunk))}
    detail = bool(DETAIL_Q.search(prep.question))
    idx, rows, seen = [], [], set()
    for pc in choices:
        q, s = pc.query, pc.scores
        t = pc.top
        idf_total = sum(answerer.idf(x) for x in q.terms) or 1.0
        for rank, j in enumerate(pc.order[1 : JOIN_DEPTH + 1], 1):
            j = int(j)
            c = cands[j]
            if c.kind != "sent" or id(c) in chosen_ids or j in seen or norm(c.text) in chosen_texts:
                continue
            if q.said_bigrams and _said_share(cjk_bigrams(c.text), q.said_bigrams) >= SAID_MAX:
                continue  # a follow-up wants something new, not what the last answer said
            seen.add(j)
            new = c.covered - chosen_terms
            wheres = answerer.places.of(c.hit.chunk)
            new_place = any(p not in placed and any(p in w for w in wheres) for p in cores)
            rows.append([
                float(s[j] - s[t]), rank / JOIN_DEPTH, float(c.hit.chunk.id in chunks), float(c.hit.chunk.source in sources),
                float((c.hit.chunk.id, c.pos - 1) in spots or (c.hit.chunk.id, c.pos + 1) in spots),
                sum(answerer.idf(x) for x in new) / idf_total, c.coverage, float(sims[j] - sims[t]), float(sims[j]),
                len(c.text) / 100, float(detail), float(len(cores) >= 2), float(new_place), float(pc.dup),
                chosen_len / 100, float(q.want["list"]), float(q.want["num"]), float(is_inline_heading(c.text)),
                float(len(choices)), evidence,
            ])
            idx.append(j)
    return idx, (np.array(rows) if rows else np.zeros((0, len(JOIN_FEATURES))))


def _said_share(bigrams: set, said: set) -> float:
    return len(bigrams & said) / len(bigrams) if bigrams else 0.0


def pick(cands: list, idx: list[int], probs: np.ndarray, threshold: float, budget: int) -> list:
    """The rows at or above ``threshold``, most probable first, within ``budget`` characters."""
    out = []
    for k in np.argsort(-probs, kind="stable"):
        if probs[k] < threshold or len(out) >= JOIN_MAX:
            break
        c = cands[idx[int(k)]]
        if len(c.text) <= budget and not any(norm(c.text) == norm(x.text) for x in out):
            out.append(c)
            budget -= len(c.text)
    return out


def reading_order(chosen: list) -> list:
    """The chosen sentences grouped by passage, in the order the passages are first quoted, each
    group in the order chosen: a sentence that joins reads after the others of its passage, not
    after a sentence of another article. (Not by position: a run's items carry no position.)"""
    first: dict[str, int] = {}
    for c in chosen:
        first.setdefault(c.hit.chunk.id, len(first))
    return sorted(chosen, key=lambda c: first[c.hit.chunk.id])  # stable: the chosen order within a passage
