"""``python -m rag bench --api``: the API under load while a reindex runs, then one client alone.

On a private copy of the corpus and a private index (in a ``tempfile`` folder, removed after;
the configured ``index/`` and ``data/`` are never touched), the app is served by uvicorn on
127.0.0.1 and ``clients`` threads (8) post ``/v1/chat/completions`` for ``seconds`` (60) while
a full rebuild of the index runs; then one client alone for ``solo_seconds``. Each phase prints
requests, errors (any non-200 or a body without ``choices``), p50/p95 latency and requests per
second, side by side. Every client loops over the gold questions with its own API key, and stops
at the deadline or after ``max_requests``; the per-key rate limit is switched off for the run (it
would make the figures those of the limit).

Not done here: remote hosts (loopback only), streaming latency (the non-streamed call is timed).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TextIO

from ..eval.bench import _pct, load_questions
from ..config import Settings

HOST = "127.0.0.1"


def _client(url: str, key: str, questions: list, deadline: float, max_requests: int, offset: int) -> dict:
    lat, errors, n = [], 0, 0
    while time.monotonic() < deadline and n < max_requests:
        q, history = questions[(offset + n) % len(questions)]
        messages = [*(history or []), {"role": "user", "content": q}]
        body = json.dumps({"model": "dangjian-rag", "messages": messages}).encode("utf-8")
        req = urllib.request.Request(url + "/v1/chat/completions", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        n += 1
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                ok = r.status == 200 and "choices" in json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            ok = False
        if ok:
            lat.append((time.perf_counter() - t0) * 1000)
        else:
            errors += 1
    return {"requests": n, "errors": errors, "latencies": lat}


def _phase(url: str, keys: list[str], questions: list, seconds: float, max_requests: int) -> dict:
    deadline = time.monotonic() + seconds
    results: list[dict] = [{} for _ in keys]

    def run(i: int) -> None:
        results[i] = _client(url, keys[i], questions, deadline, max_requests, offset=i * 5)

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    lat = [x for r in results for x in r["latencies"]]
    n = sum(r["requests"] for r in results)
    return {
        "clients": len(keys), "seconds": round(wall, 1), "requests": n, "errors": sum(r["errors"] for r in results),
        "p50_ms": round(_pct(lat, 50), 1) if lat else None, "p95_ms": round(_pct(lat, 95), 1) if lat else None,
        "rps": round(n / wall, 2) if wall else 0.0,
    }


def run_api_bench(
    settings: Settings, *, clients: int = 8, seconds: float = 60, solo_seconds: float | None = None,
    max_requests: int = 100_000, gold_path: Path | None = None, out: TextIO, embeddings=None,
) -> dict:
    """Measure and print; return {"loaded": {...}, "alone": {...}, "reindex": {...}}."""
    from argon2 import PasswordHasher

    from ..db import open_database
    from ..db.keys import ApiKeyStore
    from ..index.documents import DocumentManager
    from ..service import RagService
    from ..auth.users import UserStore
    from .server import ServerThread, create_app

    questions, source = load_questions(gold_path)
    solo_seconds = seconds if solo_seconds is None else solo_seconds
    with tempfile.TemporaryDirectory(prefix="rag-bench-api-") as tmp:
        root = Path(tmp)
        shutil.copytree(settings.corpus_dir, root / "corpus")
        s = settings.with_(corpus_dir=root / "corpus", index_dir=root / "index", data_dir=root / "data",
                           database_url="", api_rate_limit=0, host=HOST)
        service = RagService(s, embeddings=embeddings)
        print(f"API 基准：语料 {settings.corpus_dir}，问题 {len(questions)} 个（{source}）；先建立私有索引……", file=out, flush=True)
        service.ensure_index()
        service.wait_warm(600)
        db = open_database(s)
        users = UserStore(db, s.data_dir, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        for i in range(clients):  # one cadre per client: a user has at most 2 answers in flight
            users.add(f"bench{i}", "cadre", "bench-pass-123")
        store = ApiKeyStore(db)
        keys = [store.add(f"bench{i}", f"client {i}")[1] for i in range(clients)]
        server = ServerThread(create_app(service, s, users, DocumentManager(s), db=db), host=HOST)
        url = server.start()
        try:
            before = service.status().get("version")
            rebuild: dict = {}

            def reindex() -> None:
                t0 = time.monotonic()
                try:
                    rep = service.reindex(rebuild=True, user="bench")
                    rebuild.update(version=rep.version, ok=True)
                except Exception as e:  # noqa: BLE001 - reported in the figures
                    rebuild.update(ok=False, error=f"{type(e).__name__}: {e}")
                rebuild["seconds"] = round(time.monotonic() - t0, 1)

            builder = threading.Thread(target=reindex, name="bench-reindex", daemon=True)
            print(f"阶段一：{clients} 个客户端并发 {seconds:g} 秒，同时全量重建索引……", file=out, flush=True)
            builder.start()
            loaded = _phase(url, keys, questions, seconds, max_requests)
            builder.join()
            print(f"阶段二：1 个客户端单独 {solo_seconds:g} 秒……", file=out, flush=True)
            alone = _phase(url, keys[:1], questions, solo_seconds, max_requests)
        finally:
            server.stop()
            service.close()
            db.dispose()
        rebuild["before"] = before
    rows = [("客户端", "clients"), ("时长（秒）", "seconds"), ("请求数", "requests"), ("错误", "errors"),
            ("p50（毫秒）", "p50_ms"), ("p95（毫秒）", "p95_ms"), ("每秒请求", "rps")]
    print(f"\n{'':<12}{'并发 + 重建索引':>18}{'单个客户端':>14}", file=out)
    for label, key in rows:
        print(f"{label:<12}{loaded[key]!s:>18}{alone[key]!s:>14}", file=out)
    state = f"{rebuild.get('before')} -> {rebuild.get('version')}，用时 {rebuild.get('seconds')} 秒" if rebuild.get("ok") \
        else f"失败：{rebuild.get('error')}"
    print(f"重建索引：{state}（在并发阶段内{'完成' if rebuild.get('seconds', 1e9) <= loaded['seconds'] + 1 else '未完成，等待后才开始阶段二'}）",
          file=out)
    return {"loaded": loaded, "alone": alone, "reindex": rebuild}
