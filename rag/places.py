"""Chinese provinces and major cities, to tell which region a passage speaks for.

The corpus is about provincial and city CPPCC offices and government organs: "山东和湖南两省…"
questions need the passage of each province. rjieba's place tags are too noisy for that ("云",
"深度" come out as places), so this is a small gazetteer: the 34 provincial-level divisions
and the provincial capitals and sub-provincial cities, each mapped to one canonical name, plus
the places the indexed articles themselves name like offices ("崧原省政协", "中共望川市直属机关工作
委员会"): new articles are about counties and cities no gazetteer lists (``learn_places``).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from functools import lru_cache
from typing import Sequence

from .text import is_mostly_latin

PROVINCES = (
    "北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 "
    "四川 贵州 云南 陕西 甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门"
).split()
CITIES = (
    "石家庄 太原 沈阳 长春 哈尔滨 南京 杭州 合肥 福州 南昌 济南 郑州 武汉 长沙 广州 海口 成都 贵阳 昆明 西安 兰州 "
    "西宁 呼和浩特 南宁 拉萨 银川 乌鲁木齐 大连 青岛 宁波 厦门 深圳"
).split()
_NAMES = sorted(PROVINCES + CITIES, key=len, reverse=True)
# What questions call a province or city when they do not name it: the 别称 ("齐鲁" 山东, "三湘" 湖南,
# "羊城" 广州) and, before 省/地, the one-character 简称 ("湘省", "鲁地"). General knowledge, mapped to
# the gazetteer's names; used only where the material itself does not use the word (resolve_aliases).
ALIASES = {
    "齐鲁": "山东", "中原": "河南", "三湘": "湖南", "湖湘": "湖南", "潇湘": "湖南", "荆楚": "湖北", "八闽": "福建",
    "巴蜀": "四川", "天府之国": "四川", "燕赵": "河北", "三晋": "山西", "三秦": "陕西", "陇原": "甘肃", "八桂": "广西",
    "龙江": "黑龙江", "琼州": "海南", "赣鄱": "江西", "内蒙": "内蒙古", "京城": "北京", "京华": "北京", "津门": "天津",
    "津城": "天津", "申城": "上海", "沪上": "上海", "山城": "重庆", "羊城": "广州", "花城": "广州", "春城": "昆明",
    "泉城": "济南", "蓉城": "成都", "榕城": "福州", "星城": "长沙", "江城": "武汉", "冰城": "哈尔滨", "鹏城": "深圳",
    "金陵": "南京", "鹭岛": "厦门", "岛城": "青岛", "邕城": "南宁", "筑城": "贵阳", "杭城": "杭州", "甬城": "宁波",
    "并州": "太原",
}
SHORT_NAMES = {
    "京": "北京", "津": "天津", "沪": "上海", "渝": "重庆", "冀": "河北", "晋": "山西", "辽": "辽宁", "吉": "吉林",
    "黑": "黑龙江", "苏": "江苏", "浙": "浙江", "皖": "安徽", "闽": "福建", "赣": "江西", "鲁": "山东", "豫": "河南",
    "鄂": "湖北", "湘": "湖南", "粤": "广东", "琼": "海南", "川": "四川", "蜀": "四川", "黔": "贵州", "滇": "云南",
    "陕": "陕西", "甘": "甘肃", "陇": "甘肃", "青": "青海", "蒙": "内蒙古", "桂": "广西", "藏": "西藏", "宁": "宁夏",
    "新": "新疆",
}
# 简称 + 地 only where "X地" is not a common word of its own ("新地", "青地", "云地" …)
SHORT_LAND = frozenset("鲁湘豫粤冀晋皖闽赣鄂黔滇陕陇蜀浙沪渝桂琼藏蒙")
_ALIAS_RE = re.compile(
    "|".join(sorted(ALIASES, key=len, reverse=True))
    + "|[" + "".join(SHORT_NAMES) + "](?=省)|[" + "".join(sorted(SHORT_LAND)) + "](?=地)"
)
CITY_SET = frozenset(CITIES)
PROVINCE_SCOPE = re.compile(r"全省")
_RE = re.compile("|".join(_NAMES))
_LEARNED: set[str] = set()  # places of the indexed articles that the gazetteer lacks (learn_places)
_LEARNED_FROM: tuple = ()  # the passages last learned from: the retriever and the answerer pass the same ones

# "崧原省政协机关……", "中共望川市直属机关工作委员会", "关于苍麓县基层党支部……", "——专访云汀市砚川区委":
# a two-character name and an administrative suffix at the start of a phrase (or after its parent
# place), followed by an office or a verb of record. Found from the suffix backwards: one regular
# expression for the suffixes and a look at the characters before each (5x faster than a pattern
# with the boundaries as look-behinds).
SUFFIX_AT = re.compile(r"[省市县区](?=政协|委|直|人民|机关|党|政府|纪委|人大|统战|组织部|宣传部|举行|召开|[\s，。、])")
BOUNDARY = set("\n\t \u3000，。、：；:;,（(“”—《》\"")
AFTER_WORDS = ("中共", "关于", "访", "对", "在", "由", "据", "和", "与")


def _cjk2(s: str) -> bool:
    return len(s) == 2 and all("\u4e00" <= ch <= "\u9fff" for ch in s)


def _phrase_starts(t: str, i: int) -> bool:
    return i == 0 or t[i - 1] in BOUNDARY or any(t[max(0, i - len(w)) : i] == w for w in AFTER_WORDS)


def resolve_aliases(text: str, known) -> str:
    """``text`` with each province or city alias the material does not use (``known(word)`` false:
    not in the index's vocabulary) replaced by the gazetteer name: "羊城那家协商部门" -> "广州那家协商部门",
    "湘省" -> "湖南省". An alias inside a gazetteer name ("辽宁省" holds 宁, "黑龙江" 龙江), or whose
    place the text already names, is left alone, as is one the articles themselves use ("齐鲁样板");
    so is an English question (its Chinese fragments are names it quotes)."""
    if is_mostly_latin(text):
        return text
    names = [m.span() for m in _RE.finditer(text)]
    out, last = [], 0
    for m in _ALIAS_RE.finditer(text):
        alias = m.group(0)
        place = ALIASES.get(alias) or SHORT_NAMES[alias]
        a, b = m.span()
        if any(x < b and a < y for x, y in names) or place in text or known(alias):
            continue
        out += [text[last:a], place]
        last = b
    return "".join(out) + text[last:] if out else text


def office_names(text: str) -> list[str]:
    """The two-character names ``text`` writes like offices' places (a parent place too:
    "云汀市砚川区委" -> 云汀, 砚川)."""
    out = []
    for m in SUFFIX_AT.finditer(text):
        k = m.start()
        stem = text[k - 2 : k] if k >= 2 else ""
        if not _cjk2(stem):
            continue
        if _phrase_starts(text, k - 2):
            out.append(stem)
        elif k >= 5 and text[k - 3] in "省市" and _cjk2(text[k - 5 : k - 3]) and _phrase_starts(text, k - 5):
            out += [text[k - 5 : k - 3], stem]
    return out


NOT_A_NAME = set("省市县区全各本我该此每首")
NOT_A_NAME_TAGS = {"v", "vn", "vd", "p", "c", "d", "r", "a", "ad", "an", "z", "j", "m", "q", "t", "f", "u", "l", "i"}
FUNCTION_TAGS = {"p", "c", "d", "r", "u", "v"}


def place_mentions(text: str):
    """Matches of known place names in ``text``, in order (spans for callers that need them)."""
    return _RE.finditer(text or "")


def places_in(text: str) -> Counter:
    """Canonical place names mentioned in ``text`` ("湖南省政协" -> 湖南), with counts."""
    return Counter(_RE.findall(text or ""))


def _looks_like_a_name(stem: str) -> bool:
    """Not a verb, preposition or pronoun that happens to stand before 省/市 ("邀请省…", "请问省…",
    "省委省政府"): rjieba tags such words; it does not know an invented place's name."""
    import rjieba

    if set(stem) & NOT_A_NAME:
        return False
    tags = rjieba.tag(stem)
    if len(tags) == 1:
        return tags[0][1] not in NOT_A_NAME_TAGS
    return not any(t in FUNCTION_TAGS for _, t in tags)


def _mostly_a_place(stems: set[str], texts) -> set[str]:
    """The stems that mostly come with their suffix ("临渚市直…"): a word that only now and then
    stands before 市 ("书香机关", "书香政协", once "书香市直…") does not. One pass over the texts."""
    alone: Counter = Counter()
    suffixed: Counter = Counter()
    pattern = re.compile("(" + "|".join(sorted(stems, key=len, reverse=True)) + ")([省市县区])?")
    for t in texts:
        for m in pattern.finditer(t):
            alone[m.group(1)] += 1
            if m.group(2):
                suffixed[m.group(1)] += 1
    return {s for s in stems if suffixed[s] >= max(1, alone[s] / 3)}


def learn_places(chunks: Sequence) -> frozenset[str]:
    """Add to the known places the ones the indexed articles name the way offices are named and
    the gazetteer lacks (new articles are about counties and cities it cannot list): a name in a
    title, heading or by-line, or one named so at least twice. Returns the names added. Two regular
    passes over the text (about a second for 10^5 passages)."""
    global _RE, _LEARNED_FROM
    key = (id(chunks), len(chunks), chunks[0].id if chunks else "", chunks[-1].id if chunks else "")
    if key == _LEARNED_FROM:
        return frozenset()
    _LEARNED_FROM = key
    counts: Counter = Counter()
    headline: set[str] = set()
    heads: dict[str, None] = {}
    for ch in chunks:
        counts.update(office_names(ch.text))
        for text in (ch.title, *ch.heading_path):
            if text and text not in heads:
                heads[text] = None
                headline.update(office_names(text))
    stems = {
        stem for stem in set(counts) | headline
        if (stem in headline or counts[stem] >= 2) and stem not in _LEARNED and not _RE.fullmatch(stem) and _looks_like_a_name(stem)
    }
    new = _mostly_a_place(stems, itertools.chain((ch.text for ch in chunks), heads)) if stems else set()
    if new:
        _LEARNED.update(new)
        _RE = re.compile("|".join(sorted(set(_NAMES) | _LEARNED, key=len, reverse=True)))
        place_core.cache_clear()
    return frozenset(new)


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
        learn_places(chunks)
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
