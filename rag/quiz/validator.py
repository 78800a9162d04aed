"""``validate_item``: every item is checked against the corpus before anyone sees it.

The evidence quote is verbatim in the cited file, the answer fits the options and the type, a
blank's answer is in the quote, no distractor is in it, options do not contain each other.
What it does not do: judge whether an item is pedagogically interesting.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..text import norm
from .items import BLANK, JUDGE_OPTIONS, QUOTE_MAX, QUOTE_MIN, QuizItem, squash


# ------------------------------------------------------------------ validation
def validate_item(
    item: QuizItem, corpus_texts: dict[str, str], *, seen_stems: set[str] | None = None
) -> list[str]:
    """Problems of one item (empty list = valid).

    Args:
        corpus_texts: file name -> full text of that file (as decoded; white space is ignored).
        seen_stems: stem keys of items already in the quiz; a repeat is a problem.

    Does not judge whether the quote *implies* the answer beyond the checks below (G2 is the
    reviewer's job); it checks what can be checked mechanically.
    """
    problems: list[str] = []
    quote = squash(item.evidence.quote)
    text = corpus_texts.get(item.evidence.file)
    if text is None:
        problems.append(f"evidence file not in corpus: {item.evidence.file}")
    elif not quote or quote not in squash(text):
        problems.append("quote not verbatim in the cited file")
    if not QUOTE_MIN <= len(quote) <= QUOTE_MAX:
        problems.append(f"quote length {len(quote)} outside {QUOTE_MIN}-{QUOTE_MAX}")
    if not item.stem.strip():
        problems.append("empty stem")
    nq = norm(quote)
    t = item.type
    if t in ("single_choice", "multi_choice"):
        opts = item.options
        if not isinstance(opts, dict) or not opts:
            return problems + ["choice item needs options as a dict A, B, ..."]
        letters = list(opts)
        if letters != ["A", "B", "C", "D", "E"][: len(letters)]:
            problems.append("option letters must be A, B, C, ... in order")
        if any(not str(v).strip() for v in opts.values()):
            problems.append("empty option")
        if len({norm(v) for v in opts.values()}) != len(opts):
            problems.append("duplicate options")
        elif any(a != b and norm(a) and norm(a) in norm(b) for a in opts.values() for b in opts.values()):
            problems.append("one option contains another")
        if t == "single_choice":
            if len(opts) != 4:
                problems.append("single choice needs 4 options")
            if not isinstance(item.answer, str) or item.answer not in opts:
                problems.append("answer is not one of the options")
        else:
            ans = item.answer if isinstance(item.answer, list) else None
            if not ans or any(a not in opts for a in ans):
                problems.append("answer is not among the options")
            elif ans != sorted(set(ans)):
                problems.append("multi-choice answer must be sorted letters without repeats")
            elif not 2 <= len(ans) < len(opts):
                problems.append("multi choice needs at least 2 right options and at least 1 wrong one")
            if not 4 <= len(opts) <= 5:
                problems.append("multi choice needs 4-5 options")
    elif t == "true_false":
        if list(item.options) != JUDGE_OPTIONS:
            problems.append('true/false options must be ["正确","错误"]')
        if item.answer not in JUDGE_OPTIONS:
            problems.append("answer is not one of the options")
    elif t == "fill_blank":
        if item.options not in ([], {}):
            problems.append("fill-blank item has options")
        if BLANK not in item.stem:
            problems.append(f"stem has no blank {BLANK}")
        ans = item.answer if isinstance(item.answer, str) else ""
        if not ans.strip():
            problems.append("empty answer")
        elif squash(ans) not in quote:
            problems.append("blank answer not in the quote")
    problems.extend(distractor_problems(item, nq))
    if seen_stems is not None and item.stem_key in seen_stems:
        problems.append("duplicate stem")
    return problems


def right_letters(item: QuizItem) -> list[str]:
    return [item.answer] if isinstance(item.answer, str) else list(item.answer)


def distractor_problems(item: QuizItem, nquote: str) -> list[str]:
    """A wrong option that the evidence itself lists is a second right answer."""
    if item.type == "single_choice" and isinstance(item.options, dict):
        negative = "不包括" in item.stem or "不属于" in item.stem
        if negative:  # "不包括": the answer must be absent from the quote, the others present
            ans = item.options.get(item.answer, "") if isinstance(item.answer, str) else ""
            return ["answer of a negative item appears in the evidence"] if ans and norm(ans) in nquote else []
    if item.type not in ("single_choice", "multi_choice") or not isinstance(item.options, dict):
        return []
    right = set(right_letters(item))
    return [
        f"distractor {k} appears in the evidence"
        for k, v in item.options.items()
        if k not in right and norm(v) and norm(v) in nquote
    ]



# problems as the trainer reads them (the web tab); logs keep the English text
PROBLEM_ZH = [
    (r"^evidence file not in corpus", "出处文件不在语料中"),
    (r"^quote not verbatim", "出处引文与原文不一致（必须逐字照抄原文）"),
    (r"^quote length (\d+) outside", "出处引文长度为 \\1 字，应为 20–80 字"),
    (r"^empty stem", "题干为空"),
    (r"^choice item needs options", "选择题需要 A、B、C……选项"),
    (r"^option letters", "选项字母须依次为 A、B、C……"),
    (r"^empty option", "有空选项"),
    (r"^duplicate options", "有重复的选项"),
    (r"^one option contains another", "有选项包含另一个选项"),
    (r"^single choice needs 4 options", "单选题须有 4 个选项"),
    (r"^answer is not (one of|among) the options", "答案不在选项之中"),
    (r"^multi-choice answer must be sorted", "多选题答案须为按字母排序、不重复的选项字母"),
    (r"^multi choice needs at least 2", "多选题至少 2 个正确项，且至少 1 个错误项"),
    (r"^multi choice needs 4-5 options", "多选题须有 4–5 个选项"),
    (r"^true/false options", "判断题选项须为“正确”“错误”"),
    (r"^fill-blank item has options", "填空题不应有选项"),
    (r"^stem has no blank", f"填空题题干中须有空位 {BLANK}"),
    (r"^empty answer", "答案为空"),
    (r"^blank answer not in the quote", "填空答案不在出处引文中"),
    (r"^answer of a negative item appears in the evidence", "“不属于”题的答案出现在出处引文中"),
    (r"^distractor (\w) appears in the evidence", "干扰项 \\1 出现在出处引文中（会成为第二个正确答案）"),
    (r"^duplicate stem", "题干与其他题目重复"),
    (r"^same fact as another item", "与其他题目考查的是同一事实"),
    (r"^reply is not JSON", "输出不是合法的 JSON"),
    (r"^reply is not a JSON object", "输出不是一个 JSON 对象"),
    (r"^item does not fit the schema", "输出不符合题目格式（type、stem、options、answer、explanation、evidence）"),
    (r"^type (\w+) asked (\w+)", "题型应为 \\2，而不是 \\1"),
]


def problems_zh(problems: Iterable[str]) -> list[str]:
    """Validator problems in Chinese, for the web tab."""
    out = []
    for p in problems:
        for pat, zh in PROBLEM_ZH:
            m = re.match(pat, p)
            if m:
                out.append(m.expand(zh))
                break
        else:
            out.append(p)
    return out
