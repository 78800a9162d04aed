"""``python -m rag cv`` and ``python -m rag train`` (called from rag/cli.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..config import Settings

METRICS = ("hit@1", "hit@5", "mrr@10", "key_fact_coverage", "answers_all_facts", "cites_evidence",
           "citation_precision", "refusal_on_unanswerable", "false_refusal", "answer_chars_p50")


def eval_service(settings: Settings, progress=None):
    """A service over the evaluation corpus (corpus/ + eval/newcorpus/), index built and warm;
    question vectors are kept on disk beside the evaluation index (training and cv embed the same
    questions again and again)."""
    from ..index.embeddings import make_embeddings
    from ..service import RagService
    from .data import QueryVectorCache, eval_settings

    es = eval_settings(settings)
    emb = QueryVectorCache(make_embeddings(es), Path(es.index_dir).parent / "query-vectors")
    service = RagService(es, embeddings=emb)
    if service.ensure_index(progress=progress) is None:
        # a test article added to (or removed from) eval/newcorpus/ since the last build: reindex
        idx = service.current()[0]
        indexed = {c.source for c in idx.chunks}
        present = {p.name for p in Path(es.corpus_dir).iterdir() if p.is_file() and p.name != "metadata.json"}
        if indexed != present:
            service.reindex(progress=progress)
    service.current()
    if not service.wait_warm(timeout=1800):
        print("警告：句向量预热未完成", file=sys.stderr)
    return service


def labeled_items(service, sets: list[str] | None, progress=None):
    from .data import collect, labeled_sets, load_labeled

    paths = [Path(p) for p in sets] if sets else labeled_sets()
    gold = load_labeled(paths)
    return collect(service, gold, progress)


def row(name: str, m: dict) -> str:
    return f"| {name} | " + " | ".join(str(m.get(k)) for k in METRICS) + " |"


def cmd_cv(args, settings: Settings, progress=None) -> int:
    from .cv import cross_validate

    t0 = time.perf_counter()
    service = eval_service(settings, progress)
    items = labeled_items(service, args.sets, progress)
    service.embeddings.save()
    ablate = tuple(a for a in (args.ablate or "").split(",") if a)
    variants = {}
    for spec in args.variant or []:  # name=feature,feature
        name, _, feats = spec.partition("=")
        variants[name] = tuple(f for f in feats.split(",") if f)
    out = cross_validate(service, items, ablate=ablate, progress=progress, variants=variants)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    results = out.pop("results")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results), encoding="utf-8")
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"留一篇文章交叉验证：{out['questions']} 题，{len(out['folds'])} 折，用时 {out['seconds']} 秒")
    print("| | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    print(row("learned (cv, pooled)", out["pooled"]))
    for b, m in out["baselines"].items():
        print(row(f"{b} top chunk", m))
    for name, m in out["variants"].items():
        print(row(f"without {name}", m))
    for name, m in out["by_set"].items():
        print(row(f"  set {name}", m))
    for art, m in out["folds"].items():
        print(row(f"  fold {art}", m))
    return 0


def fixed_hash_seed(argv: list[str]) -> int | None:
    """Run this command again under PYTHONHASHSEED=0 unless it already is: somewhere the pipeline
    iterates a set of strings, and the order moves the fitted weights in their 4th decimal (the
    same seed gives the same file, byte for byte). Returns the child's exit code, or None when
    already fixed."""
    import os
    import subprocess

    if os.environ.get("PYTHONHASHSEED") == "0":
        return None
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.call([sys.executable, "-m", "rag", *argv], env=env)


def cmd_train(args, settings: Settings, progress=None) -> int:
    from ..answer.ranker import WEIGHTS
    from .train import train_all

    again = fixed_hash_seed(["train", *(["--out", args.out] if args.out else []), *(["--check"] if args.check else []),
                             *(["--sets", *args.sets] if args.sets else [])])
    if again is not None:
        return again
    t0 = time.perf_counter()
    service = eval_service(settings, progress)
    items = labeled_items(service, args.sets, progress)
    service.embeddings.save()
    model = train_all(service, items, progress)
    text = model.to_json()
    out = Path(args.out) if args.out else WEIGHTS
    if args.check:
        same = out.exists() and out.read_text(encoding="utf-8") == text
        print("权重与重新训练的结果一致" if same else f"权重与重新训练的结果不一致：{out}")
        return 0 if same else 1
    out.write_text(text, encoding="utf-8")
    print(f"已写入 {out}（{len(items)} 题，阈值 {model.threshold:.3f}，用时 {time.perf_counter() - t0:.0f} 秒）")
    return 0
