"""callback_data for inline buttons: a short action code plus ids, never the poem itself.

Telegram caps callback_data at 64 bytes and hands it back verbatim, so anything decoded here is
untrusted: decode() rejects whatever this module could not have produced.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from bot.styles import valid_style_id
from verse import tunes

MAX_BYTES = 64
# Checked with fullmatch: "$" also matches before a final "\n", which match() let through.
POEM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,24}$")
CORPUS_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")     # chinese-poetry ids are UUIDs

# action -> what its argument is
LIKE, ANOTHER, SIMILAR, KEEP = "l", "a", "s", "k"
KEEP_TOGGLE, KEEP_GO, KEEP_CANCEL = "kt", "kg", "kx"
SETTING, DAILY = "st", "d"
GLOSS = "g"                # 📖 under one of our poems: its reading aid
GLOSS_CORPUS = "gc"        # 📖 under a /similar answer: the reading aid of a corpus poem
CARD = "c"                 # 🖼 under one of our poems: its card as a photo
POEM_ACTIONS = {LIKE, ANOTHER, SIMILAR, KEEP, KEEP_TOGGLE, KEEP_GO, KEEP_CANCEL, GLOSS, CARD}
MASK_ACTIONS = {KEEP_TOGGLE, KEEP_GO}
SETTING_VALUES = {"script": {"s", "t"}, "form": {"0", "1", "2", "3"}, "cr": {"0", "1", "2"}}
STYLE_SETTING = "style"    # its value: a style id (checked against the registry when pressed), or BASE_STYLE
BASE_STYLE = "-"
# One bit per line: a 律诗 has 8, a 词 as many 句 as its tune's main form (沁园春 25, the longest 26).
MAX_MASK = (1 << max(8, *(len(tune.main.lines) for tune in tunes.load().tunes))) - 1


class CallbackError(ValueError):
    """callback_data this bot did not produce (forged, or from an older version)."""


@dataclass(frozen=True)
class Callback:
    action: str
    poem_id: str = ""
    mask: int = 0          # keep-lines selection, bit i = line i
    key: str = ""          # settings key, or "1"/"0" for daily
    value: str = ""


def encode(cb: Callback) -> str:
    if cb.action in MASK_ACTIONS:
        data = f"{cb.action}:{cb.poem_id}:{cb.mask:x}"
    elif cb.action in POEM_ACTIONS:
        data = f"{cb.action}:{cb.poem_id}"
    elif cb.action == SETTING:
        data = f"{SETTING}:{cb.key}:{cb.value}"
    elif cb.action == DAILY:
        data = f"{DAILY}:{cb.key}"
    elif cb.action == GLOSS_CORPUS:
        data = f"{GLOSS_CORPUS}:{cb.key}"
    else:
        raise ValueError(f"unknown callback action {cb.action!r}")
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"callback_data over {MAX_BYTES} bytes: {data!r}")
    return data


def decode(data: str | None) -> Callback:
    try:
        size = len(data.encode()) if data else 0
    except UnicodeEncodeError:               # a lone surrogate: no client sent that through Telegram
        raise CallbackError("callback data is not UTF-8") from None
    if not size or size > MAX_BYTES:
        raise CallbackError("empty or oversized callback data")
    parts = data.split(":")
    action = parts[0]
    if action in MASK_ACTIONS and len(parts) == 3:
        _, poem_id, mask_hex = parts
        if not POEM_ID_RE.fullmatch(poem_id) or not re.fullmatch(r"[0-9a-f]{1,8}", mask_hex):
            raise CallbackError(f"bad {action} data")
        mask = int(mask_hex, 16)
        if mask > MAX_MASK:
            raise CallbackError("mask out of range")
        return Callback(action, poem_id=poem_id, mask=mask)
    if action in POEM_ACTIONS - MASK_ACTIONS and len(parts) == 2:
        if not POEM_ID_RE.fullmatch(parts[1]):
            raise CallbackError(f"bad poem id in {action} data")
        return Callback(action, poem_id=parts[1])
    if action == SETTING and len(parts) == 3:
        key, value = parts[1], parts[2]
        if value not in SETTING_VALUES.get(key, set()) and not (
                key == STYLE_SETTING and (value == BASE_STYLE or valid_style_id(value))):
            raise CallbackError("unknown setting")
        return Callback(action, key=key, value=value)
    if action == DAILY and len(parts) == 2 and parts[1] in ("0", "1"):
        return Callback(action, key=parts[1])
    if action == GLOSS_CORPUS and len(parts) == 2 and CORPUS_ID_RE.fullmatch(parts[1]):
        return Callback(action, key=parts[1])
    raise CallbackError(f"unknown callback data {data[:20]!r}")


def like(poem_id: str) -> str:
    return encode(Callback(LIKE, poem_id))


def another(poem_id: str) -> str:
    return encode(Callback(ANOTHER, poem_id))


def similar(poem_id: str) -> str:
    return encode(Callback(SIMILAR, poem_id))


def gloss(poem_id: str) -> str:
    return encode(Callback(GLOSS, poem_id))


def card(poem_id: str) -> str:
    return encode(Callback(CARD, poem_id))


def gloss_corpus(corpus_id: str) -> str:
    return encode(Callback(GLOSS_CORPUS, key=corpus_id))


def keep(poem_id: str) -> str:
    return encode(Callback(KEEP, poem_id))


def keep_toggle(poem_id: str, mask: int) -> str:
    return encode(Callback(KEEP_TOGGLE, poem_id, mask=mask))


def keep_go(poem_id: str, mask: int) -> str:
    return encode(Callback(KEEP_GO, poem_id, mask=mask))


def keep_cancel(poem_id: str) -> str:
    return encode(Callback(KEEP_CANCEL, poem_id))


def setting(key: str, value: str) -> str:
    return encode(Callback(SETTING, key=key, value=value))


def style_setting(style_id: str) -> str | None:
    """The default-style button's data ("" for the base model); None when the id is too long for it."""
    try:
        return encode(Callback(SETTING, key=STYLE_SETTING, value=style_id or BASE_STYLE))
    except ValueError:
        return None


def daily(subscribe: bool) -> str:
    return encode(Callback(DAILY, key="1" if subscribe else "0"))
