"""The latent index: VAE encoder means of every regular-form corpus poem, searched by cosine
similarity through inverted lists (search/ivf.py), and the /similar ranking on top of it.

Loading and searching need only numpy, so the bot can use it; building needs TensorFlow and lives in
model/index_build.py (`poembot index build`). Rows are stored in descending popularity (canon poems first), so row order is
popularity order; the theme index (search/themes.py) is written beside it from the same μ.
"""
from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from search.files import INDEX_FILE, INDEX_FORMAT, META_FILE, check_version
from search.ivf import InvertedLists
from search.popularity import IN_QIANJIA, IN_TANG300, SAME_POEM_AGREEMENT, agreement
from search.reasons import BREAKS, QueryPoem, imagery, reason
from search.themes import ThemeIndex

log = logging.getLogger(__name__)

EXACT_BELOW = 20_000      # smaller indexes are scanned whole; larger ones get inverted lists
COLUMNS = ("title", "author", "dynasty", "form", "text", "rank")
CANON_NAMES = {IN_TANG300: "唐诗三百首", IN_QIANJIA: "千家诗"}

# /similar's ranking (Index.recommend), chosen with benchmarks/similar.py.
POOL = 100                # nearest poems (and as many sharing imagery) the ranking chooses from
POP_WEIGHT = 0.15         # relevance = cosine + POP_WEIGHT x popularity (0..1) + LEX_WEIGHT x lex
# lex: the idf-weighted share of the query poems' rarest imagery terms a poem holds. Latent
# neighbours alone are no better than TF-IDF (same-form@10 0.332 vs 0.351), and shared words are
# what the "why" line can name.
LEX_WEIGHT = 0.6
LEX_TERMS = 12            # rarest imagery terms of the query whose popular poems join the pool
SAME_POEM_LEX = 0.9       # a pool poem with this share of the query's imagery may be the query itself
DIVERSITY = 0.3           # MMR: less this x the highest cosine to a poem already chosen
PER_POET = 1              # poems by one poet in one answer (relaxed only when the pool runs out)


class Columns(Sequence):
    """Per-row metadata stored as columns (a third the memory of 230k dicts); row i → a dict."""

    def __init__(self, columns: dict[str, list]) -> None:
        self.columns = columns
        self.n = len(next(iter(columns.values()))) if columns else 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self.n))]
        return {name: values[i] for name, values in self.columns.items()}


@dataclass
class Index:
    version: str
    ids: list[str]
    vectors: np.ndarray                  # [N, Z] float32, unit length (raw μ, float16, on disk)
    meta: Sequence[dict]                 # title, author, dynasty, form, text, rank — per row
    popular_order: np.ndarray            # row numbers by descending popularity
    popularity: np.ndarray | None = None   # [N] 0..1 (default: from popular_order)
    canon: np.ndarray | None = None        # [N] int8 search.popularity NOT_CANON / IN_QIANJIA / IN_TANG300
    lists: InvertedLists | None = None     # None: every query scans all rows
    weights: ThemeIndex | None = None      # term counts for the "why" line's imagery words

    def __post_init__(self) -> None:
        self.row = {pid: i for i, pid in enumerate(self.ids)}
        # One integer per poet, so the per-poet cap compares arrays rather than strings.
        poet_of: dict[str, int] = {}
        self.poets = np.array([poet_of.setdefault(self.author(r), len(poet_of)) for r in range(len(self.ids))],
                              dtype=np.int64)
        if self.popularity is None:
            self.popularity = np.zeros(len(self.ids), np.float32)
            self.popularity[self.popular_order] = np.linspace(1.0, 0.0, len(self.ids), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def _rows(self, ids: Iterable[str]) -> list[int]:
        return [self.row[i] for i in ids if i in self.row]

    def get(self, poem_id: str) -> dict | None:
        """The entry of one poem by id, or None."""
        k = self.row.get(poem_id)
        return None if k is None else self.entry(k)

    def canon_name(self, row: int) -> str | None:
        return None if self.canon is None else CANON_NAMES.get(int(self.canon[row]))

    def entry(self, row: int, score: float | None = None) -> dict:
        out = {"id": self.ids[row], **self.meta[row]}
        if score is not None:
            out["score"] = round(float(score), 4)
        return out

    def _unit_query(self, vector: Sequence[float] | np.ndarray) -> np.ndarray | None:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"query has {query.shape[0]} dims, index has {self.vectors.shape[1]}")
        norm = float(np.linalg.norm(query))
        return None if not np.isfinite(norm) or norm == 0.0 else query / norm

    def nearest(self, query: np.ndarray, k: int, excluded: Iterable[int] = (),
                exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosines of the k nearest to a unit query, best first: through the inverted
        lists when there are some (and not exact), falling back to a full scan when they hold
        too few rows after the exclusions."""
        excluded = np.fromiter(set(excluded), dtype=np.int64)
        rows = None
        if self.lists is not None and not exact:
            rows, scores = self.lists.scores(query)
            if len(excluded):
                keep = ~self._mask(excluded)[rows]
                rows, scores = rows[keep], scores[keep]
            if len(rows) < k:
                rows = None
        if rows is None:
            scores = self.vectors @ query
            if len(excluded):
                scores[excluded] = -np.inf
            rows = np.arange(len(self))
            k = min(k, len(self) - len(excluded))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return rows[top], scores[top]

    def search(self, vector: Sequence[float] | np.ndarray, k: int = 5,
               exclude_ids: Iterable[str] = ()) -> list[dict]:
        """The k rows of highest cosine similarity to vector, skipping excluded ids."""
        query = self._unit_query(vector)
        if query is None:
            return self.popular(k, exclude_ids)
        rows, scores = self.nearest(query, k, self._rows(exclude_ids))
        return [self.entry(int(r), s) for r, s in zip(rows, scores)]

    def recommend(self, vector: Sequence[float] | np.ndarray, k: int = 5,
                  exclude_ids: Iterable[str] = (), query: Sequence[QueryPoem] = (),
                  per_poet: int = PER_POET, pop_weight: float = POP_WEIGHT,
                  diversity: float = DIVERSITY, lex_weight: float = LEX_WEIGHT) -> list[dict]:
        """/similar's answer: from the POOL nearest poems and the POOL most popular ones sharing
        the query poems' imagery, greedily the one of highest cosine + pop_weight x popularity +
        lex_weight x shared imagery - diversity x its highest cosine to those already chosen
        (MMR), at most per_poet poems by one poet while the pool allows. Each entry has "why"
        (search.reasons.reason) against the query poems."""
        unit = self._unit_query(vector)
        if unit is None:
            return self.popular(k, exclude_ids)
        excluded = self._rows(exclude_ids)
        rows, _ = self.nearest(unit, POOL, excluded)
        lex_rows, lex_share = self._lexical(query, excluded)
        rows = np.union1d(rows, lex_rows)
        lex = np.zeros(len(rows), np.float32)
        lex[np.searchsorted(rows, lex_rows)] = lex_share
        # The poem asked about may itself be in the corpus (a pasted 静夜思, in either edition):
        # answering with it again says nothing. Only poems holding nearly all its rare words can be.
        same = [j for j in np.flatnonzero(lex >= SAME_POEM_LEX) if self._is_query(int(rows[j]), query)]
        if same:
            keep = np.ones(len(rows), bool)
            keep[same] = False
            rows, lex = rows[keep], lex[keep]
        cos = self.vectors[rows] @ unit
        relevance = cos + pop_weight * self.popularity[rows] + lex_weight * lex
        chosen = self._diverse(rows, relevance, k, per_poet, diversity)
        out = []
        for j in chosen:
            row = int(rows[j])
            entry = self.entry(row, cos[j])
            entry["why"] = reason(str(entry.get("text") or ""), self.vectors[row], query, self.weights,
                                  self.canon_name(row))
            out.append(entry)
        return out

    def _lexical(self, query: Sequence[QueryPoem], excluded: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Rows (ascending) among the theme index's popular poems for the query's LEX_TERMS rarest
        imagery terms, the POOL best, with the idf-weighted share of those terms each holds."""
        none = np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.weights is None or not query or not len(self.weights.postings):
            return none
        weights = imagery(set().union(*(q.terms for q in query)), self.weights)
        terms = sorted(weights, key=lambda t: (-weights[t], t))[:LEX_TERMS]
        if not terms:
            return none
        postings = [self.weights.posting(t) for t in terms]
        rows, inverse = np.unique(np.concatenate(postings), return_inverse=True)
        held = np.bincount(inverse, weights=np.repeat([weights[t] for t in terms], [len(p) for p in postings]))
        share = (held / sum(weights[t] for t in terms)).astype(np.float32)
        if excluded:
            share[self._mask(excluded)[rows]] = -1.0
        best = np.argsort(-share, kind="stable")[:POOL]
        best = best[share[best] > 0]
        best.sort()
        return rows[best].astype(np.int64), share[best]

    def _mask(self, rows: Iterable[int]) -> np.ndarray:
        """Boolean [N], true at rows: a lookup per candidate instead of np.isin's sort."""
        mask = np.zeros(len(self), bool)
        mask[np.fromiter(rows, dtype=np.int64)] = True
        return mask

    def _is_query(self, row: int, query: Sequence[QueryPoem]) -> bool:
        """The row is one of the query poems, in this or another edition."""
        lines = [x for x in BREAKS.split(str(self.meta[row].get("text") or "")) if x]
        return any(agreement(q.lines, lines) >= SAME_POEM_AGREEMENT for q in query)

    def author(self, row: int) -> str:
        if isinstance(self.meta, Columns):          # no dict per row on the hot path
            return self.meta.columns["author"][row] or ""
        return self.meta[row].get("author") or ""

    def _diverse(self, rows: np.ndarray, relevance: np.ndarray, k: int, per_poet: int,
                 diversity: float) -> list[int]:
        """Positions in rows chosen by MMR under the per-poet cap, then without it if short."""
        vectors = self.vectors[rows]
        poets = np.unique(self.poets[rows], return_inverse=True)[1]
        chosen: list[int] = []
        counts = np.zeros(int(poets.max(initial=-1)) + 1, np.int64)
        closest = np.full(len(rows), -np.inf)       # highest cosine to a chosen poem, per row
        for capped in (True, False):
            while len(chosen) < min(k, len(rows)):
                score = relevance - diversity * closest if chosen else relevance.astype(np.float64)
                score[chosen] = -np.inf
                if capped:
                    score[counts[poets] >= per_poet] = -np.inf
                j = int(np.argmax(score))
                if not np.isfinite(score[j]):
                    break
                chosen.append(j)
                counts[poets[j]] += 1
                closest = np.maximum(closest, vectors @ vectors[j])
        return chosen

    def popular(self, k: int = 5, exclude_ids: Iterable[str] = ()) -> list[dict]:
        excluded = set(self._rows(exclude_ids))
        out = []
        for r in self.popular_order:
            if int(r) not in excluded:
                out.append(self.entry(int(r)))
                if len(out) == k:
                    break
        return out

    def save(self, directory: Path, mu: np.ndarray | None = None) -> Path:
        """mu: the raw encoder means (the theme index averages them); unit vectors when absent."""
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"version": np.array(self.version), "format": np.int64(INDEX_FORMAT),
                  "mu": (mu if mu is not None else self.vectors).astype(np.float16),
                  "popular_order": self.popular_order.astype(np.int32),
                  "popularity": np.asarray(self.popularity, np.float32)}
        if self.canon is not None:
            arrays["canon"] = self.canon.astype(np.int8)
        if self.lists is not None:
            arrays.update(self.lists.arrays())
        np.savez(directory / INDEX_FILE, **arrays)
        columns = {name: [m.get(name) for m in self.meta] for name in COLUMNS}
        payload = {"version": self.version, "format": INDEX_FORMAT, "ids": self.ids, "columns": columns}
        with gzip.open(directory / META_FILE, "wt", encoding="utf-8", compresslevel=3) as fh:
            json.dump(payload, fh, ensure_ascii=False, separators=(",", ":"))
        return directory

    @classmethod
    def load(cls, directory: str | Path, expect_version: str | None = None) -> "Index":
        directory = Path(directory)
        if not (directory / META_FILE).exists():
            raise FileNotFoundError(f"no latent index at {directory}: run `poembot index build`")
        with gzip.open(directory / META_FILE, "rt", encoding="utf-8") as fh:
            payload = json.load(fh)
        check_version(directory, payload.get("version"), payload.get("format"), expect_version)
        with np.load(directory / INDEX_FILE) as data:
            vectors = unit_rows(data["mu"].astype(np.float32))
            order = data["popular_order"].astype(np.int64)
            pop = data["popularity"].astype(np.float32)
            canon = data["canon"] if "canon" in data else None
            lists = InvertedLists.from_arrays(data)
        if lists is not None:
            lists.attach(vectors)
        weights = None
        try:
            weights = ThemeIndex.load(directory, centres=False)
        except FileNotFoundError:
            log.warning("no theme index beside %s: /similar explains its answers without imagery words", directory)
        return cls(payload["version"], payload["ids"], vectors, Columns(payload["columns"]), order,
                   pop, canon, lists, weights)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-8)).astype(np.float32)
