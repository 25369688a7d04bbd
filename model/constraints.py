"""Host-side planning of one poem's constraints as per-position arrays, and the novelty table.

numpy only: the decoder turns a batch of RowPlans into tensors; no Python runs per decoding step.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from verse.forms import FORMS, Form
from model.requests import E_IMPOSSIBLE, E_UNKNOWN_CHARS, PoemRequest, RequestError
from verse.vocab import COMMA, EOS, N_SPECIALS, PAD, PERIOD, Vocab

FREE = -1                 # forced[t] value of a position the model writes
PING, ZE = 1, 2           # tone bits (tone table) and tone requirements (tone_req)
ZE_OR_RHYME = 3           # tone_req of line 1's end: 仄, or a 平 that joins the rhyme (首句入韵)
SOFT_TONE_PENALTY = 3.0   # logit penalty per off-pattern character in "soft" tone mode


@dataclass
class ProsodyTables:
    """What the decoder needs of prosody, aligned with a vocabulary."""
    tone: np.ndarray          # int8[V]: bit PING 平, bit ZE 仄 (both: either reading; 0: unknown)
    rhyme: np.ndarray         # bool[G, V]: 平声 rhyme groups of 平水韵
    groups: list[str]         # group names, len G
    # bool[V]: characters a free position may write — those outside GBK (which phone fonts draw
    # as empty boxes) appear only where the user typed them (forced positions). None: all.
    writable: np.ndarray | None = None
    # bool[V]: characters that may follow themselves (叠字 the corpus writes: 萧萧, 悠悠); a
    # doubling it never writes (「杖杖」, 「书书」) reads as a stutter. None: all may.
    doubles: np.ndarray | None = None
    # Rhyme sets a row may hold at once (a 词 changes rhyme: 菩萨蛮 has four). The rhyme table is
    # then sets copies of one set's rows, one copy per set, and RowPlan.rhyme_set says which copy a
    # rhyme slot narrows. 1 for 诗 (the 平声 groups, one set).
    sets: int = 1

    def __post_init__(self) -> None:
        self.tone = np.asarray(self.tone, np.int8)
        self.rhyme = np.asarray(self.rhyme, bool)
        if self.writable is None:
            self.writable = np.ones(self.tone.shape[0], bool)
        self.writable = np.asarray(self.writable, bool)
        if self.doubles is None:
            self.doubles = np.ones(self.tone.shape[0], bool)
        self.doubles = np.asarray(self.doubles, bool)
        if (self.rhyme.shape[1] != self.tone.shape[0] or len(self.groups) != self.rhyme.shape[0]
                or self.writable.shape != self.tone.shape or self.rhyme.shape[0] % self.sets):
            raise ValueError("tone, rhyme, writable and groups tables disagree in size")

    @classmethod
    def from_vocab(cls, vocab: Vocab) -> "ProsodyTables":
        from verse import prosody     # the prosody helper's tables (no TensorFlow)
        groups, member = prosody.ping_rhyme_table(vocab)
        return cls(tone=prosody.tone_mask(vocab), rhyme=member, groups=list(groups),
                   writable=np.array(vocab.writable_mask()))

    def groups_of(self, token: int) -> np.ndarray:
        return self.rhyme[:, token]


# ---------------------------------------------------------------------------------------------
# Positions of a form's token sequence (after BOS): line i, char j at i*(L+1)+j; punctuation at
# i*(L+1)+L; EOS at seq_len.

def char_pos(form: Form, line: int, j: int) -> int:
    return line * (form.line_len + 1) + j


def rhyme_lines(form: Form) -> list[int]:
    """0-based lines whose last character must rhyme (the even lines)."""
    return list(range(1, form.n_lines, 2))


def tone_pattern(form: Form, ping_first: bool) -> dict[tuple[int, int], int]:
    """Required tone at (line, char) for the 2/4/6 positions and non-rhyming line ends.

    ping_first: line 1's second character is 平 (平起) or 仄 (仄起). Couplet lines are opposite (对)
    and each couplet's first line repeats the previous line (粘), so the lines run s,¬s,¬s,s,s,¬s,...
    Odd lines after the first end in 仄; rhyme positions are 平 through the rhyme table.
    """
    req: dict[tuple[int, int], int] = {}
    s = PING if ping_first else ZE
    flip = {PING: ZE, ZE: PING}
    for i in range(form.n_lines):
        start = s if i % 4 in (0, 3) else flip[s]
        for k, j in enumerate(range(1, form.line_len - 1, 2)):     # 0-based 1, 3, (5)
            req[(i, j)] = start if k % 2 == 0 else flip[start]
        if i % 2 == 0 and i > 0:
            req[(i, form.line_len - 1)] = ZE
    return req


@dataclass
class RowPlan:
    """One poem's constraints, one entry per sequence position (length form.seq_len + 1)."""
    form: Form | None                  # None for a 词 (model/ci.py): its TuneForm gives the shape
    forced: np.ndarray                 # int32[T]: token or FREE
    tone_req: np.ndarray               # int8[T]: 0, PING, ZE or ZE_OR_RHYME
    rhyme_pos: np.ndarray              # bool[T]
    groups: np.ndarray                 # bool[G]: rhyme groups still allowed
    ping_first: bool
    keyword_at: dict[str, tuple[int, int]] = field(default_factory=dict)   # word -> (line, char)
    rhyme_set: np.ndarray | None = None   # int32[T]: the set a rhyme slot belongs to (词); None: set 0
    template: np.ndarray | None = None    # float32[T, F]: the 词 model's features of each position

    @property
    def length(self) -> int:
        return len(self.forced)

    def forced_counts(self) -> dict[int, int]:
        chars = self.forced[(self.forced >= N_SPECIALS)]
        ids, counts = np.unique(chars, return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist()))


def _ids(vocab: Vocab, text: str) -> list[int]:
    ids = [vocab.id(c) for c in text]
    bad = sorted({c for c, i in zip(text, ids) if i < N_SPECIALS})
    if bad:
        raise RequestError(E_UNKNOWN_CHARS, f"the model cannot write {''.join(bad)}: choose other characters")
    return ids


def plan_poem(request: PoemRequest, vocab: Vocab, tables: ProsodyTables, rng: np.random.Generator) -> RowPlan:
    """Lay out one poem of a checked request: structure, forced characters, tone and rhyme targets.

    Raises RequestError(E_IMPOSSIBLE) when the forced characters cannot meet the rhyme.
    """
    form = FORMS[request.form]
    L, N = form.line_len, form.n_lines
    # The worker's checks refuse these with the user's words; a request built in-process meets this.
    if len(request.acrostic) > N:
        raise RequestError(E_IMPOSSIBLE, f"an acrostic of {len(request.acrostic)} characters in a {N}-line poem")
    if any(not 0 <= i < N or len(line) != L for i, line in request.fixed_lines.items()):
        raise RequestError(E_IMPOSSIBLE, f"a kept line must be one of the {N} lines of {L} characters")
    T = form.seq_len + 1
    forced = np.full(T, FREE, np.int32)
    for i in range(N):
        forced[char_pos(form, i, L)] = COMMA if i % 2 == 0 else PERIOD
    forced[form.seq_len] = EOS
    for i, line in request.fixed_lines.items():
        for j, tok in enumerate(_ids(vocab, line)):
            forced[char_pos(form, i, j)] = tok
    for i, tok in enumerate(_ids(vocab, request.acrostic)):
        forced[char_pos(form, i, 0)] = tok

    rhyme_on = request.rhyme == "pingshui"
    rhyme_pos = np.zeros(T, bool)
    groups = np.ones(len(tables.groups), bool)
    if rhyme_on:
        for i in rhyme_lines(form):
            p = char_pos(form, i, L - 1)
            rhyme_pos[p] = True
            if forced[p] != FREE:
                groups = _narrow(groups, tables, int(forced[p]), vocab, i)
        if not (tables.rhyme[groups].any(axis=0)).any():
            raise RequestError(E_IMPOSSIBLE, "no rhyme group fits the fixed line endings")

    tone_on = request.tone_mode != "off"
    ping_first = _choose_pattern(form, forced, tables, rng) if tone_on else bool(rng.integers(2))
    pattern = tone_pattern(form, ping_first)
    if tone_on and rhyme_on:
        pattern[(0, L - 1)] = ZE_OR_RHYME

    keyword_at: dict[str, tuple[int, int]] = {}
    text_so_far = lambda: "".join(vocab.chars[t] if t >= N_SPECIALS else "|" for t in forced)  # noqa: E731
    words = sorted(request.keywords, key=len, reverse=True)
    for word in words:
        if word in text_so_far():
            continue           # already written by a fixed line, the acrostic or a longer keyword
        ids = _ids(vocab, word)
        spot = _place(form, ids, forced, rhyme_pos, groups, tables, pattern if tone_on else {},
                      set(line for line, _ in keyword_at.values()), rng)
        if spot is None:
            raise RequestError(E_IMPOSSIBLE, f"no room for the keyword {word!r} in a {form.name}")
        line, j = spot
        for k, tok in enumerate(ids):
            p = char_pos(form, line, j + k)
            forced[p] = tok
            if rhyme_pos[p]:
                groups = _narrow(groups, tables, tok, vocab, line)
        keyword_at[word] = spot

    tone_req = np.zeros(T, np.int8)
    if tone_on:
        for (i, j), want in pattern.items():
            tone_req[char_pos(form, i, j)] = want
    return RowPlan(form, forced, tone_req, rhyme_pos, groups, ping_first, keyword_at)


def _narrow(groups: np.ndarray, tables: ProsodyTables, tok: int, vocab: Vocab, line: int) -> np.ndarray:
    member = tables.groups_of(tok)
    if not member.any():
        raise RequestError(E_IMPOSSIBLE, f"line {line + 1} must end in a 平声 rhyme, but "
                              f"{vocab.chars[tok]!r} is not one (ask for rhyme none)")
    narrowed = groups & member
    if not narrowed.any():
        raise RequestError(E_IMPOSSIBLE, f"{vocab.chars[tok]!r} ending line {line + 1} does not rhyme "
                              f"with the other fixed line endings (ask for rhyme none)")
    return narrowed


def _tone_ok(tables: ProsodyTables, tok: int, want: int) -> bool:
    return bool(tables.tone[tok] & want)


def _choose_pattern(form: Form, forced: np.ndarray, tables: ProsodyTables, rng: np.random.Generator) -> bool:
    """平起 or 仄起: whichever fewer forced characters contradict; a seeded coin on ties."""
    conflicts = []
    for ping_first in (True, False):
        n = sum(1 for (i, j), want in tone_pattern(form, ping_first).items()
                if want != ZE_OR_RHYME
                if forced[char_pos(form, i, j)] >= N_SPECIALS
                and not _tone_ok(tables, int(forced[char_pos(form, i, j)]), want))
        conflicts.append(n)
    if conflicts[0] == conflicts[1]:
        return bool(rng.integers(2))
    return conflicts[0] < conflicts[1]


def _place(form: Form, ids: list[int], forced: np.ndarray, rhyme_pos: np.ndarray, groups: np.ndarray,
           tables: ProsodyTables, pattern: dict[tuple[int, int], int], used_lines: set[int],
           rng: np.random.Generator) -> tuple[int, int] | None:
    """Best free (line, start) for a word: fewest tone clashes, fresh lines, no rhyme slot if avoidable."""
    best: list[tuple[float, int, int]] = []
    for i in range(form.n_lines):
        for j in range(form.line_len - len(ids) + 1):
            cost = 0.0
            ok = True
            for k, tok in enumerate(ids):
                p = char_pos(form, i, j + k)
                if forced[p] != FREE:
                    ok = False
                    break
                if rhyme_pos[p]:
                    if not (groups & tables.groups_of(tok)).any():
                        ok = False
                        break
                    cost += 1.0            # a forced rhyme narrows the model's choice
                want = pattern.get((i, j + k))
                if want and not _tone_ok(tables, tok, want & ZE if want == ZE_OR_RHYME else want):
                    cost += 2.0
            if not ok:
                continue
            cost += 3.0 if i in used_lines else 0.0
            best.append((cost, i, j))
    if not best:
        return None
    low = min(c for c, _, _ in best)
    choices = [(i, j) for c, i, j in best if c == low]
    return choices[int(rng.integers(len(choices)))]


# ---------------------------------------------------------------------------------------------
# Novelty: a sorted array of 64-bit hashes of every corpus line; a generated line must not be in it.

def line_hash(line: str) -> int:
    return int.from_bytes(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class NoveltyTable:
    hashes: np.ndarray        # uint64, sorted, unique

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> "NoveltyTable":
        values = np.fromiter((line_hash(line) for line in lines), dtype=np.uint64)
        return cls(np.unique(values))

    @classmethod
    def from_corpus(cls, corpus) -> "NoveltyTable":
        """Every 5- and 7-character line of the corpus, any form or split."""
        return cls.from_lines(line for poem in corpus.lines for line in poem if len(line) in (5, 7))

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, line: str) -> bool:
        if not len(self.hashes):
            return False
        h = np.uint64(line_hash(line))
        k = int(np.searchsorted(self.hashes, h))
        return k < len(self.hashes) and self.hashes[k] == h

    def save(self, path: Path) -> None:
        np.save(Path(path), self.hashes, allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> "NoveltyTable":
        return cls(np.load(Path(path), allow_pickle=False).astype(np.uint64))


def pad_plans(plans: list[RowPlan], n_groups: int) -> dict[str, np.ndarray]:
    """Stack row plans into [B, T] arrays; positions after a row's EOS are forced PAD."""
    T = max(p.length for p in plans)
    B = len(plans)
    forced = np.full((B, T), PAD, np.int32)
    tone_req = np.zeros((B, T), np.int8)
    rhyme_pos = np.zeros((B, T), bool)
    rhyme_set = np.zeros((B, T), np.int32)
    groups = np.zeros((B, n_groups), bool)
    F = max((p.template.shape[1] for p in plans if p.template is not None), default=0)
    template = np.zeros((B, T, F), np.float32)
    for b, p in enumerate(plans):
        forced[b, :p.length] = p.forced
        tone_req[b, :p.length] = p.tone_req
        rhyme_pos[b, :p.length] = p.rhyme_pos
        groups[b] = p.groups
        if p.rhyme_set is not None:
            rhyme_set[b, :p.length] = p.rhyme_set
        if p.template is not None:
            template[b, :p.length] = p.template
    return {"forced": forced, "tone_req": tone_req, "rhyme_pos": rhyme_pos, "groups": groups,
            "rhyme_set": rhyme_set, "template": template}
