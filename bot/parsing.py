"""Reading what users type: /poem and /acrostic arguments, and poems quoted in replied-to messages.

Errors are ParseError(key, values) so the handler can answer in the user's language (see bot.texts).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from bot.styles import (BASE_WORDS, IMITATE, STYLE_PREFIXES, THEME_PREFIXES, TITLE_PREFIXES, Style, StyleBook,
                        is_famous_poet, split_prefix, style_key, style_names)
from verse.forms import FORMS, is_han, normalise_form_name
from protocol.spec import CI, CI_NAMES, IGNORED_CHARS, SpecError
from verse import tunes
from verse.script import to_simplified

MAX_ARG_CHARS = 40          # after dropping spaces: more is not a theme but a paste
MAX_ACROSTIC = max(f.n_lines for f in FORMS.values())
# A theme word longer than this names an occasion (送友人归江南), not a phrase to set in a line:
# it becomes the poem's title only. Shorter words are the title and must appear in the poem.
MAX_KEYWORD_CHARS = 4
ACROSTIC_WORDS = {"藏头", "藏頭", "acrostic"}
SEED_PREFIXES = ("种子", "種子", "seed")      # 种子:7 / seed:7: the same seed writes the same poem
# Typing-friendly names for the forms, for people without a Chinese keyboard at hand.
PINYIN_FORMS = {"wujue": "五绝", "qijue": "七绝", "wulv": "五律", "qilv": "七律", "wulu": "五律",
                "qilu": "七律"}
LONG_FORMS = {"五言绝句": "五绝", "七言绝句": "七绝", "五言律诗": "五律", "七言律诗": "七律",
              "五言絕句": "五绝", "七言絕句": "七绝", "五言律詩": "五律", "七言律詩": "七律"}
# Tokens that name a form we do not write, so "/poem 七古 春" is refused rather than read as a theme.
_FORMISH = re.compile(r"^([一二三四五六七八九十]言?[绝絕律古]句?|[四五六七]言.*|古风|古風|排律|"
                      r"绝句|絕句|律诗|律詩|乐府|樂府|宋词|宋詞|元曲)$")
_SPLIT = re.compile(r"[\s，、,;；]+")
_LINE_SPLIT = re.compile(r"[\n，。？！；,.?!;、：:]+")
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n")      # a blank line (spaces allowed on it)


class ParseError(SpecError):
    """Input we cannot read as a request; key names a text in bot.texts and values fill it in.

    The limits of a request (acrostic and title length, theme words) are protocol.spec's, checked
    once the form is known (bot.runtime.Runtime.poem_spec)."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key, key, **values)


@dataclass
class PoemRequest:
    form: str | None = None                 # None: the user's default form
    keywords: list[str] = field(default_factory=list)
    acrostic: str = ""
    like_texts: list[str] = field(default_factory=list)
    style: str | None = None                # a style id; "" the base model; None: the user's default
    style_title: str = ""                   # how the style is shown (李白), set with style
    title: str = ""                         # the poem's occasion: 题:送别, or the theme words
    seed: str = ""                          # as typed (种子:7); protocol.spec reads it
    tune: str = ""                          # a 词牌 as typed (浣溪沙, 浣溪紗); protocol.spec canonicalises it

    def resolved_form(self, default_form: str) -> str:
        """The form to write: the one asked for (词 for a tune), else one long enough for the acrostic."""
        if self.tune:
            return CI
        if self.form:
            return self.form
        if len(self.acrostic) > FORMS[default_form].n_lines:
            return "五律" if FORMS[default_form].line_len == 5 else "七律"
        return default_form


def spec_fields(request: PoemRequest, default_form: str) -> dict[str, object]:
    """request as protocol.spec.parse_spec's fields, written in default_form unless it names one."""
    return {"form": request.resolved_form(default_form), "title": request.title, "keywords": request.keywords,
            "acrostic": request.acrostic, "like_texts": request.like_texts, "style": request.style or "",
            "style_title": request.style_title, "seed": request.seed or None, "tune": request.tune}


def tune_of_token(token: str, aliases: bool) -> str | None:
    """The canonical name of the tune token names (simplified or traditional), else None; with aliases,
    an alias names it too. /poem takes only a tune's own name: aliases include everyday words (出塞, 不见)
    that are themes more often than tunes."""
    tune = tunes.get(token)
    if tune is None or not (aliases or to_simplified(token, lenient=True) == tune.name):
        return None
    return tune.name


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


@dataclass
class _Named:
    """A style named in the arguments: found in the book, the base model, or neither (unknown)."""
    name: str
    style: Style | None
    base: bool = False
    token: str = ""          # a bare token inside an acrostic: the acrostic itself when nothing else is

    @property
    def identity(self) -> tuple[str, str]:
        """Two namings of one style (李白 and libai) are the same; of two styles, an error."""
        if self.base:
            return ("base", "")
        return ("style", self.style.id) if self.style is not None else ("unknown", style_key(self.name))


def unknown_style_error(name: str, styles: StyleBook) -> ParseError:
    """The answer to a style nobody serves: the styles there are, or that there are none."""
    if not styles:
        return ParseError("unknown_style_none", name=name)
    return ParseError("unknown_style", name=name, styles_zh=style_names(styles, "zh"),
                      styles_en=style_names(styles, "en"), example=next(iter(styles)).title)


def _style_words(tokens: list[str], start: int, styles: StyleBook) -> int:
    """How many tokens from start name a style or a famous poet (0: none). Latin-letter tokens may be
    joined ("li bai" is libai); a single character is never taken for a name."""
    for n in (3, 2, 1):
        group = tokens[start:start + n]
        if len(group) < n or (n > 1 and not all(t.isascii() and t.isalpha() for t in group)):
            continue
        name = "".join(group)
        if len(style_key(name)) >= 2 and (styles.find(name) is not None or is_famous_poet(name)):
            return n
    return 0


def _explicit_style(name: str, styles: StyleBook) -> _Named:
    if not style_key(name):
        raise ParseError("style_missing")
    if style_key(name) in BASE_WORDS:
        return _Named(name, None, base=True)
    return _Named(name, styles.find(name))


def parse_poem_args(args: str, acrostic_command: bool = False, styles: StyleBook | None = None,
                    ci_command: bool = False) -> PoemRequest:
    """Parse the text after /poem (or /acrostic when acrostic_command, /ci when ci_command).

    A first word that is a tune's own name (菩萨蛮, 菩薩蠻) makes the request a 词 of that tune; after /ci the
    first word is the tune whatever it is (an alias names it too; an unknown one is refused by
    protocol.spec with the tunes whose names are close).

    A style may be named by any argument: a whole word that is a style's id, title or alias (李白,
    libai, Li Bai, 太白), or 仿李白, or 风格:李白 / style:libai. A famous poet's name that is not a
    style served now is refused with the list of styles (ParseError "unknown_style"); 主题:屈原 keeps
    such a name a theme word. Inside an acrostic, a lone name is the acrostic itself (/acrostic 李白).
    """
    args = (args or "").strip()
    if len("".join(args.split())) > MAX_ARG_CHARS:
        raise ParseError("too_long", limit=MAX_ARG_CHARS)
    styles = styles if styles is not None else StyleBook()
    tokens = [tok for tok in _SPLIT.split(args) if tok]
    request = PoemRequest()
    words: list[str] = []
    acrostic_next = acrostic_command
    acrostic_parts: list[str] = []
    named: _Named | None = None

    def name_style(new: _Named) -> None:
        nonlocal named
        if named is not None and named.identity != new.identity:
            raise ParseError("two_styles", first=named.name, second=new.name)
        named = new

    title_parts: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if i == 1 and (ci_command or tune_of_token(tok, aliases=False)):
            request.tune = tune_of_token(tok, aliases=True) or tok
            continue
        if tok in CI_NAMES:                    # /poem 词 春愁: a 词 needs its tune (protocol.spec says so)
            request.form = CI
            continue
        title = split_prefix(tok, TITLE_PREFIXES)
        if title is not None:                  # 题:送友人 (or 题: 送友人)
            if not title and i < len(tokens):
                title, i = tokens[i], i + 1
            title_parts.append(title)
            continue
        seed = split_prefix(tok, SEED_PREFIXES)
        if seed is not None:                   # 种子:7 (or 种子: 7)
            if not seed and i < len(tokens):
                seed, i = tokens[i], i + 1
            request.seed = seed
            continue
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
        style_name, theme = split_prefix(tok, STYLE_PREFIXES), split_prefix(tok, THEME_PREFIXES)
        if style_name is not None or theme is not None:
            value = style_name if style_name is not None else theme
            if not value and i < len(tokens):          # 风格: 李白, with a space after the colon
                value, i = tokens[i], i + 1
            if style_name is not None:
                name_style(_explicit_style(value, styles))
            elif value:
                (acrostic_parts if acrostic_next else words).append(value)
            continue
        if tok.startswith(IMITATE) and _style_words([tok[1:]], 0, styles):
            name_style(_Named(tok[1:], styles.find(tok[1:])))
            continue
        n = _style_words(tokens, i - 1, styles)
        if n:
            name = " ".join(tokens[i - 1:i - 1 + n])
            i += n - 1
            new = _Named(name, styles.find(name), token=name if acrostic_next else "")
            if acrostic_next and named is not None and named.identity != new.identity:
                acrostic_parts.append(name)     # 风格:杜甫 藏头 李白: a style is named, this is the acrostic
            else:
                name_style(new)
            continue
        if _FORMISH.match(tok):
            raise ParseError("unknown_form", form=tok)
        if acrostic_next:
            acrostic_parts.append(tok)
        else:
            words.append(tok)
    if named is not None and named.token and acrostic_next and not acrostic_parts:
        acrostic_parts.append(named.token)     # /acrostic 李白: hide 李白, no style
        named = None
    if named is not None:
        if named.base:
            request.style = ""
        elif named.style is None:
            raise unknown_style_error(named.name, styles)
        else:
            request.style, request.style_title = named.style.id, named.style.title
    if acrostic_next:
        request.acrostic = _han_only("".join(acrostic_parts))
        if not request.acrostic:
            raise ParseError("acrostic_missing")
    words = [w for w in (_han_only(w) for w in words) if w]
    request.keywords = [w for w in words if len(w) <= MAX_KEYWORD_CHARS]
    # The title: what the user named as one, else their theme words (/poem 秋夜, /poem 送友人归江南).
    request.title = _han_only("".join(title_parts)) if title_parts else "".join(words)
    return request


def extract_poem_lines(text: str | None) -> list[str]:
    """The verse lines of a message (runs of 4 to 9 Han characters), or [] when it holds no poem.

    Titles, notes and anything mixing other characters are skipped, so one of the bot's own
    poem messages yields exactly its lines. Verse comes at least a couplet to a paragraph: a lone run
    alone in its paragraph beside paragraphs of verse is a title, a signature or the bot's prosody
    note (押平水韵, 韵脚欠工), not a line; when every paragraph holds one run (a poem typed a line to a
    paragraph), they are its lines.
    """
    if not text:
        return []
    paragraphs = [[part for part in (p.strip() for p in _LINE_SPLIT.split(paragraph))
                   if 4 <= len(part) <= 9 and all(is_han(c) for c in part)]
                  for paragraph in _PARAGRAPH.split(text)]
    if any(len(runs) >= 2 for runs in paragraphs):
        paragraphs = [runs for runs in paragraphs if len(runs) >= 2]
    lines = [line for runs in paragraphs for line in runs]
    return lines if len(lines) >= 2 else []
