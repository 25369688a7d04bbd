"""The raw chinese-poetry package as `poembot corpus fetch` extracted it: its poems, strains and rank
files read as they are (npm or GitHub layout), and each poem cut into its lines with its strains.

What the corpus build, the prosody tables and the raw-corpus prosody report all read, below each of them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from protocol.paths import corpus_root
from verse.forms import cut_lines

PUNCT = "，。？！；、：,.?!;:"


@dataclass
class RawPoem:
    id: str
    dynasty: str
    author: str
    title: str
    paragraphs: list[str]


def _find_dirs(root: Path) -> tuple[Path, Path | None, Path | None]:
    """Locate the poems, strains and rank folders in either the npm or the GitHub layout."""
    poems = strains = rank = None
    for path in sorted(root.rglob("poet.tang.0.json")):
        parts = set(path.parts)
        if "strains" in parts:
            strains = strains or path.parent
        elif "error" not in parts:
            poems = poems or path.parent
    for path in sorted(root.rglob("poet.tang.rank.0.json")):
        rank = rank or path.parent
    if poems is None:
        raise FileNotFoundError(f"no poet.tang.*.json under {root}: run `poembot corpus fetch`")
    return poems, strains, rank


def _poem_files(folder: Path) -> list[Path]:
    pattern = re.compile(r"poet\.(tang|song)\.\d+\.json$")
    return sorted((p for p in folder.iterdir() if pattern.match(p.name)),
                  key=lambda p: (p.name.split(".")[1] != "tang", int(p.name.split(".")[2])))


def read_raw(root: Path) -> tuple[list[RawPoem], dict[str, list[str]], dict[tuple[str, str], int]]:
    poems_dir, strains_dir, rank_dir = _find_dirs(root)
    poems: list[RawPoem] = []
    for path in tqdm(_poem_files(poems_dir), desc="reading poems", unit="file"):
        dynasty = path.name.split(".")[1]
        for item in json.loads(path.read_text(encoding="utf-8")):
            poems.append(RawPoem(str(item.get("id") or ""), dynasty, item.get("author") or "",
                                 item.get("title") or "", list(item.get("paragraphs") or [])))
    strains: dict[str, list[str]] = {}
    if strains_dir is not None:
        for path in tqdm(_poem_files(strains_dir), desc="reading strains", unit="file"):
            for item in json.loads(path.read_text(encoding="utf-8")):
                strains[item["id"]] = item.get("strains") or []
    rank: dict[tuple[str, str], int] = {}
    if rank_dir is not None:
        for path in tqdm(sorted(rank_dir.glob("poet.*.rank.*.json")), desc="reading rank",
                         unit="file"):
            for item in json.loads(path.read_text(encoding="utf-8")):
                hits = sum(int(item.get(k) or 0) for k in ("baidu", "google", "bing", "so360"))
                key = (item.get("author") or "", item.get("title") or "")
                rank[key] = max(rank.get(key, 0), hits)
    return poems, strains, rank


@dataclass
class CutPoem:
    """A raw poem cut into its lines, with the strains aligned to them: what the tone table counts."""
    id: str
    dynasty: str                   # tang | song (from the file name)
    author: str
    title: str
    lines_t: list[str]             # traditional, punctuation removed
    puncts: str                    # the mark that closed each line
    strains: list[str] | None      # aligned with lines_t, or None when absent or misaligned


def cut_poem(text: str, strains: str | None) -> tuple[list[str], str, list[str] | None]:
    """Cut a raw poem at any of PUNCT (verse.forms.cut_lines; trailing text gets no mark); strains
    (same length, same punctuation) are cut at the same places, else None."""
    lines, marks = cut_lines(text, PUNCT, trailing_mark="")
    if strains is None or len(strains) != len(text):
        return lines, marks, None
    strain_lines, start = [], 0
    for line in lines:
        start = text.index(line, start)    # the segment itself: what precedes it is punctuation
        strain_lines.append(strains[start:start + len(line)])
        start += len(line)
    return lines, marks, strain_lines


def iter_raw_poems(root: Path | None = None) -> Iterator[CutPoem]:
    """The poems of the fetched package (read_raw), joined by id with their strains."""
    poems, strains, _rank = read_raw(root or corpus_root())
    for poem in poems:
        raw_strains = strains.get(poem.id)
        text = "".join(poem.paragraphs)
        lines, puncts, strain_lines = cut_poem(text, "".join(raw_strains) if raw_strains else None)
        yield CutPoem(poem.id, poem.dynasty, poem.author, poem.title, lines, puncts, strain_lines)
