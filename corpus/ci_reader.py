"""The built ci (词) corpus on disk: its own compressed JSON file of columns beside poems.json.gz.

`poembot corpus build` (corpus/build_ci.py) writes it; the tune learner (`poembot tunes learn`) and the
ci model read it. poems.json.gz keeps its own format: the ci live only here.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from corpus.reader import SEP, Joined
from protocol.paths import corpus_dir

CI_FORMAT_VERSION = 1
CI_FILE = "ci.json.gz"
UNTITLED = "失调名"     # the tune is lost: such ci stay in the corpus but are never a tune to write in


@dataclass
class CiCorpus:
    """Column store: row i of every list is ci i; lines are cut by 句 at ，。、？！；： (each line's mark kept)."""
    id: list[str] = field(default_factory=list)        # "ci-" + a hash of tune, author and text
    author: list[str] = field(default_factory=list)
    tune: list[str] = field(default_factory=list)      # the canonical 词牌, aliases merged
    rhythmic: list[str] = field(default_factory=list)  # the tune as the data spells it (望江南・忆江南)
    split: list[str] = field(default_factory=list)     # train | val | test, by the poems' hash rule
    lines: Joined = field(default_factory=Joined)      # simplified, punctuation removed
    puncts: list[str] = field(default_factory=list)    # the mark after each line, in order
    paras: list[str] = field(default_factory=list)     # lines per paragraph of the data, "2,1,2,…"
    tags: list[str] = field(default_factory=list)      # the data's tags joined by SEP (宋词三百首, 西湖 …)

    def __len__(self) -> int:
        return len(self.id)

    def append(self, **row) -> None:
        for name, value in row.items():
            getattr(self, name).append(value)

    def paragraph_ends(self, i: int) -> list[int]:
        """Line counts after which a paragraph of the data ends (its last entry is the number of lines)."""
        ends, total = [], 0
        for n in self.paras[i].split(","):
            if n:
                total += int(n)
                ends.append(total)
        return ends

    def tagged(self, i: int) -> list[str]:
        return self.tags[i].split(SEP) if self.tags[i] else []

    def indices(self, split: str | None = None, tunes: set[str] | None = None,
                untitled: bool = False) -> list[int]:
        """Rows in the split (all when None) with one of tunes (any when None); 失调名 only when untitled."""
        return [i for i in range(len(self))
                if (split is None or self.split[i] == split) and (tunes is None or self.tune[i] in tunes)
                and (untitled or self.tune[i] != UNTITLED)]

    def text(self, i: int) -> str:
        """The ci with its punctuation, one paragraph of the data a row."""
        lines, marks = self.lines[i], self.puncts[i]
        rows, start = [], 0
        for end in self.paragraph_ends(i):
            rows.append("".join(lines[k] + marks[k] for k in range(start, min(end, len(lines)))))
            start = end
        return "\n".join(rows)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CI_FILE
        tmp = path.with_suffix(".tmp")
        columns = {f.name: (v.raw if isinstance(v := getattr(self, f.name), Joined) else v) for f in fields(self)}
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as fh:
            json.dump({"version": CI_FORMAT_VERSION, "columns": columns}, fh, ensure_ascii=False,
                      separators=(",", ":"))
        tmp.replace(path)      # readers never see half a file
        return path

    @classmethod
    def load(cls, directory: Path | None = None) -> "CiCorpus":
        path = (directory or corpus_dir()) / CI_FILE
        if not path.exists():
            raise FileNotFoundError(f"no built ci corpus at {path}: run `poembot corpus build`")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            payload = json.load(fh)
        if payload.get("version") != CI_FORMAT_VERSION:
            raise ValueError(f"{path} has format {payload.get('version')}, expected {CI_FORMAT_VERSION}: "
                             "run `poembot corpus build` again")
        columns = payload["columns"]
        columns["lines"] = Joined(columns["lines"])
        return cls(**columns)


def is_current(directory: Path | None = None) -> bool:
    """True when a ci file of this format is there."""
    path = (directory or corpus_dir()) / CI_FILE
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            head = fh.read(64)
    except OSError:
        return False
    return head.startswith('{"version":%d,' % CI_FORMAT_VERSION)
