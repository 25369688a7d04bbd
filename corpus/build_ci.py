"""Build the ci (词) corpus from the raw chinese-poetry songci files: cut, simplify, merge tune aliases, split.

`poembot corpus build` writes $POEMBOT_DATA_DIR/corpus/ci.json.gz (corpus/ci_reader.py) beside poems.json.gz.
The data spells a renamed tune "alias・tune" (望江南・忆江南, 酹江月・念奴娇): the part after ・ is the tune,
and an alias that also appears alone joins it only when its own poems have the tune's shape.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from corpus.ci_reader import UNTITLED, CiCorpus
from corpus.reader import SEP
from verse.vocab import readable_form
from protocol.paths import corpus_dir, corpus_root
from corpus.build_corpus import split_of
from verse.forms import cut_lines, normalise

CI_SEPARATORS = "，。、？！；："     # every 句 and 逗: a ci's lines are its phrases
ALIAS_MARKS = re.compile(r"[・·•]")
CI_FILE_NAME = re.compile(r"ci\.song\.(\d+|2019y)\.json")     # not rank/ci/ci.song.rank.*.json
# An alias's own poems must be this many before their shape can veto a merge.
MIN_OWN_POEMS = 5
# ...and a shape counts as the tune's when this share of the tune's poems have it.
SHARED_SHAPE = 0.10


@dataclass
class RawCi:
    author: str
    rhythmic: str
    paragraphs: list[str]
    tags: list[str]


def ci_files(root: Path) -> list[Path]:
    """The package's ci.song.*.json files (npm or GitHub layout); 宋词三百首.json repeats them with a tag."""
    found = sorted(p for p in root.rglob("ci.song.*.json") if CI_FILE_NAME.fullmatch(p.name))
    if not found:
        raise FileNotFoundError(f"no ci.song.*.json under {root}: run `poembot corpus fetch`")
    extra = [p for p in sorted(root.rglob("宋词三百首.json")) if "songci" in p.parts]
    return found + extra


def read_raw_ci(root: Path) -> list[RawCi]:
    out = []
    for path in ci_files(root):
        for item in json.loads(path.read_text(encoding="utf-8")):
            out.append(RawCi(str(item.get("author") or "").strip(), str(item.get("rhythmic") or "").strip(),
                             [str(p) for p in item.get("paragraphs") or []],
                             [str(t) for t in item.get("tags") or []]))
    return out


def cut_ci(paragraphs: list[str]) -> tuple[list[str], str, list[int]]:
    """(lines, their marks, lines per paragraph): each paragraph cut by 句, empty paragraphs dropped."""
    lines: list[str] = []
    marks = ""
    counts: list[int] = []
    for para in paragraphs:
        got, got_marks = cut_lines(normalise(para), CI_SEPARATORS)
        if got:
            lines += got
            marks += got_marks
            counts.append(len(got))
    return lines, marks, counts


def shape(lines: list[str]) -> tuple[int, ...]:
    return tuple(len(line) for line in lines)


def resolve_tunes(shapes: dict[str, list[tuple[int, ...]]]) -> dict[str, str]:
    """Each raw tune string -> its tune: "a・b" is b; a lone a joins b when its own shape allows.

    shapes: raw string -> the line-length shape of each of its poems.
    """
    edges: dict[str, Counter] = defaultdict(Counter)      # alias -> tune -> poems naming the pair
    own: dict[str, Counter] = defaultdict(Counter)        # name -> shapes of the poems under it
    for raw, poem_shapes in shapes.items():
        parts = [p.strip() for p in ALIAS_MARKS.split(raw) if p.strip()]
        if not parts:
            continue
        target = parts[-1]
        own[target].update(poem_shapes)
        for alias in parts[:-1]:
            if alias != target and "□" not in alias:
                edges[alias][target] += len(poem_shapes)
    alone = {raw: Counter(s) for raw, s in shapes.items() if not ALIAS_MARKS.search(raw)}

    def compatible(alias: str, tune: str) -> bool:
        mine, theirs = alone.get(alias, Counter()), own.get(tune, Counter())
        if sum(mine.values()) < MIN_OWN_POEMS or sum(theirs.values()) < MIN_OWN_POEMS:
            return True
        main = mine.most_common(1)[0][0]
        return theirs[main] >= SHARED_SHAPE * sum(theirs.values())

    def final(name: str) -> str:
        seen = {name}
        while name in edges:
            tune = edges[name].most_common(1)[0][0]
            if tune in seen or not compatible(name, tune):
                break
            seen.add(tune)
            name = tune
        return name

    out = {}
    for raw in shapes:
        parts = [p.strip() for p in ALIAS_MARKS.split(raw) if p.strip()]
        out[raw] = final(parts[-1]) if parts else UNTITLED
    return out


def ci_id(author: str, rhythmic: str, lines: list[str]) -> str:
    """A stable id from the content (the data has none): the split follows it."""
    key = "\n".join([rhythmic, author, *lines])
    return "ci-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def build_ci(root: Path | None = None, out: Path | None = None) -> dict:
    """Write ci.json.gz; returns a summary of what was built."""
    import opencc

    started = time.time()
    root = root or corpus_root()
    out = out or corpus_dir()
    raw = read_raw_ci(root)
    t2s = opencc.OpenCC("t2s")        # the data is simplified, but for a few ci left traditional
    cut = []
    for ci in raw:
        lines, marks, counts = cut_ci(ci.paragraphs)
        if lines:
            simple = [readable_form(t2s.convert(line), line) for line in lines]
            cut.append((ci, simple, marks, counts))
    by_raw: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for ci, lines, _, _ in cut:
        by_raw[t2s.convert(ci.rhythmic) or UNTITLED].append(shape(lines))
    tune_of = resolve_tunes(by_raw)

    corpus = CiCorpus()
    row_of: dict[str, int] = {}
    duplicates = 0
    for ci, lines, marks, counts in cut:
        key = "|".join(lines)
        if key in row_of:      # 宋词三百首.json repeats ci of the main files: keep one, with all tags
            duplicates += 1
            k = row_of[key]
            tags = dict.fromkeys(corpus.tagged(k) + ci.tags)
            corpus.tags[k] = SEP.join(tags)
            continue
        rhythmic = t2s.convert(ci.rhythmic) or UNTITLED
        cid = ci_id(ci.author, rhythmic, lines)
        row_of[key] = len(corpus)
        corpus.append(id=cid, author=t2s.convert(ci.author), tune=tune_of[rhythmic], rhythmic=rhythmic,
                      split=split_of(cid), lines=lines, puncts=marks, paras=",".join(map(str, counts)),
                      tags=SEP.join(dict.fromkeys(ci.tags)))
    corpus.save(out)
    tunes = Counter(corpus.tune)
    summary = {"raw_ci": len(raw), "ci": len(corpus), "duplicates_dropped": duplicates,
               "tune_strings": len(by_raw), "tunes": len(tunes), "untitled": tunes.get(UNTITLED, 0),
               "by_split": dict(Counter(corpus.split)), "top_tunes": dict(tunes.most_common(10)),
               "seconds": round(time.time() - started, 1)}
    return summary
