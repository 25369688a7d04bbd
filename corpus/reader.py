"""The built corpus on disk: one compressed JSON file of columns, loaded in a couple of seconds.

`poembot corpus build` (corpus/build_corpus.py) writes it; training, evaluation and the index read it.
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from verse.forms import FORMS
from protocol.paths import corpus_dir

FORMAT_VERSION = 3   # 3: characters outside GBK keep their traditional form
POEMS_FILE = "poems.json.gz"
VOCAB_FILE = "vocab.json"
TONES_FILE = "tones.tsv"
SPLITS = ("train", "val", "test")
SEP = "/"   # joins a poem's lines on disk; the builder strips it from the text


class Joined(Sequence):
    """A column of per-poem line lists kept as joined strings and split on access.

    Parsing 300k short strings is ten times faster than 300k JSON lists, which keeps loading fast.
    """

    def __init__(self, raw: list[str] | None = None) -> None:
        self.raw: list[str] = raw if raw is not None else []

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        value = self.raw[i]
        return value.split(SEP) if value else None

    def __iter__(self) -> Iterator[list[str] | None]:
        for value in self.raw:
            yield value.split(SEP) if value else None

    def append(self, lines: list[str] | None) -> None:
        self.raw.append(SEP.join(lines) if lines else "")


@dataclass
class Corpus:
    """Column store: row i of every list is poem i."""
    id: list[str] = field(default_factory=list)
    dynasty: list[str] = field(default_factory=list)      # "tang" | "song"
    author: list[str] = field(default_factory=list)       # simplified
    title: list[str] = field(default_factory=list)        # simplified
    author_t: list[str] = field(default_factory=list)     # traditional original
    title_t: list[str] = field(default_factory=list)
    form: list[str] = field(default_factory=list)         # 五绝 七绝 五律 七律 other
    split: list[str] = field(default_factory=list)        # train | val | test
    lines: Joined = field(default_factory=Joined)    # simplified, punctuation removed
    lines_t: Joined = field(default_factory=Joined)
    puncts: list[str] = field(default_factory=list)       # the mark after each line, in order
    strains: Joined = field(default_factory=Joined)  # 平仄 marks aligned with lines_t, or None
    rank: list[int] = field(default_factory=list)         # popularity (search hits), 0 if unknown

    def __len__(self) -> int:
        return len(self.id)

    def columns(self) -> dict[str, list]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.raw if isinstance(value, Joined) else value
        return out

    def append(self, **row) -> None:
        for name, value in row.items():
            getattr(self, name).append(value)

    def indices(self, split: str | None = None, forms: tuple[str, ...] = tuple(FORMS)) -> list[int]:
        """Rows in the split (all splits when None) whose form is one of forms."""
        wanted = set(forms)
        return [i for i in range(len(self))
                if self.form[i] in wanted and (split is None or self.split[i] == split)]

    def text(self, i: int, traditional: bool = False) -> str:
        """The poem with its punctuation, one couplet per line."""
        lines = self.lines_t[i] if traditional else self.lines[i]
        out, couplet = [], ""
        for k, line in enumerate(lines):
            couplet += line + (self.puncts[i][k] if k < len(self.puncts[i]) else "")
            if k % 2 == 1:
                out.append(couplet)
                couplet = ""
        if couplet:
            out.append(couplet)
        return "\n".join(out)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / POEMS_FILE
        tmp = path.with_suffix(".tmp")
        payload = {"version": FORMAT_VERSION, "columns": self.columns()}
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=3) as fh:
            json.dump(payload, fh, ensure_ascii=False, separators=(",", ":"))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: Path | None = None) -> "Corpus":
        directory = directory or corpus_dir()
        path = directory / POEMS_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"no built corpus at {path}: run `poembot corpus fetch && poembot corpus build`")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            payload = json.load(fh)
        if payload.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} has format {payload.get('version')}, expected "
                             f"{FORMAT_VERSION}: run `poembot corpus build` again")
        columns = payload["columns"]
        for name in ("lines", "lines_t", "strains"):
            columns[name] = Joined(columns[name])
        return cls(**columns)
