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


def in_gbk(char: str) -> bool:
    """True for a character of GBK (21,886 characters): what Chinese phone and desktop fonts can
    be relied on to draw. OpenCC's t2s maps some rare traditional characters to newer simplified
    forms outside it (鑪 → 𬬻), which most fonts show as an empty box."""
    try:
        char.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


# Marks the corpus uses for characters lost from a poem; never written by the model.
PLACEHOLDERS = frozenset("□■〇○◻︎◻")
# Characters jp2t rewrites that are ordinary Chinese characters in their own right (予 "I", 欠
# "owe", 弁 "cap", 翻, 芸 "rue", 褒 "praise"), not Japanese forms.
CHINESE_TOO = frozenset("予欠弁翻芸褒")


def japanese_variants(chars: Iterable[str]) -> set[str]:
    """The characters of chars that are Japanese forms (shinjitai) of another character of chars,
    once both are made simplified (OpenCC jp2t, then t2s): 髪 → 髮 → 发."""
    import opencc

    jp2t, t2s = opencc.OpenCC("jp2t").convert, opencc.OpenCC("t2s").convert
    known = set(chars)
    out = set()
    for c in known:
        if len(c) != 1 or c in CHINESE_TOO:
            continue
        traditional = jp2t(c)
        if traditional != c and (standard := t2s(traditional)) != c and standard in known:
            out.add(c)
    return out


def readable_form(simplified: str, traditional: str) -> str:
    """simplified, except that each character outside GBK keeps its traditional spelling from the
    aligned traditional text when that one is in GBK (𬬻 → 鑪). Texts of unequal length (a phrase
    conversion) are returned as simplified."""
    if len(simplified) != len(traditional) or all(in_gbk(c) for c in simplified):
        return simplified
    return "".join(s if in_gbk(s) or not in_gbk(t) else t
                   for s, t in zip(simplified, traditional))


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

    def readable_mask(self) -> "list[bool]":
        """Per id: a character most fonts can draw (in GBK). Specials count as not readable."""
        return [i >= N_SPECIALS and in_gbk(c) for i, c in enumerate(self.chars)]

    def writable_mask(self) -> "list[bool]":
        """Per id: a character the decoder may write unasked — readable, not a placeholder (the
        corpus writes a lost character as □), and not a Japanese form of a character the
        vocabulary also holds (髪 for 发, 歳 for 岁: the corpus keeps some, and one in a simplified
        poem marks it as machine-made). A user may still type any of them (forced positions)."""
        variants = japanese_variants(self.chars)
        return [ok and c not in PLACEHOLDERS and c not in variants
                for ok, c in zip(self.readable_mask(), self.chars)]

    def readable(self) -> tuple["Vocab", dict[str, str]]:
        """The same ids with each character outside GBK renamed to its traditional form (OpenCC
        s2t) when that one is in GBK and not already here — what readable_form makes of the
        corpus — so a model trained on the older spelling keeps its weights. Returns the new
        vocabulary and the renames."""
        import opencc

        s2t = opencc.OpenCC("s2t").convert
        chars, renames = list(self.chars), {}
        for i, c in enumerate(chars[N_SPECIALS:], start=N_SPECIALS):
            if in_gbk(c):
                continue
            t = s2t(c)
            if len(t) == 1 and in_gbk(t) and t not in self.index and t not in renames.values():
                chars[i] = renames[c] = t
        return Vocab(chars), renames

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of text (ignoring punctuation and spaces) the model cannot write."""
        return sorted({c for c in text if c.strip() and c not in "，。、？！；：" and c not in self})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"version": 1, "chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        data = json.loads(Path(path).read_text())
        return cls(data["chars"])
