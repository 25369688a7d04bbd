"""Titles and the day's occasion (issue 21): how a title is cleaned and encoded, how the bot reads
one, and the title the daily poem gets for its day."""
from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from bot.daily import daily_job
from bot.occasions import occasion_of
from bot.parsing import parse_poem_args, spec_fields
from protocol.spec import SpecError, from_wire, parse_spec, require
from worker.request import unpack_spec
from model.titles import clean_title, encode_title
from verse.vocab import PAD, Vocab


@pytest.mark.parametrize("raw, clean", [
    ("湖上口号三首  其一", "湖上口号"),
    ("送沈商卿知府入觐二首  其二", "送沈商卿知府入觐"),
    ("赠汪伦（一作）", "赠汪伦"),
    ("秋夜", "秋夜"),
    ("锦钱余笑  其一一", "锦钱余笑"),
])
def test_clean_title_drops_series_numbers_counts_and_notes(raw: str, clean: str) -> None:
    assert clean_title(raw) == clean


def test_encode_title_keeps_known_characters_and_pads() -> None:
    vocab = Vocab.build(["送友人归江南秋夜"], min_count=1)
    ids = encode_title("送友人归江南二首  其一", vocab, length=8)
    assert ids.shape == (8,) and ids.dtype == np.int32
    assert [vocab.chars[i] for i in ids if i != PAD] == list("送友人归江南")
    assert list(encode_title("龘龘", vocab, length=4)) == [PAD] * 4      # unknown characters drop


def test_theme_words_become_the_title() -> None:
    request = parse_poem_args("五律 送友人归江南")
    assert (request.title, request.keywords, request.form) == ("送友人归江南", [], "五律")
    request = parse_poem_args("秋夜 明月")
    assert (request.title, request.keywords) == ("秋夜明月", ["秋夜", "明月"])
    request = parse_poem_args("题:江南春 明月")
    assert (request.title, request.keywords) == ("江南春", ["明月"])
    request = parse_poem_args("题目: 登高")
    assert (request.title, request.keywords) == ("登高", [])
    assert parse_poem_args("藏头 春夏秋冬").title == ""
    with pytest.raises(SpecError) as err:
        require(parse_spec(spec_fields(parse_poem_args("题:" + "春" * 25), "七绝")))
    assert err.value.key == "title_too_long"


@pytest.mark.parametrize("day, title, kind", [
    (date(2026, 12, 7), "大雪", "term"),
    (date(2026, 12, 22), "冬至", "term"),
    (date(2027, 2, 5), "除夕", "festival"),       # the Spring Festival of 2027 is 6 February
    (date(2027, 2, 6), "元日", "festival"),
    (date(2027, 2, 20), "元宵", "festival"),
    (date(2027, 9, 15), "中秋", "festival"),
])
def test_a_day_has_its_occasion(day: date, title: str, kind: str) -> None:
    assert occasion_of(day).title == title and occasion_of(day).kind == kind


def test_an_ordinary_day_gets_a_title_of_its_season() -> None:
    winter = {occasion_of(date(2026, 12, d)).title for d in range(8, 21)}
    assert winter and all(t and "春" not in t and "夏" not in t for t in winter)
    assert occasion_of(date(2026, 7, 10)).kind == "season" and "夏" in "".join(
        occasion_of(date(2026, 7, d)).title for d in range(8, 20))


def test_the_daily_poem_is_written_to_its_day() -> None:
    job = daily_job(date(2026, 12, 22))
    assert from_wire(job.spec).title == "冬至" and unpack_spec(job).title == "冬至"


def test_writable_mask_keeps_placeholders_and_japanese_forms_out() -> None:
    vocab = Vocab.build(["□发髪岁歳予欠山水"], min_count=1)
    writable = dict(zip(vocab.chars, vocab.writable_mask()))
    assert not writable["□"] and not writable["髪"] and not writable["歳"]
    assert writable["发"] and writable["岁"] and writable["予"] and writable["欠"] and writable["山"]
