"""``python -m rag bench --load``: the real page (Gradio behind FastAPI) under load while a reindex
runs, then one client alone; the web layer's own benchmark (``bench_api.py`` does the same for the API).

What it does not do: measure the pipeline's stages (``rag/eval/bench.py``).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import TextIO

from ..config import Settings
from ..eval.bench import BUILTIN_QUESTIONS, _pct

# ---------------------------------------------------------------- load: python -m rag bench --load
def _p(values: list[float], p: float) -> float:
    return _pct(values, p) if values else math.nan  # a phase may have no sample (a reindex over all of it)


def _phase_figures(lat: list[tuple[float, float]], errors: int, window: tuple[float, float] | None) -> dict:
    """Answers, errors and p50/p95 (ms) of (start time, seconds) samples, overall and in ``window``."""
    ms = [d * 1000 for _, d in lat]
    out = {"answers": len(ms), "errors": errors, "p50_ms": _p(ms, 50), "p95_ms": _p(ms, 95)}
    if window is not None:
        a, b = window
        inside = [t <= b and t + d >= a for t, d in lat]  # the ask overlaps the window
        during = [d * 1000 for (_, d), i in zip(lat, inside) if i]
        outside = [d * 1000 for (_, d), i in zip(lat, inside) if not i]
        out.update(reindex_answers=len(during), reindex_p50_ms=_p(during, 50), reindex_p95_ms=_p(during, 95),
                   outside_answers=len(outside), outside_p95_ms=_p(outside, 95))
    return out


MAX_REQUESTS = 100_000  # a bound on every loop besides the clock


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _ask_loop(client, k: int, until: float, lat: list, errs: list) -> None:
    """Ask the built-in questions in turn (from the ``k``-th) until ``until``; (start, seconds) into ``lat``."""
    i = k
    while time.perf_counter() < until and len(lat) < MAX_REQUESTS:
        q = BUILTIN_QUESTIONS[i % len(BUILTIN_QUESTIONS)]
        i += 1
        t0 = time.perf_counter()
        try:
            client.predict(q, [], api_name="/ask")
            lat.append((t0, time.perf_counter() - t0))
        except Exception as e:  # counted, and the loop goes on
            errs.append(repr(e)[:200])


def _flood(port: int, names: list[str], until: float, codes: dict, lock) -> None:
    """Wrong passwords to ``/login`` from 127.0.0.2 until ``until``; status code -> count into ``codes``."""
    import http.client
    import urllib.parse

    n = 0
    while time.perf_counter() < until and n < MAX_REQUESTS:
        n += 1
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=("127.0.0.2", 0))
            conn.request("POST", "/login", body=urllib.parse.urlencode({"username": names[n % len(names)], "password": f"guess-{n}"}),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            code = conn.getresponse().status
            conn.close()
        except OSError:
            code = -1
        with lock:
            codes[code] = codes.get(code, 0) + 1


def _reindex_midway(service, seconds: float, window: dict) -> None:
    # a full rebuild (every passage embedded again) in the serving process, as the admin
    # tab's 重建索引 runs it; through /reindex an unchanged corpus would be a no-op
    time.sleep(seconds / 3)
    _reindex(service, window)


def _reindex(service, window: dict) -> None:
    window["start"] = time.perf_counter()
    try:
        window["ok"] = service.reindex(rebuild=True, user="boss").version is not None
    except Exception as e:
        window["error"] = repr(e)[:200]
    window["end"] = time.perf_counter()


def _serve_copy(settings: Settings, base: Path, askers: int, out: TextIO):
    """The real page over a copy of the corpus in ``base`` on a free port: (settings, service, demo, passwords)."""
    import shutil
    import socket

    from . import page as webapp

    from ..index.documents import DocumentManager
    from ..service import RagService
    from ..auth.users import UserStore

    shutil.copytree(settings.corpus_dir, base / "corpus")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    st = settings.with_(corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data",
                        database_url="", host="127.0.0.1", port=port)  # its own users and database, in the temp folder
    users = UserStore.open(st)
    pw = {n: users.add(n, "cadre") for n in (f"asker{i}" for i in range(askers))}
    service = RagService(st)
    print(f"负载测试：建立索引（{st.corpus_dir.name}，临时目录）…", file=out, flush=True)
    service.ensure_index()
    service.wait_warm(900)
    docs = DocumentManager(st)
    demo = webapp.build_app(service, st, users, docs)
    webapp.launch(demo, st, users, docs, prevent_thread_lock=True, quiet=True)
    return st, service, demo, pw


def _loaded_phase(clients: list, service, port: int, names: list[str], seconds: float, flooders: int):
    """Every client asking, a reindex at a third, a login flood all along: (figures, errors, window)."""
    import threading

    lat2: list = []
    err2: list = []
    codes: dict = {}
    code_lock = threading.Lock()
    until = time.perf_counter() + seconds
    threads = [threading.Thread(target=_ask_loop, args=(c, k, until, lat2, err2), daemon=True)
               for k, c in enumerate(clients)]
    threads += [threading.Thread(target=_flood, args=(port, names, until, codes, code_lock), daemon=True)
                for _ in range(flooders)]
    for t in threads:
        t.start()
    window: dict = {}
    rt = threading.Thread(target=_reindex_midway, args=(service, seconds, window), daemon=True)
    rt.start()
    rt.join(seconds + 600)
    for t in threads:
        t.join(120)
    win = (window.get("start", 0.0), window.get("end", 0.0))
    load = _phase_figures(lat2, len(err2), win)
    load["reindex_s"] = win[1] - win[0]
    load["reindex_ok"] = bool(window.get("ok"))
    load["login_flood"] = dict(sorted(codes.items()))
    return load, err2, window


def _solo_reindex_phase(client, service) -> dict:
    """One asker while a full reindex runs from start to end: what a reindex alone costs an answer."""
    import threading

    lat: list = []
    errs: list = []
    window: dict = {}
    rt = threading.Thread(target=_reindex, args=(service, window), daemon=True)
    rt.start()
    while "start" not in window:
        time.sleep(0.01)
    while rt.is_alive() and len(lat) < MAX_REQUESTS:
        _ask_loop(client, len(lat), time.perf_counter() + 1.0, lat, errs)
    rt.join()
    out = _phase_figures(lat, len(errs), None)
    out["reindex_s"] = window.get("end", 0.0) - window["start"]
    out["reindex_ok"] = bool(window.get("ok"))
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _print_load(out: TextIO, alone: dict, solo: dict, load: dict, window: dict, err2: list, *, askers: int,
                seconds: float, alone_seconds: float, flooders: int) -> dict:
    """The three phases side by side; returns the p95 ratios."""
    rows = [
        ("回答数 answers", alone["answers"], solo["answers"], load["answers"]),
        ("错误 errors", alone["errors"], solo["errors"], load["errors"]),
        ("p50 ms", f"{alone['p50_ms']:.0f}", f"{solo['p50_ms']:.0f}", f"{load['p50_ms']:.0f}"),
        ("p95 ms", f"{alone['p95_ms']:.0f}", f"{solo['p95_ms']:.0f}", f"{load['p95_ms']:.0f}"),
        ("重建索引期间回答数 answers during reindex", "", solo["answers"], load["reindex_answers"]),
        ("重建索引期间 p50 ms", "", f"{solo['p50_ms']:.0f}", f"{load['reindex_p50_ms']:.0f}"),
        ("重建索引期间 p95 ms", "", f"{solo['p95_ms']:.0f}", f"{load['reindex_p95_ms']:.0f}"),
        ("重建索引之外回答数 answers outside reindex", "", "", load["outside_answers"]),
        ("重建索引之外 p95 ms", "", "", f"{load['outside_p95_ms']:.0f}"),
    ]
    heads = (f"1 人单独 ({int(alone_seconds)} s)", f"1 人 + 重建索引 ({solo['reindex_s']:.0f} s)",
             f"{askers} 人并发 ({int(seconds)} s)")
    print(f"\n{'':44}" + "".join(f"{h:>24}" for h in heads), file=out)
    for label, a, b, c in rows:
        print(f"{label:44}{a!s:>24}{b!s:>24}{c!s:>24}", file=out)
    print(f"\n重建索引：单人阶段 {solo['reindex_s']:.1f} s（{'成功' if solo['reindex_ok'] else '失败'}），并发阶段 "
          f"{load['reindex_s']:.1f} s（{'成功' if load['reindex_ok'] else '失败 ' + window.get('error', '')}）；"
          f"登录洪泛（127.0.0.2，{flooders} 线程）：{load['login_flood']}", file=out)
    ratios = {
        "solo_reindex_vs_alone": _ratio(solo["p95_ms"], alone["p95_ms"]),
        "load_reindex_vs_alone": _ratio(load["reindex_p95_ms"], alone["p95_ms"]),
        "load_reindex_vs_load_outside": _ratio(load["reindex_p95_ms"], load["outside_p95_ms"]),
    }
    print(f"p95 比值：1 人重建索引期间 / 1 人单独 = {ratios['solo_reindex_vs_alone']:.2f}；"
          f"{askers} 人重建索引期间 / 1 人单独 = {ratios['load_reindex_vs_alone']:.2f}；"
          f"{askers} 人重建索引期间 / {askers} 人重建索引之外 = {ratios['load_reindex_vs_load_outside']:.2f}"
          f"（目标 ≤ 2；{askers} 人对 1 人的比值在 {_cores()} 核上受排队所限，见 README）", file=out)
    return ratios


def run_load(settings: Settings, out: TextIO, *, seconds: float = 60.0, alone_seconds: float = 20.0,
             askers: int = 8, flooders: int = 4) -> dict:
    """8 signed-in askers for ``seconds`` with a full reindex in the middle and a login flood, vs one asker alone.

    Serves the real page (``rag.web.page.build_app`` + ``launch``, imported here, at run
    time, because this is an entry point like the CLI) on 127.0.0.1 at a free port over a copy of
    the corpus, with the index and users in a temporary folder (argon2 with its real cost). Every
    asker is a ``gradio_client`` signed in as its own cadre and asks the built-in questions in
    turn; a full rebuild starts a third of the way in
    (``RagService.reindex(rebuild=True)`` in the serving process, what the admin tab's button runs); the flood
    posts wrong passwords to ``/login`` from 127.0.0.2 in ``flooders`` threads. Loops are bounded
    by the clock and by a cap on requests. Prints both phases side by side and returns the figures.
    """
    from gradio_client import Client

    tmp = tempfile.TemporaryDirectory(prefix="rag-load-")
    st, service, demo, pw = _serve_copy(settings, Path(tmp.name), askers, out)
    names = list(pw)
    url = f"http://127.0.0.1:{st.port}/"
    try:
        clients = [Client(url, auth=(n, pw[n]), verbose=False) for n in names]
        # phase 1: one asker alone
        lat1: list = []
        err1: list = []
        _ask_loop(clients[0], 0, time.perf_counter() + alone_seconds, lat1, err1)
        alone = _phase_figures(lat1, len(err1), None)
        print(f"单人：{alone['answers']} 次回答，p50 {alone['p50_ms']:.0f} ms，p95 {alone['p95_ms']:.0f} ms", file=out, flush=True)
        # phase 2: the same asker while a full reindex runs
        solo = _solo_reindex_phase(clients[0], service)
        # phase 3: 8 askers, a reindex at a third, a login flood all along
        load, err2, window = _loaded_phase(clients, service, st.port, names, seconds, flooders)
        ratios = _print_load(out, alone, solo, load, window, err2, askers=askers, seconds=seconds,
                             alone_seconds=alone_seconds, flooders=flooders)
        if err2:
            print("错误示例：" + "；".join(err2[:3]), file=out)
        return {"alone": alone, "solo_reindex": solo, "load": load, "p95_ratio": ratios["load_reindex_vs_alone"],
                "ratios": ratios}
    finally:
        demo.close()
        service.close()
        tmp.cleanup()
