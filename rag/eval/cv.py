"""Leave-one-article-out cross-validation of everything the answerer learns.

For each article A: the fusion weights, the ranker, the gate and its threshold and the second-
sentence ratio are fitted on the questions that touch no passage of A, then A's questions are
answered and scored. The pooled figures over all folds are the ones that decide what lands;
baselines (the BM25 top chunk, the dense top chunk) are scored on the same questions.
"""

from __future__ import annotations

import logging

import numpy as np

from .evaluation import score
from ..schema import Answer, Citation, Hit
from .data import Item, article_of, articles_of
from .train import answer_items, choose_fusion, fit_model, fusion_grid, prepare_items, prepare_negatives, reciprocal_ranks

logger = logging.getLogger(__name__)


def folds_of(items: list[Item]) -> list[str]:
    return sorted({article_of(it.g) for it in items})


def fold_masks(items: list[Item], art: str) -> tuple[np.ndarray, np.ndarray]:
    """(test, train) of the fold of article ``art``: its questions, and those touching none of its
    passages and not in the fold themselves (an unanswerable that names no article is in the fold
    "?" and touches no article: before 2026-12-02 afternoon those were in their own training set)."""
    test = np.array([article_of(it.g) == art for it in items])
    train = np.array([art not in articles_of(it.g) for it in items]) & ~test
    return test, train


def baseline_results(service, items: list[Item], which: str) -> list[dict]:
    """The top chunk of one ranked list as the answer: ``bm25`` (keywords) or ``vanilla`` (dense)."""
    idx, _, _ = service.current()
    key = {"bm25": "keyword", "vanilla": "dense"}[which]
    out = []
    for it in items:
        ranks = it.lists[0].ranks[key]
        order = sorted(ranks, key=ranks.get)[:10]
        hits = [Hit(chunk=idx.chunks[i], score=0.0) for i in order]
        if hits:
            ans = Answer(it.question, hits[0].chunk.text, False, [Citation(1, hits[0].chunk, hits[0].chunk.text)], hits)
        else:
            ans = Answer(it.question, "", True, [], [])
        out.append(ans.to_result(it.g["id"]))
    return out


def cross_validate(service, items: list[Item], *, ablate: tuple = (), progress=None, variants: dict | None = None) -> dict:
    """Per-fold and pooled metrics of the learned answerer, and the baselines' pooled metrics.

    ``variants``: more feature sets to drop ({name: (feature, ...)}), cross-validated on the same
    retrieval and candidates (the ablations of docs/ablations.md); their pooled metrics come back
    under ``variants``."""
    fusions = fusion_grid()
    rr = reciprocal_ranks(service, items, fusions, progress)
    folds = folds_of(items)
    preps_by_fusion: dict[int, list] = {}
    runs = {"": tuple(ablate), **(variants or {})}
    results: dict[str, list] = {name: [] for name in runs}
    per_fold, chosen = {}, {}
    for n, art in enumerate(folds, 1):
        test, train = fold_masks(items, art)
        if not train.any() or not test.any():
            continue
        fi = choose_fusion(rr, train)
        if fi not in preps_by_fusion:
            preps_by_fusion[fi] = (prepare_items(service, items, fusions[fi]), prepare_negatives(service, items, fusions[fi]))
        preps, negatives = preps_by_fusion[fi]
        for name, drop in runs.items():
            model = fit_model(service, items, preps, train, fusions[fi], ablate=drop, negatives=negatives)
            res = answer_items(service, items, preps, test, model)
            results[name] += res
            if name == "":
                gold = [it.g for it, m in zip(items, test) if m]
                per_fold[art] = {**score(gold, {r["id"]: r for r in res}), "threshold": model.threshold,
                                 "second_ratio": model.second_ratio, "fusion": fusions[fi].to_dict()}
        chosen[art] = fi
        if progress:
            progress(n, len(folds), "交叉验证")
    gold = [it.g for it in items]
    main = results[""]
    pooled = score(gold, {r["id"]: r for r in main})
    by_set = {}
    for name in sorted({g.get("set", "") for g in gold}):
        sub = [g for g in gold if g.get("set") == name]
        by_set[name] = score(sub, {r["id"]: r for r in main})
    return {
        "pooled": pooled,
        "by_set": by_set,
        "folds": per_fold,
        "baselines": {b: score(gold, {r["id"]: r for r in baseline_results(service, items, b)}) for b in ("bm25", "vanilla")},
        "variants": {name: score(gold, {r["id"]: r for r in res}) for name, res in results.items() if name},
        "fusions_chosen": len(set(chosen.values())),
        "questions": len(items),
        "ablate": list(ablate),
        "results": main,
    }

