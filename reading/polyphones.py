"""The verse polyphone table (reading/data/polyphones.tsv): each character's readings with their
平仄, whether the meter may choose among them, the rhyme group of readings that rhyme apart, and a
gloss for readings CC-CEDICT lacks."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

PING, ZE = "平", "仄"


@dataclass(frozen=True)
class Reading:
    pinyin: str            # tone marks; "xié/xiá" where textbooks differ
    tone: str              # 平 or 仄
    group: str = ""        # 平水韵 group, only where readings of one tone rhyme apart
    sense: str = ""        # English gloss for a reading CC-CEDICT has no entry for


@dataclass(frozen=True)
class Polyphone:
    char: str
    readings: tuple[Reading, ...]        # the first is the reading when nothing decides
    meter: bool                          # the modern reading follows the classical tone

    @property
    def default(self) -> Reading:
        """The reading when neither meter, rhyme, context nor a known word decides."""
        return self.readings[0]

    def of_tone(self, tone: str) -> tuple[Reading, ...]:
        """The readings of one tone class, in table order."""
        return tuple(r for r in self.readings if r.tone == tone)

    def find(self, pinyin: str) -> Reading | None:
        """The reading spelled `pinyin`, or the disputed one that includes it (xié in xié/xiá)."""
        for r in self.readings:
            if r.pinyin == pinyin:
                return r
        for r in self.readings:
            if pinyin in r.pinyin.split("/"):
                return r
        return None


def parse(text: str) -> dict[str, Polyphone]:
    """Polyphones from the TSV text (comments and blank lines skipped)."""
    rows: dict[str, list[Reading]] = {}
    meter: dict[str, bool] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        char, pinyin, tone, m, group, sense = (line.split("\t") + [""] * 6)[:6]
        if tone not in (PING, ZE):
            raise ValueError(f"polyphones.tsv: bad tone {tone!r} for {char}")
        rows.setdefault(char, []).append(Reading(pinyin, tone, group, sense))
        meter[char] = meter.get(char, False) or m == "m"
    return {c: Polyphone(c, tuple(rs), meter[c]) for c, rs in rows.items()}


@lru_cache(maxsize=1)
def table() -> dict[str, Polyphone]:
    """The shipped table, read once."""
    return parse(resources.files("reading").joinpath("data/polyphones.tsv").read_text(encoding="utf-8"))
