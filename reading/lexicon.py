"""Words of verse (reading/data/lexicon.tsv, counted in the corpus by reading.tables) and the
segmenter that prefers them: a line is cut where classical verse cuts it, so a modern compound
(见长 in 唯见长江, 愿长 in 但愿长醉) cannot take characters that belong to two words."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Callable, Container

MAX_WORD = 4
# Caesurae of a regular line: after the 2nd character, and the 4th in a 七言 line.
CAESURAE = {5: (2,), 7: (2, 4)}
CROSSING_PENALTY = 3.0    # a word across a caesura must be worth much more than its characters
WORD_BONUS = 0.5          # a dictionary word beats its characters alone (longest match, in effect)
VERSE_BONUS = 0.15        # per log2 of a word's count in verse: 长江 (2^9) far above 见长


@lru_cache(maxsize=1)
def verse_words() -> dict[str, int]:
    """Word -> floor(log2(count in verse)), read once."""
    return parse(resources.files("reading").joinpath("data/lexicon.tsv").read_text(encoding="utf-8"))


def parse(text: str) -> dict[str, int]:
    """Word -> bucket from the text of a lexicon.tsv."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            bucket, words = line.split("\t")
            out.update(dict.fromkeys(words.split(" "), int(bucket)))
    return out


def _crosses(start: int, end: int, cuts: tuple[int, ...]) -> bool:
    """Whether line[start:end] straddles a caesura."""
    return any(start < c < end for c in cuts)


def segment(line: str, known: Container[str] | Callable[[str], bool],
            verse: dict[str, int] | None = None) -> list[str]:
    """The best cut of a line into words of `known` (a dictionary) and single characters: words
    gain by their length and their count in verse, and lose across a caesura of a 5- or 7-character
    line (a line of another length has none)."""
    verse = verse_words() if verse is None else verse
    is_known = known if callable(known) else known.__contains__
    cuts = CAESURAE.get(len(line), ())
    n = len(line)
    best: list[tuple[float, int]] = [(0.0, 0)] * (n + 1)     # (score, start of the last word)
    for end in range(1, n + 1):
        options = []
        for size in range(1, min(MAX_WORD, end) + 1):
            start = end - size
            word = line[start:end]
            if size == 1:
                gain = 1.0
            elif is_known(word):
                gain = size + WORD_BONUS + VERSE_BONUS * verse.get(word, 0)
                if _crosses(start, end, cuts):
                    gain -= CROSSING_PENALTY
            else:
                continue
            options.append((best[start][0] + gain, start))
        best[end] = max(options)
    out, end = [], n
    while end:
        start = best[end][1]
        out.append(line[start:end])
        end = start
    return out[::-1]
