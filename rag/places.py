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

PROVINCES = (
    "北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 "
    "四川 贵州 云南 陕西 甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门"
).split()
CITIES = (
    "石家庄 太原 沈阳 长春 哈尔滨 南京 杭州 合肥 福州 南昌 济南 郑州 武汉 长沙 广州 海口 成都 贵阳 昆明 西安 兰州 "
    "西宁 呼和浩特 南宁 拉萨 银川 乌鲁木齐 大连 青岛 宁波 厦门 深圳"
).split()
_NAMES = sorted(PROVINCES + CITIES, key=len, reverse=True)
_RE = re.compile("|".join(_NAMES))


def places_in(text: str) -> Counter:
    """Canonical place names mentioned in ``text`` ("湖南省政协" -> 湖南), with counts."""
    return Counter(_RE.findall(text or ""))


@lru_cache(maxsize=4096)
def place_core(name: str) -> str:
    """"湖南省" / "湖南" -> "湖南"; "" when ``name`` is not a known place."""
    m = _RE.search(name)
    return m.group(0) if m else ""
