"""The four regular forms (近体诗 shapes), how a poem's lines map to one, and how lines are cut and laid out.

Pure Python with no dependencies: the bot, the corpus builder and the decoder share it.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Form:
    name: str        # 五绝 七绝 五律 七律
    line_len: int    # characters per line (5 or 7)
    n_lines: int     # 4 (绝句) or 8 (律诗)

    @property
    def seq_len(self) -> int:
        """Tokens in the model's sequence: characters plus one punctuation mark per line."""
        return (self.line_len + 1) * self.n_lines


FORMS: dict[str, Form] = {
    "五绝": Form("五绝", 5, 4),
    "七绝": Form("七绝", 7, 4),
    "五律": Form("五律", 5, 8),
    "七律": Form("七律", 7, 8),
}
FORM_NAMES: tuple[str, ...] = tuple(FORMS)          # index order used by the model
FORM_INDEX: dict[str, int] = {n: i for i, n in enumerate(FORM_NAMES)}
OTHER = "other"
# Traditional spellings users may type.
FORM_ALIASES: dict[str, str] = {"五絕": "五绝", "七絕": "七绝", "五律": "五律", "七律": "七律"}
MAX_SEQ_LEN = max(f.seq_len for f in FORMS.values())
# CJK Unified Ideographs and Extension A, the compatibility block, and the supplementary planes' extensions
# B to G with their compatibility supplement. Not 〇 (a numeral sign) nor □ (the corpus's lost character).
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def is_han(char: str) -> bool:
    """One Chinese character (hanzi), as poems and the bot's input accept them."""
    return bool(_HAN.fullmatch(char))


def classify(lines: list[str]) -> str:
    """Name of the regular form these lines have, or OTHER."""
    if not lines:
        return OTHER
    lengths = {len(line) for line in lines}
    if len(lengths) != 1:
        return OTHER
    (length,) = lengths
    for form in FORMS.values():
        if form.line_len == length and form.n_lines == len(lines):
            return form.name
    return OTHER


def normalise_form_name(name: str) -> str | None:
    name = name.strip()
    if name in FORMS:
        return name
    return FORM_ALIASES.get(name)


def poem_text(lines: list[str], line_break: str = "", couplet_break: str = "\n", close: bool = True) -> str:
    """Lines as verse: ， after the first line of each couplet and 。 after the second.

    line_break goes between the two lines of a couplet and couplet_break between couplets: the
    defaults give the worker's text (one couplet a row), "\\n", "\\n" the bot's message (one line a
    row) and "", "" one run for a job. A lone last line ends with 。 when close, else with ，.
    """
    out = []
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        out.append(line + ("。" if i % 2 or (close and last) else "，"))
        if not last:
            out.append(couplet_break if i % 2 else line_break)
    return "".join(out)


def cut_lines(text: str, separators: str, trailing_mark: str = "。") -> tuple[list[str], str]:
    """Cut text at any of separators: the lines and the mark that ended each; trailing text with no
    closing mark gets trailing_mark. A mark with no text before it (the second of two in a row, one
    at the start) is dropped. The corpus builder, the table builder and typed poems
    (split_lines) all cut lines here."""
    parts = _splitter(separators).split(text)
    lines, marks = [], []
    for k in range(0, len(parts) - 1, 2):
        if parts[k]:
            lines.append(parts[k])
            marks.append(parts[k + 1])
    if parts and parts[-1]:   # trailing text without a closing mark
        lines.append(parts[-1])
        marks.append(trailing_mark)
    return lines, "".join(marks)


# Punctuation and spacing users type inside acrostics, keywords and lines; never part of a poem's chars.
IGNORED_CHARS = set(" \t\r\n，。、？！；：,.?!;:·「」『』“”\"'《》()（）")
TYPED_LINE_BREAKS = "，。、？！；：,.?!;:\n\r"     # where a typed poem's lines end


def clean_text(text: str) -> str:
    """Characters of text with user punctuation and spaces dropped."""
    return "".join(c for c in text if c not in IGNORED_CHARS)


def split_lines(text: str) -> list[str]:
    """A poem typed with any punctuation or line breaks → its lines (spaces inside a line dropped).
    Here, beside cut_lines, because both sides read typed poems: the worker's request checks and the
    model's encoder (example poems, encode requests)."""
    typed = "".join(c for c in text if c.strip() or c in "\n\r")
    lines, _ = cut_lines(typed, TYPED_LINE_BREAKS)
    return [clean for line in lines if (clean := clean_text(line))]


@functools.lru_cache(maxsize=8)
def _splitter(separators: str) -> re.Pattern[str]:
    return re.compile(f"([{re.escape(separators)}])")


# ------------------------------------------------------------------- the corpus package's raw text
SEPARATORS = "，。？！；"
_HALF_TO_FULL = str.maketrans({",": "，", ".": "。", "?": "？", "!": "！", ";": "；", ":": "："})
# Editorial notes inside the text: （一作…）, [缺], {…}, 【…】.
_NOTES = re.compile(r"[（(\[［{【〔][^）)\]］}】〕]*[）)\]］}】〕]")
_SPACE = re.compile(r"[\s/]+")   # "/" is the corpus file's line separator


def normalise(text: str) -> str:
    """A raw corpus text with its punctuation made full-width, editorial notes and spaces dropped."""
    text = text.translate(_HALF_TO_FULL)
    text = _NOTES.sub("", text)
    return _SPACE.sub("", text)
