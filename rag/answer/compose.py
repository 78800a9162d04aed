"""Compose a cited answer from the chosen candidates: trim to the clauses that matter, complete
enumerations (numbered siblings, announced items, the sub-headings of a section), add markers [n].

What it does not do: choose the candidates (``learned.py``) or judge the answer type (``extractive.py``).
"""

from __future__ import annotations

import re


from ..ingest.chunking import split_sentences
from ..places import places_in
from ..schema import Answer, Chunk, Citation, Hit
from .query import (
    AGENT_Q, LIST_Q, NUMBER_Q, QUOTED, TIME_Q,
    WHO_Q, expected_count, question_terms,
)
from .spans import CLAUSE_SEP, Candidate, ENUMERATOR, QUOTED_NAME, SENT_MAX, _enum_items, speaker_of
from ..text import NUMBER_RE, YEAR_RE, is_mostly_latin, norm



TRIM_FORWARD = True  # a cut sentence keeps the clauses after its best run (CV: docs/ablations.md)


class Composing:
    """The composition half of ``ExtractiveAnswerer`` (a mixin: it uses the answerer's chunks and model)."""

    def trim(self, text: str, question: str) -> str:
        """Cut a long sentence to the run of clauses that covers the question best."""
        if len(text) <= SENT_MAX:
            return text
        clauses = [c for c in CLAUSE_SEP.split(text) if c]
        terms = self.terms_of(question)  # an English question's are its Chinese keywords
        want_num = bool(NUMBER_Q.search(question))
        want_time = bool(TIME_Q.search(question))
        want_list = bool(LIST_Q.search(question))
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
                if want_time and YEAR_RE.search(run):
                    sc += 0.5
                if want_list:  # the items asked for: keep the clauses that name them
                    sc += 0.2 * len(QUOTED_NAME.findall(run)) + 0.1 * run.count("、")
                sc -= 0.001 * len(run)
                if sc > best_score:
                    best, best_score, last = run, sc, j
        if TRIM_FORWARD and best_score > -1.0:
            # the fact asked for mostly follows the clause that names the question's terms
            # ("……组建10470个帮扶小组,帮扶11494户"; "……“两条线”的党组织体系:……"): the clauses
            # after the best run join it while the sentence's length budget allows
            for k in range(last + 1, len(clauses)):
                if len(best) + len(clauses[k]) > SENT_MAX:
                    break
                best += clauses[k]
        best = best.rstrip(",，;；:：")
        return best if best.endswith(("。", "!", "?", "！", "？", "”")) else best + "……"

    # ------------------------------------------------------------ the answer (rag/answer/learned.py)
    def compose(self, question: str, chosen: list[Candidate], hits: list[Hit], evidence: float) -> Answer:
        """Number citations by passage in order of first use; every sentence ends with its marker."""
        citations: list[Citation] = []
        by_chunk: dict[str, int] = {}
        pieces = []
        # "……是谁？": the person is often only in the heading ("山西省政协秘书长 张岐云") while
        # the passage says "我们"; name each speaker before their sentence, from its own heading
        who_q, named = bool(WHO_Q.search(question)) and not AGENT_Q.search(question), set()
        for c in chosen:
            if who_q:
                who = speaker_of(c.hit.chunk)
                if who and who not in named and who.split()[-1] not in c.text:
                    named.add(who)
                    pieces.append(f"{who}：")
            cid = c.hit.chunk.id
            if cid not in by_chunk:
                by_chunk[cid] = len(citations) + 1
                citations.append(Citation(n=by_chunk[cid], chunk=c.hit.chunk, quote=c.text, score=c.score))
            else:
                i = by_chunk[cid] - 1
                old = citations[i]
                citations[i] = Citation(n=old.n, chunk=old.chunk, quote=old.quote + c.text, score=old.score)
            pieces.append(f"{self.trim(c.text, question)}[{by_chunk[cid]}]")
        return Answer(question=question, text="".join(pieces), refused=False, citations=citations, hits=hits, evidence=evidence)

    def enumeration(self, top: Candidate, question: str, force: bool = False) -> list[Candidate]:
        """For a list question answered by "（一）…"/"一是…", the sibling items that follow it
        (``force``: whatever the question's wording)."""
        if (not force and not LIST_Q.search(question)) or _enum_items(top.text) >= 3:
            return []
        if not ENUMERATOR.match(top.text):
            return self.announced_items(top)
        want = expected_count(question) or 6
        parent = top.hit.chunk.heading_path[:-1] if top.text.startswith(("(", "（")) else top.hit.chunk.heading_path
        out: list[Candidate] = []
        # siblings in the same passage first, then in passages of the same parent section
        pool = []
        for a, z in split_sentences(top.hit.chunk.text):
            pool.append((top.hit, top.hit.chunk.text[a:z].strip()))
        for ch in self.article(top.hit.chunk.source):
            if ch.id != top.hit.chunk.id and ch.heading_path[: len(parent)] == parent:
                first = split_sentences(ch.text)
                if first:
                    a, z = first[0]
                    pool.append((Hit(chunk=ch, score=0.0), ch.text[a:z].strip()))
        kind = top.text[:1] if top.text[:1] in "(（" else ("是" if re.match(r"^[一二三四五六七八九十]+是", top.text) else "、")
        seen = {norm(top.text)}
        for hit, s in pool:
            if not ENUMERATOR.match(s) or norm(s) in seen:
                continue
            s_kind = s[:1] if s[:1] in "(（" else ("是" if re.match(r"^[一二三四五六七八九十]+是", s) else "、")
            if s_kind != kind or len(s) > 60:
                continue
            seen.add(norm(s))
            out.append(Candidate(s, top.hit_rank, hit))
            if len(out) + 1 >= want:
                break
        total = len(top.text) + sum(len(c.text) for c in out)
        return out if out and total <= self.settings.max_answer_chars * 1.3 else []

    def announced_items(self, top: Candidate) -> list[Candidate]:
        """"建立完善三项统筹协调机制。一是……。（细节）二是……三是……": the numbered items that
        follow a short lead-in sentence at once, in sequence (一, 二, 三 …), from its passage or the
        next, without the details under them. The lead-in's own count ("两大主题") need not be the
        items'; the sequence decides."""
        if len(top.text) > 60:
            return []
        chunk = top.hit.chunk
        at = chunk.text.find(top.text)
        if at < 0:
            return []
        texts = [(chunk, chunk.text[at + len(top.text):])]
        nxt = self.next_chunk(chunk)
        if nxt is not None and nxt.heading_path == chunk.heading_path:
            texts.append((nxt, nxt.text[max(0, chunk.end - nxt.start):]))
        numerals = "一二三四五六七八九十"
        out: list[Candidate] = []
        form = None
        for ch, s in ((ch, text[a:z].strip()) for ch, text in texts for a, z in split_sentences(text)):
            if len(out) == len(numerals):
                break
            want = numerals[len(out)]
            # "一是/（一）/一、/第一," or an ordinal before the same word each time ("一问原文……二问实情……");
            # the shape check below holds every item to the first one's marker
            m = re.match(rf"^(?:[（(]{want}[)）]|{want}是|{want}、|第{want}[,，、])", s)
            if m is None and (form is None or form[-1] not in "是、,，)）"):
                m = re.match(rf"^{want}[\u4e00-\u9fff](?=[\u4e00-\u9fff])", s)
                if m is not None and form is not None and re.sub(r"[一二三四五六七八九十]", "N", m.group(0)) != form:
                    m = None  # "三年来……" under item 二 of 一问/二问: a detail, not the next item
            if m is None:
                if not out:
                    return []  # the items must follow the lead-in at once
                if ENUMERATOR.match(s) or "\n" in s:
                    break  # another list or a heading: the sequence has ended
                continue  # details under the last item
            shape = re.sub(r"[一二三四五六七八九十]", "N", s[: m.end()])
            if form is None:
                form = shape
            elif shape != form:
                break
            out.append(Candidate(s if len(s) <= SENT_MAX else self.trim(s, s), top.hit_rank, Hit(chunk=ch, score=0.0)))
        if len(out) < 2:
            return []
        total = len(top.text) + sum(len(c.text) for c in out)
        return out if total <= self.settings.max_answer_chars * 1.3 else []

    def sentence_before(self, chunk: Chunk) -> str:
        """The last sentence before ``chunk`` starts, from the passage before it in its section."""
        prev = self._neighbours()[0].get(chunk.id)
        if prev is None or prev.heading_path != chunk.heading_path:
            return ""
        before = [prev.text[a:z].strip() for a, z in split_sentences(prev.text) if prev.start + z <= chunk.start]
        return before[-1] if before else ""

    def article(self, source: str) -> list[Chunk]:
        """The passages of one article, in index order (one pass over the index, on first use: an
        enumeration read every passage of the index for each question, decoding each)."""
        if self._articles is None:
            out: dict[str, list[Chunk]] = {}
            for ch in self.chunks:
                out.setdefault(ch.source, []).append(ch)
            self._articles = out
        return self._articles.get(source, [])

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        return self._neighbours()[1].get(chunk.id)

    def _neighbours(self) -> tuple[dict[str, Chunk], dict[str, Chunk]]:
        """(chunk id -> the passage before it, chunk id -> the passage after it) in each article."""
        if self._order is None:
            order = sorted(self.chunks, key=lambda c: (c.source, c.start))
            pairs = [(a, b) for a, b in zip(order, order[1:]) if a.source == b.source]
            self._order = ({b.id: a for a, b in pairs}, {a.id: b for a, b in pairs})
        return self._order

    def sections(self) -> dict[tuple[str, tuple[str, ...]], dict[str, Chunk]]:
        """(source, parent heading path) -> {child heading: first passage of that child}, in order."""
        if self._sections is None:
            out: dict[tuple[str, tuple[str, ...]], dict[str, Chunk]] = {}
            for ch in self.chunks:
                path = ch.heading_path
                for depth in range(1, len(path)):
                    out.setdefault((ch.source, path[:depth]), {}).setdefault(path[depth], ch)
            self._sections = out
        return self._sections

    def heading_list(self, question: str, hits: list[Hit]) -> tuple[list[Candidate], float]:
        """A list question about a section whose items are its numbered sub-headings.

        "“三个表率”分别是哪些？" is answered by the sub-headings "（一）在助力脱贫攻坚上当表率" … of
        the section headed "…在“三个表率”中充分彰显": the items are the headings, not a sentence.
        Triggers when a retrieved passage's parent heading carries the question's quoted term
        (or most of its terms) and has two or more numbered children (as many as the question
        names, when it names a number). Returns the children (each cited from the first passage
        of its section) and a score, or ([], 0).
        """
        if not (LIST_Q.search(question) or expected_count(question)) or is_mostly_latin(question):
            return [], 0.0
        want = expected_count(question)
        quoted = [norm(q) for q in QUOTED.findall(question)]
        terms = question_terms(question, self.idf)
        total = sum(terms.values()) or 1.0
        sections = self.sections()
        # parents to try: those of the retrieved passages, then any section whose heading
        # carries the question's quoted term ("“三个强化”") even when retrieval missed it
        parents: list[tuple[int, tuple[str, tuple[str, ...]]]] = []
        for rank, h in enumerate(hits[: self.settings.answer_passages]):
            path = h.chunk.heading_path
            parents.extend((rank, (h.chunk.source, path[:depth])) for depth in range(1, len(path)))
        if quoted:
            asked = set(places_in(question))
            for key in sections:
                if any(q and q.lower() in norm(h).lower() for q in quoted for h in key[1]):
                    first = next(iter(sections[key].values()))
                    where = self.places.of(first)
                    if not asked or not where or (asked & where):
                        parents.append((self.settings.answer_passages, key))
        best: tuple[list[Candidate], float] = ([], 0.0)
        tried = set()
        for rank, key in parents:
            if key in tried or key not in sections:
                continue
            tried.add(key)
            head = norm(key[1][-1]).lower()
            if quoted:
                # the quoted term in this heading, or in one above it (the speech titled “火柴”
                # whose speaker block holds the numbered sections): the further up, the weaker
                match = 0.0
                for up, h in enumerate(reversed(key[1])):
                    if any(q and q.lower() in norm(h).lower() for q in quoted):
                        match = 1.0 - 0.1 * up
                        break
            else:
                match = sum(w for t, w in terms.items() if norm(t).lower() in head) / total
            if match < 0.6:
                continue
            items = [(t, ch) for t, ch in sections[key].items() if ENUMERATOR.match(t)]
            if len(items) < 2 or (want and len(items) != want):
                continue
            if sum(len(t) for t, _ in items) > self.settings.max_answer_chars * 1.3:
                continue
            score = match * (1.0 if want else 0.8) / (1 + 0.1 * rank)
            if score > best[1]:
                cands = [
                    Candidate(t.rstrip("。.") + "。", rank, Hit(chunk=ch, score=0.0), score=score, coverage=match)
                    for t, ch in items
                ]
                best = (cands, score)
        return best

    # ------------------------------------------------------------ gate
