"""Chinese provinces and major cities, to tell which region a passage speaks for.

The corpus is about provincial and city CPPCC offices and government organs: "山东和湖南两省…"
questions need the passage of each province. rjieba's place tags are too noisy for that ("云",
"深度" come out as places), so this is a small gazetteer: the 34 provincial-level divisions
and the provincial capitals and sub-provincial cities, each mapped to one canonical name.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Sequence

PROVINCES = (
    "北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 "
    "四川 贵州 云南 陕西 甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门"
).split()
CITIES = (
    "石家庄 太原 沈阳 长春 哈尔滨 南京 杭州 合肥 福州 南昌 济南 郑州 武汉 长沙 广州 海口 成都 贵阳 昆明 西安 兰州 "
    "西宁 呼和浩特 南宁 拉萨 银川 乌鲁木齐 大连 青岛 宁波 厦门 深圳"
).split()
_NAMES = sorted(PROVINCES + CITIES, key=len, reverse=True)
CITY_SET = frozenset(CITIES)
PROVINCE_SCOPE = re.compile(r"全省")
_RE = re.compile("|".join(_NAMES))


def place_mentions(text: str):
    """Matches of known place names in ``text``, in order (spans for callers that need them)."""
    return _RE.finditer(text or "")


def places_in(text: str) -> Counter:
    """Canonical place names mentioned in ``text`` ("湖南省政协" -> 湖南), with counts."""
    return Counter(_RE.findall(text or ""))


@lru_cache(maxsize=4096)
def place_core(name: str) -> str:
    """"湖南省" / "湖南" -> "湖南"; "" when ``name`` is not a known place."""
    m = _RE.search(name)
    return m.group(0) if m else ""


class PlaceResolver:
    """Which provinces/cities each passage of an index speaks for (computed lazily, cached).

    A passage's place is named by its speaker or section heading, else by its article title,
    else by the place its article mentions most (when one dominates: an article from the 湖南
    office says "省政协" and now and then "湖南"), else by its own text. A passage under a city
    speaker that speaks for a whole province ("全省") without naming the city is pasted from
    another speech (a layout artifact of the meeting digest): only a province it names counts.
    """

    def __init__(self, chunks: Sequence) -> None:
        self.chunks = chunks
        self._by_source: dict[str, list[int]] | None = None
        self._doc: dict[str, frozenset[str]] = {}
        self._cache: dict[str, frozenset[str]] = {}

    def _doc_places(self, source: str) -> frozenset[str]:
        if source not in self._doc:
            if self._by_source is None:
                self._by_source = {}
                for i, ch in enumerate(self.chunks):
                    self._by_source.setdefault(ch.source, []).append(i)
            counts = Counter()
            for i in self._by_source.get(source, []):
                ch = self.chunks[i]
                counts.update(places_in(ch.text + " " + " ".join(ch.heading_path)))
            top = counts.most_common(1)
            self._doc[source] = frozenset({top[0][0]}) if top and top[0][1] >= 0.5 * sum(counts.values()) else frozenset()
        return self._doc[source]

    def _pasted_tail(self, chunk, cities: set[str]) -> bool:
        """This passage, or an earlier one of the same speaker block, speaks for a whole province
        ("全省") without naming the block's city: the rest of the block is not the city's."""
        if self._by_source is None:
            self._doc_places(chunk.source)  # builds the per-source index
        for i in self._by_source.get(chunk.source, []):
            ch = self.chunks[i]
            if ch.heading_path[:2] != chunk.heading_path[:2]:
                continue
            if PROVINCE_SCOPE.search(ch.text) and not any(p in ch.text for p in cities):
                return True
            if ch.id == chunk.id:
                return False
        return False

    def of(self, chunk) -> frozenset[str]:
        if chunk.id not in self._cache:
            found = places_in(" ".join(chunk.heading_path)) or places_in(chunk.title)
            if found and set(found) <= CITY_SET and self._pasted_tail(chunk, set(found)):
                # a city speaker's block from a passage on that speaks for a whole province ("全省三级
                # 政协"): pasted from another speech; trust only a province the passage names itself
                found = Counter({p: n for p, n in places_in(chunk.text).items() if p not in CITY_SET})
                self._cache[chunk.id] = frozenset(found)
                return self._cache[chunk.id]
            where = frozenset(found) or self._doc_places(chunk.source) or frozenset(places_in(chunk.text))
            self._cache[chunk.id] = where
        return self._cache[chunk.id]
