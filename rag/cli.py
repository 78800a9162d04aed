"""Command line: ``python -m rag index|ask|eval|bench|users|keys``.

Exit code 0 on success, 1 with a clear (Chinese) message on stderr on bad input or a failed
step; logs go to stderr in English. Long work shows a tqdm progress bar.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from .config import Settings
from .errors import InputError, RagError

logger = logging.getLogger(__name__)


def _progress_bar():
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(done: int, total: int, what: str) -> None:
        bar = bars.get(what)
        if bar is None:
            bar = bars[what] = tqdm(total=total, desc=what, unit="段", file=sys.stderr, leave=True)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def _print_answer(ans, out=None) -> None:
    out = out or sys.stdout  # looked up per call: a default of sys.stdout would freeze the import-time stream
    print(ans.text, file=out)
    if ans.notice:
        print(f"（{ans.notice}）", file=out)
    print(file=out)
    if ans.refused:
        print("相关原文：", file=out)
        for i, h in enumerate(ans.hits[:3], 1):
            c = h.chunk
            print(f"  ({i}) {c.path_label} [{c.source}:{c.start}-{c.end}]", file=out)
            print(f"      {c.text[:120]}…", file=out)
        return
    print("来源：", file=out)
    for c in ans.citations:
        ch = c.chunk
        print(f"  [{c.n}] {ch.path_label}", file=out)
        print(f"      文件 {ch.source}，字符 {ch.start}-{ch.end}", file=out)
        print(f"      “{c.quote}”", file=out)


def cmd_index(args, settings: Settings) -> int:
    from .service import RagService

    if args.verify:
        return _verify_index(settings)
    if args.rollback:
        from .index.indexing import rollback_index

        v = rollback_index(settings, user="cli")
        print(f"已回滚到索引版本 {v}")
        return 0
    service = RagService(settings)
    report = service.reindex(progress=_progress_bar(), rebuild=args.rebuild, user="cli")
    print(report.summary())
    for name, items in (("新增", report.added), ("修改", report.changed), ("删除", report.removed)):
        if items:
            print(f"  {name}：{'、'.join(items)}")
    for r in report.rejected:
        print(f"  拒绝：{r}", file=sys.stderr)
    return 0


def _verify_index(settings: Settings) -> int:
    """Check the live version (hashes, counts, embedder) and list the others; 1 when it is damaged."""
    from .index.store import open_store
    from .index.store.reader import check_compatible

    store = open_store(settings)
    where = settings.index_dir if store.kind == "faiss" else f"Milvus 集合 {settings.milvus_collection}"
    live = store.live_version()
    if live is None:
        print(f"错误：{where} 中没有已发布的索引，请先运行 python -m rag index", file=sys.stderr)
        return 1
    for v in store.list_versions():
        if v == live:
            continue
        try:
            store.load(v)
            print(f"  旧版本 {v}：完好")
        except RagError as e:
            print(f"  旧版本 {v}：损坏（{e}）", file=sys.stderr)
    if live not in store.list_versions():
        print(f"错误：当前索引版本 {live} 不存在，请运行 python -m rag index --rollback 或 --rebuild", file=sys.stderr)
        return 1
    try:
        idx = store.load(live)
        check_compatible(idx.manifest, embedder_id=settings.embedder_id, dim=None)
    except RagError as e:
        print(f"错误：当前索引版本 {live} 校验失败：{e}；请运行 python -m rag index --rollback 或 --rebuild", file=sys.stderr)
        return 1
    print(f"索引版本 {idx.version} 校验通过：{len(idx.chunks)} 个段落，{len(idx.documents)} 篇文章，向量模型 {idx.manifest.get('embedder')}")
    return 0


def cmd_ask(args, settings: Settings) -> int:
    from .service import RagService

    if args.mode:
        settings = settings.with_(answer_mode=args.mode)
    # one question: embed the sentences it needs on the spot, no background warm-up
    service = RagService(settings.with_(sentence_warmup=False))
    service.ensure_index(progress=_progress_bar())
    history = json.loads(args.history) if args.history else None
    ans = service.ask(args.question, history)
    if args.json:
        print(json.dumps(ans.to_result(), ensure_ascii=False, indent=1))
    else:
        _print_answer(ans)
    return 0


def cmd_eval(args, settings: Settings) -> int:
    from .eval.data import read_gold
    from .service import RagService

    gold = read_gold(Path(args.gold))
    if args.mode:
        settings = settings.with_(answer_mode=args.mode)
    service = RagService(settings)
    service.ensure_index(progress=_progress_bar())
    service.ask("预热")  # load models before timing
    t0 = time.perf_counter()
    if not service.wait_warm(timeout=1800):  # answer as a running server would: sentence vectors cached
        print("警告：句向量预热未完成，部分问题的延迟包含现场嵌入", file=sys.stderr)
    print(f"句向量预热用时 {time.perf_counter() - t0:.1f} 秒", file=sys.stderr)
    results = []
    for g in gold:
        ans = service.ask(g["question"], g.get("history"))
        results.append(ans.to_result(g["id"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results), encoding="utf-8")
    metrics = score_results(gold, results)
    print(json.dumps(metrics, ensure_ascii=False, indent=1))
    print(f"已写入 {len(results)} 条结果：{out}", file=sys.stderr)
    if args.baseline:
        from .eval.commands import METRICS, row
        from .eval.cv import baseline_results
        from .eval.data import collect

        items = collect(service, gold)
        print("| | " + " | ".join(METRICS) + " |")
        print("|---" * (len(METRICS) + 1) + "|")
        print(row("this system", metrics))
        for b in args.baseline.split(","):
            print(row(f"{b} top chunk", score_results(gold, baseline_results(service, items, b))))
    return 0


def score_results(gold: list[dict], results: list[dict]) -> dict:
    """Metrics in the reference scorer's terms (same normalisation and matching)."""
    from .eval.evaluation import score

    return score(gold, {r["id"]: r for r in results})


def cmd_bench(args, settings: Settings) -> int:
    if args.scale:
        from .eval.scalebench import run_scale

        try:
            sizes = [int(float(x)) for x in args.scale.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"--scale 应为逗号分隔的段落数，例如 100000,1000000：{args.scale}", "bad --scale") from None
        stores = [x.strip() for x in args.store.split(",") if x.strip()]
        bad = [x for x in stores if x not in ("faiss", "milvus")]
        if bad or not sizes or min(sizes) < 1:
            raise InputError(f"--store 只能是 faiss、milvus：{args.store}" if bad else "--scale 至少一个正数", "bad --store/--scale")
        results = run_scale(settings, sizes, stores, sys.stdout, as_json=args.json, queries=max(1, args.queries))
        return 1 if any("error" in r for r in results) else 0
    if args.api:
        from .web.bench_api import run_api_bench

        if args.clients < 1 or args.seconds <= 0:
            print("错误：--clients 至少为 1，--seconds 须大于 0", file=sys.stderr)
            return 1
        run_api_bench(settings, clients=args.clients, seconds=args.seconds, solo_seconds=args.solo_seconds,
                      gold_path=Path(args.gold) if args.gold else None, out=sys.stdout)
        return 0
    from .eval.bench import run_bench
    from .web.bench_load import run_load

    if args.load:
        run_load(settings, sys.stdout, seconds=args.seconds, alone_seconds=min(20.0, args.seconds / 3))
        return 0
    run_bench(settings, gold_path=Path(args.gold) if args.gold else None, synthetic=args.synthetic, out=sys.stdout)
    return 0


def cmd_users(argv: list[str], settings: Settings) -> int:
    from .auth.users import UserStore, run_users_cli

    return run_users_cli(argv, UserStore.open(settings))


def cmd_keys(args, settings: Settings) -> int:
    """``keys add NAME`` prints the new key once, on the last line of stdout; ``list``; ``revoke ID|PREFIX``."""
    from .db import open_database
    from .db.keys import ApiKeyStore
    from .errors import InputError
    from .auth.users import UserStore

    db = open_database(settings)
    store = ApiKeyStore(db)
    if args.keys_cmd == "add":
        user = UserStore(db, settings.data_dir).get(args.name)
        if user is None:
            raise InputError(f"用户不存在：{args.name}（先用 python -m rag users add 添加）", f"no user {args.name!r}")
        info, key = store.add(user.name, args.label or "")
        print(f"已为用户 {user.name}（{user.role_label}）创建 API 密钥 #{info.id}（{info.prefix}…）；密钥只显示这一次：")
        print(key)
    elif args.keys_cmd == "list":
        rows = store.list(args.user)
        if not rows:
            print("（暂无 API 密钥）")
        for k in rows:
            state = "有效" if k.active else f"已吊销 {k.revoked:%Y-%m-%d %H:%M}"
            used = f"{k.last_used:%Y-%m-%d %H:%M}" if k.last_used else "从未使用"
            print(f"#{k.id}\t{k.prefix}…\t{k.user}\t{k.label or '-'}\t创建 {k.created:%Y-%m-%d %H:%M}\t{used}\t{state}")
    else:
        info = store.revoke(args.ref)
        print(f"已吊销 API 密钥 #{info.id}（{info.prefix}…，用户 {info.user}）")
    return 0


def cmd_quiz(args, settings: Settings) -> int:
    from .quiz.make import make_quiz
    from .quiz.items import parse_types
    from .quiz.bank import QuestionBank
    from .quiz.export import check_format, export_quiz
    from .service import RagService

    t0 = time.perf_counter()
    if args.n < 1:
        print("错误：题目数量 --n 至少为 1", file=sys.stderr)
        return 1
    types = parse_types(args.types)  # QuizError on an unknown type, before any work
    check_format(Path(args.out))
    service = RagService(settings.with_(sentence_warmup=False))  # one-shot: no background embedding
    bank = QuestionBank.for_settings(settings) if args.bank else None
    result = make_quiz(
        service, topic=args.topic, article=args.article, n=args.n, types=types,
        exclude_bank=args.bank, bank=bank, seed=args.seed, mode=args.mode,
    )
    if not result.items:
        print("错误：没有生成任何题目（语料中没有足够的可出题内容）", file=sys.stderr)
        return 1
    export_quiz(result.items, Path(args.out))
    added = bank.add(result.items) if bank is not None else []
    print(f"已生成 {len(result.items)} 题，写入 {args.out}" + (f"；题库新增 {len(added)} 题" if bank else ""))
    if args.stats:
        from .quiz.sentences import format_stats

        result.stats["seconds"] = round(time.perf_counter() - t0, 3)
        print(format_stats(result.stats))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rag", description="党建知识问答：索引、问答、评测、基准测试、用户管理")
    p.add_argument("-v", "--verbose", action="store_true", help="详细日志")
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("index", help="从 corpus/ 构建或更新索引")
    pi.add_argument("--rebuild", action="store_true", help="全部重新嵌入（不用缓存）")
    pi.add_argument("--verify", action="store_true", help="校验当前索引版本")
    pi.add_argument("--rollback", action="store_true", help="回滚到上一个索引版本")
    pa = sub.add_parser("ask", help="提问")
    pa.add_argument("question")
    pa.add_argument("--history", help="对话历史（JSON：[{role, content}, …]）")
    pa.add_argument("--json", action="store_true", help="输出 JSON")
    pa.add_argument("--mode", choices=["extractive", "llm"], help="回答模式（默认取 RAG_ANSWER_MODE）")
    pe = sub.add_parser("eval", help="在问题集上评测")
    pe.add_argument("gold", help="JSONL 问题集（../shared/eval/dev.jsonl 格式）")
    pe.add_argument("--out", required=True, help="结果 JSONL（score.py 读取的格式）")
    pe.add_argument("--mode", choices=["extractive", "llm"], help="回答模式（默认取 RAG_ANSWER_MODE）")
    pe.add_argument("--baseline", help="同时评测基线并并列打印：bm25（关键词最高段落）、vanilla（向量最高段落），可用逗号连写")
    pb = sub.add_parser("bench", help="性能基准：建索引、问答延迟、内存、10 万段落检索")
    pb.add_argument("--gold", default=None, help="计时用的问题集（默认 ../shared/eval/dev.jsonl）")
    pb.add_argument("--synthetic", type=int, default=100_000, help="合成段落数（默认 100000）")
    pb.add_argument("--scale", default="", help="只测存储：合成段落数，逗号分隔，如 100000,1000000")
    pb.add_argument("--store", default="faiss,milvus", help="--scale 时测哪些存储（faiss,milvus）")
    pb.add_argument("--json", action="store_true", help="--scale 时每行输出一个 JSON 对象")
    pb.add_argument("--queries", type=int, default=200, help="--scale 时每个存储的查询数（默认 200）")
    pb.add_argument("--load", action="store_true",
                    help="负载测试：8 个已登录用户并发提问 60 秒，中途重建索引、另一客户端登录洪泛，对比 1 人单独提问")
    pb.add_argument("--api", action="store_true", help="API 基准：并发客户端 + 重建索引，再单个客户端（仅本机回环）")
    pb.add_argument("--clients", type=int, default=8, help="--api：并发客户端数（默认 8）")
    pb.add_argument("--seconds", type=float, default=60, help="--api/--load：并发阶段秒数（默认 60）")
    pb.add_argument("--solo-seconds", type=float, default=None, help="--api：单客户端阶段秒数（默认同 --seconds）")
    pc = sub.add_parser("cv", help="留一篇文章交叉验证（所有标注问题集）")
    pc.add_argument("--sets", nargs="*", help="问题集（默认 eval/*.jsonl 和 ../shared/eval/dev.jsonl）")
    pc.add_argument("--json", action="store_true", help="输出 JSON")
    pc.add_argument("--out", help="交叉验证的逐题结果 JSONL")
    pc.add_argument("--ablate", help="去掉的特征（逗号分隔），看它是否有用")
    pc.add_argument("--variant", action="append", help="同一次运行中再比较一个去掉若干特征的变体：名称=特征,特征")
    pt = sub.add_parser("train", help="在所有标注问题集上训练排序器、拒答门限和融合权重")
    pt.add_argument("--sets", nargs="*", help="问题集（默认 eval/*.jsonl 和 ../shared/eval/dev.jsonl）")
    pt.add_argument("--out", help="写到这里（默认 rag/answer/weights.json）")
    pt.add_argument("--check", action="store_true", help="只比较：重新训练的结果与现有权重是否一致")
    sub.add_parser("users", help="用户管理：add/list/remove/reset/role", add_help=False)
    pk = sub.add_parser("keys", help="API 密钥：add/list/revoke")
    ks = pk.add_subparsers(dest="keys_cmd", required=True)
    k = ks.add_parser("add", help="为用户创建 API 密钥（只显示一次，在最后一行）")
    k.add_argument("name", help="用户名")
    k.add_argument("--label", default="", help="备注，如客户端名称")
    k = ks.add_parser("list", help="列出 API 密钥（不显示密钥本身）")
    k.add_argument("--user", default=None, help="只列出该用户的密钥")
    k = ks.add_parser("revoke", help="吊销 API 密钥")
    k.add_argument("ref", help="密钥编号或前缀（keys list 中显示）")
    pq = sub.add_parser("quiz", help="从语料生成测验题并导出（.docx/.xlsx/.json/.md）")
    pq.add_argument("--topic", default=None, help="主题（检索相关段落出题）")
    pq.add_argument("--article", default=None, help="只从这篇文章出题（文件名或编号，如 000）")
    pq.add_argument("--n", type=int, default=10, help="题目数量（默认 10）")
    pq.add_argument("--types", default="single,multi,judge,blank", help="题型：single,multi,judge,blank")
    pq.add_argument("--out", required=True, help="输出文件，格式由扩展名决定")
    pq.add_argument("--bank", action="store_true", help="跳过题库中已有的题，并把新题加入题库")
    pq.add_argument("--stats", action="store_true", help="打印统计：各题型生成数、丢弃数及原因、用时")
    pq.add_argument("--seed", type=int, default=0, help="随机种子（同一种子得到同一套题）")
    pq.add_argument(
        "--mode", choices=["extractive", "llm"],
        help="出题方式：规则（extractive）或大模型（llm，校验不过的丢弃，不足的由规则补足）；默认取 RAG_ANSWER_MODE",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)  # what the CLI writes (users, keys, the database, indexes) is this account's only
    verbose = "-v" in argv or "--verbose" in argv
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.from_env()
        rest = [a for a in argv if a not in ("-v", "--verbose")]
        if rest and rest[0] == "users":
            return cmd_users(rest[1:], settings)
        args = build_parser().parse_args(rest)
        if args.cmd in ("cv", "train"):
            from .eval import commands

            return getattr(commands, f"cmd_{args.cmd}")(args, settings, _progress_bar())
        return {"index": cmd_index, "ask": cmd_ask, "eval": cmd_eval, "bench": cmd_bench, "quiz": cmd_quiz, "keys": cmd_keys}[args.cmd](args, settings)
    except RagError as e:
        logger.error("%s", e.log_message)
        print(f"错误：{e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("已中断", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
