"""Export a quiz as Word, Excel, JSON or Markdown; the format follows the file extension.

- ``.docx`` (python-docx): the questions, a page break, then the answer key with explanations
  and sources;
- ``.xlsx`` (openpyxl): one row per item in the usual 题库 import columns;
- ``.json`` (a list of item records) and ``.jsonl`` (one record per line);
- ``.md``: questions, then the answer key.

Does not export to PDF or lay out a printable test paper beyond headings and numbering.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import QuizError
from .items import TYPE_LABELS, QuizItem

XLSX_COLUMNS = ["题型", "题干", "选项A", "选项B", "选项C", "选项D", "答案", "解析", "出处"]
FORMATS = (".docx", ".xlsx", ".json", ".jsonl", ".md")


def answer_text(item: QuizItem) -> str:
    """"B", "ACD", "正确" or the blank's text."""
    return "".join(item.answer) if isinstance(item.answer, list) else str(item.answer)


def source_text(item: QuizItem) -> str:
    head = " › ".join(item.heading_path)
    where = f"《{item.title}》" + (f" › {head}" if head else "") if item.title else head
    return f"{where}（{item.evidence.file}）：“{item.evidence.quote}”"


def option_lines(item: QuizItem) -> list[str]:
    if isinstance(item.options, dict):
        return [f"{k}. {v}" for k, v in item.options.items()]
    if item.type == "true_false":
        return ["（ ）正确　（ ）错误"]
    return []


def check_format(path: Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise QuizError(
            f"不支持的导出格式：{ext or '（无扩展名）'}（可选 .docx、.xlsx、.json、.jsonl、.md）",
            f"unknown export extension {ext!r}",
        )
    return ext


def export_quiz(items: Sequence[QuizItem], path: Path | str, *, title: str = "党建知识测验") -> Path:
    """Write ``items`` to ``path`` in the format of its extension; return the path."""
    path = Path(path)
    ext = check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    {".docx": to_docx, ".xlsx": to_xlsx, ".json": to_json, ".jsonl": to_jsonl, ".md": to_markdown}[ext](
        list(items), path, title
    )
    return path


def to_docx(items: list[QuizItem], path: Path, title: str) -> None:
    from docx import Document
    from docx.enum.text import WD_BREAK

    doc = Document()
    doc.add_heading(title, level=1)
    for i, it in enumerate(items, 1):
        doc.add_paragraph(f"{i}. （{TYPE_LABELS[it.type]}）{it.stem}")
        for line in option_lines(it):
            doc.add_paragraph(line)
    doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    doc.add_heading("参考答案与解析", level=1)
    for i, it in enumerate(items, 1):
        doc.add_paragraph(f"{i}. 答案：{answer_text(it)}")
        doc.add_paragraph(f"解析：{it.explanation}")
        doc.add_paragraph(f"出处：{source_text(it)}")
    doc.save(str(path))


def to_xlsx(items: list[QuizItem], path: Path, title: str) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "题库"
    ws.append(XLSX_COLUMNS)
    for it in items:
        opts = it.options if isinstance(it.options, dict) else {}
        if it.type == "true_false":
            opts = {"A": "正确", "B": "错误"}
        ws.append(
            [TYPE_LABELS[it.type].rstrip("题"), it.stem, *(opts.get(k, "") for k in "ABCD"),
             answer_text(it), it.explanation, source_text(it)]
        )
    for col, width in zip("ABCDEFGHI", (8, 60, 18, 18, 18, 18, 8, 60, 50)):
        ws.column_dimensions[col].width = width
    wb.save(str(path))


def to_json(items: list[QuizItem], path: Path, title: str) -> None:
    path.write_text(json.dumps([i.to_record() for i in items], ensure_ascii=False, indent=1), encoding="utf-8")


def to_jsonl(items: list[QuizItem], path: Path, title: str) -> None:
    path.write_text("".join(json.dumps(i.to_record(), ensure_ascii=False) + "\n" for i in items), encoding="utf-8")


def to_markdown(items: list[QuizItem], path: Path, title: str) -> None:
    out = [f"# {title}", ""]
    for i, it in enumerate(items, 1):
        out.append(f"{i}. （{TYPE_LABELS[it.type]}）{it.stem}")
        out += [f"   - {line}" for line in option_lines(it)]
        out.append("")
    out += ["---", "", "## 参考答案与解析", ""]
    for i, it in enumerate(items, 1):
        out += [f"{i}. **答案：{answer_text(it)}**", f"   解析：{it.explanation}", f"   出处：{source_text(it)}", ""]
    path.write_text("\n".join(out), encoding="utf-8")


def read_json_items(path: Path | str) -> list[QuizItem]:
    """Items of a .json/.jsonl export (round trip)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    rows = json.loads(text) if p.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
    return [QuizItem.model_validate(r) for r in rows]
