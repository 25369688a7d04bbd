"""Poem cards: a PNG of a poem in vertical right-to-left type (竖排), drawn with Pillow (no TensorFlow).

From the right: the title column (the title, and the form in small type below it), the poem one line
per column (a 词: its tune at the head, its 句 set in columns of about one height, several short 句 to a
column with a small space between them, and a wider space with a thin rule between 上片 and 下片), then
the inscription column (date and author, Latin words turned sideways as vertical
type sets them) with a small red seal under it. Sizes are chosen for Telegram, which shows a photo
about 400-600 px wide in a chat: the body type stays above ~25 screen pixels there.
Characters Noto Serif SC lacks are drawn from the fallback font (bot.fonts).
"""
from __future__ import annotations

import asyncio
import io
import logging
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from PIL import Image, ImageDraw, ImageFont

from bot import fonts
from bot.cmap import Coverage, coverage
from protocol.spec import PoemSpec

log = logging.getLogger(__name__)
from verse.script import for_script

PAPER = (246, 240, 228)
INK = (38, 34, 30)
GREY = (120, 108, 96)
FRAME = (176, 150, 118)
SEAL_RED = (178, 34, 34)
SEAL_TEXT = "诗"
CI_SEAL_TEXT = "词"            # a 词's card is sealed as one
AUTHOR = "poembot"
# Body character size in pixels per number of lines: 绝句 larger, 律诗 smaller (twice the columns).
BODY_PX = {4: 100, 8: 80}
LINE_STEP = 1.12        # vertical advance per character, in character sizes
COLUMN_STEP = 1.75      # horizontal distance between poem columns
COUPLET_GAP = 0.25      # extra space after each couplet (联), so the pairs read as pairs
JU_GAP = 0.45           # space between two 句 of a 词 in one column, in character sizes
STANZA_GAP = 0.9        # extra space between 上片 and 下片, in character sizes (a thin rule stands in it)
CI_COLUMNS = 12         # a 词's columns at most, while its column height may grow to CI_MAX_HEIGHT
CI_MAX_HEIGHT = 18      # characters (with 句 spaces) in one column of a 词
CI_BODY_PX = 68         # a 词 of more than 8 columns: smaller type, so a 沁园春 stays a card, not a scroll
DIGITS = "〇一二三四五六七八九"


class CardError(RuntimeError):
    """The card cannot be drawn here (fonts not fetched): callers send the text alone."""


@dataclass
class Card:
    """What a card shows; lines are simplified, without punctuation."""
    lines: list[str]
    form: str
    title: str = ""
    note: str = ""             # after the form under the title: 藏头, 仿作, 仿李白
    author: str = AUTHOR
    day: date | None = None
    traditional: bool = False
    stanza_break: int | None = None   # a 词: the 句 in its 上片 (None: a 单调)
    ci: bool = False                  # a 词: lines are 句 of any length, packed into columns


@lru_cache(maxsize=4)
def _covered(path: str) -> Coverage:
    return coverage(path)


@lru_cache(maxsize=32)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


class Typeface:
    """The main font and its fallback at one size: picks, per character, a font that has it."""

    def __init__(self, main: Path, fallback: Path, size: int) -> None:
        self.size = size
        self.main, self.fallback = _font(str(main), size), _font(str(fallback), size)
        self._main_chars, self._fallback_chars = _covered(str(main)), _covered(str(fallback))

    def has(self, char: str) -> bool:
        return ord(char) in self._main_chars or ord(char) in self._fallback_chars

    def for_char(self, char: str) -> ImageFont.FreeTypeFont:
        return self.main if ord(char) in self._main_chars or ord(char) not in self._fallback_chars \
            else self.fallback


def typefaces(size: int, bold: bool = False, directory: Path | None = None) -> Typeface:
    """The card type at size px; CardError when `poembot font fetch` has not been run."""
    directory = directory or fonts.font_dir()
    absent = fonts.missing(directory)
    if absent:
        raise CardError(f"card fonts missing in {directory} ({', '.join(f.name for f in absent)}): "
                        "run `poembot font fetch`")
    main = fonts.font_path(fonts.SEMIBOLD if bold else fonts.REGULAR, directory)
    return Typeface(main, fonts.font_path(fonts.FALLBACK, directory), size)


def chinese_date(day: date) -> str:
    """二〇二六年十二月一日: the date as a vertical inscription writes it."""
    def number(n: int) -> str:
        tens, ones = divmod(n, 10)
        return ("" if tens < 2 else DIGITS[tens]) + ("十" if tens else "") + (DIGITS[ones] if ones or not tens else "")
    year = "".join(DIGITS[int(d)] for d in str(day.year))
    return f"{year}年{number(day.month)}月{number(day.day)}日"


def draw_column(draw: ImageDraw.ImageDraw | None, face: Typeface, text: str, x: float, y: float,
                fill: tuple[int, int, int], step: float = LINE_STEP) -> float:
    """Set text top to bottom centred on x from y (measure only when draw is None); Latin runs
    turned 90° clockwise, as vertical type sets them. Returns the y where the column ends."""
    for run in re.findall(r"[!-~]+|[^!-~]", text):
        if run == " ":
            y += face.size * 0.4
        elif run.isascii():
            y = _draw_sideways(draw, face, run, x, y + face.size * 0.1, fill) + face.size * 0.2
        else:
            if draw is not None:
                draw.text((x, y + face.size * step / 2), run, font=face.for_char(run), fill=fill, anchor="mm")
            y += face.size * step
    return y


def _draw_sideways(draw: ImageDraw.ImageDraw | None, face: Typeface, run: str, x: float, y: float,
                   fill: tuple[int, int, int]) -> float:
    ascent, descent = face.main.getmetrics()
    width = int(face.main.getlength(run)) + 8
    strip = Image.new("L", (width, ascent + descent), 0)
    ImageDraw.Draw(strip).text((4, ascent), run, font=face.main, fill=255, anchor="ls")
    turned = strip.rotate(-90, expand=True)
    ink = turned.crop(turned.getbbox() or (0, 0, 1, 1))
    if draw is not None:
        draw.bitmap((int(x - ink.width / 2), int(y)), ink, fill=fill)
    return y + ink.height


def seal_side_px(face: Typeface) -> int:
    return int(face.size * 1.6)


def draw_seal(image: Image.Image, face: Typeface, x: float, y: float, text: str = SEAL_TEXT) -> None:
    """A small square red seal (印) centred on x below y, the character cut out in paper colour."""
    side = seal_side_px(face)
    seal = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(seal)
    draw.rounded_rectangle((0, 0, side - 1, side - 1), radius=side // 9, fill=SEAL_RED + (235,))
    inner = side * 0.08
    draw.rounded_rectangle((inner, inner, side - 1 - inner, side - 1 - inner), radius=side // 12,
                           outline=PAPER + (255,), width=max(2, side // 30))
    draw.text((side / 2, side / 2), text, font=face.for_char(text), fill=PAPER + (255,), anchor="mm")
    image.paste(seal, (int(x - side / 2), int(y)), seal)


def draw_frame(draw: ImageDraw.ImageDraw, width: int, height: int, margin: int) -> None:
    """A thin double rule inside the margin, like the border of a printed page."""
    outer = margin * 0.45
    draw.rectangle((outer, outer, width - outer, height - outer), outline=FRAME, width=3)
    inner = outer + 10
    draw.rectangle((inner, inner, width - inner, height - inner), outline=FRAME, width=1)


def card_title(card: Card) -> tuple[str, str]:
    """The title column: the title (无题 when none; a 词's tune) and the small note under it (the form)."""
    return card.title or "无题", "·".join(x for x in (card.form, card.note) if x)


@dataclass(frozen=True)
class Column:
    """One column of the card's body: its lines (句) top to bottom, and extra space after it."""
    lines: tuple[str, ...]
    gap: float = 0.0            # in character sizes
    stanza_end: bool = False    # the 上片 ends here: a rule in the gap after it

    @property
    def height(self) -> float:
        """In character sizes' advances: its characters and the spaces between its 句."""
        return sum(len(x) for x in self.lines) + JU_GAP * (len(self.lines) - 1)


def pack(lines: list[str], height: float) -> list[tuple[str, ...]]:
    """Consecutive lines into columns of at most height (a longer line alone in its own)."""
    columns: list[list[str]] = []
    for line in lines:
        if columns and Column(tuple(columns[-1] + [line])).height <= height:
            columns[-1].append(line)
        else:
            columns.append([line])
    return [tuple(c) for c in columns]


def columns_of(card: Card) -> list[Column]:
    """The body's columns: a 诗 one line each, a space after each couplet; a 词 packed stanza by stanza
    into the lowest column height (from its longest 句 up) that keeps it within CI_COLUMNS columns."""
    if not card.ci:
        return [Column((line,), COUPLET_GAP if i % 2 == 1 else 0.0) for i, line in enumerate(card.lines)]
    k = card.stanza_break if card.stanza_break and 0 < card.stanza_break < len(card.lines) else None
    stanzas = [card.lines[:k], card.lines[k:]] if k else [card.lines]
    height = float(max((len(x) for x in card.lines), default=1))
    while True:
        packed = [pack(s, height) for s in stanzas]
        if sum(len(p) for p in packed) <= CI_COLUMNS or height >= CI_MAX_HEIGHT:
            break
        height += 1
    out: list[Column] = []
    for s, columns in enumerate(packed):
        for j, lines in enumerate(columns):
            end = s == 0 and k is not None and j == len(columns) - 1
            out.append(Column(lines, STANZA_GAP if end else 0.0, end))
    return out


def render(card: Card, directory: Path | None = None) -> Image.Image:
    """The card as an RGB image, sized to its content."""
    columns = columns_of(card)
    n_lines, line_len = len(columns), max((c.height for c in columns), default=5)
    size = BODY_PX.get(n_lines, 80) if not card.ci else 80 if n_lines <= 8 else CI_BODY_PX
    body = typefaces(size, directory=directory)
    title_face = typefaces(int(size * 0.92), bold=True, directory=directory)
    small = typefaces(int(size * 0.42), directory=directory)
    seal_face = typefaces(int(size * 0.5), bold=True, directory=directory)
    script = lambda text: for_script(text, card.traditional)      # noqa: E731
    title, note = (script(x) for x in card_title(card))
    dated = script(chinese_date(card.day)) if card.day else ""

    margin, column = int(size * 1.3), size * COLUMN_STEP
    top = margin + size * 0.2
    body_top = top + size * 0.6               # the title stands a little above the poem
    poem_bottom = body_top + line_len * size * LINE_STEP
    title_end = draw_column(None, title_face, title, 0, top, INK)
    note_end = draw_column(None, small, note, 0, title_end + small.size * 0.8, GREY)
    seal_side = seal_side_px(seal_face)
    # Two narrow columns at the left: the date, and the author with the seal under it. They end level
    # with the poem; when they are longer than it they push the card's foot down.
    signed = max(draw_column(None, small, dated, 0, 0, GREY),
                 draw_column(None, small, card.author, 0, 0, GREY) + small.size * 0.6 + seal_side)
    sign_top = max(body_top + size * 0.8, poem_bottom - signed)
    bottom = max(poem_bottom, note_end, sign_top + signed)
    height = int(bottom + margin)
    couplet_gaps = sum(c.gap for c in columns[:-1]) * size     # the last one's is the signature's
    sign_step = small.size * 1.7
    width = int(2 * margin + column * (n_lines + 1.15) + sign_step + small.size + couplet_gaps)

    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    draw_frame(draw, width, height, margin)
    x = width - margin - column / 2
    end = draw_column(draw, title_face, title, x, top, INK)
    draw_column(draw, small, note, x, end + small.size * 0.8, GREY)
    x -= column * 1.15
    for col in columns:
        y = body_top
        for line in col.lines:
            y = draw_column(draw, body, script(line), x, y, INK) + size * JU_GAP * LINE_STEP
        if col.stanza_end:      # the rule between 上片 and 下片, in the middle of the space after
            middle = x - (column + size * col.gap) / 2
            draw.line((middle, body_top + size * 0.4, middle, poem_bottom - size * 0.4), fill=FRAME, width=2)
        x -= column + size * col.gap
    x += column * 0.5
    foot = sign_top + signed
    if dated:
        draw_column(draw, small, dated, x, foot - draw_column(None, small, dated, 0, 0, GREY), GREY)
        x -= sign_step
    author_top = foot - seal_side - small.size * 0.6 - draw_column(None, small, card.author, 0, 0, GREY)
    end = draw_column(draw, small, card.author, x, author_top, GREY)
    draw_seal(image, seal_face, x, end + small.size * 0.6, script(CI_SEAL_TEXT if card.ci else SEAL_TEXT))
    return image


def png_bytes(card: Card, directory: Path | None = None) -> bytes:
    """The card as PNG bytes, ready for sendPhoto."""
    buffer = io.BytesIO()
    # optimize=True saves a tenth of the bytes for four times the time: not worth it on a busy bot.
    render(card, directory).save(buffer, format="PNG")
    return buffer.getvalue()


async def png_off_loop(to_png: Callable[[Any], bytes], card: Any, what: str = "card") -> bytes | None:
    """to_png(card) on a thread, off the event loop, or None when it cannot be drawn here (fonts
    missing: the text then goes out alone), logged as what."""
    try:
        return await asyncio.to_thread(to_png, card)
    except CardError as exc:
        log.warning("no %s: %s", what, exc)
    except Exception:
        log.exception("%s rendering failed", what)
    return None


def warm_up(directory: Path | None = None) -> bool:
    """Load the card fonts now (at start-up), so the first card does not wait for them."""
    try:
        for size in sorted({*BODY_PX.values(), CI_BODY_PX}):
            typefaces(size, directory=directory)
        return True
    except CardError:
        return False


def missing_glyphs(text: str, directory: Path | None = None) -> str:
    """Characters of text that neither card font can draw (whitespace ignored)."""
    face = typefaces(32, directory=directory)
    return "".join(sorted({c for c in text if not c.isspace() and not face.has(c)}))


def poem_card(lines: list[str], form: str, spec: PoemSpec | None = None, traditional: bool = False,
              day: date | None = None, title: str = "", stanza_break: int | None = None) -> Card:
    """The card of a poem the bot wrote, titled by what was asked for (the acrostic, the theme words);
    a 词 is headed by its tune, with what was asked for under it (浣溪沙, then 春愁), as ci are titled."""
    if spec is None:
        return Card(lines=list(lines), form=form, title=title, note="", day=day, traditional=traditional)
    if spec.tune:
        asked = title or spec.title or spec.acrostic or "·".join(spec.keywords)
        note = "·".join(x for x in (asked, "藏头" if spec.acrostic and asked != spec.acrostic else "") if x)
        return Card(lines=list(lines), form="", title=spec.tune, note=note, day=day, traditional=traditional,
                    stanza_break=stanza_break, ci=True)
    note = "藏头" if spec.acrostic else ("仿作" if spec.like_texts else "")
    if spec.style:              # written in a poet's manner: 七绝·仿李白
        note = "·".join(x for x in (note, "仿" + (spec.style_title or spec.style)) if x)
    title = title or spec.title or spec.acrostic or "·".join(spec.keywords)
    return Card(lines=list(lines), form=form, title=title, note=note, day=day, traditional=traditional)
