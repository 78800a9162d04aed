"""Exports open and read back with the same items (python-docx, openpyxl, JSON, Markdown)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import QuizError
from rag.quiz.items import TYPE_LABELS
from rag.quiz.make import make_quiz
from rag.quiz.export import XLSX_COLUMNS, answer_text, export_quiz, read_json_items


@pytest.fixture(scope="module")
def items(real_service):
    return make_quiz(real_service, n=12, exclude_bank=False).items


def test_docx_has_questions_then_a_page_break_then_the_key(items, tmp_path: Path) -> None:
    from docx import Document

    doc = Document(str(export_quiz(items, tmp_path / "quiz.docx")))
    paras = [p.text for p in doc.paragraphs]
    key_at = paras.index("参考答案与解析")
    brk = next(i for i, p in enumerate(doc.paragraphs) if 'w:br w:type="page"' in p._p.xml)
    assert brk < key_at
    questions, key = "\n".join(paras[:brk]), "\n".join(paras[key_at:])
    for i, it in enumerate(items, 1):
        assert f"{i}. （{TYPE_LABELS[it.type]}）{it.stem}" in questions
        assert f"{i}. 答案：{answer_text(it)}" in key
        assert it.explanation in key and it.evidence.quote in key
        assert it.explanation not in questions


def test_xlsx_one_row_per_item(items, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    ws = load_workbook(export_quiz(items, tmp_path / "quiz.xlsx")).active
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == XLSX_COLUMNS
    assert len(rows) == len(items) + 1
    for row, it in zip(rows[1:], items):
        rec = dict(zip(XLSX_COLUMNS, row))
        assert rec["题干"] == it.stem and rec["答案"] == answer_text(it) and rec["解析"] == it.explanation
        assert it.evidence.file in rec["出处"]
        if isinstance(it.options, dict):
            assert [rec[f"选项{k}"] for k in it.options] == list(it.options.values())


@pytest.mark.parametrize("name", ["quiz.json", "quiz.jsonl"])
def test_json_round_trip(items, tmp_path: Path, name: str) -> None:
    assert read_json_items(export_quiz(items, tmp_path / name)) == items


def test_markdown_and_unknown_extension(items, tmp_path: Path) -> None:
    md = export_quiz(items, tmp_path / "quiz.md").read_text(encoding="utf-8")
    assert md.index("## 参考答案与解析") > md.index(items[-1].stem)
    assert all(it.stem in md for it in items)
    with pytest.raises(QuizError):
        export_quiz(items, tmp_path / "quiz.pdf")
