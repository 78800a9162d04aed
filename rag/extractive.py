"""The embedded answerer: pick the sentences of the retrieved passages that answer the question.

No language model: every sentence of an answer is a verbatim sentence (or clause run) of a cited
passage, followed by its marker [n]. The evidence gate decides first whether the passages answer
the question at all; when they do not, the answer is a refusal that still lists the closest
passages as related material.

Sentence score (all parts in [0, 1]):
- coverage: IDF-weighted share of the question's terms found in the sentence (terms found only in
  the passage's heading path, e.g. the speaker's name, count half);
- bigram overlap of the question's characters with the sentence (paraphrases share few words
  but some characters);
- answer type: a "多少/几" question wants a number, "哪一年/什么时候" a date, "哪些/哪几" an
  enumeration; a sentence without it scores lower, and no such sentence at all means "refuse";
- the passage's retrieval rank and cosine similarity.

What it does not do: paraphrase, summarise, or join facts into new sentences (the LLM mode does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .chunking import split_sentences
from .config import Settings
from .schema import Answer, Citation, Hit
from .text import NUMBER_RE, STOPWORDS, YEAR_RE, cjk_bigrams, is_mostly_latin, norm, tokenize

REFUSAL = "资料中没有找到与该问题直接相关的内容。以下是最接近的原文，供参考。"
CLAUSE_SEP = re.compile(r"(?<=[,，;；:：])")
QUOTED = re.compile(r"[“\"「『']([^”\"」』']{2,20})[”\"」』']")
NUMBER_Q = re.compile(r"多少|几[个位名家项条次期篇年天月人所批支]|几$|数量|how many|how much|number of", re.I)
TIME_Q = re.compile(r"什么时候|何时|哪一?年|哪天|几月|时间|when|which year|what year", re.I)
LIST_Q = re.compile(r"哪些|哪几|分别|有什么|都有|包括|几个方面|哪[一二三四五六七八九十两]|what are|which", re.I)
ENUM_IN_Q = re.compile(r"[“\"]?([一二三四五六七八九十两]+)[个项条张大]?[\u4e00-\u9fff]{1,4}[”\"]?")
CN_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
ENUM_MARK = re.compile(r"[一二三四五六七八九十]是|、|（[一二三四五六七八九十]）|\([一二三四五六七八九十]\)|第[一二三四五六七八九十]")
SENT_MAX = 120  # longer sentences are cut to their best clause run


@dataclass
class Candidate:
    text: str
    hit_rank: int
    hit: Hit
    coverage: float = 0.0
    score: float = 0.0
    covered: frozenset = frozenset()


def question_terms(question: str, idf) -> dict[str, float]:
    """Content terms of a question with IDF weights; quoted terms count double."""
    terms: dict[str, float] = {}
    for t in tokenize(question):
        if len(t) == 1 and not t.isdigit():
            continue
        terms[t] = max(terms.get(t, 0.0), idf(t))
    for q in QUOTED.findall(question):
        key = q.lower()
        terms[key] = max(terms.get(key, 0.0), idf(key)) * 2
    return terms


def expected_count(question: str) -> int | None:
    """"哪四同"/"四个能力"/"三个表率" -> the number of items the question expects."""
    m = re.search(r"[“\"]([一二三四五六七八九十两])[个项条张大]?[\u4e00-\u9fff]{1,4}[”\"]|哪([一二三四五六七八九十两])[个项条张大]?", question)
    if not m:
        return None
    return CN_NUM.get(m.group(1) or m.group(2))


def _enum_items(text: str) -> int:
    """Rough number of enumerated items in a text."""
    return max(text.count("、") + 1 if "、" in text else 0, len(ENUM_MARK.findall(text)))


def split_subquestions(question: str) -> list[str]:
    """Split "…？…？" and "A and B" questions into parts answered one by one."""
    parts = [p.strip() for p in re.split(r"[？?；;]\s*", question) if len(norm(p)) >= 4]
    if len(parts) <= 1 and is_mostly_latin(question):
        parts = [p.strip() for p in re.split(r",? and (?=how|what|which|when|where|who)", question, flags=re.I) if p.strip()]
    return parts or [question]


class ExtractiveAnswerer:
    """Compose a cited answer from retrieved hits without an LLM."""

    def __init__(self, settings: Settings, idf, embed_query=None, embed_passages=None) -> None:
        self.settings = settings
        self.idf = idf  # term -> IDF from the keyword index
        self.embed_query = embed_query  # optional: for questions in another language
        self.embed_passages = embed_passages

    # ------------------------------------------------------------ candidates
    def candidates(self, hits: list[Hit]) -> list[Candidate]:
        out, seen = [], set()
        for r, h in enumerate(hits[: self.settings.answer_passages]):
            for a, z in split_sentences(h.chunk.text):
                s = h.chunk.text[a:z].strip()
                key = norm(s)
                if len(key) < 6 or key in seen:
                    continue
                seen.add(key)
                out.append(Candidate(s, r, h))
        return out

    def score(self, cands: list[Candidate], question: str, extra_terms: dict[str, float]) -> None:
        terms = question_terms(question, self.idf)
        for t, w in extra_terms.items():
            terms.setdefault(t, 0.4 * w)
        total = sum(terms.values()) or 1.0
        q_bi = cjk_bigrams(" ".join(t for t in tokenize(question)))
        want_num = bool(NUMBER_Q.search(question))
        want_time = bool(TIME_Q.search(question))
        want_list = bool(LIST_Q.search(question))
        latin = is_mostly_latin(question)
        sims = None
        if latin and self.embed_query and self.embed_passages and cands:
            qv = self.embed_query(question)
            sims = self.embed_passages([c.text for c in cands]) @ qv
        for i, c in enumerate(cands):
            s_norm = norm(c.text).lower()
            path_norm = norm(" ".join((c.hit.chunk.title, *c.hit.chunk.heading_path, c.hit.chunk.context))).lower()
            got, covered = 0.0, set()
            for t, w in terms.items():
                tn = norm(t).lower()
                if tn and tn in s_norm:
                    got += w
                    covered.add(t)
                elif tn and tn in path_norm:
                    got += 0.5 * w
            c.coverage = got / total
            c.covered = frozenset(covered)
            bi = cjk_bigrams(c.text)
            overlap = len(q_bi & bi) / (len(q_bi) or 1)
            typ = 1.0
            if want_num and not NUMBER_RE.search(c.text):
                typ *= 0.55
            if want_time and not YEAR_RE.search(c.text):
                typ *= 0.6
            if want_list and _enum_items(c.text) < 2:
                typ *= 0.85
            prior = 1.0 / (1 + c.hit_rank)
            base = 0.62 * c.coverage + 0.18 * overlap + 0.12 * prior + 0.08 * max(0.0, (c.hit.dense_score - 0.8) * 5)
            if sims is not None:
                base = 0.6 * float(sims[i]) + 0.25 * prior + 0.15 * (1.0 if not want_num or NUMBER_RE.search(c.text) else 0.0)
            c.score = base * typ

    # ------------------------------------------------------------ clauses
    def trim(self, text: str, question: str) -> str:
        """Cut a long sentence to the run of clauses that covers the question best."""
        if len(text) <= SENT_MAX:
            return text
        clauses = [c for c in CLAUSE_SEP.split(text) if c]
        terms = question_terms(question, self.idf)
        want_num = bool(NUMBER_Q.search(question))
        best, best_score = text[:SENT_MAX], -1.0
        for i in range(len(clauses)):
            run = ""
            for j in range(i, len(clauses)):
                run += clauses[j]
                if len(run) > SENT_MAX:
                    break
                rn = norm(run).lower()
                sc = sum(w for t, w in terms.items() if norm(t).lower() in rn)
                if want_num and NUMBER_RE.search(run):
                    sc += 0.5
                sc -= 0.001 * len(run)
                if sc > best_score:
                    best, best_score = run, sc
        best = best.rstrip(",，;；:：")
        return best if best.endswith(("。", "!", "?", "！", "？", "”")) else best + "……"

    # ------------------------------------------------------------ the answer
    def answer(self, question: str, hits: list[Hit], *, extra_terms: dict[str, float] | None = None) -> Answer:
        extra_terms = extra_terms or {}
        if not hits:
            return Answer(question=question, text=REFUSAL, refused=True, hits=hits)
        cands = self.candidates(hits)
        parts = split_subquestions(question)
        chosen: list[Candidate] = []
        evidence_scores = []
        for part in parts:
            ctx_terms = dict(extra_terms)
            if len(parts) > 1:
                for t, w in question_terms(question, self.idf).items():
                    ctx_terms.setdefault(t, 0.5 * w)
            self.score(cands, part, ctx_terms)
            ranked = sorted(cands, key=lambda c: -c.score)
            ranked = [c for c in ranked if c not in chosen]
            if not ranked:
                continue
            top = ranked[0]
            if not self.type_ok(part, top, ranked):
                evidence_scores.append(0.0)
                continue
            evidence_scores.append(top.score)
            chosen.append(top)
            # add a second sentence when it covers question terms the first one misses
            budget = self.settings.max_answer_chars - sum(len(c.text) for c in chosen)
            for c in ranked[1:4]:
                new_terms = c.covered - top.covered
                if (
                    c.score >= 0.8 * top.score
                    and new_terms
                    and sum(self.idf(t) for t in new_terms) >= 0.25 * sum(self.idf(t) for t in top.covered | new_terms)
                    and len(c.text) <= budget
                    and len(parts) == 1
                ):
                    chosen.append(c)
                    break
        evidence = min(evidence_scores) if evidence_scores else 0.0
        if not chosen or evidence < self.settings.min_evidence or self.missing_entity(question, hits):
            return Answer(question=question, text=REFUSAL, refused=True, hits=hits, evidence=evidence)

        # number citations by passage, in order of first use
        citations: list[Citation] = []
        by_chunk: dict[str, int] = {}
        pieces = []
        for c in chosen:
            cid = c.hit.chunk.id
            if cid not in by_chunk:
                by_chunk[cid] = len(citations) + 1
                citations.append(Citation(n=by_chunk[cid], chunk=c.hit.chunk, quote=c.text, score=c.score))
            else:
                i = by_chunk[cid] - 1
                citations[i] = Citation(
                    n=citations[i].n, chunk=citations[i].chunk, quote=citations[i].quote + c.text, score=citations[i].score
                )
            pieces.append(f"{self.trim(c.text, question)}[{by_chunk[cid]}]")
        return Answer(question=question, text="".join(pieces), refused=False, citations=citations, hits=hits, evidence=evidence)

    # ------------------------------------------------------------ gate
    def type_ok(self, question: str, top: Candidate, ranked: list[Candidate]) -> bool:
        """Does the best sentence carry the kind of answer the question asks for?"""
        if NUMBER_Q.search(question) and not is_mostly_latin(question):
            if not NUMBER_RE.search(top.text):
                return False
        if TIME_Q.search(question) and re.search(r"哪一?年|何年|which year|what year", question, re.I):
            if not re.search(r"(?:19|20)\d{2}", top.text):
                return False
        n = expected_count(question)
        if n and n >= 2:
            # a term like “四级五方” named in the question must come with its items
            quoted = [q for q in QUOTED.findall(question)]
            for q in quoted:
                if q in top.text:
                    clause = next((cl for cl in re.split(r"[,，。;；]", top.text) if q in cl), "")
                    if _enum_items(clause) < 2 and _enum_items(top.text.split(q, 1)[1][:40]) < 2:
                        return False
        return True

    def missing_entity(self, question: str, hits: list[Hit]) -> bool:
        """A place or organisation named in the question that the retrieved passages never mention."""
        if is_mostly_latin(question):
            return False
        import rjieba

        corpus_text = norm(" ".join(h.chunk.text + " ".join(h.chunk.heading_path) + h.chunk.title for h in hits))
        for word, tag in rjieba.tag(question):
            if tag not in {"ns", "nt"} or word in STOPWORDS:
                continue
            core = re.sub(r"(省|市|自治区|县|区)?(政协|政府|委员会|机关|人大|党委)?$", "", word)
            core = core or word
            if len(core) >= 2 and norm(core) not in corpus_text and not self._in_index(core):
                return True
        return False

    def _in_index(self, term: str) -> bool:
        return self.idf(term) < self.idf("\uffff__never__") - 1e-6


def idf_lookup(index) -> callable:
    """IDF from the keyword index; unseen terms get the maximum."""
    cache: dict[str, float] = {}
    kw = index.keywords

    def idf(term: str) -> float:
        if term not in cache:
            toks = tokenize(term) or [term]
            vals = [kw.idf(t) for t in toks]
            cache[term] = float(np.mean(vals)) if vals else kw.idf(term)
        return cache[term]

    return idf
