"""The rules a 下联 keeps against its 上联, as a per-position plan the decoder enforces and a check.

- the same length;
- opposite 平仄 at the positions that carry the rhythm: the 2nd, 4th, 6th … and the last character
  (a 上联 ends 仄, so its 下联 ends 平; a 上联 ending 平 gets a 下联 ending 仄 and a kind note);
- no character of the 上联 in the 下联, and a character repeated in the 下联 exactly where the 上联
  repeats one (叠字 mirrored: 上联 XX at positions i, i+1 → 下联 YY at the same positions).

Tones come from verse.prosody. A 下联 character on a rhythm position must have one definite tone
(a character read either way proves nothing). A 上联 character read either way takes its tone from
the alternation of the rhythm positions around it (平仄 alternate every two characters), and at
the end from the convention that a 上联 ends 仄. numpy- and TensorFlow-free: the bot may import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from verse import prosody

PING, ZE = "平", "仄"
OPPOSITE = {PING: ZE, ZE: PING}


def definite_tone(char: str) -> str | None:
    """平 or 仄 when char has that reading only; None when it has both or is unknown."""
    tones = prosody.tones(char)
    return next(iter(tones)) if len(tones) == 1 else None


def rhythm_positions(length: int) -> list[int]:
    """0-based positions carrying the rhythm: every second character and the last."""
    return sorted(set(range(1, length, 2)) | {length - 1})


@dataclass
class CouplePlan:
    """What the 下联 of one 上联 must be, position by position."""
    first: str
    want: list[str | None]              # the 下联's required tone per position (None: free)
    mirror: list[int | None]            # the earlier position whose character repeats here, or None
    first_tone_end: str | None          # the 上联's last tone as read (None: unknown)
    notes: list[str] = field(default_factory=list)   # "first_ends_ping": a 上联 should end 仄

    @property
    def length(self) -> int:
        return len(self.first)


def first_tones(first: str) -> list[str | None]:
    """The 上联's tone on each rhythm position as read (definite, or inferred from its neighbours)."""
    n = len(first)
    tones: list[str | None] = [definite_tone(c) for c in first]
    inner = [i for i in range(1, n, 2)]
    known = [(i, tones[i]) for i in inner if tones[i] is not None]
    read: list[str | None] = [None] * n
    for i in rhythm_positions(n):
        if tones[i] is not None:
            read[i] = tones[i]
        elif i == n - 1 and i not in inner:
            read[i] = ZE                 # the convention: a 上联 ends 仄
        elif known:
            # The nearest definite rhythm position decides: 平仄 alternate every two characters.
            k, tone = min(known, key=lambda kt: abs(kt[0] - i))
            read[i] = tone if ((i - k) // 2) % 2 == 0 else OPPOSITE[tone]
        elif i == n - 1:
            read[i] = ZE
    return read


def plan_couplet(first: str) -> CouplePlan:
    """The plan for the 下联 of first (simplified characters)."""
    n = len(first)
    read = first_tones(first)
    want: list[str | None] = [OPPOSITE[t] if t else None for t in read]
    mirror: list[int | None] = [None] * n
    for i, c in enumerate(first):
        earlier = first.find(c)
        if earlier < i:
            mirror[i] = earlier
    # A mirrored position repeats its first occurrence's character: the first occurrence must also
    # meet the repeat's tone (the same 上联 character, so never a conflict).
    for i, j in enumerate(mirror):
        if j is not None and want[i] is not None and want[j] is None:
            want[j] = want[i]
    end = definite_tone(first[-1]) if first else None
    notes = ["first_ends_ping"] if end == PING else []
    return CouplePlan(first, want, mirror, read[-1] if n else None, notes)


def violations(first: str, second: str) -> list[str]:
    """The rules second breaks as the 下联 of first; [] when it keeps them all."""
    if len(first) != len(second):
        return ["length"]
    plan = plan_couplet(first)
    out = []
    for i, tone in enumerate(plan.want):
        if tone is not None and prosody.tones(second[i]) != frozenset({tone}):
            out.append(f"tone@{i + 1}")
    if set(first) & set(second):
        out.append("reuse")
    for i in range(len(first)):
        for j in range(i):
            if (first[i] == first[j]) != (second[i] == second[j]):
                out.append(f"repeat@{j + 1},{i + 1}")
    return out


def tone_opposition(first: str, second: str) -> tuple[int, int]:
    """(rhythm positions where both characters have a definite tone, of which the tones differ)."""
    both = opposite = 0
    for i in rhythm_positions(len(first)):
        a, b = definite_tone(first[i]), definite_tone(second[i]) if i < len(second) else None
        if a and b:
            both += 1
            opposite += a != b
    return both, opposite
