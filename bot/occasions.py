"""The occasion of a day, as the title of its daily poem: the festival (除夕, 元宵, 中秋 …) or the
solar term (大雪, 冬至 …) that falls on it, else a title of its season.

Real poems have an occasion; a daily poem "for today" had none. The Chinese calendar comes from
lunar-python (MIT): lunar festivals move every year, and the solar terms by a day or so.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lunar_python import Solar

# The festivals poets wrote for, by the name lunar-python gives them (and ours where it differs).
FESTIVALS = {"春节": "元日", "元宵节": "元宵", "寒食节": "寒食", "清明节": "清明", "端午节": "端午",
             "七夕节": "七夕", "中元节": "中元", "中秋节": "中秋", "重阳节": "重阳", "腊八节": "腊八",
             "除夕": "除夕"}
SOLAR_FESTIVALS = {"1-1": "元日"}     # lunar-python names the solar New Year 元旦; poets wrote 元日 for the lunar one
# Titles poets gave to days without a festival or a term, by season (the term that began it).
SEASON_OF_TERM = {
    "立春": "春", "雨水": "春", "惊蛰": "春", "春分": "春", "清明": "春", "谷雨": "春",
    "立夏": "夏", "小满": "夏", "芒种": "夏", "夏至": "夏", "小暑": "夏", "大暑": "夏",
    "立秋": "秋", "处暑": "秋", "白露": "秋", "秋分": "秋", "寒露": "秋", "霜降": "秋",
    "立冬": "冬", "小雪": "冬", "大雪": "冬", "冬至": "冬", "小寒": "冬", "大寒": "冬",
}
SEASON_TITLES = {
    "春": ("春日", "春晓", "春夜", "春雨", "春晚", "春望", "春兴", "春日山行"),
    "夏": ("夏日", "夏夜", "夏日山居", "夏雨", "纳凉", "夏日闲居", "山亭夏日", "夏夜追凉"),
    "秋": ("秋日", "秋夜", "秋思", "秋兴", "秋望", "秋夕", "秋雨", "秋夜独坐"),
    "冬": ("冬日", "冬夜", "寒夜", "雪夜", "冬景", "岁暮", "冬夜读书", "雪后"),
}


@dataclass(frozen=True)
class Occasion:
    title: str          # the daily poem's title: 冬至, 中秋, 秋夜
    kind: str           # "festival" | "term" | "season"


def occasion_of(day: date) -> Occasion:
    """The day's festival, else its solar term, else a title of its season (one a day, in turn)."""
    solar = Solar.fromYmd(day.year, day.month, day.day)
    lunar = solar.getLunar()
    for name in lunar.getFestivals():
        if name in FESTIVALS:
            return Occasion(FESTIVALS[name], "festival")
    term = lunar.getJieQi()
    if term:
        return Occasion(term, "term")
    season = SEASON_OF_TERM.get(lunar.getPrevJieQi().getName(), "春")
    titles = SEASON_TITLES[season]
    return Occasion(titles[day.toordinal() % len(titles)], "season")
