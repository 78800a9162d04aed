"""Enumerations in a sentence ("A、B、C", "一是……二是……"), cut at their true first and last items.

What it does not do: choose which lists become items (``choice.py``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache
from typing import Iterable

from ..text import norm
from .items import CN_NUM, QUOTE_MAX, squash
from .sentences import CONTINUATION, ORDINAL_PREFIX, EnumList, Sent, strip_ordinal

VERBS = frozenset(
    """建立 开展 构建 构建起 打造 推动 坚持 围绕 实现 加强 探索 建立了 形成 包括 弘扬 把准 按照 提高 提高了 深入 深入开展
    走访 定好 定 帮助 有效 提升 建在 建 全力 号召 采取 搭建 提出 树立 落实 完善 突出 聚焦 推进 健全 做到 增强 以此 实施
    强化 注重 发挥 及时 持续 共同 统筹 开设 设立 举办 组建 出台 制定 推行 参与 做好 抓好 加快 深化 实行 力争
    培育 营造 营造出 营造出了 努力 积极 进行 鼓励 走访 慰问 走访慰问 打造了 实施了 推出""".split()
)
NO_START_TAGS = ("p", "c", "u", "r", "d", "y", "e", "ad")  # preposition, conjunction, particle, pronoun, adverb...
COPULAS = frozenset("是 即 包括 包含 分别是 就是 为".split())
LIST_ITEM = r"[\u4e00-\u9fff]{2,12}"
LIST_RE = re.compile(rf"{LIST_ITEM}(?:、{LIST_ITEM}){{2,}}")
ORDINAL_ITEM_RE = re.compile(r"([一二三四五六七八九十])是([\u4e00-\u9fff“”]{3,16}?)(?=[。;；,])")
CN_ORDINALS = "一二三四五六七八九十"


def _common_prefix(items: list[str]) -> str:
    p = items[0]
    for x in items[1:]:
        while p and not x.startswith(p):
            p = p[:-1]
    return p


def _common_suffix(items: list[str]) -> str:
    return _common_prefix([x[::-1] for x in items])[::-1]


@lru_cache(maxsize=8192)
def _tokens(text: str) -> tuple[tuple[str, str], ...]:
    """rjieba's words with their part-of-speech tags."""
    import rjieba

    return tuple((w, t) for w, t in rjieba.tag(text))


def _token_suffixes(text: str) -> list[str]:
    """Suffixes of ``text`` that start at a word boundary (rjieba), longest first."""
    toks = [w for w, _ in _tokens(text)]
    return ["".join(toks[i:]) for i in range(len(toks))]


def _first_item(raw: str, others: list[str], at_boundary: bool) -> str:
    """Where the list's first item starts inside the regex's first match ("开展组织联建" -> "组织联建").

    In order: the prefix every other item shares (“送去”); a copula before the list ("内容是…");
    the one length every other item has, cut at a word boundary (“同呼吸、共命运、心连心”); else
    the governing words in front are dropped ("围绕", "推动", "通过" …).
    """
    raw = strip_ordinal(raw)
    pre = _common_prefix(others) if len(others) >= 2 else ""
    if pre and pre in raw:
        return raw[raw.rindex(pre) :]
    toks = _tokens(raw)
    words = [w for w, _ in toks]
    for i in range(len(words) - 1, 0, -1):
        if words[i - 1] in COPULAS and len("".join(words[i:])) >= 2:
            return "".join(words[i:])
    lens = {len(x) for x in others}
    if len(lens) == 1:
        (size,) = lens
        verb_led = sum(1 for x in others if _tokens(x)[0][0] in VERBS) * 2 > len(others)
        fit = [c for c in _token_suffixes(raw) if len(c) == size and (verb_led or _tokens(c)[0][0] not in VERBS)]
        if fit and len(raw) > size:
            return fit[0]
    i = 0
    while i < len(toks) - 1 and (toks[i][0] in VERBS or toks[i][1] in NO_START_TAGS):
        i += 1
    first = "".join(words[i:])
    if not at_boundary:  # the regex cut a long run at 12 characters: keep the item near the others' size
        longest = max(len(x) for x in others)
        while i < len(toks) - 1 and len(first) > longest + 2:
            i += 1
            first = "".join(words[i:])
    return first


def _last_item(raw: str, others: list[str]) -> str:
    """The list's last item without what runs on after it ("能力提升贯穿全过程" -> "能力提升")."""
    for stop in ("等", "的"):  # "委员学习座谈会等制度", "派驻机关纪检监察组的协同"
        if stop in raw[1:]:
            raw = raw[: raw.index(stop, 1)]
    lens = {len(x) for x in others}
    if len(lens) == 1 and len(raw) > next(iter(lens)):
        size = next(iter(lens))
        toks = [w for w, _ in _tokens(raw)]
        for k in range(1, len(toks)):
            if len("".join(toks[:k])) == size:
                return "".join(toks[:k])
    return raw


def list_items_ok(items: list[str], headings: set[str]) -> bool:
    """Generic checks of an enumeration's items."""
    lens = [len(x) for x in items]
    if min(lens) < 2 or max(lens) > 12 or max(lens) > 2 * min(lens):
        return False
    if len({norm(x) for x in items}) != len(items):
        return False
    for x in items:
        if re.fullmatch(r"[\d.,%]+", x) or ORDINAL_PREFIX.match(x) or x[0] in CONTINUATION:
            return False
        if norm(x) in headings:  # a heading of some section, not a list member
            return False
        if re.search(r"把|到做|[\u4e00-\u9fff]的[\u4e00-\u9fff]{2}", x):  # clause, not a name or short phrase
            return False
    return not any(a != b and a in b for a in items for b in items)


def _label_after(text: str, end: int, n_items: int) -> tuple[str, tuple[int, int]] | None:
    """A counted label right after the list (“……”“四同”工作机制) whose number matches the list."""
    after = re.match(r"“([一二两三四五六七八九十][\u4e00-\u9fff]{1,4})”", text[end:])
    if after and CN_NUM.get(after[1][0]) == n_items:
        return after[1], (end, end + after.end())
    return None


def find_lists(sents: Iterable[Sent], headings: set[str]) -> list[EnumList]:
    """Enumerations "A、B、C" in sentences, trimmed to the list's own items, with a counted label
    right after the list (“……”“四同”) if its number matches."""
    out = []
    for s in sents:
        text = s.text
        for m in LIST_RE.finditer(text):
            raw = m.group().split("、")
            first, mid, last = raw[0], raw[1:-1], raw[-1]
            last = _last_item(last, [first, *mid] if len(first) <= 12 and mid else mid or [first])
            if last == raw[-1] and len(last) >= 12 and re.match(r"[\u4e00-\u9fff]", text[m.end() : m.end() + 1]):
                continue  # the last item runs on into the sentence: where it ends is a guess
            at_boundary = m.start() == 0 or bool(re.match(r"[“,，:：;；。(（]", text[m.start() - 1]))
            first = _first_item(first, [*mid, last], at_boundary)
            items = [first, *mid, last]
            if not list_items_ok(items, headings):
                continue
            start = m.start() + len(raw[0]) - len(first)
            end = start + len("、".join(items))
            if text[start:end] != "、".join(items):
                continue
            lab = _label_after(text, end, len(items))
            if not lab and text[end : end + 1] == "“":  # "班子成员“一岗双责”": the last item runs into a term
                continue
            out.append(EnumList(items, lab[0] if lab else "", s, (start, end), lab[1] if lab else None))
    return out


def find_ordinal_lists(sents: list[Sent], headings: set[str]) -> list[EnumList]:
    """"建立完善三项统筹协调机制。一是建立工作计划机制。二是……。三是……。": short, adjacent
    "一是/二是/三是" sentences, with the sentence before them as the stem's context."""
    out = []
    by_chunk: dict[str, list[Sent]] = defaultdict(list)
    for s in sents:
        by_chunk[s.chunk.id].append(s)
    for group in by_chunk.values():
        i = 0
        while i < len(group):
            m = re.match(r"一是([^。;；,]{3,16})[。;；]$", group[i].text)
            if not m or i == 0:
                i += 1
                continue
            items, j = [m[1]], i + 1
            while j < len(group) and len(items) < len(CN_ORDINALS):
                mj = re.match(rf"{CN_ORDINALS[len(items)]}是([^。;；,]{{3,16}})[。;；]$", group[j].text)
                if not mj:
                    break
                items.append(mj[1])
                j += 1
            intro = group[i - 1]
            joined = intro.text + "".join(s.text for s in group[i:j])
            if len(items) >= 3 and list_items_ok(items, headings) and len(squash(joined)) <= QUOTE_MAX:
                merged = Sent(joined, intro.chunk, intro.lead, group[i].key, intro.speaker)
                a = len(intro.text)
                z = joined.index(items[-1], a) + len(items[-1])
                out.append(EnumList(items, "", merged, (a, z)))
            i = max(j, i + 1)
    return out
