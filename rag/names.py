"""People an index names in its headings, found again in English questions by their pinyin.

An English question says "Shi Guangliang" or "Liu Yongju"; the passages say 石光亮 and 刘永巨, and
the speaker's name is often only in the heading path ("山东省政协秘书长 刘永巨"). The glossary
(rag/glossary.py) cannot list every person, so the names are read from the index itself: a
heading element that is a bare name (2–4 Chinese characters) or ends in one after a space (a
speaker label). Surnames with two readings take every reading pypinyin knows (heteronyms).
"""

from __future__ import annotations

import itertools
import re
from typing import Sequence

from pypinyin import Style, pinyin

_NAME = re.compile(r"(?:^|\s)([\u4e00-\u9fff]{2,4})$")
LABELS = frozenset({"编者按", "编者的话", "记者", "编辑", "导语", "前言", "结语", "背景"})
_LATIN_NAME = re.compile(r"\b[A-Z][a-z]+(?:[\s-]+[A-Z][a-z]+){1,2}\b")


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

    def in_english(self, text: str) -> list[str]:
        """Chinese names for the pinyin names in ``text`` ("According to Shi Guangliang" -> ["石光亮"])."""
        out = []
        for m in _LATIN_NAME.finditer(text):
            key = re.sub(r"[\s-]+", "", m.group(0)).lower().replace("ü", "v")
            name = self.by_pinyin.get(key)
            if name and name not in out:
                out.append(name)
        return out
