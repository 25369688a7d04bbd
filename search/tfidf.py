"""Nearest corpus poems by character-bigram TF-IDF cosine, over an inverted index in numpy.

The lexical baseline a latent space must beat: of the evaluation's neighbours (training/evaluate.py)
and of benchmarks/similar.py, and the judge of benchmarks/themes.py.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

import numpy as np


def bigrams(lines: Iterable[str]) -> Counter:
    """Within-line character bigrams with their counts."""
    return Counter(line[k:k + 2] for line in lines for k in range(len(line) - 1))


class TfidfIndex:
    def __init__(self, poems: Sequence[Sequence[str]]) -> None:
        """poems[i]: the lines of document i."""
        counts = [bigrams(p) for p in poems]
        df = Counter(g for c in counts for g in c)
        self.n = len(poems)
        self.idf = {g: math.log((1 + self.n) / (1 + v)) + 1.0 for g, v in df.items()}  # as sklearn
        slot = {g: j for j, g in enumerate(df)}
        docs: list[list[int]] = [[] for _ in slot]
        weights: list[list[float]] = [[] for _ in slot]
        for i, c in enumerate(counts):
            norm = math.sqrt(sum((v * self.idf[g]) ** 2 for g, v in c.items())) or 1.0
            for g, v in c.items():
                docs[slot[g]].append(i)
                weights[slot[g]].append(v * self.idf[g] / norm)
        self.slot = slot
        self.offsets = np.zeros(len(slot) + 1, dtype=np.int64)
        self.offsets[1:] = np.cumsum([len(d) for d in docs])
        self.docs = np.fromiter((i for d in docs for i in d), np.int32, count=int(self.offsets[-1]))
        self.weights = np.fromiter((w for ws in weights for w in ws), np.float32, count=int(self.offsets[-1]))

    def scores(self, lines: Sequence[str]) -> np.ndarray:
        """Cosine of a poem (need not be in the index) with every document."""
        c = bigrams(lines)
        q = {g: v * self.idf.get(g, 0.0) for g, v in c.items() if g in self.slot}
        norm = math.sqrt(sum(w * w for w in q.values())) or 1.0
        out = np.zeros(self.n, dtype=np.float32)
        for g, w in q.items():
            j = self.slot[g]
            span = slice(self.offsets[j], self.offsets[j + 1])
            out[self.docs[span]] += self.weights[span] * (w / norm)
        return out

    def nearest(self, lines: Sequence[str], k: int, exclude: Iterable[int] = ()) -> np.ndarray:
        """Documents of the k highest cosines, best first."""
        s = self.scores(lines)
        for i in exclude:
            s[i] = -np.inf
        top = np.argpartition(-s, k - 1)[:k]
        return top[np.argsort(-s[top], kind="stable")]
