"""What best-of-K reads besides the decoder's likelihood: lines that follow each other, and
phrases a reader can parse.

Blind readers of our poems (docs/blind-reading.md) said the lines did not connect and that phrases
did not parse (「甘坚拄杖杖」, 「树闻钟声岭上山」); the mean log-probability the candidates were
ranked by sees neither. Two measures that do, both cheap beside decoding:

- **Coherence** (line_gain): how much more likely each line after the first is *after the lines
  before it* than as the opening line of the same latent, form and title — a pointwise mutual
  information per character, as MMI reranking does for dialogue (Li et al. 2016). A line that
  answers the one before it gains; a stock line that could stand anywhere gains nothing. The
  in-context log-probabilities come from the decoding loop itself; the alone ones cost one
  teacher-forced pass over the lines.
- **Attestation** (PairTable): the share of adjacent character pairs inside a line that the corpus
  never pairs (fewer than MIN_PAIR_COUNT times). Classical diction is two-character words; a pair
  that no poet wrote is usually a phrase that does not parse.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

log = logging.getLogger(__name__)

PAIRS_FILE = "pairs.npz"


@dataclass
class ScoreWeights:
    """The weights of best-of-K's score (model.decode.Generator._score), in nats per character
    of the decoder's mean log-probability. Chosen by blind reading (docs/blind-reading.md)."""
    # Each nat a line gains per character from the lines before it.
    coherence: float = 1.0
    # The whole poem made of unattested pairs would cost this much; one pair in ten, a tenth.
    unattested: float = 3.0
    # A repeated character costs a fifth of a nat per character (generated poems repeated 1.5x as
    # often as real ones on the first blind sheet); 叠字 such as 萧萧 stay possible.
    repeat: float = 0.2
    # Credit for the mean log frequency-rank of the characters (ids are sorted by frequency): an
    # anti-blandness term that raised distinct-2 (0.77 → 0.81 at K=4) and that readers did not
    # reward — they read its rare characters as phrases that do not parse. Off by default.
    rarity: float = 0.0
    theme: float = 1.0          # times the cosine between a themed candidate's μ and its theme
MIN_PAIR_COUNT = 2           # a pair seen once in 13M may be a typo or a name
# A doubled character (叠字) counts as the poets' only this often: 萧萧 and 悠悠 are written
# thousands of times, 书书 (mostly across a word boundary, 读书书) a handful.
MIN_DOUBLE_COUNT = 30


@dataclass
class PairTable:
    """The adjacent character pairs (by vocabulary id) the corpus attests, as sorted keys a*V+b."""
    keys: np.ndarray          # uint32, sorted, unique
    vocab_size: int
    double_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))  # 叠字 ids

    @classmethod
    def from_lines(cls, lines: Iterable[list[int]], vocab_size: int,
                   min_count: int = MIN_PAIR_COUNT) -> "PairTable":
        """The pairs that occur at least min_count times inside the lines (id lists)."""
        chunks = [np.asarray(ids[:-1], np.int64) * vocab_size + np.asarray(ids[1:], np.int64)
                  for ids in lines if len(ids) > 1]
        if not chunks:
            return cls(np.zeros(0, np.uint32), vocab_size)
        keys, counts = np.unique(np.concatenate(chunks), return_counts=True)
        first, second = keys // vocab_size, keys % vocab_size
        doubled = first[(first == second) & (counts >= MIN_DOUBLE_COUNT)]
        return cls(keys[counts >= min_count].astype(np.uint32), vocab_size,
                   doubled.astype(np.uint32))

    @classmethod
    def from_corpus(cls, corpus: Any, vocab: Any) -> "PairTable":
        """Pairs of every line of the corpus' training split, any form (the test split stays out)."""
        size = len(vocab)
        rows = (i for i in range(len(corpus)) if corpus.split[i] == "train")
        return cls.from_lines(([vocab.id(c) for c in line] for i in rows
                               for line in (corpus.lines[i] or [])), size)

    def __len__(self) -> int:
        return len(self.keys)

    def unattested(self, ids: list[int]) -> tuple[int, int]:
        """(pairs of the line not in the table, pairs of the line)."""
        if len(ids) < 2:
            return 0, 0
        a = np.asarray(ids, np.int64)
        want = (a[:-1] * self.vocab_size + a[1:]).astype(np.uint32)
        at = np.minimum(np.searchsorted(self.keys, want), len(self.keys) - 1)
        return int(np.count_nonzero(self.keys[at] != want)), len(want)

    def doubles(self) -> np.ndarray:
        """bool [V]: the ids the poets double (叠字: 萧萧, 悠悠) at least MIN_DOUBLE_COUNT times."""
        out = np.zeros(self.vocab_size, bool)
        out[self.double_ids.astype(np.int64)] = True
        return out

    def save(self, path: Path) -> None:
        """A compressed npz: the vocabulary size, the doubled ids, and the sorted keys as the gaps
        between neighbours — small numbers that compress to a fifth of the raw keys (the shipped
        table: 3.9 MB as raw uint32, 0.8 MB so)."""
        np.savez_compressed(Path(path), vocab_size=np.array([self.vocab_size], np.uint32),
                            double_ids=self.double_ids.astype(np.uint32),
                            gaps=np.diff(self.keys.astype(np.uint32), prepend=np.uint32(0)))

    @classmethod
    def load(cls, path: Path) -> "PairTable":
        with np.load(Path(path), allow_pickle=False) as data:
            keys = np.cumsum(data["gaps"], dtype=np.uint64).astype(np.uint32)
            return cls(keys, int(data["vocab_size"][0]), data["double_ids"].astype(np.uint32))


def load_pairs(model_dir: Path, vocab_size: int) -> PairTable | None:
    """The model's pair table (shipped beside the weights), or None with a log line."""
    path = Path(model_dir) / PAIRS_FILE
    if not path.exists():
        log.warning("attestation off: no %s in %s (poembot corpus pairs)", PAIRS_FILE, model_dir)
        return None
    table = PairTable.load(path)
    if table.vocab_size != vocab_size:
        log.warning("attestation off: %s is for a vocabulary of %d, the model has %d",
                    path, table.vocab_size, vocab_size)
        return None
    return table


def unattested_share(table: PairTable | None, lines_ids: list[list[int]]) -> float:
    """Share of a poem's in-line adjacent pairs the corpus never pairs (0 without a table)."""
    if table is None:
        return 0.0
    bad = total = 0
    for ids in lines_ids:
        b, n = table.unattested(ids)
        bad, total = bad + b, total + n
    return bad / total if total else 0.0


def line_spans(line_len: int, n_lines: int) -> list[tuple[int, int]]:
    """[start, end) of each line's characters among a poem's output positions (BOS excluded:
    position 0 is the first character; each line is followed by its punctuation mark)."""
    return [(k * (line_len + 1), k * (line_len + 1) + line_len) for k in range(n_lines)]


def line_gain(in_context: np.ndarray, alone: np.ndarray, free: np.ndarray) -> float:
    """Mean per-character gain of lines 2..n from the lines before them: in_context and alone
    [n_lines, L] are log-probabilities of each character, free [n_lines, L] marks the characters
    the model chose (forced ones — an acrostic's heads, kept lines — say nothing of it)."""
    mask = free[1:]
    if not mask.any():
        return 0.0
    return float(((in_context[1:] - alone[1:]) * mask).sum() / mask.sum())
