"""People an index names in its headings, found again in English questions by their pinyin.

An English question says "Shi Guangliang" or "Liu Yongju"; the passages say 石光亮 and 刘永巨, and
the speaker's name is often only in the heading path ("山东省政协秘书长 刘永巨"). The glossary
(rag/glossary.py) cannot list every person, so the names are read from the index itself: a
heading element that is a bare name (2–4 Chinese characters) or ends in one after a space (a
speaker label). Surnames with two readings take every reading pypinyin knows (heteronyms).

Places too: "In Yanxi, how many…" or "Luanqiao County CPPCC" name an invented county whose Chinese
name (砚溪, 峦桥) no glossary lists. The places the index's passages name (the gazetteer's and the
ones ``rag.places.learn_places`` learned from the articles themselves) are keyed by their pinyin,
and a capitalised English word that reads as one of them is that place.
"""

from __future__ import annotations

import itertools
import re
from typing import Sequence

from pypinyin import Style, pinyin

_NAME = re.compile(r"(?:^|\s)([\u4e00-\u9fff]{2,4})$")
LABELS = frozenset({"编者按", "编者的话", "记者", "编辑", "导语", "前言", "结语", "背景"})
_LATIN_NAME = re.compile(r"\b[A-Z][a-z]+(?:[\s-]+[A-Z][a-z]+){1,2}\b")
_HEAD_PLACE = re.compile(r"^([\u4e00-\u9fff]{2})[省市县区]")  # "苇塘市财政局党组书记、局长 汤若愚"
_LATIN_WORD = re.compile(r"\b[A-Z][a-z]{3,}\b")  # "Yanxi", "Luanqiao's": a place is 2+ syllables


def _readings(name: str, limit: int = 8) -> set[str]:
    """"石光亮" -> {"shiguangliang", "danguangliang", …}: every reading, no tones, no spaces."""
    per_char = pinyin(name, style=Style.NORMAL, heteronym=True, errors="ignore")
    if len(per_char) != len(name):
        return set()
    combos = itertools.islice(itertools.product(*per_char), limit)
    return {"".join(c).replace("ü", "v") for c in combos}


class PinyinNames:
    """Pinyin (lower case, no spaces) -> Chinese name, for the people an index's headings name."""

    def __init__(self, chunks: Sequence) -> None:
        self.by_pinyin: dict[str, str] = {}
        seen: set[str] = set()
        for ch in chunks:
            for element in ch.heading_path:
                m = _NAME.search(element.strip())
                if not m or m.group(1) in seen:
                    continue
                name = m.group(1)
                seen.add(name)
                if name in LABELS or (element.strip() != name and " " not in element.strip()):
                    continue  # a heading ending in Chinese characters, not a speaker label
                for r in _readings(name):
                    self.by_pinyin.setdefault(r, name)
        self.places: dict[str, list[str]] = {}  # homophones (诚川, 澄川) are all kept
        for place in sorted(places_named(chunks)):
            for r in _readings(place):
                self.places.setdefault(r, []).append(place)

    def in_english(self, text: str) -> list[str]:
        """Chinese names for the pinyin names in ``text`` ("According to Shi Guangliang" -> ["石光亮"])."""
        out = []
        for m in _LATIN_NAME.finditer(text):
            key = re.sub(r"[\s-]+", "", m.group(0)).lower().replace("ü", "v")
            name = self.by_pinyin.get(key)
            if name and name not in out:
                out.append(name)
        for m in _LATIN_WORD.finditer(text):
            for place in self.places.get(m.group(0).lower(), ()):
                if place not in out:
                    out.append(place)
        return out


_SHARED: tuple = ((), None)  # (key of the passages, their PinyinNames): one per index


def names_of(chunks: Sequence) -> PinyinNames:
    """The PinyinNames of ``chunks``, built once: the retriever and the answerer read the same passages
    and both ask on the first English question (nothing is built at start-up)."""
    global _SHARED
    key = (id(chunks), len(chunks), chunks[0].id if chunks else "", chunks[-1].id if chunks else "")
    if _SHARED[0] != key:
        _SHARED = (key, PinyinNames(chunks))
    return _SHARED[1]


def places_named(chunks: Sequence) -> set[str]:
    """The places (gazetteer's and learned) that the passages' titles, headings and text name, and
    the names a title or heading (or two passages) writes like an office's place ("峦桥县政协机关2024年工作总结"), even
    when the article mostly uses the bare name for its brands ("峦桥议事厅") and ``learn_places``
    therefore does not count it as a place to tell passages apart by."""
    from .places import _looks_like_a_name, learn_places, office_names, place_mentions

    learn_places(chunks)
    found: set[str] = set()
    heads: set[str] = set()
    in_text: dict[str, int] = {}
    for ch in chunks:
        for text in (ch.title, *ch.heading_path):
            if text not in heads:
                heads.add(text)
                found.update(m.group(0) for m in place_mentions(text))
                found.update(n for n in office_names(text) if _looks_like_a_name(n))
                m = _HEAD_PLACE.match(text)
                if m and _looks_like_a_name(m.group(1)):
                    found.add(m.group(1))
        found.update(m.group(0) for m in place_mentions(ch.text))
        for n in office_names(ch.text):
            in_text[n] = in_text.get(n, 0) + 1
    found.update(n for n, c in in_text.items() if c >= 2 and n not in found and _looks_like_a_name(n))
    return found
