"""Metrics for ``python -m rag eval``, computed the way ../shared/eval/score.py computes them.

A passage holds an evidence quote when, after NFKC and without punctuation and white space, the
quote is inside it or they share a run of min(20, 60% of the quote) characters. The reference
scorer stays the judge; this copy only prints the figures right after an eval run.
"""

from __future__ import annotations

import statistics
from difflib import SequenceMatcher

from ..text import norm


def holds(passage: str, quote: str) -> bool:
    p, q = norm(passage), norm(quote)
    if not q or not p:
        return False
    if q in p:
        return True
    m = SequenceMatcher(None, p, q, autojunk=False).find_longest_match(0, len(p), 0, len(q))
    return m.size >= min(20, max(8, int(0.6 * len(q))))


def score(gold: list[dict], results: dict[str, dict]) -> dict:
    answerable = [g for g in gold if g.get("type") != "unanswerable"]
    unanswerable = [g for g in gold if g.get("type") == "unanswerable"]
    ranks, cov, strict, cited, prec, false_ref, lengths = [], [], [], [], [], 0, []
    for g in answerable:
        r = results.get(g["id"], {})
        quotes = [e["quote"] for e in g.get("evidence", [])]
        rank = None
        for i, p in enumerate(r.get("retrieved", [])[:10], 1):
            if any(holds(p.get("text", ""), q) for q in quotes):
                rank = i
                break
        ranks.append(rank)
        if r.get("refused"):
            false_ref += 1
            cov.append(0.0)
            strict.append(0)
            cited.append(0)
            continue
        ans = r.get("answer", "")
        lengths.append(len(norm(ans)))
        kf = g.get("key_facts") or []
        c = sum(norm(f) in norm(ans) for f in kf) / len(kf) if kf else 0.0
        cov.append(c)
        strict.append(int(c == 1.0))
        cites = [x.get("text", "") for x in r.get("citations", [])]
        cited.append(int(any(holds(t, q) for t in cites for q in quotes)))
        for t in cites:
            prec.append(int(any(holds(t, q) for q in quotes) or any(norm(f) in norm(t) for f in kf)))
    n = len(answerable) or 1
    lat = [r["latency_ms"] for r in results.values() if isinstance(r.get("latency_ms"), (int, float))]
    return {
        "questions": len(gold),
        "hit@1": round(sum(1 for x in ranks if x == 1) / n, 3),
        "hit@5": round(sum(1 for x in ranks if x and x <= 5) / n, 3),
        "mrr@10": round(sum(1 / x for x in ranks if x) / n, 3),
        "key_fact_coverage": round(statistics.mean(cov), 3) if cov else 0.0,
        "answers_all_facts": round(statistics.mean(strict), 3) if strict else 0.0,
        "cites_evidence": round(statistics.mean(cited), 3) if cited else 0.0,
        "citation_precision": round(statistics.mean(prec), 3) if prec else 0.0,
        "refusal_on_unanswerable": round(
            sum(bool(results.get(g["id"], {}).get("refused")) for g in unanswerable) / len(unanswerable), 3
        )
        if unanswerable
        else 0.0,
        "false_refusal": round(false_ref / n, 3),
        "answer_chars_p50": statistics.median(lengths) if lengths else None,
        "latency_ms_p50": round(statistics.median(lat), 1) if lat else None,
    }
