"""The four regular forms (近体诗 shapes) and how a poem's lines map to one.

Pure Python with no dependencies: the bot, the corpus builder and the decoder share it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Form:
    name: str        # 五绝 七绝 五律 七律
    line_len: int    # characters per line (5 or 7)
    n_lines: int     # 4 (绝句) or 8 (律诗)

    @property
    def n_chars(self) -> int:
        return self.line_len * self.n_lines

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
