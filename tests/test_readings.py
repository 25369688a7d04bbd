"""Readings a teacher would accept (issue 24): the poem's rhyme and 平仄 choose among a polyphonic
character's readings, then context rules and words of verse; measured on famous lines of the canon
(tests/data/readings.tsv) and on the misreadings the issue names."""
from __future__ import annotations

from pathlib import Path

import pytest

from reading import meter
from reading.context import RULES, context_reading
from reading.gloss import gloss
from reading.lexicon import segment
from reading.polyphones import table

DATA = Path(__file__).parent / "data" / "readings.tsv"
HELD_OUT = Path(__file__).parent / "data" / "readings_heldout.tsv"
TARGET_ACCURACY = 0.97


def canon(path: Path = DATA) -> list[tuple[str, str, list[str], list[list[tuple[str, str]]]]]:
    """(title, poet, lines, per line the (char, reading) pairs) of each poem in a test set."""
    poems: list[tuple[str, str, list[str], list[list[tuple[str, str]]]]] = []
    for row in path.read_text(encoding="utf-8").splitlines():
        if row.startswith("#") or not row.strip():
            continue
        title, poet, line, gold = row.split("\t")
        pairs = [tuple(item.split("=")) for item in gold.split(" ")] if gold != "-" else []
        if not poems or poems[-1][:2] != (title, poet):
            poems.append((title, poet, [], []))
        poems[-1][2].append(line)
        poems[-1][3].append(pairs)
    return poems


def chars_and_readings(lines: list[str]) -> list[list[tuple[str, str]]]:
    """Per line, each character with the reading the aid shows for it."""
    out = []
    for row in gloss(lines).lines:
        pairs = []
        for w in row:
            pairs += list(zip(w.text, w.pinyin.split(" ")))
        out.append(pairs)
    return out


def accepted(shown: str, gold: str) -> bool:
    """A reading textbooks disagree on accepts either of its forms, shown alone or as the pair."""
    return shown == gold or shown in gold.split("/") or gold in shown.split("/")


def score(path: Path = DATA) -> tuple[int, int, list[str]]:
    """(right, total, misses) over every annotated polyphone of a test set."""
    right = total = 0
    misses = []
    for title, poet, lines, golds in canon(path):
        for line, gold, shown in zip(lines, golds, chars_and_readings(lines)):
            polys = [(c, r) for c, r in shown if c in table()]
            for (c, r), (gc, gr) in zip(polys, gold):
                total += 1
                if accepted(r, gr):
                    right += 1
                else:
                    misses.append(f"{title}({poet}) {line}: {c} {r}, textbook {gr}")
    return right, total, misses


def test_the_set_is_large_and_annotates_every_polyphone_of_each_line():
    poems = canon()
    assert sum(len(p[2]) for p in poems) >= 150
    for title, poet, lines, golds in poems:
        assert title and poet
        for line, gold in zip(lines, golds):
            assert [c for c in line if c in table()] == [c for c, _ in gold], line
            for c, r in gold:
                assert all(table()[c].find(x) for x in r.split("/")), f"{line}: {c}={r} is not in the table"


def test_textbook_readings_of_the_canon():
    right, total, misses = score()
    assert total >= 250
    assert right / total >= TARGET_ACCURACY, "\n".join(misses)


def test_lines_the_rules_were_not_tuned_on():
    # Written in two batches after the rules were fitted to readings.tsv and measured at first
    # sight: 32/37 and 74/83 (88.3% of 120), against 71.7% for the previous aid. The general fixes
    # each batch prompted (九曲, 何曾, 饮君酒, a 七言 first line rhymes; 曲 a bend by default, the
    # 平平仄平仄 特拗, 兴来, 谁省) raise it; the bar stays near the first-sight figure.
    right, total, misses = score(HELD_OUT)
    assert total >= 100
    assert right / total >= 0.9, "\n".join(misses)


# The misreadings issue 24 names, each read wrong by the aid before it: (poem, character, its
# position in the poem as line and column, the textbook reading).
EARLY_DEPARTURE = ["朝辞白帝彩云间", "千里江陵一日还", "两岸猿声啼不住", "轻舟已过万重山"]
SEEING_OFF = ["故人西辞黄鹤楼", "烟花三月下扬州", "孤帆远影碧空尽", "唯见长江天际流"]
ISSUE_MISREADINGS = [
    (EARLY_DEPARTURE, 0, 0, "zhāo"),
    (EARLY_DEPARTURE, 3, 5, "chóng"),
    (SEEING_OFF, 3, 2, "cháng"),
    (["但愿长醉不复醒"], 0, 2, "cháng"),
    (["两个黄鹂鸣翠柳", "一行白鹭上青天", "窗含西岭千秋雪", "门泊东吴万里船"], 1, 1, "háng"),
    (["独在异乡为异客", "每逢佳节倍思亲", "遥知兄弟登高处", "遍插茱萸少一人"], 0, 4, "wéi"),
    (["慈母手中线", "游子身上衣", "临行密密缝", "意恐迟迟归", "谁言寸草心", "报得三春晖"], 2, 4, "féng"),
    (["烟笼寒水月笼沙", "夜泊秦淮近酒家", "商女不知亡国恨", "隔江犹唱后庭花"], 0, 1, "lǒng"),
    (["烟笼寒水月笼沙", "夜泊秦淮近酒家", "商女不知亡国恨", "隔江犹唱后庭花"], 0, 5, "lǒng"),
    (["空山不见人", "但闻人语响", "返景入深林", "复照青苔上"], 2, 1, "yǐng"),
    (["秦时明月汉时关", "万里长征人未还", "但使龙城飞将在", "不教胡马度阴山"], 2, 5, "jiàng"),
    (["碧玉妆成一树高", "万条垂下绿丝绦", "不知细叶谁裁出", "二月春风似剪刀"], 3, 4, "sì"),
]


@pytest.mark.parametrize("poem, line, col, reading", ISSUE_MISREADINGS,
                         ids=[f"{p[l][c]}@{p[l]}" for p, l, c, _ in ISSUE_MISREADINGS])
def test_the_misreadings_of_issue_24_are_fixed(poem, line, col, reading):
    shown = chars_and_readings(poem)[line][col]
    assert shown == (poem[line][col], reading)


def test_the_meter_reads_the_same_character_by_its_slot():
    # 重 in a 平 slot (万重山, the 6th of a 七言 line) and in a 仄 slot (花重, the 2nd of 五言).
    spring_rain = ["好雨知时节", "当春乃发生", "随风潜入夜", "润物细无声",
                   "野径云俱黑", "江船火独明", "晓看红湿处", "花重锦官城"]
    assert chars_and_readings(spring_rain)[7][1] == ("重", "zhòng")
    assert chars_and_readings(EARLY_DEPARTURE)[3][5] == ("重", "chóng")
    m = meter.analyse(spring_rain, skip=table().keys())
    assert m is not None and m.slots[7][1] == "仄" and m.fit >= 0.8


def test_without_the_poem_a_line_falls_back_on_words_and_rules():
    # The same line alone (a /similar excerpt, a pasted line) is not a regular poem: no meter.
    assert meter.analyse(["轻舟已过万重山"]) is None
    assert chars_and_readings(["轻舟已过万重山"])[0][5] == ("重", "chóng")     # 万重: layers
    assert chars_and_readings(["朝辞白帝彩云间"])[0][0] == ("朝", "zhāo")


def test_a_rhyme_slot_takes_the_reading_of_the_poem_s_rhyme_group():
    # 行 after 柳 (a row of willows, or going among them) has no context rule: the rhyme decides.
    yang = ["江南三月暖", "春水绕池塘", "日晚归来处", "千门柳一行"]      # 阳 rhymes: háng
    geng = ["江南三月暖", "春水绕池清", "日晚归来处", "千门柳一行"]      # 庚 rhymes: xíng
    assert chars_and_readings(yang)[3][4] == ("行", "háng")
    assert chars_and_readings(geng)[3][4] == ("行", "xíng")


def test_readings_textbooks_disagree_on_are_shown_both_ways():
    mountain = ["远上寒山石径斜", "白云生处有人家", "停车坐爱枫林晚", "霜叶红于二月花"]
    assert chars_and_readings(mountain)[0][6] == ("斜", "xié/xiá")
    home = ["少小离家老大回", "乡音无改鬓毛衰", "儿童相见不相识", "笑问客从何处来"]
    assert chars_and_readings(home)[1][6] == ("衰", "shuāi/cuī")
    # Away from a rhyme 斜 is plain xié.
    assert chars_and_readings(["斜风细雨不须归"])[0][0] == ("斜", "xié")


def test_the_english_sense_follows_the_reading():
    row = gloss(EARLY_DEPARTURE).lines
    zhao = next(w for w in row[0] if w.text == "朝")
    assert zhao.pinyin == "zhāo" and zhao.gloss.startswith("morning")
    chong = next(w for w in row[3] if "重" in w.text)
    assert "chóng" in chong.pinyin and ("layer" in chong.gloss or "again" in chong.gloss)
    jing = next(w for w in gloss(["空山不见人", "但闻人语响", "返景入深林", "复照青苔上"]).lines[2]
                if w.text == "景")
    assert jing.pinyin == "yǐng" and "shadow" in jing.gloss


def test_words_of_verse_keep_modern_compounds_from_taking_characters():
    words = {"见长", "长江", "天际", "但愿", "愿长"}
    assert segment("唯见长江天际流", words) == ["唯", "见", "长江", "天际", "流"]
    assert segment("但愿长醉不复醒", words)[:2] == ["但愿", "长"]


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.char}:{r.why.split(':')[0]}" for r in RULES])
def test_each_context_rule_reads_its_own_example(rule):
    # Each rule's note starts with an example of what it reads; the example must read so.
    example = rule.why.split(":")[0].split(",")[0].strip()
    i = example.index(rule.char)
    assert rule.matches(example, i)
    assert context_reading(example, i) == rule.reading


def test_every_rule_reading_is_in_the_table():
    for rule in RULES:
        assert rule.char in table() and table()[rule.char].find(rule.reading), rule


def test_the_tables_ship_with_the_package():
    # The bot's image installs poembot without its source tree: reading/data must be package data.
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "data/*" in pyproject["tool"]["setuptools"]["package-data"]["reading"]
    for name in ("polyphones.tsv", "meter.tsv", "lexicon.tsv"):
        assert (Path(__file__).parent.parent / "reading" / "data" / name).stat().st_size < 300_000
