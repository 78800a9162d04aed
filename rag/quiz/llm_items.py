"""Quiz items written by a chat model, one JSON item per passage, validated and retried once.

What it does not do: trust the model: every item passes ``validate_item`` like a rule-made one.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from typing import Callable, Iterable, Sequence

from pydantic import ValidationError

from ..text import norm
from .items import TYPE_LABELS, QuizItem, parse_types
from .sentences import QuizResult
from .validator import problems_zh, validate_item

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ LLM path
LLM_QUIZ_PROMPT = """你是党建培训出题专家。请只根据下面这段原文出一道{type_label}，不得使用原文以外的知识。
只输出一个 JSON 对象，不要输出其他文字。字段：
type（"{type}"），stem（题干，简体中文，写明是哪个单位或谁的做法；填空题用 ______ 标出空位），
options（单选/多选为 {{"A": "...", "B": "...", "C": "...", "D": "..."}}；判断为 ["正确","错误"]；填空为 []），
answer（单选 "B"；多选按字母排序的列表 ["A","C"]；判断 "正确" 或 "错误"；填空为原文中的词），
explanation（解析：引用原文，并逐一说明每个干扰项错在哪里），
evidence（{{"file": "{file}", "quote": 原文中连续的 20 到 80 个字，逐字照抄}}）。
干扰项不得出现在引文中；不要出与下列题干重复的题：{avoid}

文章：《{title}》 {heading}
原文（文件 {file}）：
{passage}
"""
LLM_RETRY_PROMPT = "上一次输出不合格：{problems}。请改正后重新只输出一个 JSON 对象。"
LLM_QUIZ_MAX_TOKENS = 1024  # an item with options and explanation is longer than a chat answer


def parse_llm_item(reply: str) -> QuizItem:
    """The JSON object in a reply (a ```json fence is allowed) -> QuizItem; ValueError if not."""
    text = reply.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    elif "{" in text and not text.startswith("{"):
        text = text[text.index("{") : text.rindex("}") + 1] if "}" in text else text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"reply is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError("reply is not a JSON object")
    try:
        return QuizItem.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"item does not fit the schema: {e.errors()[0].get('msg')}") from e


def generate_with_llm(
    chat_model,
    hits: Sequence,
    corpus_texts: dict[str, str],
    *,
    types: str | Iterable[str] | None = None,
    n: int | None = None,
    seen_stems: set[str] | None = None,
    seen_facts: set[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> QuizResult:
    """Ask a langchain chat model for one item per passage until ``n`` items validate.

    Each reply is parsed and checked with ``validate_item`` (quote verbatim in the cited file,
    answer among the options, no distractor in the evidence, no duplicate stem, not already in
    the bank). A failing item is asked for once more with its problems; if it fails again it is
    dropped and reported in ``stats["dropped_items"]``. Types rotate over the passages. A model
    that cannot be reached ends the run: the items made so far are kept, ``stats["error"]`` and
    ``stats["notice"]`` say why.
    """
    from langchain_core.messages import AIMessage, HumanMessage

    kinds = parse_types(types)
    want = n or len(hits)
    t0 = time.perf_counter()
    seen = set(seen_stems or ())
    facts = set(seen_facts or ())
    items: list[QuizItem] = []
    stats: dict = {"generated": Counter(), "dropped": Counter(), "dropped_items": [], "retries": 0, "mode": "llm"}
    try:
        model = chat_model.bind(max_tokens=LLM_QUIZ_MAX_TOKENS)
    except (AttributeError, NotImplementedError, TypeError):
        model = chat_model
    for i, hit in enumerate(hits):
        if len(items) >= want:
            break
        chunk = getattr(hit, "chunk", hit)
        kind = kinds[len(items) % len(kinds)]
        messages: list = [HumanMessage(_prompt(chunk, kind, items))]
        problems: list[str] = []
        for attempt in range(2):
            try:
                reply = model.invoke(messages).content
            except Exception as e:  # server down, timeout: stop asking, keep what we have
                logger.warning("LLM quiz: model call failed (%s: %s)", type(e).__name__, e)
                stats["error"] = f"{type(e).__name__}: {e}"
                stats["notice"] = "大模型调用失败，未完成的题目由规则补足"
                break
            item, problems = _checked(str(reply), chunk, kind, corpus_texts, seen, facts)
            if not problems:
                items.append(item)
                seen.add(item.stem_key)
                facts.add(item.fact)
                stats["generated"][item.type] += 1
                if progress is not None:
                    progress(len(items), want, f"大模型已生成 {len(items)}/{want} 题")
                break
            if attempt == 0:
                stats["retries"] += 1
                retry = LLM_RETRY_PROMPT.format(problems="；".join(problems_zh(problems)))
                messages += [AIMessage(str(reply)), HumanMessage(retry)]
        else:
            for p in problems:
                stats["dropped"][p] += 1
            stats["dropped_items"].append({"chunk_id": chunk.id, "problems": problems})
            logger.info("LLM quiz item for chunk %s dropped: %s", chunk.id, problems)
            continue
        if "error" in stats:
            break
    stats["generated"] = dict(stats["generated"])
    stats["dropped"] = dict(stats["dropped"])
    stats["total"] = len(items)
    stats["requested"] = want
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    return QuizResult(items, stats)


def _prompt(chunk, kind: str, items: list[QuizItem]) -> str:
    """The request for one ``kind`` item from ``chunk`` (the last stems made are to be avoided)."""
    return LLM_QUIZ_PROMPT.format(
        type_label=TYPE_LABELS[kind], type=kind, file=chunk.source, title=chunk.title,
        heading=" › ".join(chunk.heading_path), passage=chunk.text,
        avoid="；".join(it.stem for it in items[-5:]) or "（无）",
    )


def _checked(reply: str, chunk, kind: str, corpus_texts: dict[str, str], seen: set[str],
             facts: set[str]) -> tuple[QuizItem | None, list[str]]:
    """The item a reply holds, filled in from its passage, and what is wrong with it ([] = good)."""
    try:
        item = parse_llm_item(reply)
        item.title = item.title or chunk.title
        item.heading_path = item.heading_path or list(chunk.heading_path)
        item.fact = item.fact or f"{item.evidence.file}:{norm(item.evidence.quote)}"
        problems = validate_item(item, corpus_texts, seen_stems=seen)
        if item.type != kind:
            problems.append(f"type {item.type} asked {kind}")
        if item.fact in facts:
            problems.append("same fact as another item")
    except ValueError as e:
        return None, [str(e)]
    return item, problems


def corpus_texts_of(index) -> dict[str, str]:
    """``{file: full text}`` of a loaded index, for ``validate_item``."""
    return {s: (d.get("text") or "") for s, d in index.documents.items()}
