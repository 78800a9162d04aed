"""Chinese text helpers shared by indexing and answering: tokens, normalisation, numbers.

Tokens come from rjieba's search mode (words and their sub-words), lower-cased, without
punctuation, white space and function words. Used for the BM25 keyword index (built once, at
index time) and for sentence scoring.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import rjieba

_PUNCT_RE = re.compile(r"[\s\u3000“”‘’\"'「」『』《》〈〉()（）\[\]【】,，。.、;；:：!！?？—\-…·/／+]")
_TOKEN_OK = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)

# function words and question words that carry no topic
STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 等 都 也 就 又 还 并 而 则 之 其 这 那 这个 那个 这些 那些 它 他 她 他们 我们 你们 您
    有 没有 有没有 吗 呢 吧 啊 么 什么 哪些 哪个 哪里 哪儿 哪 怎么 怎样 怎么样 如何 为什么 多少 几 几个 是否 是不是 请问 请
    一下 一些 一个 一种 这种 那种 个 上 下 中 里 对 把 被 给 让 向 从 到 为 以 于 将 能 会 要 可以 没 不 很 最 更 具体 具体情况
    到底 分别 都是 叫 叫做 说 讲 提 提到 提出 提了 觉得 认为 听说 那篇 这篇 里面 方面 时候 时 后来 以前 现在 目前 如今
    啥 咋 呀 哦 嘛 the a an of to in and or for on is are was were what which who how when where why did do does""".split()
)

CN_DIGITS = "零〇一二两三四五六七八九十百千万亿"
NUMBER_RE = re.compile(r"[零〇一二两三四五六七八九十百千]+分之[零〇一二两三四五六七八九十百千点]+|[0-9０-９]+(?:[.,][0-9]+)?|[零〇一二两三四五六七八九十百千万亿]{2,}|[一二两三四五六七八九十]+(?=[个项条次名位家期件篇年月日])")
YEAR_RE = re.compile(r"(?:19|20)\d{2}\s*年|[一二三四五六七八九十]+月|\d{1,2}月\d{1,2}日|\d{1,2}月")


@lru_cache(maxsize=32768)
def norm(s: str) -> str:
    """NFKC without punctuation and white space (the scorer's notion of equal text). Kept for the
    last 32768 texts: answering one question normalises the same terms and sentences ~1500 times."""
    return _PUNCT_RE.sub("", unicodedata.normalize("NFKC", s or ""))


@lru_cache(maxsize=4096)
def _cut(text: str) -> tuple[str, ...]:
    return tuple(rjieba.cut_for_search(text))


def tokenize(text: str) -> list[str]:
    """Search-mode tokens without punctuation and stop words.

    >>> tokenize("山东省政协机关有没有品牌党支部？")
    ['山东', '山东省', '政协', '机关', '品牌', '支部', '党支部']
    """
    out = []
    for tok in _cut(unicodedata.normalize("NFKC", text)):
        t = tok.strip().lower()
        if not t or not _TOKEN_OK.search(t) or t in STOPWORDS:
            continue
        out.append(t)
    return out


def is_mostly_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if c.isascii())
    return latin / len(letters) > 0.6


def cjk_bigrams(text: str) -> set[str]:
    t = norm(text)
    return {t[i : i + 2] for i in range(len(t) - 1)}
