"""How well known a corpus poem is: the rank hit counts, shared out among an (author, title) pair's
poems, and membership in 唐诗三百首 / 千家诗 (the canon), which the noisy counts alone miss.

Used by the latent index (what /similar ranks and the theme index orders by) and by the fine-tune set.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from verse.vocab import readable_form
from verse.forms import OTHER, SEPARATORS, classify, cut_lines, normalise

log = logging.getLogger(__name__)

TANG300 = "tangshisanbaishou.json"
QIANJIA = "qianjiashi.json"
CANON_FILES = (TANG300, QIANJIA)    # under dist/mengxue/ of the package
# Canon membership, as stored per index row: which collection holds the poem (唐诗三百首 wins).
NOT_CANON, IN_QIANJIA, IN_TANG300 = 0, 1, 2
# A canon text and a corpus poem are the same poem when this share of their characters agree
# position by position: editions differ (静夜思 is 床前看月光 … 举头望山月 in the corpus's Song
# text, 床前明月光 … 举头望明月 in 唐诗三百首), so exact matching finds only 202 of 470.
SAME_POEM_AGREEMENT = 0.7


def shared_rank(corpus, rows: Sequence[int]) -> np.ndarray:
    """Each row's rank hit count divided by the number of rows with its (author, title).

    The counts belong to an (author, title) pair, so a title an author used for dozens of poems
    (陆游's 夏日) would otherwise lend each of them the hits of the famous one.
    """
    same = Counter((corpus.author[i], corpus.title[i]) for i in rows)
    return np.array([corpus.rank[i] / same[(corpus.author[i], corpus.title[i])] for i in rows],
                     dtype=np.float64)


def agreement(a: list[str], b: list[str]) -> float:
    """Share of characters equal at the same position (0 when the shapes differ)."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        return 0.0
    total = sum(len(x) for x in a)
    return sum(p == q for x, y in zip(a, b) for p, q in zip(x, y)) / max(total, 1)


def match_poems(corpus, rows: Sequence[int], poems: list[list[str]]) -> dict[int, int]:
    """Corpus row of each given poem (by its position in poems) that is the same poem in another
    edition: among rows sharing at least one line with it, the one agreeing most, if enough."""
    by_line: dict[str, list[int]] = {}
    for i in rows:
        for line in corpus.lines[i]:
            by_line.setdefault(line, []).append(i)
    found: dict[int, int] = {}
    for k, lines in enumerate(poems):
        candidates = {i for line in lines for i in by_line.get(line, ())}
        scored = [(agreement(lines, list(corpus.lines[i])), corpus.rank[i], i) for i in candidates]
        if scored:
            agree, _, best = max(scored)
            if agree >= SAME_POEM_AGREEMENT:
                found[k] = best
    return found


def poem_lines(text: str, t2s) -> list[str]:
    """A poem's text → its simplified lines (readable forms kept), as the corpus build does."""
    lines_t, _ = cut_lines(normalise(text), SEPARATORS)
    return [readable_form(t2s(line), line) for line in lines_t]


def canon_poems(root: Path, files: tuple[str, ...] = CANON_FILES) -> list[list[str]]:
    """Regular-form poems of 唐诗三百首 and 千家诗, or of one of them (lines, simplified)."""
    import opencc

    t2s = opencc.OpenCC("t2s").convert
    found = sorted(root.rglob("mengxue"))
    if not found:
        raise FileNotFoundError(f"no mengxue folder under {root}: run `poembot corpus fetch`")
    out = []
    for name in files:
        data = json.loads((found[0] / name).read_text(encoding="utf-8"))
        for section in data.get("content", []):
            for item in section.get("content", []):
                for text in _texts(item):
                    lines = poem_lines(text, t2s)
                    if classify(lines) != OTHER:
                        out.append(lines)
    return out


def _texts(item: dict) -> list[str]:
    """The poem texts of one entry: its paragraphs, or each part of a series (其一, 其二 …)."""
    paragraphs = item.get("paragraphs") or []
    if all(isinstance(p, str) for p in paragraphs):
        return ["".join(paragraphs)]
    return [text for part in paragraphs if isinstance(part, dict) for text in _texts(part)]


def canon_membership(corpus, rows: Sequence[int], root: Path | None) -> np.ndarray:
    """NOT_CANON / IN_QIANJIA / IN_TANG300 per row; all NOT_CANON (logged) without the package."""
    out = np.full(len(rows), NOT_CANON, dtype=np.int8)
    if root is None:
        log.warning("no chinese-poetry download: canon membership unknown, popularity uses the "
                    "rank counts only")
        return out
    position = {i: k for k, i in enumerate(rows)}
    for name, mark in ((QIANJIA, IN_QIANJIA), (TANG300, IN_TANG300)):
        try:
            poems = canon_poems(root, files=(name,))
        except (FileNotFoundError, OSError) as exc:
            log.warning("canon membership unknown (%s): popularity uses the rank counts only", exc)
            return out
        matched = match_poems(corpus, rows, poems)
        out[[position[i] for i in matched.values()]] = mark
        log.info("canon %s: %d of %d poems found in the corpus", name, len(matched), len(poems))
    return out


def popularity(shared: np.ndarray, canon: np.ndarray) -> np.ndarray:
    """A 0..1 score per row: the percentile of its shared rank count, and 1 for a canon poem.

    Percentiles, not raw counts: the counts span nine orders of magnitude and are noisy at the top
    (a few obscure poems have billions of hits), so only their order is trusted.
    """
    order = np.argsort(np.argsort(shared, kind="stable"), kind="stable")
    score = order / max(len(shared) - 1, 1)
    return np.where(canon != NOT_CANON, 1.0, score).astype(np.float32)
