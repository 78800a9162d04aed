"""Places the gazetteer lacks are learned from the indexed articles themselves (new articles are
about invented counties and cities): names written like offices count, verbs before 省/市 do not."""

from __future__ import annotations

from rag.places import PlaceResolver, learn_places, place_core, places_in
from rag.schema import Chunk


def chunk(n: int, text: str, title: str = "", path: tuple[str, ...] = ()) -> Chunk:
    return Chunk(id=f"c{n}", source=f"t{n // 10}.txt", title=title, heading_path=path, text=text, start=0, end=len(text))


CHUNKS = [
    chunk(0, "今年以来,雁栖县政协机关推行“夜学”制度。会议邀请省政协领导出席,落实省委省政府部署。", title="雁栖县政协机关2024年度党建工作总结"),
    chunk(1, "机关开展“书香机关”创建,书香政协建设持续推进,书香氛围浓厚。", title="读书活动见成效"),
    chunk(2, "我们推行“周报表”制度,各科室每周五报送工作进展。", title="交流发言摘登", path=("石鼓市政协秘书长 吴海澄",)),
    chunk(11, "书香市直机关读书会举办12期。", title="读书活动见成效"),
]


def test_office_names_of_the_articles_become_places_and_verbs_do_not() -> None:
    learned = learn_places(CHUNKS)
    assert {"雁栖", "石鼓"} <= set(learned) | {place_core("雁栖县"), place_core("石鼓市")}
    assert place_core("雁栖县政协") == "雁栖" and place_core("石鼓市") == "石鼓"
    for word in ("邀请", "落实", "省委", "书香"):  # "邀请省政协", "落实省委…", "书香市直…": not places
        assert not places_in(word), word
    assert places_in("雁栖县政协和石鼓市政协") == {"雁栖": 1, "石鼓": 1}


def test_a_speaker_block_speaks_for_its_speakers_invented_city() -> None:
    where = PlaceResolver(CHUNKS)
    assert where.of(CHUNKS[2]) == {"石鼓"}  # the heading names the speaker's office
    assert where.of(CHUNKS[0]) == {"雁栖"}  # the title names the office


def test_an_alias_the_articles_never_use_becomes_the_gazetteer_name() -> None:
    from rag.places import resolve_aliases

    known = {"齐鲁"}.__contains__  # the articles say "齐鲁样板": that word keeps its own meaning
    assert resolve_aliases("羊城那家协商部门拿什么打比方？", known) == "广州那家协商部门拿什么打比方？"
    assert resolve_aliases("湘省那套线上平台叫什么", known) == "湖南省那套线上平台叫什么"
    assert resolve_aliases("中原那个省的政协想办成哪几个家", known) == "河南那个省的政协想办成哪几个家"
    assert resolve_aliases("乡村振兴齐鲁样板调研提了多少条建议", known) == "乡村振兴齐鲁样板调研提了多少条建议"
    # inside a gazetteer name, or the place already named: left alone
    for text in ("辽宁省政协机关", "四川省的做法", "黑龙江省直机关", "湖南省和湘省", "内蒙古自治区政协", "各地新做法"):
        assert resolve_aliases(text, known) == text
    assert resolve_aliases("湘省那套平台", lambda w: True) == "湘省那套平台"  # the articles use it
