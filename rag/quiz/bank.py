"""The question bank: accepted quiz items in one JSON file under ``data_dir``, kept across restarts.

Writes are atomic (temp file, fsync, ``os.replace``) and serialised with a file lock, so a crash
never leaves half a bank and two processes do not lose each other's items. Items are deduplicated
by their normalised stem (punctuation, spaces and blanks removed). Does not version or audit
edits: the last write of an item wins.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

from filelock import FileLock

from ..errors import QuizError
from ..fsutil import atomic_write
from .items import QuizItem

logger = logging.getLogger(__name__)

BANK_FILE = "question_bank.json"


class QuestionBank:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")

    @classmethod
    def for_settings(cls, settings) -> QuestionBank:
        return cls(Path(settings.data_dir) / BANK_FILE)

    # -------------------------------------------------------------- reading
    def load(self) -> list[QuizItem]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [QuizItem.model_validate(d) for d in data.get("items", [])]
        except (json.JSONDecodeError, ValueError, AttributeError) as e:
            raise QuizError(f"题库文件损坏：{self.path}", f"question bank unreadable: {self.path}: {e}") from e

    def keys(self) -> tuple[set[str], set[str]]:
        """(stem keys, fact keys) of the items in the bank: what a new quiz must not repeat."""
        items = self.load()
        return {i.stem_key for i in items}, {i.fact for i in items if i.fact}

    def __len__(self) -> int:
        return len(self.load())

    # -------------------------------------------------------------- writing
    def add(self, items: Iterable[QuizItem]) -> list[QuizItem]:
        """Add items whose stem is not in the bank yet; return the items actually added."""
        with self._lock:
            bank = self.load()
            seen = {i.stem_key for i in bank}
            added = []
            for it in items:
                if it.stem_key in seen:
                    continue
                seen.add(it.stem_key)
                bank.append(it)
                added.append(it)
            if added:
                self._write(bank)
        logger.info("question bank: %d added, %d in total", len(added), len(bank))
        return added

    def update(self, item: QuizItem) -> None:
        """Replace the item with the same id (after a trainer's edit); add it when missing."""
        with self._lock:
            bank = self.load()
            for k, old in enumerate(bank):
                if old.id == item.id:
                    bank[k] = item
                    break
            else:
                bank.append(item)
            self._write(bank)

    def remove(self, item_id: str) -> bool:
        with self._lock:
            bank = self.load()
            keep = [i for i in bank if i.id != item_id]
            if len(keep) == len(bank):
                return False
            self._write(keep)
            return True

    def _write(self, items: list[QuizItem]) -> None:
        payload = json.dumps({"version": 1, "items": [i.to_record() for i in items]}, ensure_ascii=False, indent=1)
        atomic_write(self.path, payload.encode("utf-8"))  # one atomic step: readers see the old or the new bank
