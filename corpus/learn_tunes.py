"""Learn a 词谱 from the ci corpus: each tune's forms, rhyme slots, 平仄, and the rhyme groups of ci.

`poembot tunes learn` runs it over the built ci corpus and writes verse/data/tunes.json (verse/tunes.py
reads it). Nothing here is told what a tune looks like; it is all counted from the poems:
- forms: the line-length shapes (lines cut by 句 and 逗) holding at least FORM_MIN_SHARE of a tune's ci;
- the rhyme groups of ci (what 词林正韵 writes down): 平水韵 groups that end the lines of one rhyme in
  the same ci are merged while ci rhyme them together about as freely as within one (merge_groups),
  within a tone class (平, 上去, 入); a 上去 part joins the 平 part it rhymes with across tones (西江月)
  far above chance as one 部 (bu_links);
- rhyme slots: line ends that share a part in at least RHYME_SHARE of a form's ci, linked into rhyme
  sets (a set per rhyme: 菩萨蛮 has four, alternating 仄 and 平); sets of one 部 but different tone
  are one rhyme (平仄通叶);
- 平仄: per position, 平 or 仄 when at least TONE_MAJORITY of the characters of known tone have it, else 中;
- the 上片/下片 break: the data marks none (its paragraphs are sentences), so it is where the two halves
  end alike and weigh about the same (stanza_break).
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from verse import prosody
from verse.tunes import RhymeTable, Tune, TuneForm, TuneLine, TunesTable, UNTITLED, ZHONG, tone_class

MIN_POEMS = 40            # tunes learned
FORM_MIN_SHARE = 0.15     # a variant form (又一体) holds at least this share of its tune's ci
FORM_MIN_POEMS = 8        # ... and this many ci, to count its rhymes and tones
RHYME_SHARE = 0.5         # two line ends rhyme when they share a part in this share of the form's ci
SEED_SHARE = 0.3          # ... the first pass, with bare 平水韵 groups (上 and 去 not yet merged)
ENTERING_SHARE = 2 / 3    # a 仄 rhyme slot is 入声 when this share of its 仄 ends are 入
TONE_MAJORITY = 0.75      # a position is 平 or 仄 when this share of its known characters say so
MERGE_MIXING = 0.3        # two groups merge when ci rhyme them together this freely (see merge_groups)
MERGE_MIN_PAIRS = 10      # ... and at least this often
BU_MIN_LIFT = 3.0         # a 仄 part and a 平 part are one 部 when rhymed together this far above chance
STANZA_BALANCE = 0.7      # the 上片 and 下片 of a 双调 hold at least this ratio of each other's characters
SHORT_TUNE = 40           # tunes this short (in characters) are 单调 unless their halves end alike


@dataclass
class CiSample:
    """One ci as the learner sees it."""
    tune: str
    lines: list[str]
    para_ends: list[int] = field(default_factory=list)    # line counts where the data's paragraphs end
    marks: str = ""
    alias: str = ""                                       # the tune as the data spells it


def shape(lines: Sequence[str]) -> tuple[int, ...]:
    return tuple(len(line) for line in lines)


# ------------------------------------------------------------------------------------- rhyme groups
def single_group(char: str) -> str | None:
    """The one 平水韵 group of a character read one way only (polyphones blur the counts)."""
    groups = prosody.rhyme_groups(char)
    return next(iter(groups)) if len(groups) == 1 else None


def seed_sets(ends: list[list[str]], share: float) -> list[list[int]]:
    """Rhyme sets from bare 平水韵 groups: positions linked when their ends share a group often enough."""
    n = len(ends[0]) if ends else 0
    groups = [[prosody.rhyme_groups(c) for c in row] for row in ends]
    return _linked_sets(n, lambda i, j: sum(bool(g[i] & g[j]) for g in groups) / len(groups), share)


def _linked_sets(n: int, rate, threshold: float) -> list[list[int]]:
    """Connected positions (single linkage) with rate(i, j) >= threshold; sets of two or more."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in range(n):
        for j in range(i + 1, n):
            if rate(i, j) >= threshold:
                parent[find(i)] = find(j)
    sets: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        sets[find(i)].append(i)
    return sorted((s for s in sets.values() if len(s) > 1), key=lambda s: s[0])


@dataclass
class PairCounts:
    """How often two 平水韵 groups end lines of one rhyme set in one ci (unordered pairs, both ways)."""
    pairs: Counter = field(default_factory=Counter)
    per_group: Counter = field(default_factory=Counter)

    def add(self, chars: Iterable[str]) -> None:
        groups = [g for g in (single_group(c) for c in chars) if g]
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                g, h = groups[a], groups[b]
                self.pairs[(g, h)] += 1
                self.pairs[(h, g)] += 1
                self.per_group[g] += 1
                self.per_group[h] += 1

    def lift(self, g: str, h: str) -> float:
        total = sum(self.per_group.values())
        expected = self.per_group[g] * self.per_group[h] / total if total else 0.0
        return self.pairs[(g, h)] / expected if expected else 0.0


def merge_groups(counts: PairCounts, min_mixing: float = MERGE_MIXING,
                 min_pairs: int = MERGE_MIN_PAIRS) -> list[list[str]]:
    """Groups of one tone class merged while two parts rhyme together freely (mixing of their summed
    counts, so a group that mixes with two parts does not chain them); each result is one part."""
    groups = prosody.pingshui_groups()
    order = {g: i for i, g in enumerate(groups)}
    clusters: list[list[str]] = [[g] for g in groups]

    def inner(c: list[str]) -> float:
        return sum(counts.pairs[(g, h)] for g in c for h in c) / 2

    def between(a: list[str], b: list[str]) -> int:
        return sum(counts.pairs[(g, h)] for g in a for h in b)

    def mix(a: list[str], b: list[str]) -> float:
        ab = between(a, b)
        if ab < min_pairs or tone_class(prosody.group_tone(a[0])) != tone_class(prosody.group_tone(b[0])):
            return 0.0
        aa, bb = inner(a), inner(b)
        if aa and bb:
            return ab / (2 * math.sqrt(aa * bb))
        # A group that never rhymes with itself here: the share of its pairs going to the other part.
        small = a if not aa else b
        return ab / max(sum(counts.per_group[g] for g in small), 1)

    while True:
        best = max(((mix(a, b), i, j) for i, a in enumerate(clusters) for j, b in enumerate(clusters) if i < j),
                   default=(0.0, 0, 0))
        if best[0] < min_mixing:
            break
        _, i, j = best
        clusters[i] = sorted(clusters[i] + clusters[j], key=order.__getitem__)
        del clusters[j]
    return sorted(clusters, key=lambda p: order[p[0]])


def bu_links(across: PairCounts, parts: list[list[str]], min_lift: float = BU_MIN_LIFT,
             min_pairs: int = MERGE_MIN_PAIRS) -> list[list[str]]:
    """Each 仄 (上去) part joined to the 平 part it is rhymed with across tones far above chance (one 部)."""
    part_of = {g: k for k, p in enumerate(parts) for g in p}
    pairs: Counter = Counter()
    per: Counter = Counter()
    for (g, h), n in across.pairs.items():
        a, b = part_of[g], part_of[h]
        pairs[(a, b)] += n
        per[a] += n
    total = sum(per.values())
    links = []
    for k, part in enumerate(parts):
        if tone_class(prosody.group_tone(part[0])) != prosody.ZE:
            continue
        best = None
        for j, other in enumerate(parts):
            if tone_class(prosody.group_tone(other[0])) != prosody.PING or pairs[(k, j)] < min_pairs:
                continue
            lift = pairs[(k, j)] * total / (per[k] * per[j])
            if lift >= min_lift and (best is None or lift > best[0]):
                best = (lift, j)
        if best is not None:
            links.append([part[0], parts[best[1]][0]])
    return links


def learn_rhyme_table(samples_by_form: Iterable[list[CiSample]]) -> RhymeTable:
    """Parts and 部 from the rhyme sets of every well-attested form (see the module docstring)."""
    forms = [f for f in samples_by_form if len(f) >= FORM_MIN_POEMS]
    within = PairCounts()
    for poems in forms:
        ends = [[line[-1] for line in p.lines] for p in poems]
        for rhyme_set in seed_sets(ends, SEED_SHARE):
            for row in ends:
                within.add(row[i] for i in rhyme_set)
    # The seed sets miss 上 with 去 (no bare group holds both): a second pass with the first parts
    # finds those sets, and then the 平-仄 rhymes of one 部.
    table = RhymeTable.from_parts(merge_groups(within))
    within, across = PairCounts(), PairCounts()
    for poems in forms:
        ends = [[line[-1] for line in p.lines] for p in poems]
        sets = rhyme_sets(ends, table, bu=False)
        for rhyme_set in sets:
            for row in ends:
                within.add(row[i] for i in rhyme_set)
        for a in range(len(sets)):
            for b in range(a + 1, len(sets)):
                for row in ends:
                    for i in sets[a]:
                        for j in sets[b]:
                            across.add((row[i], row[j]))
    parts = merge_groups(within)
    return RhymeTable.from_parts(parts, bu_links(across, parts))


def rhyme_sets(ends: list[list[str]], table: RhymeTable, bu: bool = True,
               share: float = RHYME_SHARE) -> list[list[int]]:
    """Rhyme sets of a form: ends sharing a part (bu: a 部, any tone) in at least share of its ci."""
    n = len(ends[0]) if ends else 0
    keys = [[table.parts_of(c) for c in row] for row in ends]
    sets = _linked_sets(n, lambda i, j: sum(bool(k[i] & k[j]) for k in keys) / len(keys), share)
    if not bu:
        return sets
    # Sets of one 部 and different tones are one rhyme (西江月's 仄 叶 at each stanza's end).
    bus = [[table.bu_of(c) for c in row] for row in ends]

    def together(a: list[int], b: list[int]) -> float:
        return sum(any(r[i] & r[j] for i in a for j in b) for r in bus) / len(bus)

    merged: list[list[int]] = []
    for s in sets:
        for m in merged:
            if together(m, s) >= share:
                m.extend(s)
                break
        else:
            merged.append(list(s))
    return [sorted(m) for m in merged]


# --------------------------------------------------------------------------------------------- forms
def stanza_break(lengths: Sequence[int], para_share: Sequence[float] | None = None) -> int | None:
    """Lines in the 上片, or None for a 单调: the split whose halves end in the most equal lines (then the
    most even weight), among splits with halves of similar weight at a sentence end of the data."""
    total = sum(lengths)
    best: tuple | None = None
    for k in range(1, len(lengths)):
        up, down = sum(lengths[:k]), total - sum(lengths[:k])
        balance = min(up, down) / max(up, down)
        if balance < STANZA_BALANCE or (para_share is not None and para_share[k - 1] < 0.5):
            continue
        suffix = 0
        while suffix < min(k, len(lengths) - k) and lengths[k - 1 - suffix] == lengths[-1 - suffix]:
            suffix += 1
        score = (suffix, balance)
        if best is None or score > best[0]:
            best = (score, k)
    if best is None:
        return None
    (suffix, _), k = best
    if suffix >= 2 or total >= SHORT_TUNE:
        return k
    return None


def position_tones(lines_of: list[list[str]], length: int, k: int) -> str:
    """平 仄 or 中 per character of line k across the ci (characters of unknown or either tone abstain)."""
    out = []
    for pos in range(length):
        votes = Counter()
        for lines in lines_of:
            t = prosody.tones(lines[k][pos])
            if len(t) == 1:
                votes[next(iter(t))] += 1
        known = votes[prosody.PING] + votes[prosody.ZE]
        if known and votes[prosody.PING] / known >= TONE_MAJORITY:
            out.append(prosody.PING)
        elif known and votes[prosody.ZE] / known >= TONE_MAJORITY:
            out.append(prosody.ZE)
        else:
            out.append(ZHONG)
    return "".join(out)


def rhyme_tone_of(classes: Counter) -> str | None:
    """平 or 仄 by majority; a 仄 rhyme is 入 only when ENTERING_SHARE of its 仄 ends are 入声 (满江红), since
    many tunes take either (菩萨蛮's 仄 couplets)."""
    ping, ze, ru = classes[prosody.PING], classes[prosody.ZE], classes["入"]
    if not ping + ze + ru:
        return None
    if ping > ze + ru:
        return prosody.PING
    return "入" if ru >= ENTERING_SHARE * (ze + ru) else prosody.ZE


def learn_form(poems: list[CiSample], share: float, table: RhymeTable) -> TuneForm:
    """One form of a tune from its ci (all of one shape)."""
    lengths = shape(poems[0].lines)
    n = len(lengths)
    ends = [[line[-1] for line in p.lines] for p in poems]
    sets = rhyme_sets(ends, table)
    set_of = {i: k for k, s in enumerate(sets) for i in s}
    para_share = [sum(k + 1 in p.para_ends for p in poems) / len(poems) for k in range(n)]
    lines_of = [p.lines for p in poems]
    out = []
    for k, length in enumerate(lengths):
        tones = position_tones(lines_of, length, k)
        rhyme_tone = None
        if k in set_of:
            rhyme_tone = rhyme_tone_of(Counter(c for row in ends for c in table.tone_classes(row[k])))
            # The rhyme's tone decides the last character's 平仄.
            tones = tones[:-1] + (prosody.PING if rhyme_tone == prosody.PING else prosody.ZE)
        marks = Counter(p.marks[k] for p in poems if len(p.marks) > k)
        out.append(TuneLine(length, k in set_of, rhyme_tone, set_of.get(k), tones,
                            marks.most_common(1)[0][0] if marks else "，"))
    return TuneForm(lengths, round(share, 4), len(poems), stanza_break(lengths, para_share), tuple(out))


def learn_tune(name: str, poems: list[CiSample], table: RhymeTable) -> Tune:
    shapes = Counter(shape(p.lines) for p in poems)
    forms = []
    for lengths, count in shapes.most_common():
        share = count / len(poems)
        if forms and (share < FORM_MIN_SHARE or count < FORM_MIN_POEMS):
            break
        forms.append(learn_form([p for p in poems if shape(p.lines) == lengths], share, table))
    aliases = sorted({a for p in poems for a in _alias_names(p.alias) if a != name})
    return Tune(name, tuple(aliases), len(poems), tuple(forms))


def _alias_names(raw: str) -> list[str]:
    return [p for p in re.split(r"[・·•]", raw) if p and "□" not in p]


def learn(samples: list[CiSample], min_poems: int = MIN_POEMS, rhyme_table: RhymeTable | None = None) -> TunesTable:
    """The 词谱 of every tune with at least min_poems ci; the rhyme table is learned too unless given."""
    by_tune: dict[str, list[CiSample]] = defaultdict(list)
    for s in samples:
        if s.tune and s.tune != UNTITLED and s.lines:
            by_tune[s.tune].append(s)
    tunes = {t: ps for t, ps in by_tune.items() if len(ps) >= min_poems}
    if rhyme_table is None:
        by_form = []
        for poems in tunes.values():
            shapes = Counter(shape(p.lines) for p in poems)
            for lengths, count in shapes.items():
                if count >= FORM_MIN_POEMS:
                    by_form.append([p for p in poems if shape(p.lines) == lengths])
        rhyme_table = learn_rhyme_table(by_form)
    learned = [learn_tune(name, poems, rhyme_table)
               for name, poems in sorted(tunes.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    return TunesTable(learned, rhyme_table)


def samples_from_corpus(directory: Path | None = None) -> list[CiSample]:
    from corpus.ci_reader import CiCorpus

    corpus = CiCorpus.load(directory)
    return [CiSample(corpus.tune[i], corpus.lines[i], corpus.paragraph_ends(i), corpus.puncts[i],
                     corpus.rhythmic[i]) for i in range(len(corpus))]


# ----------------------------------------------------------------------------------- 词林正韵 check
def cilin_reference() -> dict[str, list[str]]:
    """平水韵 group -> its 词林正韵 部 with tone class (第一部平), from the #tongya line of pingshui.tsv; a
    group 词林正韵 splits by character (十灰: 第三部 and 第五部) has two, its main one first."""
    out = {}
    with open(prosody.PINGSHUI_PATH, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#tongya\t"):
                for item in line.rstrip("\n").split("\t")[1:]:
                    group, parts = item.split(":")
                    out[group] = [p + tone_class(prosody.group_tone(group)) for p in parts.split(",")]
    return out


def compare_with_cilin(table: RhymeTable) -> dict:
    """Agreement of the learned parts with 词林正韵 (部 and tone class) over all pairs of 平水韵 groups: pairs
    both put together, pairs only one does (a pair with a split group is together in 词林正韵 when any of
    its 部 meet, and never counted against the learned table for being apart), and where they differ."""
    ref = cilin_reference()
    groups = [g for g in prosody.pingshui_groups() if g in ref]
    learned = {g: table.part_of_group.get(g) for g in groups}
    both = only_learned = only_ref = 0
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            g, h = groups[a], groups[b]
            split = len(ref[g]) > 1 or len(ref[h]) > 1
            same_ref = bool(set(ref[g]) & set(ref[h]))
            same_learned = learned[g] == learned[h]
            both += same_ref and same_learned
            only_learned += same_learned and not same_ref
            only_ref += same_ref and not same_learned and not split
    ref_parts: dict[str, list[str]] = defaultdict(list)
    for g in groups:
        ref_parts[ref[g][0]].append(g)
    exact, differences = 0, []
    for key, members in ref_parts.items():
        learned_parts = list(dict.fromkeys(learned[g] for g in members))
        if len(learned_parts) == 1 and sorted(table.parts[learned_parts[0]]) == sorted(members):
            exact += 1
        else:
            differences.append({"cilin": key, "groups": members, "learned": [table.parts[p] for p in learned_parts]})
    return {"cilin_parts": len(ref_parts), "learned_parts": len(table.parts), "parts_identical": exact,
            "pairs_together_both": both, "pairs_only_learned": only_learned, "pairs_only_cilin": only_ref,
            "precision": round(both / max(both + only_learned, 1), 3),
            "recall": round(both / max(both + only_ref, 1), 3),
            "split_groups": [g for g in groups if len(ref[g]) > 1], "differences": differences}


def write(table: TunesTable, path: Path, check: dict | None = None) -> None:
    """The committed file: patterns and rhyme parts only (no poems), with how it was made."""
    payload = table.to_json()
    payload["made_by"] = ("poembot tunes learn (corpus/learn_tunes.py) over the ci of chinese-poetry@2.0.1 "
                          f"songci; tunes with >= {MIN_POEMS} ci, forms >= {FORM_MIN_SHARE:.0%}")
    if check:
        payload["cilin_check"] = check
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    tmp.replace(path)

