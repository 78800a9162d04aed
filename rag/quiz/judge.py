"""判断 items: a clause stated verbatim (正确) or with one figure, term or list member swapped (错误).

What it does not do: negate sentences (a swapped fact is checkable, a negation often is not).
"""

from __future__ import annotations

import math
import re
from typing import Iterable

from ..text import norm
from .items import CN_NUM, FIGURE_RE, JUDGE_OPTIONS, QuizItem, _near, squash
from .phrasing import balanced, clean_quote, option_score, quoted, standalone, statement, window
from .sentences import Candidate, EnumList, Sent, term_fact


class JudgeItems:
    """True/false items; a mixin of ``Generator``."""

    def judge_items(self) -> Iterable[Candidate]:
        """Figures and lists alternate between the true statement and a falsified one; quoted terms
        only give falsified ones (their true statement repeats a fill-in item)."""
        for i, (m, s) in enumerate(self.figures):
            yield Candidate("true_false", s.chunk.id, s.key, s.chunk.source,
                            build=lambda m=m, s=s, t=i % 2 == 0: self._judge_figure(m, s, t))
        for t, s in self.terms:
            yield Candidate("true_false", s.chunk.id, term_fact(s, t), s.chunk.source,
                            build=lambda t=t, s=s: self._judge_term(t, s))
        for i, el in enumerate(self.lists):
            yield Candidate("true_false", el.sent.chunk.id, el.sent.key, el.sent.chunk.source,
                            build=lambda el=el, t=i % 2 == 1: self._judge_list(el, t))

    def _judge_window(self, s: Sent, a: int, z: int, *, whole: bool = True) -> tuple[int, int, str] | str:
        w = window(s.text, a, z, whole=whole)
        if w is None:
            return "no quote of 20-80 characters around the fact"
        wa, wz = w
        quote = clean_quote(s.text[wa:wz])
        if not balanced(quote) or not self.verbatim(s.chunk.source, quote):
            return "quote not verbatim or cuts a quotation"
        if not standalone(quote):
            return "statement leans on a sentence it does not show"
        return wa, wz, quote

    def _judge_figure(self, m: re.Match, s: Sent, true: bool) -> QuizItem | str:
        w = self._judge_window(s, m.start(), m.end())
        if not isinstance(w, str) and len(FIGURE_RE.findall(w[2])) > 1:  # one fact per statement: fewer clauses
            w = self._judge_window(s, m.start(), m.end(), whole=False)
            if not isinstance(w, str) and len(FIGURE_RE.findall(w[2])) > 1:
                return "statement holds more than one figure (one fact per item)"
        if isinstance(w, str):
            return w
        wa, wz, quote = w
        if true:
            return self._judge(s, quote, quote, True, "")
        value = m[1]
        if "." in value:
            return "decimal figure: a changed one is easy to spot"
        others_in_statement = set(re.findall(r"\d+", s.text[wa:wz]))
        same_unit = [v for v, s2 in ((m2[1], s2) for m2, s2 in self.figures if m2[3] == m[3]) if "." not in v]
        # a figure with the same unit from elsewhere, same number of digits, as round or not round as the original
        choices = sorted(
            {v for v in same_unit if v != value and len(v) == len(value) and (v.endswith("0") == value.endswith("0"))
             and v not in others_in_statement},
            key=lambda v: abs(math.log((float(v) + 1) / (float(value) + 1))),
        )
        if not choices:
            return "no plausible figure to swap in"
        new = self.rng.choice(choices[:3])
        false_text = s.text[wa : m.start(1)] + new + s.text[m.end(1) : wz]
        why = f"原文是“{value}{m[2] or ''}{m[3]}”，而不是“{new}{m[2] or ''}{m[3]}”。"
        return self._judge(s, quote, clean_quote(false_text), False, why)

    def _judge_term(self, t: str, s: Sent) -> QuizItem | str:
        pos = s.text.find(f"“{t}”")
        w = self._judge_window(s, pos, pos + len(t) + 2)
        if isinstance(w, str):
            return w
        wa, wz, quote = w
        own_text = self.squashed.get(s.chunk.source, "")
        swaps = [  # a term of another article (another subject's wording), of the same shape, not a near-variant
            o for o, _ in self.terms
            if o != t and len(o) == len(t) and o[-1] == t[-1] and squash(o) not in own_text and not _near(o, t)
            and (o[0] in CN_NUM) == (t[0] in CN_NUM) and not (t[0] in CN_NUM and o[0] != t[0])
        ]
        swaps = list(dict.fromkeys(swaps))
        if not swaps:
            return "no plausible term to swap in"
        new = self._most_similar(t, swaps)
        false_text = s.text[wa:pos] + f"“{new}”" + s.text[pos + len(t) + 2 : wz]
        why = f"原文是“{t}”，而不是“{new}”。"
        return self._judge(s, quote, clean_quote(false_text), False, why)

    def _judge_list(self, el: EnumList, true: bool) -> QuizItem | str:
        q = self.list_quote(el)
        if q is None:
            return "no quote of 20-80 characters holds the list"
        quote, _ = q
        a = el.sent.text.find(quote)
        if a < 0 or not standalone(quote):
            return "statement leans on a sentence it does not show"
        if true:
            return self._judge(el.sent, quote, quote, True, "")
        # the swapped-in member comes from another article: a statement that is false for this speaker,
        # not one the same speaker makes a few lines away
        ds = [d for d in self.distractors(el, 3) if d[1].sent.chunk.source != el.sent.chunk.source][:1]
        if not ds:
            return "not enough plausible distractors"
        new, other = ds[0]
        k = self.rng.randrange(len(el.items))
        old = el.items[k]
        listed = "、".join(el.items)
        swapped = "、".join(new if i == k else x for i, x in enumerate(el.items))
        false_text = quote.replace(listed, swapped, 1)
        if false_text == quote:
            return "list not found in its quote"
        why = f"原文是“{old}”，而不是“{new}”；“{new}”{self._where(other)}。"
        return self._judge(el.sent, quote, false_text, False, why)

    def _most_similar(self, t: str, options: list[str]) -> str:
        if self.vectors is None:
            return max(options, key=lambda o: option_score(o, [t]))
        vecs = self.vectors.get([t, *options])
        return max(options, key=lambda o: float(vecs[t] @ vecs[o]))

    def _judge(self, s: Sent, quote: str, stated: str, true: bool, why: str) -> QuizItem | str:
        if not true and norm(stated) in self.all_norm:  # the "false" version is written somewhere
            return "falsified statement occurs in the corpus"
        stem = f"{s.lead}：{statement(stated)}。"
        expl = f"原文：{quoted(quote)}。" + ("该陈述与原文一致。" if true else why)
        return QuizItem(
            type="true_false", stem=stem, options=list(JUDGE_OPTIONS), answer="正确" if true else "错误",
            explanation=expl, **self.base(s, quote),
        )
