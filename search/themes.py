"""The theme index: characters and common two-character words → the most popular regular poems
containing them, with the mean encoder μ of those poems precomputed per term.

`/poem 明月` starts its latent near the poems about 明月. `poembot index build` writes this file
beside the latent index (same model version), so the worker needs no corpus on disk: a single
term's prior is one dict lookup and one row read; several terms intersect their posting lists.
numpy only (the bot reads the term weights for /similar's "why" line).
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from search.files import IndexMismatch, default_index_dir, load_mu, model_version

log = logging.getLogger(__name__)

THEMES_FILE = "themes.npz"
THEME_POEMS = 16          # poems whose mean μ stands for a theme (as model.decode has always used)
POSTINGS_CAP = 128        # most popular poems kept per term, enough to intersect two or three terms
MIN_WORD_POEMS = 20       # a two-character sequence in this many poems counts as a common word
MIN_SHARED = 4            # fewer poems holding every term: fall back to the mean of each term's prior
# A worker started before its theme index existed looks for it at most this often (one stat).
THEMES_RECHECK_S = 10.0


def poem_terms(lines: Iterable[str]) -> set[str]:
    """Characters and within-line two-character sequences of a poem (candidate terms)."""
    out: set[str] = set()
    for line in lines:
        out.update(line)
        out.update(line[k:k + 2] for k in range(len(line) - 1))
    return out


@dataclass
class ThemeIndex:
    terms: list[str]
    df: np.ndarray            # [T] int32: indexed poems containing the term
    centres: np.ndarray       # [T, Z] float16: mean μ of the term's first THEME_POEMS postings
    offsets: np.ndarray       # [T + 1] int64
    postings: np.ndarray      # int32 rows of the latent index, ascending = most popular first
    mu: np.ndarray | None     # [N, Z] float16 raw μ of the index rows (intersections need it)
    n_poems: int
    slot: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.slot = {t: k for k, t in enumerate(self.terms)}
        # idf per slot, computed once: /similar looks up hundreds of terms per query.
        self.idfs = np.log(self.n_poems / np.maximum(self.df.astype(np.float64), 1.0)).tolist()

    def __len__(self) -> int:
        return len(self.terms)

    def idf(self, term: str) -> float:
        """log(N / df): 0 for a term the index does not hold."""
        k = self.slot.get(term)
        return 0.0 if k is None else self.idfs[k]

    def posting(self, term: str) -> np.ndarray:
        k = self.slot[term]
        return self.postings[self.offsets[k]:self.offsets[k + 1]]

    def parts(self, keyword: str) -> list[str]:
        """The held terms a keyword stands for: itself, else its two-character words, else its
        characters (a poem with 春江花月 holds 春江, 江花 and 花月)."""
        if keyword in self.slot:
            return [keyword]
        pairs = [keyword[k:k + 2] for k in range(len(keyword) - 1)]
        if pairs and all(p in self.slot for p in pairs):
            return pairs
        return [c for c in keyword if c in self.slot]

    def prior(self, keywords: Sequence[str]) -> np.ndarray | None:
        """Mean μ of the most popular poems holding every keyword; None when no keyword is held."""
        parts = list(dict.fromkeys(p for k in keywords for p in self.parts(k)))
        if not parts:
            return None
        if len(parts) == 1:
            return self.centres[self.slot[parts[0]]].astype(np.float32)
        if self.mu is not None:
            shared = self.posting(min(parts, key=lambda p: int(self.df[self.slot[p]])))
            for p in parts:
                shared = np.intersect1d(shared, self.posting(p), assume_unique=True)
            if len(shared) >= MIN_SHARED:
                return self.mu[shared[:THEME_POEMS]].astype(np.float32).mean(axis=0)
        return np.mean([self.centres[self.slot[p]].astype(np.float32) for p in parts], axis=0)

    # --- building and files ------------------------------------------------------------------
    @classmethod
    def build(cls, lines: Sequence[Sequence[str]], mu: np.ndarray) -> "ThemeIndex":
        """lines[i] and mu[i] are index row i; rows are in descending popularity already."""
        terms_of = [poem_terms(ls) for ls in lines]
        df = Counter(t for ts in terms_of for t in ts)
        kept = sorted(t for t, n in df.items() if len(t) == 1 or n >= MIN_WORD_POEMS)
        slot = {t: k for k, t in enumerate(kept)}
        lists: list[list[int]] = [[] for _ in kept]
        for row, ts in enumerate(terms_of):
            for t in ts:
                k = slot.get(t)
                if k is not None and len(lists[k]) < POSTINGS_CAP:
                    lists[k].append(row)
        offsets = np.zeros(len(kept) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(x) for x in lists])
        postings = np.fromiter((r for x in lists for r in x), dtype=np.int32, count=int(offsets[-1]))
        mu16 = mu.astype(np.float16)
        centres = np.stack([mu[x[:THEME_POEMS]].mean(axis=0) for x in lists]).astype(np.float16) \
            if kept else np.zeros((0, mu.shape[1]), np.float16)
        return cls(kept, np.array([df[t] for t in kept], dtype=np.int32), centres, offsets, postings,
                   mu16, len(lines))

    def save(self, directory: Path) -> Path:
        """The theme arrays; μ itself is stored once, in the latent index's file."""
        path = Path(directory) / THEMES_FILE
        np.savez(path, terms=np.array(self.terms, dtype=str), df=self.df, centres=self.centres,
                 offsets=self.offsets, postings=self.postings, n_poems=np.int64(self.n_poems))
        return path

    @classmethod
    def load(cls, directory: str | Path, mu: np.ndarray | None = None,
             centres: bool = True) -> "ThemeIndex":
        """centres=False skips the priors (the bot's /similar uses only terms, counts and postings)."""
        with np.load(Path(directory) / THEMES_FILE) as data:
            terms = data["terms"].tolist()
            df, n = data["df"].astype(np.int32), int(data["n_poems"])
            means = data["centres"] if centres else np.zeros((len(terms), 0), np.float16)
            return cls(terms, df, means, data["offsets"].astype(np.int64),
                       data["postings"].astype(np.int32), mu, n)


def find_themes(model_dir: str | Path, index_path: str | Path | None = None) -> ThemeIndex | None:
    """The theme index of this model (POEMBOT_INDEX_PATH, else the data dir), or None, logged."""
    version = model_version(model_dir)
    directory = Path(index_path) if index_path else default_index_dir(version)
    if not (directory / THEMES_FILE).exists():
        log.warning("no theme index at %s: themes are honoured by their words only, without a "
                    "latent prior (`poembot index build` writes it)", directory)
        return None
    try:
        themes = ThemeIndex.load(directory, mu=load_mu(directory, expect_version=version))
    except (IndexMismatch, OSError, ValueError, KeyError) as exc:
        log.error("theme index not usable, themes have no latent prior: %s", exc)
        return None
    log.info("theme index: %d terms over %d poems", len(themes), themes.n_poems)
    return themes


class ThemeWatch:
    """Stands in for a theme index not built yet (`poembot run` builds it in the background): prior()
    looks for it at most every recheck_s and, once it is there, loads it and answers from it, so a
    running worker gains the latent prior without a restart. The index directory is published whole
    (model/index_build.publish), so one that exists is complete."""

    def __init__(self, model_dir: str | Path, index_path: str | Path | None = None,
                 recheck_s: float = THEMES_RECHECK_S, clock=time.monotonic) -> None:
        self.model_dir = Path(model_dir)
        # Resolved once: the model version hashes the weights, too dear for every look.
        self.directory = Path(index_path) if index_path else default_index_dir(model_version(model_dir))
        self.recheck_s = recheck_s
        self.clock = clock
        self.themes: ThemeIndex | None = None
        self._checked_at = -math.inf
        self._refused: float | None = None      # mtime of a theme index that would not load

    def current(self) -> ThemeIndex | None:
        """The theme index once it exists (loaded on the first look that finds it), else None."""
        if self.themes is None and self.clock() - self._checked_at >= self.recheck_s:
            self._checked_at = self.clock()
            try:
                stamp = (self.directory / THEMES_FILE).stat().st_mtime
            except OSError:
                return None
            if stamp != self._refused:
                self.themes = find_themes(self.model_dir, self.directory)
                self._refused = None if self.themes is not None else stamp
        return self.themes

    def prior(self, keywords: Sequence[str]) -> np.ndarray | None:
        """ThemeIndex.prior once the index is there; None (themes by their words only) until then."""
        themes = self.current()
        return themes.prior(keywords) if themes is not None else None

