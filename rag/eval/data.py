"""Labeled questions, their articles, and the evaluation corpus they are asked against."""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ROOT, Settings
from ..errors import RagError
from .evaluation import holds
from ..text import norm

logger = logging.getLogger(__name__)

EVAL_DIR = ROOT / "eval"
NEW_CORPUS = EVAL_DIR / "newcorpus"
SHARED_DEV = ROOT.parent / "shared" / "eval" / "dev.jsonl"


def read_gold(path: Path) -> list[dict]:
    """One labeled question per line (the dev format); a clear error for a bad line."""
    if not path.exists():
        raise RagError(f"找不到评测文件 {path}", f"gold file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise RagError(f"{path} 第 {n} 行不是合法的 JSON", f"{path}:{n}: invalid JSON: {e}") from e
        if "id" not in row or "question" not in row:
            raise RagError(f"{path} 第 {n} 行缺少 id 或 question 字段", f"{path}:{n}: missing id/question")
        rows.append(row)
    return rows


def labeled_sets(eval_dir: Path | None = None, dev: Path | None = SHARED_DEV) -> list[Path]:
    """Every labeled set: ``eval/*.jsonl`` and the shared dev set when it is there."""
    eval_dir = eval_dir or EVAL_DIR
    paths = sorted(eval_dir.glob("*.jsonl"))
    if dev is not None and dev.exists():
        paths.append(dev)
    return paths


def load_labeled(paths: list[Path]) -> list[dict]:
    out, seen = [], set()
    for p in paths:
        for g in read_gold(p):
            key = (p.stem, g["id"])
            if key in seen:
                continue
            seen.add(key)
            out.append({**g, "set": p.stem, "id": f"{p.stem}/{g['id']}"})  # ids are unique per set only
    return out


def articles_of(g: dict) -> set[str]:
    """The articles a question is about: its evidence files, or the one an unanswerable names."""
    files = {e["file"] for e in g.get("evidence") or [] if e.get("file")}
    if g.get("about"):
        files.add(g["about"])
    return files


def article_of(g: dict) -> str:
    """The fold of a question: its first evidence file (or the article an unanswerable is about)."""
    for e in g.get("evidence") or []:
        if e.get("file"):
            return e["file"]
    return g.get("about") or "?"


def eval_settings(settings: Settings, *, new_corpus: Path | None = NEW_CORPUS) -> Settings:
    """Settings for the evaluation corpus: ``corpus/`` plus the invented test articles, in folders
    of their own beside the index (the real index and corpus are never touched)."""
    if new_corpus is None or not new_corpus.exists():
        return settings
    base = Path(str(settings.index_dir) + "-eval")
    corpus = base / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in settings.corpus_dir.iterdir() if p.is_file()}
    wanted.update({p.name: p for p in new_corpus.glob("*.txt")})
    for p in corpus.iterdir():
        if p.name not in wanted:
            p.unlink()
    for name, src in wanted.items():
        dst = corpus / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)
    return settings.with_(corpus_dir=corpus, index_dir=base / "index")


class QueryVectorCache:
    """An embedder whose question vectors are cached on disk (``save``); everything else is the
    wrapped embedder's. Keyed by the model id and the text, so another model never reads them."""

    def __init__(self, inner, folder: Path) -> None:
        self.inner = inner
        self.folder = folder
        self._file = folder / (re.sub(r"[^\w.-]", "_", inner.model_id) + ".json")
        self._vecs: dict[str, list[float]] = {}
        if self._file.exists():
            try:
                self._vecs = json.loads(self._file.read_text(encoding="utf-8"))
            except ValueError:
                logger.warning("ignoring a damaged question-vector cache %s", self._file)
        self._dirty = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_query_vector(self, text: str) -> np.ndarray:
        v = self._vecs.get(text)
        if v is None:
            vec = self.inner.embed_query_vector(text)
            self._vecs[text] = [float(x) for x in vec]
            self._dirty = True
            return vec
        return np.asarray(v, dtype=np.float32)

    def save(self) -> None:
        if self._dirty:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self._file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._vecs), encoding="utf-8")
            tmp.replace(self._file)
            self._dirty = False


@dataclass
class Item:
    """One labeled question with what does not depend on any learned weight."""

    g: dict
    question: str
    retrieval_query: str
    lists: list  # RankedLists of the whole retrieval query and of its parts
    extra: dict
    said: str
    context: str
    holders: set = field(default_factory=set)  # chunk indices whose text holds an evidence quote


def collect(service, gold: list[dict], progress=None) -> list[Item]:
    """Retrieve every labeled question once (all ranked lists), as ``RagService.ask`` would."""
    from ..answer.query import question_terms
    from ..service import history_assistant_text

    idx, retriever, answerer = service.current()
    items = []
    for n, g in enumerate(gold, 1):
        q = service.check_question(g["question"])
        hist = g.get("history")
        rq = service.retrieval_query(q, hist)
        extra, said, context = {}, "", ""
        if rq != q:
            context = service.followup_context(q, hist)
            extra = question_terms(context, answerer.idf)
            said = history_assistant_text(hist)
        lists = service.query_lists(retriever, rq)
        quotes = [e["quote"] for e in g.get("evidence") or []]
        pool = set().union(*(set().union(*(r.keys() for r in lst.ranks.values())) for lst in lists))
        holders = {i for i in pool if any(holds(idx.chunks[i].text, qt) for qt in quotes)}
        items.append(Item(g, q, rq, lists, extra, said, context, holders))
        if progress:
            progress(n, len(gold), "检索")
    return items


def gains(g: dict, cands: list) -> np.ndarray:
    """How good each candidate is as the answer: the share of the key facts it holds, plus half a
    point when it is (part of) the evidence quote."""
    kf = [norm(f) for f in g.get("key_facts") or [] if norm(f)]
    quotes = [norm(e["quote"]) for e in g.get("evidence") or []]
    out = np.zeros(len(cands))
    for j, c in enumerate(cands):
        t = norm(c.text)
        share = sum(f in t for f in kf) / len(kf) if kf else 0.0
        inq = any(len(t) >= 6 and (t in q or q in t) for q in quotes)
        out[j] = share + (0.5 if inq else 0.0)
    return out
