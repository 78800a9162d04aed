"""Fit what the answerer learns: fusion weights, candidate ranker, refusal gate and threshold.

``python -m rag train`` runs ``train_all`` on every labeled set and writes
``rag/answer/weights.json``; the same functions fit each fold of ``python -m rag cv``. Everything is
deterministic (grid order, L-BFGS from zero, rounded numbers), so a rebuild gives the same file.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from ..answer.features import FEATURES, GATE_FEATURES, gate_features
from ..answer.join import JOIN_FEATURES, NEVER, join_rows, pick
from ..answer.ranker import Model, choose_threshold, fit_listwise, fit_logistic, sigmoid
from .evaluation import score
from ..index.retrieval import Fusion
from .data import Item, article_of, gains

logger = logging.getLogger(__name__)

FUSION_GRID = {
    "dense": (0.5, 1.0, 1.5),
    "keyword": (0.5, 1.0, 1.5, 2.0),
    "phrase": (0.0, 1.0),
    "sentence": (0.0, 0.5, 1.0, 1.5),
    "question_passage": (0.7, 1.0),
    "place_mismatch": (0.6, 1.0),
}
SECOND_RATIOS = (0.5, 0.8, 1.01)  # 1.01: never a second sentence
RANKER_L2 = 1.0
GATE_L2 = 1.0
JOIN_L2 = 1.0
JOIN_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, NEVER)  # NEVER: the joiner is switched off
NEGATIVE_WEIGHT = 0.05  # weight of a "without its own article" refusal row in the gate's fit
MAX_FALSE_REFUSAL = 0.05  # on out-of-fold gate probabilities; the CV checks it holds on held-out articles
THRESHOLD_FOLDS = 5  # article groups for the out-of-fold probabilities the threshold is chosen on (1: in-sample)


def fusion_grid() -> list[Fusion]:
    out = []
    keys = list(FUSION_GRID)
    for vals in itertools.product(*(FUSION_GRID[k] for k in keys)):
        v = dict(zip(keys, vals))
        out.append(
            Fusion(
                weights={k: v[k] for k in ("dense", "keyword", "phrase", "sentence")},
                question_passage=v["question_passage"],
                place_mismatch=v["place_mismatch"],
            )
        )
    return out


def hits_for(service, item: Item, fusion: Fusion):
    _, retriever, _ = service.current()
    return service.search_parts(retriever, item.retrieval_query, fusion=fusion, lists=item.lists)


LISTS = ("dense", "keyword", "phrase", "sentence")


def _fusion_arrays(service, item: Item) -> list[tuple]:
    """Per query of the item: candidate ids, the 1/(k + rank) matrix of the lists, and the two
    passage flags fusion multiplies by (mostly questions; another place than the one asked)."""
    _, retriever, _ = service.current()
    k = service.settings.rrf_k
    out = []
    for lst in item.lists:
        ids = np.array(sorted(set().union(*(r.keys() for r in lst.ranks.values()))), dtype=np.int64)
        R = np.zeros((len(LISTS), len(ids)))
        for li, name in enumerate(LISTS):
            ranks = lst.ranks.get(name, {})
            for j, i in enumerate(ids):
                r = ranks.get(int(i))
                if r:
                    R[li, j] = 1.0 / (k + r)
        qflag = np.array([retriever._question_share(int(i)) > 0.5 for i in ids], dtype=bool)
        pflag = np.zeros(len(ids), dtype=bool)
        if lst.asked_places:
            chunks = retriever.index.chunks
            pflag = np.array([bool(w := retriever.places.of(chunks[int(i)])) and not (w & lst.asked_places) for i in ids])
        out.append((ids, R, qflag, pflag, bool(lst.asked_places)))
    return out


def _fused_top(arrays: list[tuple], fusion: Fusion, k: int) -> list[int]:
    """The chunk indices ``search_parts`` would return under ``fusion`` (same order), fast."""
    w = np.array([fusion.weights.get(n, 0.0) for n in LISTS])
    window = max(k, 20) * 2
    per_query = []
    for ids, R, qflag, pflag, asked in arrays:
        s = w @ R
        keep = s > 0
        order = np.argsort(-s, kind="stable")
        order = order[keep[order]]
        top = order[:window]
        s[top[qflag[top]]] *= fusion.question_passage
        order = order[np.argsort(-s[order], kind="stable")]
        if asked:
            top = order[:window]
            s[top[pflag[top]]] *= fusion.place_mismatch
            order = order[np.argsort(-s[order], kind="stable")]
        per_query.append([int(ids[j]) for j in order[:k]])
    if len(per_query) == 1:
        return per_query[0]
    out, seen = [], set()
    for rank in range(k):
        for lst in per_query:
            if rank < len(lst) and lst[rank] not in seen:
                seen.add(lst[rank])
                out.append(lst[rank])
    return out[: max(k, 10)]


def reciprocal_ranks(service, items: list[Item], fusions: list[Fusion], progress=None) -> np.ndarray:
    """(fusion, question) -> 1/rank of the first passage holding the evidence in the top 10 (0: none;
    NaN for unanswerable questions)."""
    k = service.settings.top_k
    rr = np.full((len(fusions), len(items)), np.nan)
    for j, it in enumerate(items):
        if it.g.get("type") == "unanswerable":
            continue
        arrays = _fusion_arrays(service, it)
        for f, fusion in enumerate(fusions):
            top = _fused_top(arrays, fusion, k)[:10]
            rank = next((r for r, i in enumerate(top, 1) if i in it.holders), None)
            rr[f, j] = 1.0 / rank if rank else 0.0
        if progress:
            progress(j + 1, len(items), "融合权重")
    return rr


def choose_fusion(rr: np.ndarray, mask: np.ndarray) -> int:
    """The grid point with the best mean reciprocal rank on the masked questions (first on ties)."""
    sub = rr[:, mask]
    means = np.nanmean(np.where(np.isnan(sub), np.nan, sub), axis=1) if sub.size else np.zeros(len(rr))
    return int(np.nanargmax(np.round(means, 9)))


def prepare_items(service, items: list[Item], fusion: Fusion, progress=None) -> list:
    _, _, answerer = service.current()
    out = []
    for n, it in enumerate(items, 1):
        hits = hits_for(service, it, fusion)
        out.append(answerer.prepare(it.question, hits, extra_terms=it.extra, said=it.said, context=it.context))
        if progress:
            progress(n, len(items), "候选特征")
    return out


def prepare_negatives(service, items: list[Item], fusion: Fusion) -> list:
    """The answerable questions once more, with every passage of their own articles taken out of
    what they retrieved: what "the material does not cover this" looks like for questions of every
    kind (off-topic questions are rare in the labels; these teach the gate their shape)."""
    _, _, answerer = service.current()
    out = []
    for it in items:
        files = {e.get("file") for e in it.g.get("evidence") or []}
        if it.g.get("type") == "unanswerable" or not files:
            out.append(None)
            continue
        hits = [h for h in hits_for(service, it, fusion) if h.chunk.source not in files]
        out.append(answerer.prepare(it.question, hits, extra_terms=it.extra, said=it.said, context=it.context))
    return out


def _gate_rows(answerer, model_ranker, prep) -> list[np.ndarray]:
    rows = []
    for q, X in prep.parts:
        s = model_ranker(X)
        top = int(np.argmax(s)) if len(s) else 0
        rows.append(gate_features(q, prep.cands, X, s, top, prep.hits, answerer))
    return rows


def fit_ranker(items: list[Item], preps: list, mask: np.ndarray, drop: list[int]):
    """The listwise candidate ranker on the masked answerable questions (``drop``: feature columns zeroed)."""
    groups = []
    for it, prep, m in zip(items, preps, mask):
        if not m or it.g.get("type") == "unanswerable" or not prep.cands:
            continue
        gvec = gains(it.g, prep.cands)
        for _, X in prep.parts:
            groups.append((_cut(X, drop), gvec))
    ranker = fit_listwise(groups, FEATURES, l2=RANKER_L2)
    if drop:
        ranker.coef[drop] = 0.0
    return ranker


def fit_gate(answerer, ranker, items: list[Item], preps: list, mask: np.ndarray, negatives: list | None, gdrop: list[int]):
    """The logistic gate on the masked questions under ``ranker``: (gate, rows, owner of each row;
    -1 for a "without its own article" refusal row)."""
    G, y, owner, wts = [], [], [], []
    for j, (it, prep, m) in enumerate(zip(items, preps, mask)):
        if not m or not prep.cands:
            continue
        for row in _gate_rows(answerer, ranker, prep):
            G.append(row)
            y.append(0.0 if it.g.get("type") == "unanswerable" else 1.0)
            owner.append(j)
            wts.append(1.0)
    for neg, m in zip(negatives or [], mask):
        if m and neg is not None and neg.cands:
            for row in _gate_rows(answerer, ranker, neg):
                G.append(row)
                y.append(0.0)
                owner.append(-1)
                wts.append(NEGATIVE_WEIGHT)
    G = _cut(np.array(G), gdrop) if G else np.zeros((0, len(GATE_FEATURES)))
    gate = fit_logistic(G, np.array(y), GATE_FEATURES, l2=GATE_L2, weights=np.array(wts))
    if gdrop:
        gate.coef[gdrop] = 0.0
    return gate, G, owner


def _question_probs(gate, G: np.ndarray, owner: list[int]) -> dict[int, float]:
    """A question's probability of being answered: its least answered part."""
    probs: dict[int, float] = {}
    for row_p, j in zip(sigmoid(gate(G)) if len(G) else [], owner):
        if j >= 0:
            probs[j] = min(probs.get(j, 1.0), float(row_p))
    return probs


def out_of_fold_probs(
    answerer, items: list[Item], preps: list, mask: np.ndarray, negatives: list | None, drop: list[int], gdrop: list[int]
) -> dict[int, float]:
    """Each masked question's gate probability from a ranker and gate fitted without its article
    (the articles dealt round-robin into ``THRESHOLD_FOLDS`` groups): what the gate says about an
    article it never saw, which is what a threshold must be chosen on."""
    arts = sorted({article_of(it.g) for it, m in zip(items, mask) if m})
    group = {a: i % THRESHOLD_FOLDS for i, a in enumerate(arts)}
    of = np.array([group.get(article_of(it.g), -1) for it in items])
    probs: dict[int, float] = {}
    for f in range(min(THRESHOLD_FOLDS, len(arts))):
        inner, held = mask & (of != f), mask & (of == f)
        ranker = fit_ranker(items, preps, inner, drop)
        gate, _, _ = fit_gate(answerer, ranker, items, preps, inner, negatives, gdrop)
        G, owner = gate_rows(answerer, ranker, preps, held, gdrop)
        probs.update(_question_probs(gate, G, owner))
    return probs


def gate_rows(answerer, ranker, preps: list, mask: np.ndarray, gdrop: list[int]):
    """The gate rows of the masked questions alone (no fit): (rows, owner of each row)."""
    G, owner = [], []
    for j, (prep, m) in enumerate(zip(preps, mask)):
        if m and prep.cands:
            for row in _gate_rows(answerer, ranker, prep):
                G.append(row)
                owner.append(j)
    return (_cut(np.array(G), gdrop) if G else np.zeros((0, len(GATE_FEATURES)))), owner


def _cut(X: np.ndarray, cols: list[int]) -> np.ndarray:
    if cols and len(X):
        X = X.copy()
        X[:, cols] = 0.0
    return X


def fit_model(
    service, items: list[Item], preps: list, mask: np.ndarray, fusion: Fusion, ablate: tuple = (), negatives: list | None = None
) -> Model:
    """Fit ranker, gate, threshold and the second-sentence ratio on the masked questions
    (``negatives``: their preparations without their own articles, refusals for the gate)."""
    _, _, answerer = service.current()
    drop = [FEATURES.index(f) for f in ablate if f in FEATURES]
    gdrop = [GATE_FEATURES.index(f) for f in ablate if f in GATE_FEATURES]
    ranker = fit_ranker(items, preps, mask, drop)
    gate, G, owner = fit_gate(answerer, ranker, items, preps, mask, negatives, gdrop)
    if THRESHOLD_FOLDS > 1:
        probs = out_of_fold_probs(answerer, items, preps, mask, negatives, drop, gdrop)
    else:  # in-sample: over-confident about the articles it was fitted on
        probs = _question_probs(gate, G, owner)
    answerable = np.array([p for j, p in probs.items() if items[j].g.get("type") != "unanswerable"])
    threshold = choose_threshold(answerable, MAX_FALSE_REFUSAL)
    model = Model(ranker=ranker, gate=gate, threshold=threshold, fusion=fusion.to_dict())
    # the second sentence: kept only at the ratio the training questions say helps most
    best = None
    for ratio in SECOND_RATIOS:
        model.second_ratio = ratio
        res = answer_items(service, items, preps, mask, model)
        gold = [it.g for it, m in zip(items, mask) if m]
        s = score(gold, {r["id"]: r for r in res})
        key = round(s["key_fact_coverage"] + s["citation_precision"], 6)
        if best is None or key > best[0]:
            best = (key, ratio)
    model.second_ratio = best[1] if best else 1.01
    model.joiner, model.join_threshold = fit_joiner(answerer, items, preps, mask, model)
    return model


def _join_case(answerer, item: Item, prep, model: Model):
    """One answerable training question as the joiner sees it: its rows, their labels (does the
    candidate hold a key fact the chosen sentences lack?) and what the threshold's choice scores."""
    from ..text import norm

    kf = [norm(f) for f in item.g.get("key_facts") or [] if norm(f)]
    if item.g.get("type") == "unanswerable" or not kf or not prep.cands:
        return None
    chosen, choices, _, probs, _ = answerer.choose(prep, model, model.threshold)
    evidence = min(probs) if probs else 0.0
    answered = max(probs) if len(prep.parts) > 1 and probs else evidence
    if not chosen or answered < model.threshold:
        return None
    idx, F = join_rows(answerer, prep, choices, chosen, evidence)
    text = norm("".join(c.text for c in chosen))
    have = {f for f in kf if f in text}
    quotes = [norm(e["quote"]) for e in item.g.get("evidence") or [] if norm(e.get("quote", ""))]

    def precise(chunk) -> bool:
        t = norm(chunk.text)
        return any(q in t for q in quotes) or any(f in t for f in kf)

    facts = [frozenset(f for f in kf if f in norm(prep.cands[j].text) and f not in have) for j in idx]
    cited = {c.hit.chunk.id: precise(c.hit.chunk) for c in chosen}
    return {"idx": idx, "F": F, "y": np.array([1.0 if f else 0.0 for f in facts]), "facts": facts, "have": have,
            "n": len(kf), "cited": cited, "precise": [precise(prep.cands[j].hit.chunk) for j in idx],
            "budget": answerer.settings.max_answer_chars - sum(len(c.text) for c in chosen), "prep": prep}


def fit_joiner(answerer, items: list[Item], preps: list, mask: np.ndarray, model: Model):
    """The joiner on the masked questions under ``model`` and its threshold: the one of
    ``JOIN_THRESHOLDS`` with the best key facts plus citation precision on those questions."""
    cases = [_join_case(answerer, it, prep, model) for it, prep, m in zip(items, preps, mask) if m]
    cases = [c for c in cases if c is not None]
    base_cites = sum(len(c["cited"]) for c in cases)
    base_precise = sum(sum(c["cited"].values()) for c in cases)
    cases = [c for c in cases if len(c["idx"])]
    if not cases:
        return None, NEVER
    F = np.vstack([c["F"] for c in cases])
    y = np.concatenate([c["y"] for c in cases])
    joiner = fit_logistic(F, y, JOIN_FEATURES, l2=JOIN_L2)
    answerable = sum(1 for it, m in zip(items, mask) if m and it.g.get("type") != "unanswerable")
    probs = [sigmoid(joiner(c["F"])) for c in cases]
    best = None
    for t in JOIN_THRESHOLDS:
        gained, cites, precise = 0.0, base_cites, base_precise
        for c, p in zip(cases, probs):
            picked = pick(c["prep"].cands, c["idx"], p, t, c["budget"])
            got, new_chunks = set(), {}
            for cand in picked:
                k = next(i for i, j in enumerate(c["idx"]) if c["prep"].cands[j] is cand)
                got |= c["facts"][k]
                cid = cand.hit.chunk.id
                if cid not in c["cited"]:
                    new_chunks[cid] = c["precise"][k]
            gained += len(got) / c["n"]
            cites += len(new_chunks)
            precise += sum(new_chunks.values())
        value = round(gained / max(answerable, 1) + precise / max(cites, 1), 6)
        if best is None or value > best[0]:
            best = (value, t)
    return joiner, best[1]


def answer_items(service, items: list[Item], preps: list, mask: np.ndarray, model: Model) -> list[dict]:
    """Results (the score.py format) of the masked questions under ``model``."""
    _, _, answerer = service.current()
    out = []
    for it, prep, m in zip(items, preps, mask):
        if not m:
            continue
        ans = answerer.decide(prep, model)
        ans.retrieval_query = it.retrieval_query
        out.append(ans.to_result(it.g["id"]))
    return out


def train_all(service, items: list[Item], progress=None) -> Model:
    """The shipped model: fusion chosen on every labeled question, then ranker and gate."""
    fusions = fusion_grid()
    rr = reciprocal_ranks(service, items, fusions, progress)
    mask = np.ones(len(items), dtype=bool)
    fusion = fusions[choose_fusion(rr, mask)]
    preps = prepare_items(service, items, fusion, progress)
    negatives = prepare_negatives(service, items, fusion)
    model = fit_model(service, items, preps, mask, fusion, negatives=negatives)
    model.meta = {"questions": len(items), "sets": sorted({it.g.get("set", "") for it in items})}
    return model
