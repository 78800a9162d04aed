"""The structure parser on the real corpus: speakers, rejoined lines, displaced leads, spans."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.ingest.loaders import load_file, read_metadata
from rag.schema import Block, SourceText
from rag.ingest.structure import ends_sentence, parse_blocks

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
FILES = sorted(p.name for p in CORPUS.glob("*.txt"))
NUMBERED = re.compile(r"^(?:[一二三四五六七八九十]{1,3}、|[（(][一二三四五六七八九十]{1,3}[)）])")
STRUCTURAL = {"title", "subtitle", "byline", "caption", "heading", "speaker", "note_label"}

SPEAKERS_001 = [
    "山西省政协秘书长 张岐云",
    "内蒙古自治区政协秘书长 狄瑞明",
    "河南省政协秘书长 汪中山",
    "西安市政协秘书长 庞阿平",
    "吉林省政协秘书长 郭树峰",
    "山东省政协秘书长 刘永巨",
    "广州市政协秘书长 黄洁峰",
    "湖南省政协秘书长 卿渐伟",
    "成都市政协秘书长 景民",
]


def load(name: str) -> SourceText:
    return load_file(CORPUS / name, meta=read_metadata(CORPUS).get(name))


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[SourceText, list[Block]]]:
    out = {}
    for name in FILES:
        doc = load(name)
        out[name] = (doc, parse_blocks(doc))
    return out


def blocks_of(parsed, prefix: str) -> tuple[SourceText, list[Block]]:
    [name] = [n for n in parsed if n.startswith(prefix)]
    return parsed[name]


def containing(blocks: list[Block], needle: str) -> list[Block]:
    return [b for b in blocks if needle in b.text]


def test_nine_speaker_blocks_of_the_meeting_digest(parsed) -> None:
    _, blocks = blocks_of(parsed, "001_")
    speakers = [b.text for b in blocks if b.kind == "speaker"]
    assert speakers == SPEAKERS_001


@pytest.mark.parametrize(
    "speaker, passage",
    [
        ("山西省政协秘书长 张岐云", "山西省政协办公厅深入学习贯彻"),
        ("山西省政协秘书长 张岐云", "建立完善三项统筹协调机制"),  # under a "三、" heading of that speech
        ("湖南省政协秘书长 卿渐伟", "通过政协云,省政协重点协商活动都可以开展远程协商"),
        ("山东省政协秘书长 刘永巨", "简称“一抓双创”"),
        ("吉林省政协秘书长 郭树峰", "二是助力东北地区西部生态经济带建设"),
    ],
)
def test_body_under_a_speaker_carries_the_speaker(parsed, speaker: str, passage: str) -> None:
    _, blocks = blocks_of(parsed, "001_")
    [b] = containing(blocks, passage)
    assert b.kind == "body"
    assert speaker in b.heading_path
    # and only that speaker: a speech never inherits the previous one
    assert [p for p in b.heading_path if p in SPEAKERS_001] == [speaker]


def test_each_speakers_section_heading_comes_before_the_speaker(parsed) -> None:
    _, blocks = blocks_of(parsed, "001_")
    [b] = containing(blocks, "人民群众上了网,民意也就上了网")
    assert b.heading_path[:2] == ("以“互联网+政协”赋能专门协商机构建设", "湖南省政协秘书长 卿渐伟")


@pytest.mark.parametrize(
    "prefix, joined, first_line_end",
    [
        ("001_", "二是提升协商议政质效", "二是提升"),
        ("000_", "对办公区外围和院内进行绿化", "对办公区外围"),
    ],
)
def test_lines_broken_mid_sentence_are_rejoined(parsed, prefix: str, joined: str, first_line_end: str) -> None:
    doc, blocks = blocks_of(parsed, prefix)
    # the source really has the break (else this test proves nothing)
    assert f"{first_line_end}\n" in doc.text and joined not in doc.text
    [b] = containing(blocks, joined)
    assert b.kind == "body"
    assert "\n" not in b.text


def test_rejoined_block_keeps_whole_paragraph_of_001(parsed) -> None:
    _, blocks = blocks_of(parsed, "001_")
    [b] = containing(blocks, "二是提升协商议政质效")
    assert b.text.startswith("聚焦“三个提升”当好参谋助手。")
    assert b.text.endswith("寓凝聚共识于经常性工作中。")


@pytest.mark.parametrize(
    "prefix, line, kind",
    [
        ("000_", "记者 崔 岩 季海明 于芊文", "byline"),
        ("000_", "省政协秘书长、机关党组书记刘永巨参加“协力暖童”公益活动。(山东省政协供图)", "caption"),
        ("000_", "强化党建引领 打造履责工作“主引擎”", "heading"),
        ("002_", "记者 修伟华 王红 李和晴", "byline"),
        ("002_", "通讯员 王明杰 段红岗", "byline"),
        ("001_", "一、筑牢政治机关之魂,确保政治坚定“过得硬”", "heading"),
        ("003_", "(山东省人民政府新闻办公室)", "byline"),
    ],
)
def test_headings_bylines_captions_stand_alone(parsed, prefix: str, line: str, kind: str) -> None:
    doc, blocks = blocks_of(parsed, prefix)
    assert line in doc.text
    found = [b for b in blocks if line in b.text]
    assert [b for b in found if b.kind == kind and b.text == line], f"no {kind} block {line!r}"
    others = [b for b in found if not (b.kind == kind and b.text == line)]
    if NUMBERED.match(line):
        # a numbered heading may also open its section's text, but only at the very start
        assert all(b.kind == "body" and b.text.startswith(line) for b in others), others
    else:
        assert others == []


def test_no_content_block_swallows_a_structural_line(parsed) -> None:
    """A body/answer/lead block's source span never covers a heading, by-line or caption line."""
    for name, (doc, blocks) in parsed.items():
        structural = [b for b in blocks if b.kind in STRUCTURAL]
        for b in blocks:
            if b.kind in STRUCTURAL:
                continue
            covered = set(b.offsets)
            for s in structural:
                shared = covered & set(s.offsets)
                if not shared:
                    continue
                # allowed: a numbered heading ("一、…", "（一）…") repeated as the start of its own text
                assert s.kind == "heading" and NUMBERED.match(s.text), f"{name}: {b.text[:30]!r} glued to {s.kind} {s.text!r}"
                assert b.text.startswith(s.text) and b.offsets[: len(s.text)] == s.offsets, (
                    f"{name}: heading {s.text!r} inside {b.text[:40]!r}"
                )


def test_displaced_lead_is_moved_out_of_the_sentence(parsed) -> None:
    doc, blocks = blocks_of(parsed, "002_")
    assert "工作大局\n\n今年是全面建成小康社会" in doc.text  # the layout damage is in the source
    [b] = containing(blocks, "省政府工作大局的切入点")
    assert "今年是全面建成小康社会" not in b.text
    assert "找准服务省委、省政府工作大局的切入点、结合点了吗?" in b.text
    [lead] = containing(blocks, "今年是全面建成小康社会")
    assert lead is not b
    assert lead.kind == "lead"
    assert lead.text.startswith("今年是全面建成小康社会")
    assert "切入点" not in lead.text


@pytest.mark.parametrize(
    "prefix, passage, answerer",
    [
        ("000_", "“一抓双创”是我们目前正在全力打造的机关建设品牌", "刘永巨"),
        ("000_", "三是加强组织保障。建立9个专门委员会分党组", "刘永巨"),  # body after the answer line
        ("002_", "当前,机关党的建设迎来了很好的发展机遇", "石光亮"),
        ("002_", "第三,聚焦服务全省工作大局重点攻坚", "石光亮"),
    ],
)
def test_interview_answers_carry_the_answerer(parsed, prefix: str, passage: str, answerer: str) -> None:
    _, blocks = blocks_of(parsed, prefix)
    [b] = containing(blocks, passage)
    assert b.kind in {"answer", "body"}
    assert b.heading_path and b.heading_path[-1] == answerer


def test_interview_questions_are_questions_without_the_outlet_label(parsed) -> None:
    _, blocks = blocks_of(parsed, "000_")
    [q] = containing(blocks, "省政协机关又是如何推进履责工作的?")
    assert q.kind == "question"
    assert q.text.startswith("在“一抓双创”的同时")  # "齐鲁晚报·齐鲁壹点:" is not part of it
    assert "刘永巨" not in q.heading_path


@pytest.mark.parametrize("name", FILES)
def test_offsets_map_every_char_back_to_the_source(parsed, name: str) -> None:
    doc, blocks = parsed[name]
    assert blocks
    for b in blocks:
        assert len(b.offsets) == len(b.text)
        assert b.start == b.offsets[0] and b.end == b.offsets[-1] + 1
        assert list(b.offsets) == sorted(b.offsets) or b.kind != "lead"
        for i, (ch, off) in enumerate(zip(b.text, b.offsets)):
            if b.kind == "heading" and ch == " " and doc.text[off] != " ":
                # the joining space of two heading lines merged into one heading
                assert doc.text[b.offsets[i + 1] - 1] in "\n "
                continue
            assert doc.text[off] == ch, f"{name}: block {b.text[:20]!r} char {i}"


@pytest.mark.parametrize("name", FILES)
def test_cleaning_drops_only_speaker_labels(parsed, name: str) -> None:
    """Every non-space source char is in some block, except "label:" prefixes of interviews
    ("齐鲁晚报·齐鲁壹点:", "刘永巨:"), which move into the block's kind and heading path."""
    doc, blocks = parsed[name]
    covered = {o for b in blocks for o in b.offsets}
    runs, cur = [], ""
    for i, ch in enumerate(doc.text):
        if not ch.isspace() and i not in covered:
            cur += ch
        elif cur:
            runs.append(cur)
            cur = ""
    runs.append(cur)
    lost = [r for r in runs if r]
    assert all(len(r) <= 17 and r[-1] in ":：" for r in lost), lost


def test_ends_sentence_allows_closing_quotes() -> None:
    assert ends_sentence("他说:“好。”")
    assert ends_sentence("是吗?")
    assert not ends_sentence("二是提升")
    assert not ends_sentence("“三个提升”")


def test_synthetic_article_with_markdown_heading_and_broken_line() -> None:
    text = "# 标题一\n\n第一段的前半句,\n后半句。\n\n## 小节\n\n记者 张三\n\n正文。"
    doc = SourceText("t.md", text, "0", "md", {})
    blocks = parse_blocks(doc)
    kinds = [(b.kind, b.text) for b in blocks]
    assert ("body", "第一段的前半句,后半句。") in kinds
    assert ("byline", "记者 张三") in kinds
    [body] = [b for b in blocks if b.text == "正文。"]
    assert body.heading_path[-1] == "小节"
