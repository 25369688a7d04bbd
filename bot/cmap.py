"""Which characters a TrueType/OpenType font has, read straight from its cmap table.

fontTools builds a Python dict of every mapping (seconds for a 30,000-glyph CJK font on a busy CPU);
the card only needs "is this code point there", so the table's ranges are kept as they are.
"""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from pathlib import Path


class CmapError(ValueError):
    """The file has no cmap subtable this reader knows (format 12 or 4)."""


@dataclass(frozen=True)
class Coverage:
    """Covered code points as sorted, disjoint [start, end] ranges."""
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def __contains__(self, code: int) -> bool:
        i = bisect.bisect_right(self.starts, code) - 1
        return i >= 0 and code <= self.ends[i]

    def __len__(self) -> int:
        return sum(e - s + 1 for s, e in zip(self.starts, self.ends))


def _merge(ranges: list[tuple[int, int]]) -> Coverage:
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return Coverage(tuple(s for s, _ in merged), tuple(e for _, e in merged))


def _format12(data: bytes, at: int) -> list[tuple[int, int]]:
    (n_groups,) = struct.unpack_from(">I", data, at + 12)
    ranges = []
    for k in range(n_groups):
        start, end, glyph = struct.unpack_from(">III", data, at + 16 + 12 * k)
        if glyph == 0:                      # mapped to .notdef: not really there
            start += 1
        if start <= end:
            ranges.append((start, end))
    return ranges


def _format4(data: bytes, at: int) -> list[tuple[int, int]]:
    (seg_x2,) = struct.unpack_from(">H", data, at + 6)
    n = seg_x2 // 2
    ends = struct.unpack_from(f">{n}H", data, at + 14)
    starts = struct.unpack_from(f">{n}H", data, at + 16 + seg_x2)
    deltas = struct.unpack_from(f">{n}h", data, at + 16 + 2 * seg_x2)
    range_at = at + 16 + 3 * seg_x2
    offsets = struct.unpack_from(f">{n}H", data, range_at)
    ranges = []
    for i, (start, end) in enumerate(zip(starts, ends)):
        for code in range(start, min(end, 0xFFFE) + 1):
            if offsets[i] == 0:
                glyph = (code + deltas[i]) & 0xFFFF
            else:
                (glyph,) = struct.unpack_from(">H", data, range_at + 2 * i + offsets[i] + 2 * (code - start))
                glyph = (glyph + deltas[i]) & 0xFFFF if glyph else 0
            if glyph:
                ranges.append((code, code))
    return ranges


def coverage(path: Path | str) -> Coverage:
    """The code points font file path maps to a glyph (full Unicode subtable preferred)."""
    data = Path(path).read_bytes()
    (n_tables,) = struct.unpack_from(">H", data, 4)
    tables = {data[12 + 16 * i:16 + 16 * i]: struct.unpack_from(">I", data, 20 + 16 * i)[0]
              for i in range(n_tables)}
    if b"cmap" not in tables:
        raise CmapError(f"{path}: no cmap table")
    cmap = tables[b"cmap"]
    (n_subtables,) = struct.unpack_from(">H", data, cmap + 2)
    found: dict[int, int] = {}
    for i in range(n_subtables):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * i)
        if (platform, encoding) in ((3, 10), (0, 4), (0, 6), (3, 1), (0, 3)):
            (fmt,) = struct.unpack_from(">H", data, cmap + offset)
            found.setdefault(fmt, cmap + offset)
    if 12 in found:
        return _merge(_format12(data, found[12]))
    if 4 in found:
        return _merge(_format4(data, found[4]))
    raise CmapError(f"{path}: no Unicode cmap subtable of format 12 or 4")
