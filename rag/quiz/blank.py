"""填空 items: a quoted term, a figure or a list item blanked where no other filler fits the corpus.

What it does not do: accept a blank whose context admits another answer.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from ..text import norm
from .items import BLANK, QuizItem, fullwidth, squash
from .phrasing import balanced, clean_quote, quoted, standalone, statement, window
from .sentences import Candidate, Sent, term_fact


class BlankItems:
    """Fill-in-the-blank items; a mixin of ``Generator``."""

    def blank_items(self) -> Iterable[Candidate]:
        term_count = Counter(norm(t) for t, _ in self.terms)
        for term, s in self.terms:
            if term_count[norm(term)] > 3 or len(term) < 3:  # common slogans make ambiguous blanks
                continue
            pos = s.text.find(f"“{term}”")
            yield self._blank(s, pos + 1, pos + 1 + len(term), term, "quoted term", fact=term_fact(s, term), also=(s.key,))
        for m, s in self.figures:
            yield self._blank(s, m.start(1), m.end(1), m[1], "figure")
        for el in self.lists:
            k = self.rng.randrange(len(el.items))
            a = el.sent.text.find(el.items[k], el.span[0])
            yield self._blank(el.sent, a, a + len(el.items[k]), el.items[k], "list item")

    def _blank(self, s: Sent, a: int, z: int, answer: str, how: str, fact: str = "", also: tuple = ()) -> Candidate:
        return Candidate(
            "fill_blank", s.chunk.id, fact or s.key, s.chunk.source,
            build=lambda: self._make_blank(s, a, z, answer, how), also=frozenset(also),
        )

    def blank_unique(self, before: str, after: str, answer: str) -> bool:
        """The context shown around a blank admits one filler in the whole corpus (rubric §5 填空)."""
        b, a = squash(before)[-6:], squash(after)[:6]
        if len(norm(b)) + len(norm(a)) < 4:
            return False
        stop = r"[^,;。、:!?“”，；：]"
        n = len(squash(answer)) + 6
        if b and a:
            pat = re.escape(b) + rf"(.{{1,{n}}}?)" + re.escape(a)
        elif b:
            pat = re.escape(b) + rf"({stop}{{1,{n}}})"
        else:
            pat = rf"({stop}{{1,{n}}})" + re.escape(a)
        fillers = {m.group(1) for t in self.squashed.values() for m in re.finditer(pat, t)}
        return fillers <= {squash(answer)}

    def _make_blank(self, s: Sent, a: int, z: int, answer: str, how: str) -> QuizItem | str:
        w = window(s.text, a, z)
        if w is None:
            return "no quote of 20-80 characters around the blank"
        wa, wz = w
        quote = clean_quote(s.text[wa:wz])
        if not balanced(quote) or not self.verbatim(s.chunk.source, quote):
            return "quote not verbatim or cuts a quotation"
        before, after = s.text[wa:a], clean_quote(s.text[z:wz])
        if norm(answer) in norm(before + after):  # the answer must not be given away
            return "blank answer given away by the stem"
        if not standalone(before + BLANK):
            return "statement leans on a sentence it does not show"
        if not self.blank_unique(before, after, answer):
            return "blank admits another filler from the corpus"
        stem = f"{s.lead}：{statement(before)}{BLANK}{fullwidth(after)}。"
        expl = f"原文：{quoted(quote)}。空格处应填“{answer}”。"
        if how == "figure":
            expl += "填阿拉伯数字或相应的汉字数字均可。"
        return QuizItem(type="fill_blank", stem=stem, options=[], answer=answer, explanation=expl, **self.base(s, quote))

    # -- true / false
