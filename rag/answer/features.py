"""Features of (question, candidate answer) pairs and of a question's best candidate, for the
learned ranker and the calibrated gate.

Each feature is a general signal: how much of the question's IDF-weighted terms a candidate holds
(in itself, or only in its heading path, inline heading or the sentence before), character-bigram
overlap, the dense cosine of the sentence and of its passage, the passage's ranks, whether the
candidate carries the kind of answer the question asks for (a count with the right measure word,
a date, list items, a new name, a frequency, figures, a launching verb, a speaker label), its
shape (length, position, a question, an inline heading that restates the question, a run of
items) and, for follow-ups, what was already said. The former hand-set rules of the answerer are
these features now; their weights are learned (``python -m rag train``).

What it does not do: look at particular wordings of particular articles; every feature is
computed the same way for any article.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from ..text import NUMBER_RE, YEAR_RE, cjk_bigrams, norm
from .query import Query, numbers_in

FEATURES = (
    "cov", "cov_sent", "cov_ctx", "overlap", "prior", "hit_dense", "sent_cos", "sent_cos_rel", "sent_cos_top",
    "kw_rank", "dense_rank", "hit_kw_rel",
    "num_count", "num_any", "num_none", "time_ok", "year_ok", "list_items", "list_opens", "list_none",
    "name_near", "name_none", "freq_ok", "result_ok", "agent_ok", "who_label", "role_label",
    "restates", "is_question", "definition", "listed_only", "length", "too_long", "pos0", "has_lead",
    "is_run", "run_items", "run_count_ok", "is_label", "quoted_in", "quoted_ctx", "said_overlap",
    "type_ok", "num_given", "latin_cos", "latin_cov", "subj_ok", "place_other", "cov_local", "rare_hit",
    "cov_rank", "overlap_rank", "local_rank", "cos_rank", "density", "has_person", "who_person", "list_run", "part_own",
)
# a post followed by a name ("组织部部长周蔓", "秘书长 贺文涛"): a person the sentence names
POST_NAME = re.compile(
    r"(?:书记|秘书长|部长|主任|主席|局长|厅长|处长|社长|总编辑|委员|发言人|负责人|会长|院长|校长|记者|主持人|发布人|嘉宾)"
    r"\s*[\u4e00-\u9fff]{2,3}(?=[,，。、;；:：\s)）]|$)"
)


@lru_cache(maxsize=8192)
def names_person(text: str) -> bool:
    """Does ``text`` name a person (rjieba's person tag, or a post followed by a name)?"""
    import rjieba

    return bool(POST_NAME.search(text)) or any(t == "nr" and len(w) >= 2 for w, t in rjieba.tag(text))

GATE_FEATURES = (
    "top_score", "top_prob", "margin", "top_cov", "top_cov_sent", "top_sent_cos", "top_hit_dense", "top_type_ok",
    "top_overlap", "best_cov", "missing_entity", "uncovered_max_idf", "uncovered_share", "year_missing",
    "num_missing", "list_missing", "latin", "many_parts", "dense_top", "quoted_missing",
    "top_num_given", "detail_missing", "top_items",
)
# "具体是哪七个方面？" "分别在哪里？" "各占多少？": the question asks for the parts or a breakdown
DETAIL_Q = re.compile(r"具体|分别|各自|各占|各有|哪几|哪些|都是|都有|除了|另外|其余|其中|specific|each|respectively|which", re.I)


def _x():
    from . import spans as extractive  # the answerer's text helpers (rag/answer/spans.py)

    return extractive


def candidate_features(q: Query, cands: list, sims: np.ndarray, answerer, other_place: np.ndarray | None = None) -> np.ndarray:
    """One row of FEATURES per candidate; ``other_place`` marks passages of another province than the
    one a part of a two-province question asks about."""
    X = _x()
    n = len(cands)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return out
    idx = {f: i for i, f in enumerate(FEATURES)}
    top_sim = float(sims.max()) if len(sims) else 0.0
    sim_order = {j: r for r, j in enumerate(np.argsort(-sims))} if len(sims) else {}
    max_kw = max((c.hit.keyword_score for c in cands), default=0.0) or 1.0
    total = q.total
    qnums = numbers_in(q.text)
    # terms that most candidates share (the office or speaker every sentence of a speech names) tell
    # the candidates apart less than the rare ones: weights by how few candidates hold each term
    texts = [norm(c.text).lower() for c in cands]
    local: dict[str, float] = {}
    for t, w in q.terms.items():
        tn = norm(t).lower()
        if tn:
            df = sum(tn in x for x in texts)
            local[tn] = w * np.log((n + 1) / (df + 1)) / np.log(n + 1)
    local_total = sum(local.values()) or 1.0
    rare = max(local, key=local.get) if local else ""
    for j, c in enumerate(cands):
        row = out[j]
        text = c.text
        s_norm = norm(text).lower()
        ctx_norm = norm(" ".join((c.prev, c.lead, c.hit.chunk.title, *c.hit.chunk.heading_path))).lower()
        got_s = got_c = 0.0
        listed = 0.0
        for t, w in q.terms.items():
            tn = norm(t).lower()
            if not tn:
                continue
            if tn in s_norm:
                got_s += w
                if X._listed_only(text, t):
                    listed += w
            elif tn in ctx_norm:
                got_c += w
        n_items = X._enum_items(text) if c.kind != "run" else len(c.items)
        row[idx["cov"]] = c.coverage
        row[idx["cov_local"]] = sum(w for tn, w in local.items() if tn in s_norm) / local_total
        row[idx["rare_hit"]] = float(bool(rare) and rare in s_norm)
        if q.exclusive:  # a part of "A和B各自……": A's own words, in the candidate or its heading path
            ex_total = sum(q.exclusive.values()) or 1.0
            row[idx["part_own"]] = sum(
                w for t, w in q.exclusive.items() if norm(t).lower() in s_norm or norm(t).lower() in ctx_norm
            ) / ex_total
        person = names_person(text)
        row[idx["has_person"]] = float(person)
        row[idx["who_person"]] = float(person and (q.want["who"] or q.want["role"]))
        row[idx["list_run"]] = float(c.kind == "run" and (q.want["list"] or bool(q.expected)))
        held = sum(len(tn) for tn in local if tn in s_norm)
        row[idx["density"]] = held / (len(s_norm) or 1)
        row[idx["cov_sent"]] = got_s / total
        row[idx["cov_ctx"]] = got_c / total
        row[idx["overlap"]] = len(q.bigrams & cjk_bigrams(text)) / (len(q.bigrams) or 1)
        row[idx["prior"]] = 1.0 / (1 + c.hit_rank)
        row[idx["hit_dense"]] = c.hit.dense_score
        sim = float(sims[j]) if len(sims) else 0.0
        row[idx["sent_cos"]] = sim
        row[idx["sent_cos_rel"]] = sim - top_sim
        row[idx["sent_cos_top"]] = 1.0 / (1 + sim_order.get(j, n))
        row[idx["kw_rank"]] = 1.0 / (1 + c.hit.keyword_rank) if c.hit.keyword_rank else 0.0
        row[idx["dense_rank"]] = 1.0 / (1 + c.hit.dense_rank) if c.hit.dense_rank else 0.0
        row[idx["hit_kw_rel"]] = c.hit.keyword_score / max_kw
        w = q.want
        if w["num"]:
            count = X.has_count(text, q.classifier, q.text)
            anynum = bool(NUMBER_RE.search(text))
            row[idx["num_count"]] = float(count)
            row[idx["num_any"]] = float(anynum and not count)
            row[idx["num_none"]] = float(not anynum)
        row[idx["time_ok"]] = float(w["time"] and bool(YEAR_RE.search(text)))
        row[idx["year_ok"]] = float(w["year"] and bool(re.search(r"(?:19|20)\d{2}", text)))
        if w["list"] or q.expected:
            row[idx["list_items"]] = min(n_items, 6) / 6
            row[idx["list_opens"]] = float(c.opens_list)
            row[idx["list_none"]] = float(n_items < 2 and c.kind != "run")
        if w["name"]:
            names = [x for x in X.QUOTED_NAME.findall(text) if x not in q.quoted and norm(x) not in norm(q.text)]
            near = any(
                any(norm(t).lower() in norm(cl).lower() for t in q.terms if norm(t))
                for cl in X.CLAUSE_SPLIT.split(text)
                if any(nm in cl for nm in names)
            )
            row[idx["name_near"]] = float(bool(names) and near)
            row[idx["name_none"]] = float(not names)
        row[idx["freq_ok"]] = float(w["freq"] and bool(X.FREQ.search(text)))
        row[idx["result_ok"]] = float(w["result"] and bool(X.RESULT_MARK.search(text)))
        row[idx["agent_ok"]] = float(w["agent"] and bool(X.AGENT_VERB.search(text)))
        has_speaker = bool(X.speaker_of(c.hit.chunk))
        row[idx["who_label"]] = float((w["who"] or w["role"]) and has_speaker)
        row[idx["role_label"]] = float((w["role"] or w["who"]) and c.kind == "label")
        row[idx["restates"]] = float(X.is_inline_heading(text) and X._restates(text, q.terms))
        row[idx["is_question"]] = float(X._is_question(text))
        row[idx["definition"]] = float(
            any(x in text and re.search(re.escape(x) + r"[”\"]?(?:的内容)?(?:是指|就是|即|是|包括|指)", text) for x in q.quoted)
        )
        row[idx["listed_only"]] = listed / total if not w["list"] else 0.0
        row[idx["length"]] = len(text) / 100
        row[idx["too_long"]] = float(len(text) > X.SENT_MAX)
        row[idx["pos0"]] = float(c.pos == 0)
        row[idx["has_lead"]] = float(bool(c.lead))
        row[idx["is_run"]] = float(c.kind == "run")
        row[idx["run_items"]] = len(c.items) / 6 if c.kind == "run" else 0.0
        row[idx["run_count_ok"]] = float(c.kind == "run" and bool(q.expected) and len(c.items) == q.expected)
        row[idx["is_label"]] = float(c.kind == "label")
        if q.quoted:
            row[idx["quoted_in"]] = sum(norm(x) in s_norm for x in q.quoted) / len(q.quoted)
            row[idx["quoted_ctx"]] = sum(norm(x) in ctx_norm for x in q.quoted) / len(q.quoted)
        if q.said_bigrams:
            bi = cjk_bigrams(text)
            row[idx["said_overlap"]] = len(bi & q.said_bigrams) / (len(bi) or 1)
        row[idx["type_ok"]] = float(answerer.type_ok(q.text, c, q.subjects))
        row[idx["num_given"]] = float(bool(qnums) and bool(qnums & numbers_in(text)))
        row[idx["latin_cos"]] = sim if q.latin else 0.0
        row[idx["latin_cov"]] = c.coverage if q.latin else 0.0
        if q.subjects:
            row[idx["subj_ok"]] = float(any(norm(s) in s_norm or norm(s) in ctx_norm for s in q.subjects))
    if other_place is not None:
        out[:, idx["place_other"]] = other_place.astype(np.float64)
    # where each candidate stands among this question's candidates (1 = best), by the main signals:
    # a linear ranker cannot read "the best covered of these" from the absolute values alone
    for src, dst in (("cov", "cov_rank"), ("overlap", "overlap_rank"), ("cov_local", "local_rank"), ("sent_cos", "cos_rank")):
        col = out[:, idx[src]]
        ranks = np.empty(n)
        ranks[np.argsort(-col, kind="stable")] = np.arange(n)
        out[:, idx[dst]] = 1.0 / (1.0 + ranks)
    return out


def gate_features(q: Query, cands: list, X: np.ndarray, scores: np.ndarray, top: int, hits: list, answerer) -> np.ndarray:
    """One row of GATE_FEATURES for a question (or part) whose best candidate is ``cands[top]``."""
    g = np.zeros(len(GATE_FEATURES), dtype=np.float64)
    idx = {f: i for i, f in enumerate(GATE_FEATURES)}
    fi = {f: i for i, f in enumerate(FEATURES)}
    if not cands:
        g[idx["missing_entity"]] = 1.0
        return g
    p = np.exp(scores - scores.max())
    p /= p.sum()
    order = np.argsort(-scores)
    g[idx["top_score"]] = scores[top]
    g[idx["top_prob"]] = p[top]
    g[idx["margin"]] = scores[top] - (scores[order[1]] if len(order) > 1 else scores[top] - 1.0)
    for name, f in (("top_cov", "cov"), ("top_cov_sent", "cov_sent"), ("top_sent_cos", "sent_cos"),
                    ("top_hit_dense", "hit_dense"), ("top_type_ok", "type_ok"), ("top_overlap", "overlap")):
        g[idx[name]] = X[top, fi[f]]
    g[idx["best_cov"]] = X[:, fi["cov"]].max()
    g[idx["missing_entity"]] = float(answerer.missing_entity(q.whole, hits))
    # near misses: a rare term of the question that the passages read never hold
    read = norm(" ".join(h.chunk.text + " ".join(h.chunk.heading_path) + h.chunk.title for h in hits[:5])).lower()
    own = {t: w for t, w in q.own_terms.items() if norm(t)}
    missing = {t: w for t, w in own.items() if norm(t).lower() not in read}
    idf_max = max(own.values(), default=1.0) or 1.0
    g[idx["uncovered_max_idf"]] = max(missing.values(), default=0.0) / idf_max
    g[idx["uncovered_share"]] = sum(missing.values()) / (sum(own.values()) or 1.0)
    c = cands[top]
    years = set(re.findall(r"(?:19|20)\d{2}", q.text))
    g[idx["year_missing"]] = float(bool(years) and not any(y in c.hit.chunk.text for y in years))
    g[idx["num_missing"]] = X[top, fi["num_none"]] + X[top, fi["num_any"]]
    g[idx["list_missing"]] = X[top, fi["list_none"]]
    g[idx["latin"]] = float(q.latin)
    g[idx["many_parts"]] = float(q.parts > 1)
    g[idx["dense_top"]] = hits[0].dense_score if hits else 0.0
    if q.quoted:
        g[idx["quoted_missing"]] = sum(norm(x).lower() not in read for x in q.quoted) / len(q.quoted)
    # near misses of the "named, not spelled out" kind: the best candidate repeats a figure the
    # question states ("4.1亿元里……各占多少"), or the question asks for parts it does not list
    g[idx["top_num_given"]] = X[top, fi["num_given"]]
    items = X[top, fi["run_items"]] * 6 if c.kind == "run" else float(_x()._enum_items(c.text))
    g[idx["top_items"]] = min(items, 6) / 6
    g[idx["detail_missing"]] = float(bool(DETAIL_Q.search(q.text)) and items < 2 and not X[top, fi["definition"]])
    return g
