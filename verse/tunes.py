"""The 词谱 learned from the ci corpus: each tune's forms, rhyme slots and 平仄, and the rhyme groups of ci.

verse/data/tunes.json is written by `poembot tunes learn` (corpus/learn_tunes.py) from the built corpus and
committed, so the bot and the worker know a tune without any corpus. Pure Python; OpenCC only to read a
tune name typed in traditional characters.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from verse import prosody

TUNES_PATH = Path(__file__).resolve().parent / "data" / "tunes.json"
UNTITLED = "失调名"
ZHONG = "中"                    # 可平可仄
MAIN_TONES = (prosody.PING, prosody.ZE)
_NAME_JUNK = re.compile(r"[\s《》〈〉「」【】()（）・·•]")


def tone_class(group_tone: str) -> str:
    """A rhyme's tone class in ci: 平, 仄 (上 and 去 rhyme together) or 入."""
    return prosody.PING if group_tone == prosody.PING else "入" if group_tone == "入" else prosody.ZE


@dataclass
class RhymeTable:
    """The rhyme groups of ci: parts (merged 平水韵 groups of one tone class) and their 部."""
    parts: dict[str, list[str]]                    # part -> its 平水韵 groups, e.g. 平:一東 -> [一東, 二冬]
    bu: dict[str, int]                             # part -> 部 number (a 平 and a 仄 part may share one)
    part_of_group: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.part_of_group = {g: p for p, groups in self.parts.items() for g in groups}

    @classmethod
    def from_parts(cls, parts: list[list[str]], bu_links: list[list[str]] | None = None) -> "RhymeTable":
        """Name each part by its tone class and first group; bu_links (components of groups rhymed across
        tones) join a 平 part and a 仄 part into one 部; 部 are numbered in book order of their groups."""
        named = {f"{tone_class(prosody.group_tone(p[0]))}:{p[0]}": list(p) for p in parts}
        of_group = {g: name for name, groups in named.items() for g in groups}
        parent = {name: name for name in named}

        def find(x: str) -> str:
            while parent[x] != x:
                x = parent[x]
            return x

        for link in bu_links or []:
            names = [of_group[g] for g in link]
            for other in names[1:]:
                parent[find(other)] = find(names[0])
        order = {g: i for i, g in enumerate(prosody.pingshui_groups())}
        members: dict[str, list[str]] = {}
        for n in named:
            members.setdefault(find(n), []).extend(named[n])
        # 舒声 部 first, by their first group in book order (東 first), then the 入声 部, as 词林正韵 counts.
        roots = sorted(members, key=lambda r: (all(prosody.group_tone(g) == "入" for g in members[r]),
                                               min(order[g] for g in members[r] if prosody.group_tone(g) == prosody.PING)
                                               if any(prosody.group_tone(g) == prosody.PING for g in members[r])
                                               else min(order[g] for g in members[r])))
        number = {r: k + 1 for k, r in enumerate(roots)}
        return cls(named, {n: number[find(n)] for n in named})

    def parts_of(self, char: str) -> frozenset[str]:
        return frozenset(self.part_of_group[g] for g in prosody.rhyme_groups(char) if g in self.part_of_group)

    def bu_of(self, char: str) -> frozenset[int]:
        return frozenset(self.bu[p] for p in self.parts_of(char))

    def tone_classes(self, char: str) -> frozenset[str]:
        return frozenset(p.split(":")[0] for p in self.parts_of(char))

    def rhymes(self, a: str, b: str, across_tones: bool = False) -> bool:
        """Two characters rhyme in ci: one part, or (across_tones) one 部."""
        return bool(self.bu_of(a) & self.bu_of(b)) if across_tones else bool(self.parts_of(a) & self.parts_of(b))

    def to_json(self) -> dict:
        return {"parts": self.parts, "bu": self.bu}

    @classmethod
    def from_json(cls, data: dict) -> "RhymeTable":
        return cls({k: list(v) for k, v in data["parts"].items()}, {k: int(v) for k, v in data["bu"].items()})


@dataclass(frozen=True)
class TuneLine:
    length: int
    rhyme: bool
    rhyme_tone: str | None      # 平, 仄 (上去) or 入 at a rhyme slot
    rhyme_set: int | None       # slots with one number rhyme together (one 部); a new number is a 换韵
    tones: str                  # 平 仄 or 中 (可平可仄) per character
    mark: str                   # the punctuation most ci put after it

    def to_json(self) -> dict:
        return {"length": self.length, "rhyme": self.rhyme, "rhyme_tone": self.rhyme_tone,
                "rhyme_set": self.rhyme_set, "tones": self.tones, "mark": self.mark}


@dataclass(frozen=True)
class TuneForm:
    lengths: tuple[int, ...]
    share: float                # of the tune's ci
    poems: int
    stanza_break: int | None    # lines in the 上片; None for a 单调
    lines: tuple[TuneLine, ...]

    @property
    def stanzas(self) -> list[tuple[TuneLine, ...]]:
        k = self.stanza_break
        return [self.lines] if not k else [self.lines[:k], self.lines[k:]]

    @property
    def rhyme_kind(self) -> str:
        """平韵, 仄韵, 入声韵, 平仄转换 (the rhyme changes, 菩萨蛮) or 平仄通叶 (one 部 in both tones, 西江月)."""
        tones = {ln.rhyme_tone for ln in self.lines if ln.rhyme}
        sets = {ln.rhyme_set for ln in self.lines if ln.rhyme}
        if len(tones) <= 1:
            tone = next(iter(tones), None)
            kind = {prosody.PING: "平韵", prosody.ZE: "仄韵", "入": "入声韵"}.get(tone, "无韵")
            return kind + ("（换韵）" if len(sets) > 1 else "")
        return "平仄转换" if len(sets) > 1 else "平仄通叶"

    def pattern(self) -> str:
        """The shape as 7·7·7 / 7·7·7."""
        return " / ".join("·".join(str(ln.length) for ln in s) for s in self.stanzas)

    def rhyme_slots(self) -> list[int]:
        """1-based numbers of the rhyming lines."""
        return [k + 1 for k, ln in enumerate(self.lines) if ln.rhyme]

    def to_json(self) -> dict:
        return {"lengths": list(self.lengths), "share": self.share, "poems": self.poems,
                "stanza_break": self.stanza_break, "rhyme_kind": self.rhyme_kind,
                "lines": [ln.to_json() for ln in self.lines]}

    def compact(self) -> dict:
        """The committed file's row: one string or list per column."""
        return {"lengths": list(self.lengths), "share": self.share, "poems": self.poems,
                "break": self.stanza_break, "marks": "".join(ln.mark for ln in self.lines),
                "tones": [ln.tones for ln in self.lines],
                "rhyme": [None if not ln.rhyme else f"{ln.rhyme_set}{ln.rhyme_tone}" for ln in self.lines]}

    @classmethod
    def from_compact(cls, row: dict) -> "TuneForm":
        lines = []
        for length, mark, tones, rhyme in zip(row["lengths"], row["marks"], row["tones"], row["rhyme"]):
            lines.append(TuneLine(length, rhyme is not None, rhyme[-1] if rhyme else None,
                                  int(rhyme[:-1]) if rhyme else None, tones, mark))
        return cls(tuple(row["lengths"]), row["share"], row["poems"], row["break"], tuple(lines))


@dataclass(frozen=True)
class Tune:
    name: str
    aliases: tuple[str, ...]
    poems: int
    forms: tuple[TuneForm, ...]     # the main form first, then variants (又一体) by share

    @property
    def main(self) -> TuneForm:
        return self.forms[0]

    def to_json(self) -> dict:
        """What `poembot tunes show --json` prints: the main form's lines at the top, every form below."""
        main = self.main.to_json()
        return {"name": self.name, "aliases": list(self.aliases), "poems": self.poems,
                "pattern": self.main.pattern(), "rhyme_kind": main["rhyme_kind"], "share": main["share"],
                "stanza_break": main["stanza_break"], "lines": main["lines"],
                "forms": [f.to_json() for f in self.forms]}


@dataclass
class TunesTable:
    tunes: list[Tune]
    rhymes: RhymeTable
    _index: dict[str, Tune] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {}
        for tune in self.tunes:          # most common first: an alias never hides a tune's own name
            for name in (tune.name, *tune.aliases):
                self._index.setdefault(_clean_name(name), tune)
        for tune in self.tunes:
            self._index[_clean_name(tune.name)] = tune

    def __len__(self) -> int:
        return len(self.tunes)

    def get(self, name: str) -> Tune | None:
        """A tune by its name or an alias, simplified or traditional (念奴娇, 念奴嬌, 酹江月)."""
        key = _clean_name(name)
        found = self._index.get(key)
        if found is None:
            from verse.script import to_simplified

            found = self._index.get(_clean_name(to_simplified(key, lenient=True)))
        return found

    def to_json(self) -> dict:
        return {"version": 1, "rhymes": self.rhymes.to_json(),
                "columns": "forms: lengths, share, poems, break (lines in 上片), marks, tones (平仄中 per line), "
                           "rhyme (per line: null, or rhyme set + tone 平/仄/入)",
                "tunes": [{"name": t.name, "aliases": list(t.aliases), "poems": t.poems,
                           "forms": [f.compact() for f in t.forms]} for t in self.tunes]}

    @classmethod
    def from_json(cls, data: dict) -> "TunesTable":
        tunes = [Tune(t["name"], tuple(t["aliases"]), t["poems"], tuple(TuneForm.from_compact(f) for f in t["forms"]))
                 for t in data["tunes"]]
        return cls(tunes, RhymeTable.from_json(data["rhymes"]))


def _clean_name(name: str) -> str:
    return _NAME_JUNK.sub("", name or "")


def load(path: Path | None = None) -> TunesTable:
    """The committed 词谱 (or another file)."""
    return _load(Path(path) if path else TUNES_PATH)


@functools.cache
def _load(path: Path) -> TunesTable:
    return TunesTable.from_json(json.loads(path.read_text(encoding="utf-8")))


def get(name: str) -> Tune | None:
    return load().get(name)


def render(tune: Tune) -> str:
    """A tune as text: each form's lines with their 平仄, ◎ for a rhyme slot (and its tone and rhyme set)."""
    out = [f"{tune.name}（{tune.poems}首）" + (f" 又名 {'、'.join(tune.aliases[:8])}" if tune.aliases else "")]
    for k, form in enumerate(tune.forms):
        out.append(f"{'正体' if k == 0 else f'又一体{k}'}  {form.pattern()}  {form.share:.0%}（{form.poems}首）  "
                   f"{form.rhyme_kind}  {'单调' if not form.stanza_break else '双调'}")
        for s, stanza in enumerate(form.stanzas):
            if form.stanza_break:
                out.append("  上片" if s == 0 else "  下片")
            for ln in stanza:
                rhyme = f"  ◎{ln.rhyme_tone}韵{chr(ord('a') + ln.rhyme_set)}" if ln.rhyme else ""
                out.append(f"    {ln.tones}{ln.mark}{rhyme}")
    return "\n".join(out)


@dataclass(frozen=True)
class CiVerdict:
    """How a written ci keeps its tune's form: 句 lengths, every rhyme slot, the fixed 平仄."""
    form_ok: bool               # as many 句 as the form, each of its length
    rhyme_ok: bool              # every rhyme set's slots rhyme (one part, or one 部 where tones mix)
    rhymed_slots: int           # slots that rhyme with the rest of their set and have its tone
    rhyme_slots: int
    tone_fit: int               # fixed (平 or 仄) positions whose character can take that tone
    tone_fixed: int

    @property
    def tone_rate(self) -> float:
        return self.tone_fit / self.tone_fixed if self.tone_fixed else 1.0

    def to_dict(self) -> dict:
        return {"form_ok": self.form_ok, "rhyme_ok": self.rhyme_ok, "rhymed_slots": self.rhymed_slots,
                "rhyme_slots": self.rhyme_slots, "tone_fit": self.tone_fit, "tone_fixed": self.tone_fixed,
                "tone_rate": round(self.tone_rate, 4)}


def check(lines: list[str], form: TuneForm, rhymes: RhymeTable | None = None) -> CiVerdict:
    """The verdict on lines written to form (rhymes: the ci rhyme table, the committed one by default)."""
    rhymes = rhymes or load().rhymes
    form_ok = [len(x) for x in lines] == list(form.lengths)
    fit = fixed = 0
    for line, spec in zip(lines, form.lines):
        for char, want in zip(line, spec.tones):
            if want in MAIN_TONES:
                fixed += 1
                fit += want in prosody.tones(char)
    sets: dict[int, list[tuple[str, str]]] = {}
    for line, spec in zip(lines, form.lines):
        if spec.rhyme and line:
            sets.setdefault(spec.rhyme_set or 0, []).append((line[-1], spec.rhyme_tone or prosody.PING))
    slots = sum(len(s) for s in sets.values())
    rhymed = 0
    for members in sets.values():
        mixed = len({tone for _, tone in members}) > 1
        keys = [rhymes.bu_of(c) if mixed else rhymes.parts_of(c) for c, _ in members]
        shared = frozenset.intersection(*keys) if keys else frozenset()
        for (char, tone), key in zip(members, keys):
            rhymed += bool(shared) and bool(rhyme_classes(tone) & rhymes.tone_classes(char))
    return CiVerdict(form_ok, form_ok and rhymed == slots, rhymed, slots, fit, fixed)


def rhyme_classes(tone: str) -> frozenset[str]:
    """The tone classes a rhyme slot of tone may take: a 仄 slot rhymes in 上去 or in 入 (菩萨蛮's
    仄 sets are often 入声: 织 碧), one or the other through the set, as one part holds one class."""
    return frozenset({prosody.ZE, "入"}) if tone == prosody.ZE else frozenset({tone})
