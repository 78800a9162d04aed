"""The embedded keyword index (bm25s): textbook BM25 figures, the saved form, IDF for the answerer."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest

from rag.index.store.keywords import BM25_B, BM25_K1, KeywordIndex

DOCS = [["大熊猫", "竹子", "竹子"], ["龙井", "绿茶"], ["大熊猫", "四川"], []]


def bm25(term: str, doc: list[str], docs: list[list[str]]) -> float:
    """BM25 (Lucene IDF) written out by hand, as the known answer."""
    n, df, tf = len(docs), sum(term in d for d in docs), doc.count(term)
    avgdl = sum(map(len, docs)) / n
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * len(doc) / avgdl)) if tf else 0.0


def test_scores_are_textbook_bm25() -> None:
    kw = KeywordIndex.build(DOCS)
    got = kw.scores(["大熊猫", "竹子", "竹子"])  # a repeated query term counts once
    want = [bm25("大熊猫", d, DOCS) + bm25("竹子", d, DOCS) for d in DOCS]
    assert got == pytest.approx(want, rel=1e-5)
    top = kw.top(["大熊猫", "竹子"], 5)
    assert [i for i, _ in top] == [0, 2] and all(s > 0 for _, s in top)
    assert kw.top(["没有的词"], 5) == [] and kw.top([], 5) == []


def test_idf_and_vocabulary() -> None:
    kw = KeywordIndex.build(DOCS)
    assert kw.idf("大熊猫") == pytest.approx(math.log(1 + (4 - 2 + 0.5) / 2.5))
    assert kw.idf("没有的词") == pytest.approx(math.log(1 + 4.5 / 0.5))  # unseen: the maximum
    assert "竹子" in kw and "没有的词" not in kw and len(kw) == 4


def test_saved_form_is_plain_arrays_and_round_trips() -> None:
    kw = KeywordIndex.build(DOCS)
    blob = kw.to_bytes()
    names = zipfile.ZipFile(io.BytesIO(blob)).namelist()
    assert sorted(names) == sorted(f"{k}.npy" for k in ("data", "indices", "indptr", "doc_len", "n_docs", "vocab"))
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:  # loads without pickle: numeric arrays only
        assert all(z[k].dtype != object for k in z.files)
    back = KeywordIndex.from_bytes(blob)
    q = ["大熊猫", "绿茶", "四川"]
    assert back.scores(q) == pytest.approx(kw.scores(q)) and back.idf("龙井") == kw.idf("龙井")


def test_empty_corpus() -> None:
    kw = KeywordIndex.build([[], []])
    assert kw.top(["x"], 3) == [] and kw.scores(["x"]).tolist() == [0.0, 0.0]
    assert KeywordIndex.from_bytes(kw.to_bytes()).top(["x"], 3) == []
