"""Titles as the model reads them: a poem's occasion (送友人, 秋夜, 登高) as a row of token ids.

Corpus titles carry bookkeeping that says nothing about the occasion — the number in a series
(其三), how many poems a title holds (二首, 十绝), spaces — so it goes before encoding, and a title
is cut to its first TITLE_LEN characters (90% of regular poems' titles are shorter; the head of a
long one names the occasion, the tail its circumstances).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from verse.vocab import PAD, UNK

if TYPE_CHECKING:
    from verse.vocab import Vocab

TITLE_LEN = 16
_NUMERAL = "一二三四五六七八九十百两"
_SERIES = re.compile(rf"\s*其[{_NUMERAL}]+\s*$")                 # 其三 (the third of a series)
_COUNT = re.compile(rf"[{_NUMERAL}]+(首|绝|章|解)(?=\s|$|[其（(])")   # 二首, 十绝, 四章
_BRACKETS = re.compile(r"[（(][^）)]*[）)]")


def clean_title(title: str) -> str:
    """The title's words without series numbers, poem counts, bracketed notes and non-Han marks."""
    text = _SERIES.sub("", title or "")
    text = _BRACKETS.sub("", text)
    text = _COUNT.sub("", text)
    return "".join(c for c in text if "\u3400" <= c <= "\u9fff" or "\U00020000" <= c <= "\U0003ffff")


def encode_title(title: str, vocab: "Vocab", length: int = TITLE_LEN) -> np.ndarray:
    """[length] int32 ids of the cleaned title's characters the vocabulary knows, PAD after."""
    ids = [i for i in (vocab.index.get(c, UNK) for c in clean_title(title)) if i != UNK][:length]
    out = np.full(length, PAD, np.int32)
    out[:len(ids)] = ids
    return out


def encode_titles(titles: list[str], vocab: "Vocab", length: int = TITLE_LEN) -> np.ndarray:
    """[N, length] int32: encode_title of each title."""
    out = np.full((len(titles), length), PAD, np.int32)
    for k, title in enumerate(titles):
        out[k] = encode_title(title, vocab, length)
    return out
