"""The reading of each character of a poem: the verse decides before the dictionary does.

For a character of the verse polyphone table (reading.polyphones), in this order:
1. a rhyme slot of a regular poem: the reading of the poem's rhyme group (行 xíng in 庚, háng in 阳;
   斜 in 麻 shows xié/xiá), and, where the reading follows the classical tone, a 平 reading;
2. a position whose 平仄 the pattern fixes (2nd, 4th, 6th, last), in a line that keeps the
   pattern at its other fixed positions (a 拗 line such as 昔人已乘黄鹤去 is left to context): the
   reading of that tone, for characters whose modern reading follows the classical tone (重 in
   万重山 chóng, 花重 zhòng);
3. a context rule (reading.context: 朝辞 zhāo, 一行白鹭 háng, 返景 yǐng);
4. the reading pypinyin's phrase table gives the word the character sits in, cut by
   reading.lexicon so that words of verse come first (长江, not 见长);
5. the table's first reading.
The pattern's tone at a free position (一三五不论) is no guide: tried as a hint, it misread more
(长恨 zhǎng, 嫦娥应悔 yìng) than it fixed.
Other characters read as pypinyin reads their word. No TensorFlow and nothing of poembot.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from reading import meter as meter_mod
from reading.context import context_reading
from reading.polyphones import Polyphone, Reading, table

# Classical verse readings pypinyin's single-character defaults miss (its phrases still win).
VERSE_READINGS = {"还": "huán,hái", "尽": "jìn,jǐn"}
_TONE_MARKS = {"\u0304": "1", "\u0301": "2", "\u030c": "3", "\u0300": "4"}


@dataclass(frozen=True)
class Choice:
    marked: str          # with tone marks; "xié/xiá" where textbooks differ
    numbered: str        # CC-CEDICT style ("xie2", "lu:4"), the first of a disputed pair
    why: str             # rhyme, meter, context, word, default, or pypinyin


@lru_cache(maxsize=1)
def _pypinyin():
    """pypinyin, imported once, with the verse readings of 还 and 尽 as its single-character defaults."""
    import pypinyin

    pypinyin.load_single_dict({ord(c): r for c, r in VERSE_READINGS.items()})
    return pypinyin


@lru_cache(maxsize=1)
def _phrases() -> dict:
    """pypinyin's phrase readings: a word it does not list reads as single-character defaults,
    which say nothing about context (似雪 would read 似 shì)."""
    _pypinyin()
    from pypinyin.constants import PHRASES_DICT

    return PHRASES_DICT


@lru_cache(maxsize=4096)
def numbered(marked: str) -> str:
    """A tone-marked syllable in CC-CEDICT's numbered spelling: zhāo → zhao1, lǜ → lu:4, le → le5;
    of a disputed pair the first."""
    syllable = marked.split("/")[0]
    tone = "5"
    out = []
    for ch in unicodedata.normalize("NFD", syllable):
        if ch in _TONE_MARKS:
            tone = _TONE_MARKS[ch]
        elif ch == "\u0308":
            out.append(":")
        else:
            out.append(ch)
    plain = "".join(out)
    letters = plain.replace(":", "")
    return plain + tone if letters.isascii() and letters.isalpha() else plain   # not □ or 1


def _word_readings(segments: list[str]) -> list[str]:
    """pypinyin's reading of each character, each segment read as one word."""
    pypinyin = _pypinyin()
    return [p[0] for p in pypinyin.pinyin(segments, style=pypinyin.Style.TONE, errors=lambda s: list(s))]


def _choose(poly: Polyphone, line: str, i: int, word: str, from_word: str,
            slot: str | None, rhyme: bool, group: str | None) -> tuple[Reading, str]:
    """The reading of a table character and the reason, by the order in the module docstring."""
    cands = poly.readings
    if rhyme:
        if poly.meter:
            cands = poly.of_tone("平") or cands
        grouped = [r for r in cands if r.group]
        if grouped and group:
            matching = [r for r in cands if r.group == group]
            if matching:
                cands = tuple(matching)
            else:
                cands = tuple(r for r in cands if not r.group) or cands
        if len({r.pinyin for r in cands}) == 1:
            return cands[0], "rhyme"
    if slot and poly.meter and not rhyme:
        toned = tuple(r for r in cands if r.tone == slot)
        if len(toned) == 1:
            return toned[0], "meter"
        cands = toned or cands
    ruled = context_reading(line, i)
    if ruled:
        found = poly.find(ruled)
        if found and found in cands:
            return found, "context"
    if len(word) > 1 and word in _phrases():
        found = poly.find(from_word)
        if found and found in cands:
            return found, "word"
    return cands[0], "default"


def read_poem(lines: list[str], segments: list[list[str]]) -> list[list[Choice]]:
    """Per line, per character, the chosen reading; `segments` is each line cut into words."""
    polys = table()
    meter = meter_mod.analyse(lines, skip=polys.keys())
    out: list[list[Choice]] = []
    for k, (line, words) in enumerate(zip(lines, segments)):
        base = _word_readings(words)
        row: list[Choice] = []
        i = 0
        for word in words:
            for _ in word:
                char = line[i]
                poly = polys.get(char)
                if poly is None:
                    row.append(Choice(base[i], numbered(base[i]), "pypinyin"))
                else:
                    slot = None
                    rhyme = False
                    group = None
                    if meter is not None:
                        slot = meter.slots[k][i] if meter.kept[k] else None
                        rhyme = (k, i) in meter.rhyme_slots
                        group = meter.group
                    reading, why = _choose(poly, line, i, word, base[i], slot, rhyme, group)
                    row.append(Choice(reading.pinyin, numbered(reading.pinyin), why))
                i += 1
        out.append(row)
    return out
