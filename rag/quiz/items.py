"""The quiz item: its types, the pydantic ``QuizItem`` with its ``Evidence``, and stable ids.

What it does not do: make or check items (``generator.py``, ``validator.py``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, Iterable, Literal, Union

from pydantic import BaseModel, Field

from ..errors import QuizError
from ..text import norm

logger = logging.getLogger(__name__)

TYPES = ("single_choice", "multi_choice", "true_false", "fill_blank")
TYPE_ALIASES = {
    "single": "single_choice", "single_choice": "single_choice", "单选": "single_choice",
    "multi": "multi_choice", "multiple": "multi_choice", "multi_choice": "multi_choice", "多选": "multi_choice",
    "judge": "true_false", "tf": "true_false", "true_false": "true_false", "判断": "true_false",
    "blank": "fill_blank", "fill": "fill_blank", "fill_blank": "fill_blank", "填空": "fill_blank",
}
TYPE_LABELS = {"single_choice": "单选题", "multi_choice": "多选题", "true_false": "判断题", "fill_blank": "填空题"}
JUDGE_OPTIONS = ["正确", "错误"]
BLANK = "______"
QUOTE_MIN, QUOTE_MAX = 20, 80  # characters, white space removed (rubric §1)
WHOLE_SENTENCE = 60  # a sentence this short is quoted whole; longer ones by the clauses around the fact

COUNT_CHARS = set("一二两三四五六七八九十百千万双")
CN_NUM = {"两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
FIGURE_RE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(多|余)?(人次|场次|万字|亿元|万元|个|项|条|次|名|位|家|期|件|篇|支|种|批|所|处|人)")
QUOTED_TERM_RE = re.compile(r"“([\u4e00-\u9fff0-9·]{2,12})”")
CLAUSE_SPLIT = re.compile(r"(?<=[,，;；:：。！？!?])")


# ------------------------------------------------------------------ the item model
class Evidence(BaseModel):
    file: str
    quote: str


class QuizItem(BaseModel):
    """One quiz item in the format of ../shared/eval/quiz_examples.jsonl, plus its place in the article."""

    type: Literal["single_choice", "multi_choice", "true_false", "fill_blank"]
    stem: str
    options: Union[dict[str, str], list[str]] = Field(default_factory=list)
    answer: Union[str, list[str]]
    explanation: str = ""
    evidence: Evidence
    title: str = ""
    heading_path: list[str] = Field(default_factory=list)
    id: str = ""
    fact: str = ""  # key of the tested fact (file + normalised sentence): no two items per quiz share it

    def model_post_init(self, __context: Any) -> None:
        if not self.id:
            self.id = item_id(self.type, self.stem)

    @property
    def stem_key(self) -> str:
        return stem_key(self.stem)

    def to_record(self) -> dict:
        """The JSON record (examples' field order first)."""
        return self.model_dump()


def item_id(kind: str, stem: str) -> str:
    return hashlib.sha1(f"{kind}:{stem_key(stem)}".encode()).hexdigest()[:12]


def stem_key(stem: str) -> str:
    """A stem without punctuation, spaces and blanks: two stems with the same key are duplicates."""
    return norm(stem.replace(BLANK, "_"))


def squash(s: str) -> str:
    """Remove all white space (the rubric compares quotes after removing newlines and spaces)."""
    return re.sub(r"\s+", "", s or "")


def fullwidth(s: str) -> str:
    """New writing (stems, options, explanations) uses full-width punctuation (rubric §1)."""
    table = {",": "，", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"}
    return re.sub(r"(?<!\d),|,(?!\d)|[:;?!()]", lambda m: table[m.group()], s)  # "1,000" keeps its comma


def _near(a: str, b: str) -> bool:
    """One character changed, added or dropped (for strings of four or more characters)."""
    if min(len(a), len(b)) < 4 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def parse_types(types: str | Iterable[str] | None) -> list[str]:
    """"single,multi,judge,blank" (or full names, or 单选/多选/判断/填空) -> canonical type names."""
    if types is None:
        return list(TYPES)
    raw = types.split(",") if isinstance(types, str) else list(types)
    out = []
    for t in raw:
        t = t.strip()
        if not t:
            continue
        if t not in TYPE_ALIASES:
            raise QuizError(
                f"未知题型：{t}（可选 single、multi、judge、blank）", f"unknown quiz type {t!r}"
            )
        if TYPE_ALIASES[t] not in out:
            out.append(TYPE_ALIASES[t])
    if not out:
        raise QuizError("至少需要一种题型", "no quiz type given")
    return out
