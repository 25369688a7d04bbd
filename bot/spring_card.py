"""The 春联 card: red paper scrolls on a wall, drawn with Pillow (no TensorFlow).

As a door is dressed for the Spring Festival and read right to left: the 上联 on the right scroll,
the 下联 on the left, the 横批 across the top (its characters also right to left), and for a 春联 a
福 on a red square turned on its corner between the scrolls. Black ink on red paper with a thin
gold rule; the date, poembot and a seal small at the foot. Fonts as bot.card loads them.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from PIL import Image, ImageDraw

from bot.card import (AUTHOR, SEAL_TEXT, chinese_date, draw_column, draw_seal, png_off_loop,
                      seal_side_px, typefaces)
from verse.script import for_script


WALL = (236, 226, 208)          # a plastered wall, warm
WALL_SHADE = (214, 200, 178)
RED = (190, 28, 32)
RED_DARK = (150, 18, 24)
GOLD = (222, 178, 84)
INK = (24, 18, 16)
GREY = (110, 96, 84)
CHAR_PX = {4: 104, 5: 100, 6: 92, 7: 88, 8: 80, 9: 74, 10: 68, 11: 64}   # by line length
STEP = 1.16                     # vertical advance per character on a scroll
FU = "福"


@dataclass
class SpringCard:
    """What the card shows; lines are simplified, without punctuation."""
    first: str                  # 上联: the right scroll
    second: str                 # 下联: the left scroll
    banner: str = ""            # 横批, read right to left across the top
    traditional: bool = False
    day: date | None = None
    fu: bool = True             # a 福 between the scrolls (春联); a plain couplet has none
    author: str = AUTHOR


def _paper(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], rule: float) -> None:
    """A red sheet with a darker edge and a thin gold rule inside it."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=RED_DARK)
    draw.rectangle((x0 + 3, y0 + 3, x1 - 3, y1 - 3), fill=RED)
    draw.rectangle((x0 + rule, y0 + rule, x1 - rule, y1 - rule), outline=GOLD, width=max(2, int(rule / 6)))


def _shadow(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], offset: float) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle((x0 + offset, y0 + offset, x1 + offset, y1 + offset), fill=WALL_SHADE)


def render(card: SpringCard, directory: Path | None = None) -> Image.Image:
    """The card as an RGB image, sized to the length of the couplet."""
    n = max(len(card.first), len(card.second), 1)
    size = CHAR_PX.get(n, 64 if n > 11 else 104)
    face = typefaces(size, bold=True, directory=directory)
    small = typefaces(max(20, int(size * 0.34)), directory=directory)
    seal_face = typefaces(max(24, int(size * 0.42)), bold=True, directory=directory)
    script = lambda text: for_script(text, card.traditional)      # noqa: E731

    margin = int(size * 0.9)
    scroll_w = int(size * 1.55)
    pad = size * 0.55                                  # red above the first and below the last character
    scroll_h = int(2 * pad + n * size * STEP)
    middle = int(size * 2.9)                           # between the scrolls: the door, and the 福
    banner = script(card.banner)
    banner_face = typefaces(int(size * 0.92), bold=True, directory=directory)
    banner_h = int(banner_face.size * 1.7)
    banner_w = int(banner_face.size * (1.25 * max(len(banner), 4) + 0.9))
    width = 2 * margin + 2 * scroll_w + middle
    banner_w = min(banner_w, width - 2 * margin)
    top = margin + banner_h + int(size * 0.45)         # the scrolls hang below the banner
    foot_h = int(small.size * 2.4)
    height = top + scroll_h + int(size * 0.35) + foot_h + margin // 2

    image = Image.new("RGB", (width, height), WALL)
    draw = ImageDraw.Draw(image)
    shadow = max(4, size * 0.08)
    rule = max(8, size * 0.12)

    # 横批: centred over the door, characters right to left.
    bx0 = (width - banner_w) / 2
    banner_box = (bx0, margin, bx0 + banner_w, margin + banner_h)
    if banner:
        _shadow(draw, banner_box, shadow)
        _paper(draw, banner_box, rule * 0.8)
        gap = (banner_w - banner_face.size * 0.9) / len(banner)
        cy = margin + banner_h / 2
        for k, char in enumerate(banner):
            cx = bx0 + banner_w - banner_face.size * 0.45 - gap * (k + 0.5)
            draw.text((cx, cy), char, font=banner_face.for_char(char), fill=INK, anchor="mm")

    # The scrolls: 上联 on the right, 下联 on the left.
    right_x = width - margin - scroll_w
    for x0, line in ((right_x, card.first), (margin, card.second)):
        box = (x0, top, x0 + scroll_w, top + scroll_h)
        _shadow(draw, box, shadow)
        _paper(draw, box, rule)
        text = script(line)
        # A shorter line (never, for a couplet) is centred on its scroll.
        y = top + pad + (n - len(text)) * size * STEP / 2
        draw_column(draw, face, text, x0 + scroll_w / 2, y, INK, step=STEP)

    if card.fu:
        _draw_fu(image, face, width / 2, top + scroll_h * 0.38, size * 1.9)

    # The foot: date and name centred under the door, with the seal.
    inscription = "　".join(x for x in (script(chinese_date(card.day)) if card.day else "", card.author) if x)
    seal_side = seal_side_px(seal_face)
    text_w = small.main.getlength(inscription)
    fy = top + scroll_h + int(size * 0.35) + foot_h / 2
    total = text_w + small.size * 0.6 + seal_side
    x = (width - total) / 2
    draw.text((x, fy), inscription, font=small.main, fill=GREY, anchor="lm")
    draw_seal(image, seal_face, x + text_w + small.size * 0.6 + seal_side / 2, fy - seal_side / 2,
              script(SEAL_TEXT))
    return image


def _draw_fu(image: Image.Image, face, cx: float, cy: float, side: float) -> None:
    """A red square turned on its corner with 福 on it, as pasted on a door at New Year."""
    s = int(side)
    tile = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, s - 1, s - 1), fill=RED + (255,))
    draw.rectangle((s * 0.07, s * 0.07, s * 0.93, s * 0.93), outline=GOLD + (255,), width=max(2, s // 40))
    turned = tile.rotate(45, expand=True, resample=Image.BICUBIC)
    image.paste(turned, (int(cx - turned.width / 2), int(cy - turned.height / 2)), turned)
    ImageDraw.Draw(image).text((cx, cy), FU, font=face.for_char(FU), fill=INK, anchor="mm")


def png_bytes(card: SpringCard, directory: Path | None = None) -> bytes:
    """The card as PNG bytes, ready for sendPhoto."""
    buffer = io.BytesIO()
    render(card, directory).save(buffer, format="PNG")
    return buffer.getvalue()


async def spring_png(card: SpringCard) -> bytes | None:
    """The card as PNG off the event loop, or None when it cannot be drawn here (fonts missing)."""
    return await png_off_loop(png_bytes, card, "春联 card")
