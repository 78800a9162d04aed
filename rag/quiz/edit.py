"""A trainer's edit of an item (options as text lines, the answer as letters), validated again.

What it does not do: save the edit (``bank.py``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ..errors import QuizError
from .items import QuizItem
from .validator import problems_zh, validate_item

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ the trainer's edits (web tab)
OPTION_LINE = re.compile(r"^\s*([A-Ea-e])\s*[.．、:：)）]\s*(.*?)\s*$")


def options_text(item: QuizItem) -> str:
    """The options as the editor shows them: one "A. …" line each (empty for judge and blank items)."""
    if isinstance(item.options, dict):
        return "\n".join(f"{k}. {v}" for k, v in item.options.items())
    return ""


def answer_for_edit(item: QuizItem) -> str:
    """The answer as the editor shows it: "B", "A,C", "正确" or the blank's text."""
    return ",".join(item.answer) if isinstance(item.answer, list) else str(item.answer)


def apply_edit(
    item: QuizItem, corpus_texts: dict[str, str], *, stem: str, options: str, answer: str, explanation: str,
    other_stems: set[str] | None = None,
) -> QuizItem:
    """The item with a trainer's edits, validated; QuizError (Chinese message) when it no longer validates.

    ``options``: "A. …" lines (choice items); ``answer``: "B", "A,C"/"AC", "正确"/"错误" or the
    blank's text. The evidence is not editable: an edit cannot cite what the corpus does not say.
    """
    stem, explanation, answer = (stem or "").strip(), (explanation or "").strip(), (answer or "").strip()
    changes: dict[str, Any] = {"stem": stem, "explanation": explanation}
    if item.type in ("single_choice", "multi_choice"):
        opts: dict[str, str] = {}
        for line in (options or "").splitlines():
            if not line.strip():
                continue
            m = OPTION_LINE.match(line)
            if not m:
                raise QuizError(f"选项格式应为“A. 内容”，每行一个：{line.strip()}", f"bad option line {line!r}")
            opts[m[1].upper()] = m[2]
        changes["options"] = opts
        letters = [c for c in answer.upper() if c in "ABCDE"]
        if re.sub(r"[A-Ea-e,，、\s]", "", answer):
            raise QuizError("答案应填选项字母，如 B 或 A,C", f"bad choice answer {answer!r}")
        changes["answer"] = (letters[0] if len(letters) == 1 else "".join(letters)) if item.type == "single_choice" else sorted(set(letters))
    elif item.type == "true_false":
        if answer in ("对", "√", "T", "true", "True"):
            answer = "正确"
        if answer in ("错", "×", "F", "false", "False"):
            answer = "错误"
        changes["answer"] = answer
    else:
        changes["answer"] = answer
    edited = item.model_copy(update=changes)
    problems = validate_item(edited, corpus_texts, seen_stems=other_stems)
    if problems:
        logger.info("quiz edit rejected: %s", problems)
        raise QuizError("修改后的题目未通过校验：" + "；".join(problems_zh(problems)), f"edit rejected: {problems}")
    return edited

