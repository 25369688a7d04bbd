"""Reading what users type: /poem and /acrostic arguments, and poems quoted in replied-to messages.

Errors are ParseError(key, values) so the handler can answer in the user's language (see bot.texts).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from model.forms import FORMS, normalise_form_name
from model.jobs import IGNORED_CHARS, MAX_KEYWORDS

MAX_ARG_CHARS = 40          # after dropping spaces: more is not a theme but a paste
MAX_ACROSTIC = max(f.n_lines for f in FORMS.values())
ACROSTIC_WORDS = {"藏头", "藏頭", "acrostic"}
# Typing-friendly names for the forms, for people without a Chinese keyboard at hand.
PINYIN_FORMS = {"wujue": "五绝", "qijue": "七绝", "wulv": "五律", "qilv": "七律", "wulu": "五律",
                "qilu": "七律"}
LONG_FORMS = {"五言绝句": "五绝", "七言绝句": "七绝", "五言律诗": "五律", "七言律诗": "七律",
              "五言絕句": "五绝", "七言絕句": "七绝", "五言律詩": "五律", "七言律詩": "七律"}
# Tokens that name a form we do not write, so "/poem 七古 春" is refused rather than read as a theme.
_FORMISH = re.compile(r"^([一二三四五六七八九十]言?[绝絕律古]句?|[四五六七]言.*|词|詞|古风|古風|排律|"
                      r"绝句|絕句|律诗|律詩|乐府|樂府|宋词|宋詞|元曲)$")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_SPLIT = re.compile(r"[\s，、,;；]+")
_LINE_SPLIT = re.compile(r"[\n，。？！；,.?!;、：:]+")


class ParseError(ValueError):
    """Input we cannot use; key names a text in bot.texts and values fill it in."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass
class PoemRequest:
    form: str | None = None                 # None: the user's default form
    keywords: list[str] = field(default_factory=list)
    acrostic: str = ""
    like_texts: list[str] = field(default_factory=list)

    def resolved_form(self, default_form: str) -> str:
        """The form to write: the one asked for, else one long enough for the acrostic."""
        if self.form:
            return self.form
        if len(self.acrostic) > FORMS[default_form].n_lines:
            return "五律" if FORMS[default_form].line_len == 5 else "七律"
        return default_form


def is_han(char: str) -> bool:
    return bool(_HAN.fullmatch(char))


def form_of_token(token: str) -> str | None:
    return normalise_form_name(token) or LONG_FORMS.get(token) or PINYIN_FORMS.get(token.lower())


def _shown(char: str) -> str:
    """A character as a reply can show it: invisible ones (controls, spaces, combining marks) by code point."""
    return f"U+{ord(char):04X}" if unicodedata.category(char)[0] in "CZM" else char


def _han_only(text: str) -> str:
    # Format characters (zero-width spaces and joiners, direction marks and overrides, BOM) are
    # invisible and come with pasted text; dropping them keeps "春\u200b风" the 春风 the user sees.
    cleaned = "".join(c for c in text if c not in IGNORED_CHARS and unicodedata.category(c) != "Cf")
    bad = sorted({c for c in cleaned if not is_han(c)})
    if bad:
        raise ParseError("not_chinese", chars=" ".join(_shown(c) for c in bad))
    return cleaned


def parse_poem_args(args: str, acrostic_command: bool = False) -> PoemRequest:
    """Parse the text after /poem (or /acrostic when acrostic_command)."""
    args = (args or "").strip()
    if len("".join(args.split())) > MAX_ARG_CHARS:
        raise ParseError("too_long", limit=MAX_ARG_CHARS)
    tokens = [tok for tok in _SPLIT.split(args) if tok]
    request = PoemRequest()
    words: list[str] = []
    acrostic_next = acrostic_command
    acrostic_parts: list[str] = []
    for tok in tokens:
        form = form_of_token(tok)
        if form is not None:
            request.form = form
            continue
        head = next((w for w in ACROSTIC_WORDS if tok.lower().startswith(w)), None)
        if head is not None:
            acrostic_next = True
            rest = tok[len(head):]
            if rest:
                acrostic_parts.append(rest)
            continue
        if _FORMISH.match(tok):
            raise ParseError("unknown_form", form=tok)
        if acrostic_next:
            acrostic_parts.append(tok)
        else:
            words.append(tok)
    if acrostic_next:
        request.acrostic = _han_only("".join(acrostic_parts))
        if not request.acrostic:
            raise ParseError("acrostic_missing")
        limit = FORMS[request.form].n_lines if request.form else MAX_ACROSTIC
        if len(request.acrostic) > limit:
            raise ParseError("acrostic_too_long", limit=limit)
    request.keywords = [w for w in (_han_only(w) for w in words) if w]
    if len(request.keywords) > MAX_KEYWORDS:
        raise ParseError("too_many_keywords", limit=MAX_KEYWORDS)
    return request


def check_keywords_fit(request: PoemRequest, form: str) -> None:
    """Refuse a theme word longer than a line of the form, in words the user can act on."""
    line_len = FORMS[form].line_len
    for word in request.keywords:
        if len(word) > line_len:
            raise ParseError("keyword_too_long", word=word, n=line_len)


def extract_poem_lines(text: str | None) -> list[str]:
    """The verse lines of a message (runs of 4 to 9 Han characters), or [] when it holds no poem.

    Titles, notes and anything mixing other characters are skipped, so one of the bot's own
    poem messages yields exactly its lines.
    """
    if not text:
        return []
    lines = []
    for part in _LINE_SPLIT.split(text):
        part = part.strip()
        if 4 <= len(part) <= 9 and all(is_han(c) for c in part):
            lines.append(part)
    return lines if len(lines) >= 2 else []


def poem_text(lines: list[str]) -> str:
    """Lines joined as the model writes them: ， after odd lines, 。 after even ones."""
    return "".join(line + ("，" if i % 2 == 0 else "。") for i, line in enumerate(lines))
