"""The ``question_bank`` table: the rows behind ``rag.quiz.bank.QuestionBank``, in the bank's order.

A row keeps the whole item (``item``, its JSON record) and, to query by, its ``id``; ``seq`` is the
order items were added in. The stem key that deduplicates items is the caller's (``rag.quiz``). Every write first updates the meta row
``question_bank:lock``: on SQLite that takes the writer's lock, on PostgreSQL that row's lock, so the
read-check-write of ``add`` (no two items with one stem key) is serialised across processes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..errors import QuizError

from .engine import Database
from .models import BankItemRow, MetaRow

LOCK_KEY = "question_bank:lock"


def _lock(s) -> None:
    if not s.execute(update(MetaRow).where(MetaRow.key == LOCK_KEY).values(value=MetaRow.value)).rowcount:
        s.merge(MetaRow(key=LOCK_KEY, value="-"))
        s.flush()


def row_of(record: dict) -> BankItemRow:
    return BankItemRow(id=str(record.get("id", ""))[:64], type=str(record.get("type", ""))[:20],
                       stem=str(record.get("stem", "")), item=record)


def _guarded(fn):
    """A database failure is the bank's QuizError (the quiz tab shows it), not a crash of the handler."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SQLAlchemyError as e:
            raise QuizError("题库暂时无法读写，请稍后再试", f"question bank: {e}") from e

    return run


class BankTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    @_guarded
    def records(self) -> list[dict]:
        with self.db.session() as s:
            return list(s.scalars(select(BankItemRow.item).order_by(BankItemRow.seq)))

    @_guarded
    def count(self) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(BankItemRow))

    @_guarded
    def add_new(self, records: list[dict], key: Callable[[dict], str]) -> list[int]:
        """Append the records whose ``key`` is not in the bank yet (nor earlier in ``records``);
        return the indices of those added."""
        with self.db.session() as s:
            _lock(s)
            seen = {key(r) for r in s.scalars(select(BankItemRow.item))}
            added = []
            for i, record in enumerate(records):
                k = key(record)
                if k in seen:
                    continue
                seen.add(k)
                s.add(row_of(record))
                added.append(i)
            return added

    @_guarded
    def put(self, record: dict) -> None:
        """Replace the first item with ``record``'s id; append it when missing."""
        with self.db.session() as s:
            _lock(s)
            row = s.scalars(select(BankItemRow).where(BankItemRow.id == str(record.get("id", ""))[:64])
                            .order_by(BankItemRow.seq).limit(1)).first()
            if row is None:
                s.add(row_of(record))
                return
            new = row_of(record)
            row.type, row.stem, row.item = new.type, new.stem, new.item

    @_guarded
    def remove(self, item_id: str) -> bool:
        with self.db.session() as s:
            _lock(s)
            return bool(s.execute(delete(BankItemRow).where(BankItemRow.id == str(item_id)[:64])).rowcount)
