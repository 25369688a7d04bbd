"""The reading aid with the real CC-CEDICT file: readings in context, short glosses, one message."""
from __future__ import annotations

import pytest

from reading.gloss import CREDIT, CREDIT_ZH, dictionary, gloss, render

TELEGRAM_MESSAGE_CHARS = 4096


def words(line: str) -> list[tuple[str, str]]:
    return [(w.text, w.pinyin) for w in gloss([line]).lines[0]]


@pytest.mark.parametrize("line, word, reading", [
    ("长安一片月", "长安", "cháng ān"),
    ("少年长大", "长大", "zhǎng dà"),
    ("明月几时还", "还", "huán"),
    ("还家", "还", "huán"),
    ("白日依山尽", "尽", "jìn"),
    ("还是春风", "还是", "hái shì"),
])
def test_polyphonic_characters_read_as_their_context_asks(line, word, reading):
    assert (word, reading) in words(line)


def test_words_are_found_by_longest_match_and_glossed_briefly():
    row = gloss(["床前明月光"]).lines[0]
    assert [w.text for w in row] == ["床", "前", "明月", "光"]
    moon = row[2]
    assert moon.pinyin == "míng yuè" and moon.gloss.startswith("bright moon")
    assert all(len(part) <= 36 for w in row for part in (w.gloss or "").split("; "))
    assert all(w.gloss.count(";") <= 1 for w in row)


def test_single_characters_prefer_senses_marked_literary():
    # 俱: "entirely / without exception / (literary) to be together" — verse means the last.
    assert gloss(["俱"]).lines[0][0].gloss.startswith("to be together")


def test_a_qilv_fits_one_message_in_both_languages():
    poem = ["昔人已乘黄鹤去", "此地空余黄鹤楼", "黄鹤一去不复返", "白云千载空悠悠",
            "晴川历历汉阳树", "芳草萋萋鹦鹉洲", "日暮乡关何处是", "烟波江上使人愁"]
    g = gloss(poem)
    for english in (False, True):
        text = render(g, english=english)
        assert len(text) < TELEGRAM_MESSAGE_CHARS
        assert text.endswith(CREDIT if english else CREDIT_ZH)
    glossed, total = g.coverage()
    assert total == 56 and glossed >= 54


def test_chinese_layout_puts_the_reading_under_the_line():
    text = render(gloss(["春风又绿江南岸"]))
    lines = text.splitlines()
    assert lines[0] == "春风又绿江南岸" and lines[1].startswith("chūn fēng")


def test_cli_glosses_pasted_text():
    from typer.testing import CliRunner

    from poembot_cli import app

    result = CliRunner().invoke(app, ["gloss", "白日依山尽，黄河入海流。", "--english"])
    assert result.exit_code == 0, result.output
    assert "黄河 huáng hé — Yellow River" in result.output and CREDIT in result.output


def test_old_variant_spellings_are_glossed_as_their_standard_form():
    row = gloss(["疎影鴈"]).lines[0]
    assert [w.gloss.split(":")[0] for w in row if w.text in "疎鴈"] == ["= 疏", "= 雁"]


def test_common_words_come_before_names_of_the_same_reading():
    assert gloss(["水清"]).lines[0][-1].gloss.startswith("clear")       # not the Qing dynasty


def test_a_traditional_poem_reads_as_its_simplified_form():
    # The verse tables are simplified: 還 reads as 还 (huán, not pypinyin's hái), 長江 as 长江.
    poem = ["朝辭白帝彩雲間", "千里江陵一日還", "兩岸猿聲啼不住", "輕舟已過萬重山"]
    g = gloss(poem)
    assert [(w.text, w.pinyin) for w in g.lines[0]][0] == ("朝", "zhāo")
    assert ("還", "huán") in [(w.text, w.pinyin) for w in g.lines[1]]
    assert ("重", "chóng") in [(w.text, w.pinyin) for w in g.lines[3]]
    assert "".join(w.text for w in g.lines[2]) == poem[2]          # shown as written
    assert ("長江", "cháng jiāng") in words("唯見長江天際流")
