"""The question bank: accepted quiz items in the application database (table ``question_bank``,
``rag.db.bank``), kept across restarts and shared by the app and the CLI.

Each write is one transaction, serialised across processes (see ``rag.db.bank``), so two processes
do not lose each other's items. Items are deduplicated by their normalised stem (punctuation,
spaces and blanks removed). A ``question_bank.json`` of an older version is imported once on first
start (``rag.db.importer``) and renamed ``question_bank.json.migrated``. Does not version or audit
edits: the last write of an item wins.
"""

from __future__ import annotations

import logging
from typing import Iterable

from pydantic import ValidationError

from ..db import Database
from ..db.bank import BankTable
from ..db.startup import shared_database
from ..errors import QuizError
from .items import QuizItem, stem_key
logger = logging.getLogger(__name__)


def _stem_key(record: dict) -> str:
    return stem_key(str(record.get("stem", "")))


class QuestionBank:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._table = BankTable(db)

    @classmethod
    def for_settings(cls, settings) -> QuestionBank:
        """The bank in ``settings``' database (opened once per process)."""
        return cls(shared_database(settings))

    # -------------------------------------------------------------- reading
    def load(self) -> list[QuizItem]:
        try:
            return [QuizItem.model_validate(r) for r in self._table.records()]
        except (ValidationError, ValueError) as e:
            raise QuizError("题库中有无法读取的题目", f"question bank unreadable: {e}") from e

    def keys(self) -> tuple[set[str], set[str]]:
        """(stem keys, fact keys) of the items in the bank: what a new quiz must not repeat."""
        items = self.load()
        return {i.stem_key for i in items}, {i.fact for i in items if i.fact}

    def __len__(self) -> int:
        return self._table.count()

    # -------------------------------------------------------------- writing
    def add(self, items: Iterable[QuizItem]) -> list[QuizItem]:
        """Add items whose stem is not in the bank yet; return the items actually added."""
        items = list(items)
        added = [items[i] for i in self._table.add_new([it.to_record() for it in items], _stem_key)]
        logger.info("question bank: %d added", len(added))
        return added

    def update(self, item: QuizItem) -> None:
        """Replace the item with the same id (after a trainer's edit); add it when missing."""
        self._table.put(item.to_record())

    def remove(self, item_id: str) -> bool:
        return self._table.remove(item_id)
