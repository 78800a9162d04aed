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


def _random_corpus(seed: int, n: int = 400, vocab: int = 300) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab + 1)
    weights /= weights.sum()
    out = [[f"w{j}" for j in rng.choice(vocab, size=int(rng.integers(0, 30)), p=weights)] for _ in range(n)]
    out[3] = []  # an empty passage among the others
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_build_equals_bm25s_weight_for_weight(seed: int) -> None:
    """Our build (term ids as the lists arrive, all pairs at once) against bm25s.BM25.index:
    every (passage, term) weight bit for bit, and the same top lists."""
    import bm25s

    docs = _random_corpus(seed)
    ours = KeywordIndex.build(iter(docs))  # a one-pass iterator is enough
    ref = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
    ref.index(docs, create_empty_token=False, show_progress=False)
    r = ref.scores
    assert ours.terms == sorted(ref.vocab_dict, key=ref.vocab_dict.get)  # bm25s's column order too
    for k in ("data", "indices", "indptr"):
        assert ours._bm25.scores[k].tobytes() == r[k].tobytes()
    for term, col in ref.vocab_dict.items():
        j = ours.vocab[term]
        a, z = ours._bm25.scores["indptr"][j : j + 2]
        ra, rz = r["indptr"][col : col + 2]
        assert ours._bm25.scores["indices"][a:z].tolist() == r["indices"][ra:rz].tolist()
        assert ours._bm25.scores["data"][a:z].tobytes() == r["data"][ra:rz].tobytes()
    assert set(ours.vocab) == set(ref.vocab_dict) and ours.doc_len.tolist() == [len(d) for d in docs]
    old = KeywordIndex(r["data"], r["indices"], r["indptr"], sorted(ref.vocab_dict, key=ref.vocab_dict.get),
                       r["num_docs"], np.array([len(d) for d in docs], dtype=np.int32))
    rng = np.random.default_rng(seed + 10)
    for _ in range(50):
        q = [f"w{j}" for j in rng.integers(0, 320, size=int(rng.integers(1, 6)))]
        assert [i for i, _ in ours.top(q, 10)] == [i for i, _ in old.top(q, 10)]
        assert ours.scores(q).tobytes() == old.scores(q).tobytes()
