"""Answering with learned weights: candidates -> features -> ranker -> gate -> composition.

``prepare`` does everything that does not depend on the learned weights (candidates, their
features for every part of the question): it is computed once per question, so cross-validation
and training can rank and gate the same prepared question under many models. ``decide`` applies a
model: it ranks the candidates of each part, takes the best one (the items themselves when the
best candidate is a run of list items), adds a second sentence when the ranker gives it a share
close to the first's and it covers question terms the first misses, lets the learned joiner add a
further candidate that likely holds a fact the chosen ones lack (the other side of a comparison;
``join.py``), and refuses when the gate's probability that the material answers the question is
below the learned threshold.

What it does not do: write new sentences. Every sentence of an answer is a sentence (or clause
run) of a cited passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..limits import embedding_text
from ..places import resolve_aliases
from ..schema import Answer, Hit
from ..text import norm
from .features import FEATURES, GATE_FEATURES, SAID_MAX, candidate_features, gate_features
from .join import PartChoice, join_rows, pick, reading_order
from .query import Query, build_query
from .ranker import Model, sigmoid
from .spans import heads_a_section

# a by-line: a short role, a colon, a post and/or a name ("调研组组长:X市委直属机关工委常务副书记 欧阳砺")
BYLINE = re.compile(r"[\u4e00-\u9fff]{2,8}[:：]\s*[^。！？!?:：]{2,40}")
# an item 一 right after a lead-in's colon, inside one sentence ("……仍存在一些短板:一是……;")
INLINE_FIRST = re.compile(r"[:：](?=一是|[（(]一[)）]|一、|一[\u4e00-\u9fff])")

REFUSAL = "资料中没有找到与该问题直接相关的内容。以下是最接近的原文，供参考。"


@dataclass
class Prepared:
    """A question made ready for any model: its candidates and each part's features."""

    question: str
    hits: list[Hit]
    cands: list
    parts: list[tuple[Query, np.ndarray]] = field(default_factory=list)
    sims: np.ndarray | None = None


class LearnedAnswering:
    """Mixed into ExtractiveAnswerer: the learned candidate ranking and refusal gate."""

    model: Model
    BYLINES = True  # by-line headings ("调研组组长:……") are label candidates
    INLINE_ITEMS = True  # "……短板:一是……;二是……" is a run of items after its lead-in
    ITEMS_FOR_LEAD = True  # a lead-in that opens a list is answered with its items
    HEADING_NEXT = True  # a numbered heading sentence chosen as the answer brings the sentence after it
    LATIN_GUARD = True  # an English question none of whose terms is read is refused without the gate

    # ------------------------------------------------------------ preparing
    def prepare(
        self, question: str, hits: list[Hit], *, extra_terms: dict | None = None, said: str = "", context: str = ""
    ) -> Prepared:
        from .spans import split_subquestions

        question = resolve_aliases(question, self._in_index)  # "湘省" as 湖南省, as retrieval reads it
        prep = Prepared(question=question, hits=hits, cands=[])
        if not hits:
            return prep
        cands = self.candidates(hits)
        cands += self.label_candidates(hits)
        cands += self.run_candidates(cands, question, hits)
        self.ground_hits(cands, hits)
        prep.cands = cands
        parts = split_subquestions(question)
        whole_terms = self.terms_of(question)
        extra_terms = dict(extra_terms or {})
        topic = " ".join(t for t in extra_terms if t not in whole_terms)
        prep.sims = self.candidate_sims(f"{topic} {question}" if topic else question, cands)
        coordinated = self.coordinated_cores(question) if len(parts) > 1 else set()
        for part in parts:
            extra = dict(extra_terms)
            if len(parts) > 1:
                for t, w in whole_terms.items():
                    extra.setdefault(t, 0.5 * w)
            q = build_query(
                part, self.terms_of(part), whole=question, extra_terms=extra, context=context, said=said, parts=len(parts),
                others=tuple(p for p in parts if p != part) if len(parts) > 1 else (),
            )
            self.set_coverage(q, cands)
            mine = {p for p in coordinated if p in part}
            other = None
            if len(mine) == 1:  # "山东和湖南两省…": this part wants the passages of its own province
                other = np.array([bool(self.places.of(c.hit.chunk)) and not (mine & self.places.of(c.hit.chunk)) for c in cands])
            prep.parts.append((q, candidate_features(q, cands, prep.sims, self, other_place=other)))
        return prep

    def ground_hits(self, cands: list, hits: list[Hit]) -> None:
        """Give a candidate read from a passage retrieval did not return (a sibling item, a numbered
        sub-heading of the section) that passage's retrieval signals when it was retrieved after all,
        else those of the weakest passage read: a cosine of 0 is far outside what the ranker and the
        gate were fitted on and sank such answers (a gate logit of -12 from that alone)."""
        from dataclasses import replace

        by_chunk = {h.chunk.id: h for h in hits}
        read = hits[: self.settings.answer_passages]
        weakest = read[-1] if read else None
        known = {id(h) for h in hits}

        def grounded(h: Hit) -> Hit:
            if id(h) in known or weakest is None:
                return h
            ref = by_chunk.get(h.chunk.id, weakest)
            return replace(h, dense_score=ref.dense_score, keyword_score=ref.keyword_score)

        for c in cands:
            c.hit = grounded(c.hit)
            for m in c.items:
                m.hit = grounded(m.hit)

    def set_coverage(self, q: Query, cands: list) -> None:
        """IDF-weighted share of the query's terms in each candidate (terms only in its heading path or
        inline heading count 3/4, in the sentence before it 1/2; a term that is only one item of a
        、-list counts half unless the question asks for a list)."""
        from .spans import _listed_only

        for c in cands:
            s_norm = norm(c.text).lower()
            prev_norm = norm(c.prev).lower()
            lead_norm = norm(c.lead).lower()
            path_norm = norm(" ".join((c.hit.chunk.title, *c.hit.chunk.heading_path))).lower()
            got, covered = 0.0, set()
            for t, w in q.terms.items():
                tn = norm(t).lower()
                if not tn:
                    continue
                if tn in s_norm:
                    got += w if q.want["list"] or not _listed_only(c.text, t) else 0.5 * w
                    covered.add(t)
                elif tn in path_norm or tn in lead_norm:
                    got += 0.75 * w
                elif tn in prev_norm:
                    got += 0.5 * w
            c.coverage = got / q.total
            c.covered = frozenset(covered)

    def candidate_sims(self, text: str, cands: list) -> np.ndarray:
        """Cosine of the question and each candidate sentence, from the sentence cache; a sentence the
        warm-up has not reached yet (or with no warm-up: RAG_SENTENCE_WARMUP=0, the one-shot CLI) is
        embedded here, on demand, so an answer is the same whether the warm-up has finished or not
        (reading only the cache, a fresh start answered "龙井茶产于哪里？" from passage cosines for its
        first minute instead of refusing). A label or a heading-list run takes its passage's cosine,
        a run its best member's."""
        sims = np.array([c.hit.dense_score for c in cands], dtype=np.float64)
        if self.embed_query is None or self.sentence_cache is None or not cands:
            return sims
        sent = [i for i, c in enumerate(cands) if c.kind == "sent"]
        texts = [cands[i].text for i in sent]
        have = dict(zip(texts, self.sentence_cache.vectors(texts))) if texts else {}  # embeds the missing ones
        if have:
            qv = self._query_vector(text)
            for i in sent:
                v = have.get(cands[i].text)
                if v is not None:
                    sims[i] = float(v @ qv)
        by_text = {cands[i].text: sims[i] for i in sent}
        for i, c in enumerate(cands):
            if c.kind == "run":
                vals = [by_text[m.text] for m in c.items if m.text in by_text]
                if vals:
                    sims[i] = max(vals)
        return sims

    def _query_vector(self, text: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_qvec", {})
        v = cache.get(text)
        if v is None:
            if len(cache) > 256:
                cache.clear()
            v = cache[text] = self.embed_query(embedding_text(text, self.settings))
        return v

    def coordinated_cores(self, question: str) -> set[str]:
        from .spans import _coordinated_places
        from ..places import place_core

        return {place_core(p) for p in _coordinated_places(question)} - {""}

    # ------------------------------------------------------------ extra candidates
    def label_candidates(self, hits: list[Hit]) -> list:
        """Speaker labels ("山西省政协秘书长 张岐云") and interview by-lines of the passages read:
        the answer to "who said it / what post does X hold" is often only there."""
        from .spans import Candidate, speaker_of

        out, seen = [], set()
        for r, h in enumerate(hits[: self.settings.answer_passages]):
            labels = [speaker_of(h.chunk)]
            if "——" in h.chunk.title:
                labels.append(h.chunk.title.split("——", 1)[1].strip())
            if self.BYLINES:  # "调研组组长:柘原市委直属机关工委常务副书记 欧阳砺", parsed as a heading
                labels += [x for x in h.chunk.heading_path if BYLINE.fullmatch(x)]
            for lab in labels:
                key = norm(lab)
                if len(key) >= 4 and key not in seen:
                    seen.add(key)
                    out.append(Candidate(lab, r, h, kind="label"))
        return out

    def run_candidates(self, cands: list, question: str, hits: list[Hit]) -> list:
        """Runs of list items: the items a short lead-in announces, the siblings of a numbered item,
        and numbered sub-headings of a section the question names."""
        from .spans import FIRST_ITEM, Candidate

        out = []
        for c in cands:
            if c.kind != "sent":
                continue
            items, head = [], c
            if c.opens_list:  # "建立完善三项机制。" then 一是…二是…
                items = self.announced_items(c)
            elif FIRST_ITEM.match(c.text):  # item 一 and its siblings
                items = self.enumeration(c, question, force=True)
            elif self.INLINE_ITEMS and (m := INLINE_FIRST.search(c.text)):  # "……短板:一是……;" 二是…
                head = Candidate(c.text[: m.end()], c.hit_rank, c.hit, prev=c.prev, pos=c.pos, lead=c.lead)
                items = self.announced_items(head)
            if items:
                members = [head] + items
                text = "".join(m.text for m in members)
                out.append(Candidate(text, c.hit_rank, c.hit, prev=c.prev, pos=c.pos, lead=c.lead, kind="run", items=members))
        heading_items, _ = self.heading_list(question, hits)
        if heading_items:
            h0 = heading_items[0]
            out.append(Candidate("".join(x.text for x in heading_items), h0.hit_rank, h0.hit, kind="run", items=heading_items))
        return out

    # ------------------------------------------------------------ deciding
    def decide(self, prep: Prepared, model: Model | None = None) -> Answer:
        model = model or self.model
        question, hits = prep.question, prep.hits
        if not hits or not prep.cands:
            return Answer(question=question, text=REFUSAL, refused=True, hits=hits)
        threshold = self.settings.min_evidence if self.settings.min_evidence >= 0 else model.threshold
        chosen, choices, scores, probs, lacking = self.choose(prep, model, threshold)
        evidence = min(probs) if probs else 0.0
        answered = max(probs) if len(prep.parts) > 1 and probs else evidence
        if not chosen or answered < threshold:
            return Answer(question=question, text=REFUSAL, refused=True, hits=hits, evidence=evidence)
        chosen = reading_order(chosen + self.joining(prep, choices, chosen, evidence, model))
        ans = self.compose(question, chosen, self.ranked_passages(hits, prep.cands, chosen, scores), evidence)
        for part in lacking:  # a comparison: say which side the material lacks
            ans.text += f"关于“{part.strip('？?。 ')}”，资料中没有找到直接相关的内容。"
        return ans

    def choose(self, prep: Prepared, model: Model, threshold: float):
        """Rank each part's candidates and take its best one (the items, for a run): (chosen,
        the parts as ranked, each candidate's best score over the parts, the gate probability of
        each part, the parts of a many-part question the material does not answer)."""
        cands = prep.cands
        chosen: list = []
        choices: list[PartChoice] = []
        probs: list[float] = []
        scores = np.full(len(cands), -np.inf)
        lacking: list[str] = []
        single = len(prep.parts) == 1
        for q, X in prep.parts:
            s = model.ranker(X)
            scores = np.maximum(scores, s)
            order = np.argsort(-s, kind="stable")
            top = int(order[0])
            if q.said_bigrams:  # a follow-up wants something new: not a sentence the last answer already gave
                said = X[:, FEATURES.index("said_overlap")]
                fresh = [int(j) for j in order if said[int(j)] < SAID_MAX]
                top = fresh[0] if fresh else top
            g = gate_features(q, cands, X, s, top, prep.hits, self)
            p = float(sigmoid(model.gate(g[None])[0])) if self.found_anything(g) else 0.0
            probs.append(p)
            if not single and p < threshold:
                lacking.append(q.text)
                continue
            if self.ITEMS_FOR_LEAD and cands[top].kind == "sent":  # the items, not the sentence announcing them
                top = self.run_of(cands, top)
            c = cands[top]
            dup = any(c is m for m in chosen)
            choices.append(PartChoice(q, s, order, top, dup))
            if dup:
                continue  # one sentence answers two parts ("谁推出的？办了几期？")
            if c.kind == "run":
                chosen.extend(m for m in c.items if not any(m is x for x in chosen))
                continue
            chosen.append(c)
            if self.HEADING_NEXT and heads_a_section(c.text):  # "第四,聚焦……攻坚。" then what it is
                nxt = self.next_sentence(cands, c)
                if nxt is not None and not any(nxt is m for m in chosen):
                    chosen.append(nxt)
                    continue
            if single:
                chosen.extend(self.more_sentences(q, cands, s, order, c, model.second_ratio))
        return chosen, choices, scores, probs, lacking

    def next_sentence(self, cands: list, c):
        """The candidate sentence right after ``c`` in its passage, when it fits the answer's budget."""
        for r in cands:
            if r.kind == "sent" and r.hit is c.hit and r.pos == c.pos + 1:
                return r if len(c.text) + len(r.text) <= self.settings.max_answer_chars else None
        return None

    @staticmethod
    def run_of(cands: list, j: int) -> int:
        """The run of items that sentence ``j`` announces (it opens a list, or its own colon does:
        "……短板:一是……;"), else ``j``."""
        c = cands[j]
        for k, r in enumerate(cands):
            if r.kind == "run" and r.items and r.items[0].hit is c.hit and r.items[0].pos == c.pos:
                head = r.items[0]
                if head is c and c.opens_list or head is not c and c.text.startswith(head.text):
                    return k
        return j

    def found_anything(self, g: np.ndarray) -> bool:
        """Does any passage read hold any term of the (Chinese) question? When none does, the material
        does not cover it: the gate is not asked, because it has nothing to go on there (3 of 919
        answerable rows of the labeled sets, no unanswerable one; a linear gate extrapolates, and on a
        small corpus an off-topic "量子计算机的原理是什么？" got 0.55). An English question's terms are
        the Chinese words its glossary and names give: when none of them is read either ("How do I
        apply for a Schengen visa…" maps to no term at all), it gets no gate either; its dense
        cosines alone had the gate answer four of five such off-topic questions at 0.87–0.95."""
        i = GATE_FEATURES.index
        if bool(g[i("latin")]) and not self.LATIN_GUARD:
            return True
        return g[i("best_cov")] > 0

    def joining(self, prep: Prepared, choices: list, chosen: list, evidence: float, model: Model) -> list:
        """The further candidates the learned joiner adds (none without a joiner)."""
        if model.joiner is None or model.join_threshold > 1:
            return []
        idx, F = join_rows(self, prep, choices, chosen, evidence)
        if not idx:
            return []
        budget = self.settings.max_answer_chars - sum(len(c.text) for c in chosen)
        return pick(prep.cands, idx, sigmoid(model.joiner(F)), model.join_threshold, budget)

    def ranked_passages(self, hits: list[Hit], cands: list, chosen: list, scores: np.ndarray) -> list[Hit]:
        """The passages in the order the answer ranks them: those the answer quotes first, then the
        other passages read by their best candidate's ranker score, then the rest as retrieved. The
        ranker weighs far more than the fusion does (the question's terms in each sentence, the kind of
        answer asked for), so the passage it reads the answer from is the one to show first."""
        read = hits[: self.settings.answer_passages]
        best: dict[str, float] = {}
        for c, v in zip(cands, scores):
            cid = c.hit.chunk.id
            best[cid] = max(best.get(cid, -np.inf), float(v))
        first: dict[str, int] = {}  # the quoted passages, in the order the answer first quotes them
        for c in chosen:
            first.setdefault(c.hit.chunk.id, len(first))
        # sorted() is stable: passages tied on both keys keep their retrieval order
        ordered = sorted(read, key=lambda h: (first.get(h.chunk.id, len(first)), -best.get(h.chunk.id, -np.inf)))
        return ordered + hits[len(read):]

    def more_sentences(self, q: Query, cands: list, s: np.ndarray, order: np.ndarray, top, ratio: float) -> list:
        """The sentences that join the best one: a second sentence that covers question terms the
        first misses, when the ranker gives it at least ``ratio`` of the first's softmax share
        (ratio > 1: never)."""
        from .spans import ANSWER_KIND, _restates, is_inline_heading

        if ratio > 1:
            return []
        p = np.exp(s - s.max())
        p /= p.sum()
        budget = self.settings.max_answer_chars - len(top.text)
        top_path = norm(" ".join((top.hit.chunk.title, *top.hit.chunk.heading_path))).lower()
        for j in order[1:4]:
            c = cands[int(j)]
            if c.kind != "sent" or p[int(j)] < ratio * p[int(order[0])]:
                continue
            new_terms = {t for t in c.covered - top.covered if norm(t).lower() not in top_path and t not in ANSWER_KIND}
            if (
                new_terms
                and not (is_inline_heading(c.text) and _restates(c.text, q.own_terms))
                and sum(self.idf(t) for t in new_terms) >= 0.25 * sum(self.idf(t) for t in top.covered | new_terms)
                and len(c.text) <= budget
            ):
                return [c]
        return []

    def answer(
        self,
        question: str,
        hits: list[Hit],
        *,
        extra_terms: dict[str, float] | None = None,
        said: str = "",
        context: str = "",
    ) -> Answer:
        """Answer ``question`` from ``hits``; ``said`` is what the conversation already told the user,
        ``context`` the earlier question a follow-up points back to ("这个行动……" -> “三个一”扶贫行动)."""
        return self.decide(self.prepare(question, hits, extra_terms=extra_terms, said=said, context=context))

