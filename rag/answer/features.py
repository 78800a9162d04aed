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
SAID_MAX = 0.8  # a candidate whose bigrams are mostly in what the conversation already said is not new
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


IDX = {f: i for i, f in enumerate(FEATURES)}


def candidate_features(q: Query, cands: list, sims: np.ndarray, answerer, other_place: np.ndarray | None = None) -> np.ndarray:
    """One row of FEATURES per candidate; ``other_place`` marks passages of another province than the
    one a part of a two-province question asks about."""
    n = len(cands)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return out
    ctx = _Context(q, cands, sims)
    for j, c in enumerate(cands):
        row = out[j]
        _term_features(row, q, c, ctx)
        _retrieval_features(row, c, float(sims[j]) if len(sims) else 0.0, ctx, j)
        _answer_type_features(row, q, c, answerer, ctx)
        _shape_features(row, q, c)
    if other_place is not None:
        out[:, IDX["place_other"]] = other_place.astype(np.float64)
    _rank_features(out, n)
    return out


class _Context:
    """What every candidate's features share: the best cosine, the cosine order, the best BM25 score,
    the question's figures and each question term's weight among these candidates."""

    def __init__(self, q: Query, cands: list, sims: np.ndarray) -> None:
        n = len(cands)
        self.top_sim = float(sims.max()) if len(sims) else 0.0
        self.sim_order = {j: r for r, j in enumerate(np.argsort(-sims))} if len(sims) else {}
        self.n = n
        self.max_kw = max((c.hit.keyword_score for c in cands), default=0.0) or 1.0
        self.qnums = numbers_in(q.text)
        # terms that most candidates share (the office or speaker every sentence of a speech names) tell
        # the candidates apart less than the rare ones: weights by how few candidates hold each term
        texts = [norm(c.text).lower() for c in cands]
        self.local: dict[str, float] = {}
        for t, w in q.terms.items():
            tn = norm(t).lower()
            if tn:
                df = sum(tn in x for x in texts)
                self.local[tn] = w * np.log((n + 1) / (df + 1)) / np.log(n + 1)
        self.local_total = sum(self.local.values()) or 1.0
        self.rare = max(self.local, key=self.local.get) if self.local else ""
        # the question's terms, quoted names, subjects and a part's own words, normalised once
        self.terms = [(t, tn, w) for t, w in q.terms.items() if (tn := norm(t).lower())]
        self.exclusive = [(norm(t).lower(), w) for t, w in q.exclusive.items()]
        self.quoted = [norm(x) for x in q.quoted]
        self.subjects = [norm(x) for x in q.subjects]


def _term_features(row: np.ndarray, q: Query, c, ctx: _Context) -> None:
    """How much of the question a candidate holds: in itself, only in its context, locally rare terms,
    a part's own words, quoted names, bigrams, what a follow-up's conversation already said."""
    X = _x()
    text = c.text
    s_norm = norm(text).lower()
    ctx_norm = norm(" ".join((c.prev, c.lead, c.hit.chunk.title, *c.hit.chunk.heading_path))).lower()
    total = q.total
    got_s = got_c = 0.0
    listed = 0.0
    for t, tn, w in ctx.terms:
        if tn in s_norm:
            got_s += w
            if X._listed_only(text, t):
                listed += w
        elif tn in ctx_norm:
            got_c += w
    row[IDX["cov"]] = c.coverage
    row[IDX["cov_local"]] = sum(w for tn, w in ctx.local.items() if tn in s_norm) / ctx.local_total
    row[IDX["rare_hit"]] = float(bool(ctx.rare) and ctx.rare in s_norm)
    if q.exclusive:  # a part of "A和B各自……": A's own words, in the candidate or its heading path
        ex_total = sum(q.exclusive.values()) or 1.0
        row[IDX["part_own"]] = sum(w for tn, w in ctx.exclusive if tn in s_norm or tn in ctx_norm) / ex_total
    held = sum(len(tn) for tn in ctx.local if tn in s_norm)
    row[IDX["density"]] = held / (len(s_norm) or 1)
    row[IDX["cov_sent"]] = got_s / total
    row[IDX["cov_ctx"]] = got_c / total
    row[IDX["overlap"]] = len(q.bigrams & cjk_bigrams(text)) / (len(q.bigrams) or 1)
    row[IDX["listed_only"]] = listed / total if not q.want["list"] else 0.0
    if q.quoted:
        row[IDX["quoted_in"]] = sum(x in s_norm for x in ctx.quoted) / len(q.quoted)
        row[IDX["quoted_ctx"]] = sum(x in ctx_norm for x in ctx.quoted) / len(q.quoted)
    if q.said_bigrams:
        bi = cjk_bigrams(text)
        row[IDX["said_overlap"]] = len(bi & q.said_bigrams) / (len(bi) or 1)
    if q.subjects:
        row[IDX["subj_ok"]] = float(any(x in s_norm or x in ctx_norm for x in ctx.subjects))


def _retrieval_features(row: np.ndarray, c, sim: float, ctx: _Context, j: int) -> None:
    """Where the candidate's passage stands in retrieval, and the dense cosine of the sentence."""
    row[IDX["prior"]] = 1.0 / (1 + c.hit_rank)
    row[IDX["hit_dense"]] = c.hit.dense_score
    row[IDX["sent_cos"]] = sim
    row[IDX["sent_cos_rel"]] = sim - ctx.top_sim
    row[IDX["sent_cos_top"]] = 1.0 / (1 + ctx.sim_order.get(j, ctx.n))
    row[IDX["kw_rank"]] = 1.0 / (1 + c.hit.keyword_rank) if c.hit.keyword_rank else 0.0
    row[IDX["dense_rank"]] = 1.0 / (1 + c.hit.dense_rank) if c.hit.dense_rank else 0.0
    row[IDX["hit_kw_rel"]] = c.hit.keyword_score / ctx.max_kw


def _answer_type_features(row: np.ndarray, q: Query, c, answerer, ctx: _Context) -> None:
    """Does the candidate carry the kind of answer the question asks for (the former rules)?"""
    X = _x()
    text, w = c.text, q.want
    person = names_person(text)
    row[IDX["has_person"]] = float(person)
    row[IDX["who_person"]] = float(person and (w["who"] or w["role"]))
    if w["num"]:
        count = X.has_count(text, q.classifier, q.text)
        anynum = bool(NUMBER_RE.search(text))
        row[IDX["num_count"]] = float(count)
        row[IDX["num_any"]] = float(anynum and not count)
        row[IDX["num_none"]] = float(not anynum)
    row[IDX["time_ok"]] = float(w["time"] and bool(YEAR_RE.search(text)))
    row[IDX["year_ok"]] = float(w["year"] and bool(re.search(r"(?:19|20)\d{2}", text)))
    if w["list"] or q.expected:
        n_items = X._enum_items(text) if c.kind != "run" else len(c.items)
        row[IDX["list_items"]] = min(n_items, 6) / 6
        row[IDX["list_opens"]] = float(c.opens_list)
        row[IDX["list_none"]] = float(n_items < 2 and c.kind != "run")
    if w["name"]:
        names = [x for x in X.QUOTED_NAME.findall(text) if x not in q.quoted and norm(x) not in norm(q.text)]
        near = any(
            any(norm(t).lower() in norm(cl).lower() for t in q.terms if norm(t))
            for cl in X.CLAUSE_SPLIT.split(text)
            if any(nm in cl for nm in names)
        )
        row[IDX["name_near"]] = float(bool(names) and near)
        row[IDX["name_none"]] = float(not names)
    row[IDX["freq_ok"]] = float(w["freq"] and bool(X.FREQ.search(text)))
    row[IDX["result_ok"]] = float(w["result"] and bool(X.RESULT_MARK.search(text)))
    row[IDX["agent_ok"]] = float(w["agent"] and bool(X.AGENT_VERB.search(text)))
    has_speaker = bool(X.speaker_of(c.hit.chunk))
    row[IDX["who_label"]] = float((w["who"] or w["role"]) and has_speaker)
    row[IDX["role_label"]] = float((w["role"] or w["who"]) and c.kind == "label")
    row[IDX["definition"]] = float(
        any(x in text and re.search(re.escape(x) + r"[”\"]?(?:的内容)?(?:是指|就是|即|是|包括|指)", text) for x in q.quoted)
    )
    row[IDX["type_ok"]] = float(answerer.type_ok(q.text, c, q.subjects))
    row[IDX["num_given"]] = float(bool(ctx.qnums) and bool(ctx.qnums & numbers_in(text)))
    row[IDX["list_run"]] = float(c.kind == "run" and (w["list"] or bool(q.expected)))
    row[IDX["run_count_ok"]] = float(c.kind == "run" and bool(q.expected) and len(c.items) == q.expected)


def _shape_features(row: np.ndarray, q: Query, c) -> None:
    """The candidate's shape: length, position, a question, an inline heading restating the question,
    a run of items, a label; and, for an English question, its cosine and coverage again."""
    X = _x()
    text = c.text
    row[IDX["restates"]] = float(X.is_inline_heading(text) and X._restates(text, q.terms))
    row[IDX["is_question"]] = float(X._is_question(text))
    row[IDX["length"]] = len(text) / 100
    row[IDX["too_long"]] = float(len(text) > X.SENT_MAX)
    row[IDX["pos0"]] = float(c.pos == 0)
    row[IDX["has_lead"]] = float(bool(c.lead))
    row[IDX["is_run"]] = float(c.kind == "run")
    row[IDX["run_items"]] = len(c.items) / 6 if c.kind == "run" else 0.0
    row[IDX["is_label"]] = float(c.kind == "label")
    row[IDX["latin_cos"]] = row[IDX["sent_cos"]] if q.latin else 0.0
    row[IDX["latin_cov"]] = c.coverage if q.latin else 0.0


def _rank_features(out: np.ndarray, n: int) -> None:
    """Where each candidate stands among this question's candidates (1 = best) by the main signals:
    a linear ranker cannot read "the best covered of these" from the absolute values alone."""
    for src, dst in (("cov", "cov_rank"), ("overlap", "overlap_rank"), ("cov_local", "local_rank"), ("sent_cos", "cos_rank")):
        col = out[:, IDX[src]]
        ranks = np.empty(n)
        ranks[np.argsort(-col, kind="stable")] = np.arange(n)
        out[:, IDX[dst]] = 1.0 / (1.0 + ranks)


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
