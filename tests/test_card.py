"""Poem cards: the fonts `poembot font fetch` brings, every vocabulary character drawn with a real glyph,
and the card's layout for every form, an acrostic and a traditional poem.
"""
from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from bot import fonts
from bot.card import Card, CardError, chinese_date, missing_glyphs, png_bytes, poem_card, render, typefaces
from botkit import card_fonts  # noqa: F401
from protocol.settings import PRETRAINED_DIR
from verse.script import to_traditional
from factories import spec

# Synthetic lines (common characters in arbitrary order), one per form.
LINES = {"五绝": ["山水云风月", "花江天人日", "春秋夜雨青", "白高远长清"],
         "七绝": ["山水云风月花江", "天人日春秋夜雨", "青白高远长清明", "红千万一山水云"],
         "五律": ["山水云风月", "花江天人日", "春秋夜雨青", "白高远长清"] * 2,
         "七律": ["山水云风月花江", "天人日春秋夜雨", "青白高远长清明", "红千万一山水云"] * 2}


def vocabulary() -> list[str]:
    chars = json.loads((PRETRAINED_DIR / "vocab.json").read_text(encoding="utf-8"))["chars"]
    return [c for c in chars if len(c) == 1 and not c.isascii()]


def test_every_vocabulary_character_has_a_real_glyph(card_fonts) -> None:
    simplified = vocabulary()
    chars = sorted(set(simplified) | set(to_traditional("".join(simplified))))   # cards come in both scripts
    assert len(simplified) > 5000
    assert missing_glyphs("".join(chars)) == ""
    face = typefaces(40)
    inkless = [c for c in chars if face.for_char(c).getbbox(c)[2] <= face.for_char(c).getbbox(c)[0]]
    assert inkless == []
    # The fallback font is there for the rare ones Noto Serif SC lacks, such as 𧥄 (Extension B).
    assert face.for_char("𧥄") is face.fallback and face.for_char("春") is face.main


def test_fetch_is_a_no_op_once_the_fonts_are_there(card_fonts, monkeypatch) -> None:
    monkeypatch.setattr(fonts, "fetch_npm_fonts", lambda d: pytest.fail("fetched again"))
    monkeypatch.setattr(fonts, "fetch_deb_font", lambda d: pytest.fail("fetched again"))
    assert fonts.fetch_fonts(card_fonts) == card_fonts
    assert (card_fonts / fonts.LICENSE_FILE).read_text(encoding="utf-8").count("Open Font License") >= 1


def test_a_file_with_the_wrong_checksum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(fonts.FontError, match="checksum"):
        fonts._store(fonts.REGULAR, b"not a font", tmp_path)
    assert not (tmp_path / fonts.REGULAR.name).exists()


def test_deb_members_reads_an_ar_archive() -> None:
    def member(name: str, data: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return header + data + (b"\n" if len(data) % 2 else b"")
    deb = b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("data.tar.xz", b"abc")
    assert fonts.deb_members(deb) == {"debian-binary": b"2.0\n", "data.tar.xz": b"abc"}
    with pytest.raises(fonts.FontError):
        fonts.deb_members(b"PK\x03\x04")


def test_without_fonts_a_card_cannot_be_drawn(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="poembot font fetch"):
        render(Card(LINES["七绝"], "七绝"), directory=tmp_path)


def test_chinese_dates() -> None:
    assert chinese_date(date(2026, 12, 1)) == "二〇二六年十二月一日"
    assert chinese_date(date(2027, 1, 20)) == "二〇二七年一月二十日"
    assert chinese_date(date(2027, 10, 31)) == "二〇二七年十月三十一日"


@pytest.mark.parametrize("form", list(LINES))
def test_cards_of_every_form_fit_telegram(card_fonts, form: str) -> None:
    data = png_bytes(Card(LINES[form], form, title="春风", day=date(2026, 12, 1)))
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    # Telegram shows photos up to 1280-2560 px and wants width + height <= 10000, ratio <= 20.
    assert 900 <= width <= 2000 and 600 <= height <= 1600 and max(width, height) / min(width, height) < 2.5
    assert len(data) < 1_000_000


def test_titles_follow_the_request() -> None:
    assert poem_card(LINES["七绝"], "七绝", spec(acrostic="春夏秋冬")).title == "春夏秋冬"
    assert poem_card(LINES["七绝"], "七绝", spec(acrostic="春夏秋冬")).note == "藏头"
    assert poem_card(LINES["七绝"], "七绝", spec(keywords=["春风", "明月"])).title == "春风·明月"
    assert poem_card(LINES["七绝"], "七绝", spec(like_texts=["…"])).note == "仿作"
    assert poem_card(LINES["七绝"], "七绝", spec(), title="每日一诗").title == "每日一诗"


def test_a_traditional_card_differs_from_the_simplified_one(card_fonts) -> None:
    lines = ["东风吹梦到长安", "万里云开见月还", "旧国山川归鸟尽", "一声长笛满江关"]
    simplified = png_bytes(Card(lines, "七绝", title="东风"))
    traditional = png_bytes(Card(lines, "七绝", title="东风", traditional=True))
    assert simplified != traditional
