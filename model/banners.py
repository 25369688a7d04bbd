"""横批: the four-character banner above a 春联, chosen from the ones people hang.

A 横批 sums the pair up in a set phrase; writing one freely reads as made up, so it is chosen
here from familiar ones by the characters (and word classes) it shares with the couplet and its
theme words, ties broken by the request's seed.
"""
from __future__ import annotations

import random

from model.word_classes import class_of

BANNERS: tuple[str, ...] = (
    "春回大地", "万象更新", "五福临门", "吉星高照", "国泰民安", "辞旧迎新", "春满人间", "福满人间",
    "鸟语花香", "山河锦绣", "一元复始", "喜气盈门", "春意盎然", "岁岁平安", "四季长春", "花开富贵",
    "和顺满门", "政通人和", "年年有余", "大地回春", "春光明媚", "瑞气盈门", "家和业兴", "迎春接福",
    "紫气东来", "人寿年丰", "风调雨顺", "普天同庆", "福星高照", "春和景明", "竹报平安", "江山如画",
    "瑞雪兆丰", "燕舞莺歌", "梅开五福", "春风得意", "月朗风清", "山高水长", "琴韵书声", "书香门第",
    "天道酬勤", "宁静致远", "海阔天空", "云水禅心", "清风明月", "春华秋实", "花好月圆", "万事如意",
)


def choose_banner(lines: list[str], theme: list[str] | None = None, seed: int = 0) -> str:
    """The banner sharing most with lines and theme: a shared character counts 2, a shared word
    class 1 (梅 in the couplet and 花 in 鸟语花香)."""
    text = "".join(lines) + "".join(theme or [])
    chars = set(text)
    classes = {k for c in text if (k := class_of(c))}

    def score(banner: str) -> int:
        return sum(2 if c in chars else (1 if class_of(c) in classes else 0) for c in banner)

    best = max(score(b) for b in BANNERS)
    choices = [b for b in BANNERS if score(b) == best]
    return random.Random(seed).choice(choices)
