"""English → Chinese keywords for questions asked in English.

The multilingual embedder matches an English question to Chinese passages, but on its own it
ranks them loosely (cross-language cosines are close together). A small bilingual glossary of
Party-building and CPPCC vocabulary, place names in pinyin, and the Chinese fragments and
figures the question already carries ("the 'Party-building chain linkage' (党建链动) initiative",
"in 2021") give the keyword index and the answerer something to match as well.

Longest phrases are matched first; matching is case-insensitive and on word boundaries.
"""

from __future__ import annotations

import re

# phrase -> Chinese keywords (space-separated alternatives)
GLOSSARY: dict[str, str] = {
    # institutions and roles
    "chinese people's political consultative conference": "政协",
    "cppcc": "政协",
    "political consultative conference": "政协",
    "general office": "办公厅",
    "secretary-general": "秘书长",
    "secretary general": "秘书长",
    "vice chairman": "副主席",
    "chairman": "主席",
    "party secretary": "书记",
    "deputy secretary": "副书记",
    "party group": "党组",
    "party groups": "党组 分党组",
    "leading party group": "党组",
    "party committee": "党委",
    "party committees": "党委",
    "party branch": "党支部",
    "party branches": "党支部",
    "temporary party branch": "临时党支部",
    "temporary party organization": "临时党组织",
    "temporary party organizations": "临时党组织",
    "party organization": "党组织",
    "party organizations": "党组织",
    "party members": "党员",
    "party member": "党员",
    "party building": "党建",
    "party-building": "党建",
    "party": "党",
    "special committees": "专委会 专门委员会",
    "special committee": "专委会 专门委员会",
    "members": "委员",
    "member": "委员",
    "working committee": "工委",
    "working committee for provincial organs": "省直机关工委",
    "provincial organs": "省直机关",
    "provincial departments": "省直部门",
    "provincial departments and units": "省直部门单位",
    "government organs": "机关",
    "organs": "机关",
    "model organ": "模范机关",
    "model organs": "模范机关",
    "policy research office": "政研室",
    "press conference": "新闻发布会",
    # meetings, bodies and goals that questions about these articles name
    "cpc central committee": "党中央", "central committee": "党中央", "party central committee": "党中央",
    "central party and state organs": "中央和国家机关", "central and state organs": "中央和国家机关",
    "provincial party committee": "省委", "municipal party committee": "市委",
    "conference": "会议", "meeting": "会议", "work conference": "工作会议", "symposium": "座谈会",
    "forum": "座谈会 论坛", "full coverage": "全覆盖", "full coverages": "全覆盖",
    "mechanism": "机制", "mechanisms": "机制", "platform": "平台", "platforms": "平台",
    "innovation": "创新", "education": "教育", "theme education": "主题教育", "lecture": "讲堂 讲坛",
    "culture": "文化", "brands": "品牌", "project": "项目", "projects": "项目",
    "problems": "问题", "rectified": "整改", "rectification": "整改", "assessment": "考核 评估",
    "reporter": "记者", "reporters": "记者", "journalist": "记者", "journalists": "记者",
    "media": "媒体", "media outlets": "媒体", "three ones": "三个一", "new and former": "新老",
    "poor households": "贫困家庭 贫困户", "households": "家庭 户", "poor students": "贫困学生",
    "think tank": "智库", "think tanks": "智库", "work method": "工作法", "work methods": "工作法",
    "studio": "工作室",
    "studios": "工作室",
    "member studios": "委员工作室",
    "members' studios": "委员工作室",
    # work
    "duty performance": "履职",
    "duty-performance": "履职",
    "performing duties": "履职",
    "performance of duties": "履职",
    "consultation": "协商",
    "deliberation": "协商 议政",
    "proposal": "提案",
    "proposals": "提案",
    "research": "调研",
    "survey": "调研",
    "inspection": "视察 督查",
    "supervision": "监督",
    "training": "培训",
    "study": "学习",
    "theory": "理论",
    "work style": "作风",
    "discipline": "纪律",
    "integrity": "廉政",
    "volunteer": "志愿服务",
    "volunteers": "志愿服务 志愿者",
    "volunteer service": "志愿服务",
    "poverty alleviation": "脱贫攻坚 扶贫",
    "rural revitalization": "乡村振兴",
    "epidemic": "疫情",
    "pandemic": "疫情",
    "covid": "疫情",
    "high-quality development": "高质量发展",
    "pilot": "试点",
    "pilots": "试点",
    "key enterprises": "重点企业",
    "enterprises": "企业",
    "industrial chain": "产业链",
    "industrial chains": "产业链",
    "flagship": "标志性",
    "major projects": "重大项目",
    "paired": "结对 共建",
    "pairing": "结对 共建",
    "chain linkage": "链动",
    "competition": "竞赛",
    "competitions": "竞赛",
    "labor competition": "劳动竞赛",
    "labour competition": "劳动竞赛",
    "villages": "村",
    "village": "村",
    "communities": "社区",
    "community": "社区",
    "funds": "资金",
    "brand": "品牌",
    "online": "网络 线上 政协云",
    "internet": "互联网",
    "cloud": "云",
    "letters": "信函",
    "reports": "报告",
    "civilized unit": "文明单位",
    "civilization": "文明",
    # places (pinyin)
    "shandong": "山东", "hunan": "湖南", "shanxi": "山西", "shaanxi": "陕西", "jilin": "吉林", "henan": "河南",
    "hebei": "河北", "hubei": "湖北", "guangdong": "广东", "guangzhou": "广州", "chengdu": "成都", "xi'an": "西安",
    "xian": "西安", "inner mongolia": "内蒙古", "changchun": "长春", "jinan": "济南", "qingdao": "青岛",
    "beijing": "北京", "shanghai": "上海", "tianjin": "天津", "chongqing": "重庆", "sichuan": "四川",
    "zhejiang": "浙江", "jiangsu": "江苏", "fujian": "福建", "anhui": "安徽", "jiangxi": "江西", "yunnan": "云南",
    "guizhou": "贵州", "gansu": "甘肃", "liaoning": "辽宁", "heilongjiang": "黑龙江", "hainan": "海南",
    "guangxi": "广西", "ningxia": "宁夏", "xinjiang": "新疆", "tibet": "西藏", "qinghai": "青海",
    "changsha": "长沙", "yellow river": "黄河",
}
_PHRASES = sorted(GLOSSARY, key=len, reverse=True)
_RE = re.compile(r"(?<![a-z])(?:" + "|".join(re.escape(p) for p in _PHRASES) + r")(?![a-z])", re.I)
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
_NUMBER = re.compile(r"\b(?:19|20)\d{2}\b|\b\d+(?:\.\d+)?\b")


def chinese_keywords(question: str, *, alternatives: bool = True) -> str:
    """Chinese keywords for an English question: glossary terms, Chinese fragments, figures.

    With ``alternatives=False`` each phrase gives only its first rendering (for scoring
    sentences, where every keyword counts as one the answer should contain).

    >>> chinese_keywords("How many Party branches did the Hunan CPPCC set up in 2021?")
    '党支部 湖南 政协 2021'
    """
    out: list[str] = []
    # "poverty-alleviation" is looked up as written and as "poverty alleviation"
    for text in dict.fromkeys((question, question.replace("-", " "))):
        for m in _RE.finditer(text):
            renderings = GLOSSARY[m.group(0).lower()].split()
            out.extend(renderings if alternatives else renderings[:1])
    out.extend(_CJK_RUN.findall(question))
    out.extend(_NUMBER.findall(question))
    return " ".join(dict.fromkeys(out))
