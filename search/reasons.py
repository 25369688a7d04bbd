"""Why a /similar answer was chosen, in one short line: the imagery words it shares with the poem
asked about (or with the liked poem it is nearest to), and whether it is a canon poem.

numpy only; the bot renders the returned dict in the user's language (bot/render.py).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from search.themes import ThemeIndex, poem_terms

WHY_WORDS = 2             # imagery words named at most
# Terms in more poems than this share say nothing about a pair (不知, 何处, 一, 人): not imagery.
MAX_WORD_SHARE = 0.02
MAX_CHAR_SHARE = 0.03
BREAKS = re.compile(r"[，。！？；：、,.!?;:\s]+")    # between the lines of an index entry's text


@dataclass
class QueryPoem:
    """A poem the answer should be near: the one asked about, or one from the user's taste."""
    lines: list[str]
    vector: np.ndarray | None = None    # unit μ; picks which taste poem an answer is nearest to
    liked: bool = False                 # the user liked it (else it was written for them)
    taste: bool = False                 # one of the user's poems (named in the why line), not the
                                        # poem asked about (which the user has just seen)
    terms: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.terms = poem_terms(self.lines)


def imagery(terms: set[str], weights: ThemeIndex) -> dict[str, float]:
    """The terms that can say why two poems are alike (held by the theme index and not too common),
    with their idf."""
    # Not too common is the same as a high enough idf, which needs no array read per term.
    floor = {1: -math.log(MAX_CHAR_SHARE), 2: -math.log(MAX_WORD_SHARE)}
    slot, idfs = weights.slot, weights.idfs
    out = {}
    for t in terms:
        k = slot.get(t)
        if k is not None and idfs[k] >= floor[len(t)] - 1e-12:
            out[t] = idfs[k]
    return out


def shared_words(query: set[str], answer: set[str], weights: ThemeIndex | None,
                 n: int = WHY_WORDS) -> list[str]:
    """Up to n of the rarest common words (then characters) in both term sets, none inside another."""
    shared = query & answer
    if weights is not None:
        rank = imagery(shared, weights)
    else:                               # no weights (a synthetic index): words before characters
        rank = {t: 0.0 for t in shared}
    held = list(rank)
    chosen: list[str] = []
    for t in sorted(held, key=lambda t: (-len(t), -rank[t], t)):
        if len(chosen) == n:
            break
        if not any(t in c or c in t for c in chosen):
            chosen.append(t)
    return chosen


def reason(answer_text: str, answer_vector: np.ndarray, query: Sequence[QueryPoem],
           weights: ThemeIndex | None, canon: str | None) -> dict[str, Any]:
    """{"words": shared imagery, "near": first line of the taste poem it is nearest to (None for
    the poem asked about), "liked": that poem was liked, "canon": collection name or None}."""
    out: dict[str, Any] = {"words": [], "near": None, "liked": False, "canon": canon}
    if not query:
        return out
    cosines = [float(q.vector @ answer_vector) if q.vector is not None else -2.0 for q in query]
    nearest = query[int(np.argmax(cosines))]
    if nearest.taste and nearest.lines:
        out["near"], out["liked"] = nearest.lines[0], nearest.liked
    out["words"] = shared_words(nearest.terms, poem_terms(BREAKS.split(answer_text)), weights)
    return out
