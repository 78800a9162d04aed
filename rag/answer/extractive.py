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
  enumeration, "叫什么/叫法" a name in quotes; a sentence without it scores lower, and no such
  sentence at all means "refuse" (names excepted: they only rank);
- "最难/最大……" also matches the root with 在/点 ("难就难在", "这个难点") at a lower weight;
- the passage's retrieval rank and cosine similarity.

Answer types beyond those: "谁推出的" wants a sentence that says who launched it, "成效" one that
reports figures, "多长时间……一次" a frequency, "多少钱" an amount in 元; a count must sit by its quoted
subject (in the sentence, the one before it or its heading; for a follow-up, the subject of the
question it points back to). Sentences carry the inline heading they follow ("一是……。"), also from
the passages before theirs. Lists come from numbered sub-headings (of the parent section or of one
above it), from the siblings of a numbered sentence, or from the items that follow a short lead-in in
sequence ("建立完善三项……机制。一是……二是……").

What it does not do: paraphrase, summarise, or join facts into new sentences (the LLM mode does).
"""

from __future__ import annotations

import re

import numpy as np

from ..ingest.chunking import split_sentences
from ..config import Settings
from ..glossary import chinese_keywords
from ..names import names_of
from ..places import PlaceResolver, place_core, place_mentions, places_in
from ..schema import Chunk, Hit
from ..index.sentvec import SentenceVectorCache
from .learned import LearnedAnswering
from .query import (
    NAME_GATE_Q, NUMBER_Q, QUOTED, expected_count, question_classifier, question_terms,
)
from .spans import (
    CREDIT, Candidate, ENUMERATOR, FIRST_ITEM, ORG_NAME, OWNER_PLACE, PLACE_SUFFIX, QUOTED_NAME, SENT_ENDS, _enum_items, has_count, is_inline_heading,
)
from .ranker import Model, default_model, load_model
from ..text import STOPWORDS, is_mostly_latin, norm

from .compose import Composing


class ExtractiveAnswerer(Composing, LearnedAnswering):
    """Compose a cited answer from retrieved hits without an LLM."""

    def __init__(
        self, settings: Settings, idf, embed_query=None, embed_passages=None, chunks=None, sentence_cache=None, model=None
    ) -> None:
        self.settings = settings
        self.model: Model = model or load_model() or default_model()
        self.idf = idf  # term -> IDF from the keyword index
        self.embed_query = embed_query  # for weak lexical matches and other languages
        self.embed_passages = embed_passages
        self.chunks = chunks or []  # the index's chunks, to complete enumerations
        if sentence_cache is None and embed_passages is not None:
            sentence_cache = SentenceVectorCache(embed_passages)  # in memory only
        self.sentence_cache = sentence_cache
        self.places = PlaceResolver(self.chunks)
        self._sections: dict | None = None
        self._order: tuple[dict[str, Chunk], dict[str, Chunk]] | None = None
        self._known: frozenset[str] | None = None
        self._articles: dict[str, list[Chunk]] | None = None

    # ------------------------------------------------------------ candidates
    def candidates(self, hits: list[Hit]) -> list[Candidate]:
        out, seen = [], set()
        for r, h in enumerate(hits[: self.settings.answer_passages]):
            prev, pos, lead = "", 0, self.lead_before(h.chunk)
            headings = {norm(x) for x in h.chunk.heading_path}
            for a, z in split_sentences(h.chunk.text):
                # a line break in a chunk is a block boundary: a heading line is context, not a sentence
                for line in h.chunk.text[a:z].split("\n"):
                    s = line.strip()
                    key = norm(s)
                    if not key:
                        continue
                    heading = key in headings or (ENUMERATOR.match(s) and not s.endswith(SENT_ENDS)) or CREDIT.fullmatch(s)
                    if ENUMERATOR.match(s):
                        lead = ""  # the next item starts: the old topic ends
                    if out and out[-1].hit is h and out[-1].pos == pos - 1 and FIRST_ITEM.match(s):
                        out[-1].opens_list = True
                    if not heading and len(key) >= 6 and key not in seen:
                        seen.add(key)
                        out.append(Candidate(s, r, h, prev=prev, pos=pos, lead=lead))
                    if heading or is_inline_heading(s):
                        lead = s
                    prev, pos = s, pos + 1
        return out

    def lead_before(self, chunk: Chunk) -> str:
        """The inline heading ("一是……。") still open where ``chunk`` starts, from the passages
        before it in the same section (a passage may start in the middle of an item)."""
        before, _ = self._neighbours()
        boundary, cur = chunk.start, chunk
        for _ in range(3):  # an item rarely runs longer than a few passages
            prev = before.get(cur.id)
            if prev is None or prev.heading_path != chunk.heading_path:
                return ""
            items = [
                line.strip()
                for a, z in split_sentences(prev.text)
                if prev.start + a < boundary  # what overlaps this passage, it reads itself
                for line in prev.text[a:z].split("\n")
            ]
            for s in reversed(items):
                if ENUMERATOR.match(s):
                    return s if is_inline_heading(s) else ""
            boundary, cur = prev.start, prev
        return ""

    def terms_of(self, question: str) -> dict[str, float]:
        """Weighted terms to look for in sentences; an English question's are its Chinese keywords."""
        if is_mostly_latin(question):
            keywords = [chinese_keywords(question, alternatives=False), *names_of(self.chunks).in_english(question)]
            return question_terms(" ".join(keywords), self.idf)
        return question_terms(question, self.idf)

    def sentence_vectors(self, texts: list[str]) -> np.ndarray:
        """Passage vectors of sentences (cached; see rag/index/sentvec.py)."""
        return self.sentence_cache.vectors(texts)

    def sentences_with_chunks(self) -> list[tuple[str, int]]:
        """(sentence, chunk index) for every sentence the answerer may read, as ``candidates`` cuts
        them (for the retriever's sentence list and the warm-up)."""
        out = []
        for i, ch in enumerate(self.chunks):
            for a, z in split_sentences(ch.text):
                whole = ch.text[a:z].strip()
                pieces = [whole] + ([ln.strip() for ln in whole.split("\n")] if "\n" in whole else [])
                for s in pieces:  # a line break is a block boundary: candidates take its lines
                    if len(norm(s)) >= 6:
                        out.append((s, i))
        return out

    # ------------------------------------------------------------ clauses
    def type_ok(self, question: str, top: Candidate, subjects: tuple[str, ...] = ()) -> bool:
        """Does the best sentence carry the kind of answer the question asks for? ``subjects``: the
        quoted names a follow-up's pronoun stands for."""
        if NUMBER_Q.search(question) and not is_mostly_latin(question):
            classifier = question_classifier(question)
            if not has_count(top.text, classifier, question):
                return False
            # "“万户帮扶行动”……多少钱？": a count in the sentence after another campaign's does not
            # answer; the subject must be in the sentence, the one before it or its heading
            prev = top.prev or self.sentence_before(top.hit.chunk)
            context = norm(" ".join((prev, top.text, top.lead, *top.hit.chunk.heading_path)))
            quoted = QUOTED.findall(question)
            if quoted:
                missing = any(norm(q) not in context for q in quoted)
            else:  # a follow-up ("这个行动……"): one of the names it points back to
                quoted = list(subjects)
                missing = bool(quoted) and not any(norm(q) in context for q in quoted)
            if missing:
                return False
            # "31名……获得“百名最美扶贫人物”称号,多名……被评为“全国脱贫攻坚先进个人”": a count
            # stated before the subject asked about belongs to something else
            for q in quoted:
                at = top.text.find(q)
                if at > 0 and not has_count(top.text[at:], classifier, question):
                    return False
        if re.search(r"哪一?年|何年|which year|what year", question, re.I):
            if not re.search(r"(?:19|20)\d{2}", top.text):
                return False
        if NAME_GATE_Q.search(question) and not self.names_in(top.text, question):
            return False  # "……叫什么名字？" and the sentence names nothing
        n = expected_count(question)
        if n and n >= 2 and not NUMBER_Q.search(question):
            # a term like “四级五方” named in the question must come with its items: in the clause
            # that names it, or exactly that many in the next one ("完善“四联机制”,推动……开展组织联建、
            # 理论联学、活动联办、品牌联创");
            # a sentence without the term must list items itself
            named = [q for q in QUOTED.findall(question) if q in top.text]
            if not named and QUOTED.search(question) and _enum_items(top.text) < 2 and not top.opens_list:
                return False
            for q in named:
                clauses = re.split(r"[,，。;；]", top.text)
                at = next((i for i, cl in enumerate(clauses) if q in cl), 0)
                nxt = clauses[at + 1] if at + 1 < len(clauses) else ""
                if _enum_items(clauses[at]) < 2 and _enum_items(nxt) != n:
                    return False
        return True

    @staticmethod
    def names_in(text: str, question: str) -> list[str]:
        """Names in ``text`` that the question does not already say: quoted terms, 《titles》 and
        names of offices, platforms, columns ("党建业务指导处", "政协云")."""
        q = norm(question)
        found = QUOTED_NAME.findall(text) + re.findall(r"《([^》]{2,30})》", text) + ORG_NAME.findall(text)
        return [x for x in found if norm(x) and norm(x) not in q]

    def missing_entity(self, question: str, hits: list[Hit]) -> bool:
        """A place or organisation named in the question that the retrieved passages never mention."""
        if is_mostly_latin(question):
            return False
        import rjieba

        corpus_text = norm(" ".join(h.chunk.text + " ".join(h.chunk.heading_path) + h.chunk.title for h in hits))
        for word, tag in rjieba.tag(question):
            if tag not in {"ns", "nt"} or word in STOPWORDS:
                continue
            if tag == "ns" and not (places_in(word) or PLACE_SUFFIX.search(word)):
                continue  # rjieba tags "东西" (things) as a place: a place is known or looks like one
            core = re.sub(r"(省|市|自治区|县|区)?(政协|政府|委员会|机关|人大|党委)?$", "", word)
            core = core or word
            if len(core) >= 2 and norm(core) not in corpus_text and not self._in_index(core):
                return True
        # "浙江省政协机关……": the corpus says "浙江大学" somewhere, but no passage speaks for 浙江
        for m in OWNER_PLACE.finditer(question):
            place = place_core(m.group(1))
            if place and place not in self.known_places():
                return True
        return False

    def known_places(self) -> frozenset[str]:
        """Every province or city some passage of the index speaks for or names as "X省"/"X市"
        (computed once per index version)."""
        if self._known is None:
            known = set().union(*(self.places.of(ch) for ch in self.chunks))
            for ch in self.chunks:
                known.update(m.group(0) for m in place_mentions(ch.text) if ch.text[m.end() : m.end() + 1] in ("省", "市"))
            self._known = frozenset(known)
        return self._known

    def _in_index(self, term: str) -> bool:
        return self.idf(term) < self.idf("\uffff__never__") - 1e-6
