"""单选/多选 items from enumerations: the right options from one list, distractors from others.

What it does not do: find the lists (``lists.py``) or rank distractors (``generator.Generator.distractors``).
"""

from __future__ import annotations

from typing import Iterable

from .items import QuizItem
from .phrasing import quote_list, quoted
from .sentences import Candidate, EnumList, term_fact


class ChoiceItems:
    """Choice items; a mixin of ``Generator`` (uses its lists, ``base`` and ``distractors``)."""

    # -- choice items from enumerations
    def choice_items(self) -> Iterable[Candidate]:
        for i, el in enumerate(self.lists):
            s = el.sent
            also = frozenset({term_fact(s, el.label)}) if el.label else frozenset()
            base = dict(chunk_id=s.chunk.id, fact=s.key, file=s.chunk.source, also=also)
            yield Candidate("multi_choice", build=lambda el=el: self._multi(el), **base)
            if len(el.items) >= 3 and i % 2 == 0:
                yield Candidate("single_choice", build=lambda el=el: self._single(el, negative=True), **base)
            else:
                yield Candidate("single_choice", build=lambda el=el: self._single(el, negative=False), **base)

    def _label(self, el: EnumList) -> tuple[str, str]:
        """How the stem names the list: (phrase for 属于…, phrase for 不属于…)."""
        if el.label:
            return f"“{el.label}”", f"“{el.label}”"
        return "“……”处所列的内容", "“……”处所列的内容"

    def _multi(self, el: EnumList) -> QuizItem | str:
        q = self.list_quote(el)
        if q is None:
            return "no quote of 20-80 characters holds the list"
        quote, frame = q
        n_right = min(len(el.items), 3)
        ds = self.distractors(el, 4 - n_right)
        if len(ds) < 4 - n_right:
            return "not enough plausible distractors"
        right = self.rng.sample(el.items, n_right)
        opts = [(x, True, None) for x in right] + [(x, False, o) for x, o in ds]
        self.rng.shuffle(opts)
        label, _ = self._label(el)
        stem = f"{el.sent.lead}：{frame}。{label}包括下列哪些？"
        return self.choice("multi_choice", el, quote, stem, opts)

    def _single(self, el: EnumList, negative: bool) -> QuizItem | str:
        q = self.list_quote(el)
        if q is None:
            return "no quote of 20-80 characters holds the list"
        quote, frame = q
        label, neg_label = self._label(el)
        if negative:
            ds = self.distractors(el, 1)
            if not ds:
                return "not enough plausible distractors"
            right = self.rng.sample(el.items, 3)
            opts = [(x, False, None) for x in right] + [(ds[0][0], True, ds[0][1])]
            stem = f"{el.sent.lead}：{frame}。下列哪一项不属于{neg_label}？"
        else:
            ds = self.distractors(el, 3)
            if len(ds) < 3:
                return "not enough plausible distractors"
            opts = [(self.rng.choice(el.items), True, None)] + [(x, False, o) for x, o in ds]
            stem = f"{el.sent.lead}：{frame}。下列哪一项属于{label}？"
        self.rng.shuffle(opts)
        return self.choice("single_choice", el, quote, stem, opts, negative=negative)

    def choice(self, kind, el: EnumList, quote, stem, opts, negative: bool = False) -> QuizItem:
        letters = "ABCDE"
        options = {letters[i]: x for i, (x, _, _) in enumerate(opts)}
        answer = [letters[i] for i, (_, ok, _) in enumerate(opts) if ok]
        lines = [f"原文：{quoted(quote)}。"]
        name = f"“{el.label}”指" if el.label else "原文列举的是"
        lines.append(f"{name}{quote_list(el.items)}。")
        for i, (x, ok, other) in enumerate(opts):
            if other is not None:
                tail = "是本题答案。" if negative else "不在本题所问的列举之中。"
                lines.append(f"{letters[i]} 项“{x}”{self._where(other)}，{tail}")
        if negative:
            lines.append(f"其余各项均在原文列举之中，故答案为 {answer[0]}。")
        else:
            lines.append(f"故答案为 {''.join(answer)}。")
        return QuizItem(
            type=kind, stem=stem, options=options,
            answer=answer[0] if kind == "single_choice" else answer,
            explanation="".join(lines), **self.base(el.sent, quote),
        )

    # -- fill in the blank
