"""Character vocabulary: special tokens, encoding a poem to ids and back.

A poem is its characters with one punctuation token after each line: ， after odd lines, 。 after even.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

PAD, BOS, EOS, UNK, COMMA, PERIOD = 0, 1, 2, 3, 4, 5
SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>", "，", "。")
N_SPECIALS = len(SPECIALS)


@dataclass
class Vocab:
    chars: list[str]                      # index -> token (SPECIALS first)
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if tuple(self.chars[:N_SPECIALS]) != SPECIALS:
            raise ValueError("vocabulary must start with the special tokens")
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return self.index.get(char, UNK) >= N_SPECIALS

    @classmethod
    def build(cls, texts: Iterable[str], max_size: int = 6000, min_count: int = 2) -> "Vocab":
        counts = Counter()
        for text in texts:
            counts.update(text)
        for special in SPECIALS:
            counts.pop(special, None)
        kept = [c for c, n in counts.most_common() if n >= min_count]
        kept = kept[: max_size - N_SPECIALS]
        return cls(list(SPECIALS) + kept)

    def id(self, char: str) -> int:
        return self.index.get(char, UNK)

    def encode_lines(self, lines: list[str], bos: bool = True, eos: bool = True) -> list[int]:
        ids = [BOS] if bos else []
        for i, line in enumerate(lines):
            ids.extend(self.index.get(c, UNK) for c in line)
            ids.append(COMMA if i % 2 == 0 else PERIOD)
        if eos:
            ids.append(EOS)
        return ids

    def decode_lines(self, ids: Iterable[int]) -> list[str]:
        """Split ids back into lines at punctuation; stops at EOS, skips PAD/BOS."""
        lines, current = [], []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            if i in (COMMA, PERIOD):
                lines.append("".join(current))
                current = []
            else:
                current.append(self.chars[i] if 0 <= i < len(self.chars) else SPECIALS[UNK])
        if current:
            lines.append("".join(current))
        return lines

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of text (ignoring punctuation and spaces) the model cannot write."""
        return sorted({c for c in text if c.strip() and c not in "，。、？！；：" and c not in self})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"version": 1, "chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        data = json.loads(Path(path).read_text())
        return cls(data["chars"])
