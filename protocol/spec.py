"""One poem request, typed: what the user asked for, checked once, carried whole from bot to worker and back.

A PoemSpec is built by parse_spec() alone, which checks every rule a request must meet (form or 词牌, acrostic,
theme words, title, kept lines, example poems, style, sampling) and returns the spec or a SpecError:
a code the bot shows in the user's language (bot.texts, keyed by the code's value), its parameters,
and an English message for logs and worker results. The bot builds specs from what users type, the
daily poem, 🔄 and ✏️; jobs carry spec.to_wire() and results bring it back; the worker maps it to the
model's own arguments (worker.request). No TensorFlow, Redis or bot import here.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Callable, Collection, Mapping

from protocol.sampling import DEFAULT as SAMPLING, Sampling
from verse import tunes
from verse.forms import FORMS, IGNORED_CHARS, Form, clean_text, normalise_form_name

SPEC_VERSION = 1             # of to_wire()'s shape; from_wire() refuses others clearly

# Limits that keep one request from monopolising a batch or a message.
MAX_TITLE_CHARS = 24          # a title names an occasion: 送友人归江南, 秋夜, 大雪
MAX_KEYWORDS = 6
MAX_LIKE_TEXTS = 8
MAX_TEXT_CHARS = 400          # one example poem
MAX_STYLE_CHARS = 32
MAX_BEST_OF = 16
MAX_SEED = 2**63
TEMPERATURE_RANGE = (0.05, 2.0)
CI = "词"                     # the form of a request with a tune
CI_NAMES = {"词", "詞", "ci"}
CLOSE_TUNES = 3               # tune names offered for one not known
# IGNORED_CHARS (what users type between characters) and clean_text are verse.forms', imported here
# where the bot has long found them.

# Result.error_code of a refused request (protocol.jobs re-exports them with the other codes).
E_INVALID = "invalid_request"       # malformed field values (bad form, n out of range, ...)
E_IMPOSSIBLE = "impossible"         # constraints that no poem of the form can meet
E_UNKNOWN_CHARS = "unknown_chars"   # characters the model cannot write
E_UNKNOWN_STYLE = "unknown_style"   # a style no worker has (the message lists those it has)


class SpecCode(str, Enum):
    """Why a request was refused; the value is the bot.texts key that says so."""
    UNKNOWN_FORM = "unknown_form"                  # form
    BAD_FIELD = "bad_field"                        # field: a value of the wrong type or shape
    ACROSTIC_TOO_LONG = "acrostic_too_long"        # limit
    TOO_MANY_KEYWORDS = "too_many_keywords"        # limit
    KEYWORD_TOO_LONG = "keyword_too_long"          # word, n
    TITLE_TOO_LONG = "title_too_long"              # limit
    KEPT_LINE_MISSING = "kept_line_missing"        # line, n_lines
    KEPT_LINE_LENGTH = "kept_line_length"          # line, text, n
    ALL_LINES_KEPT = "all_lines_kept"
    ACROSTIC_CLASH = "acrostic_clash"              # line, text, char
    NO_ROOM = "no_room"                            # need, free
    TOO_MANY_EXAMPLES = "too_many_examples"        # limit
    EXAMPLE_TOO_LONG = "example_too_long"          # limit
    UNKNOWN_CHARS = "unknown_chars"                # chars
    EXAMPLES_UNKNOWN = "examples_unknown"
    BAD_STYLE = "bad_style"                        # limit
    UNKNOWN_STYLE = "unknown_style"                # name, styles_zh, styles_en, example
    BAD_SAMPLING = "bad_sampling"                  # field, low, high
    BAD_SEED = "bad_seed"                          # value
    UNKNOWN_TUNE = "unknown_tune"                  # name, close (the nearest tune names, joined by 、)
    TUNE_MISSING = "tune_missing"                  # example
    CI_STYLE = "ci_style"                          # tune: poets' styles are adapters of the 诗 model
    CI_IMITATION = "ci_imitation"                  # tune: the ci model has no latent of typed poems


# Which Result.error_code each refusal travels as (the worker's answer to a job it refuses).
RESULT_CODES: dict[SpecCode, str] = {
    **{code: E_INVALID for code in SpecCode},
    **{code: E_IMPOSSIBLE for code in (SpecCode.ACROSTIC_TOO_LONG, SpecCode.KEYWORD_TOO_LONG,
                                       SpecCode.KEPT_LINE_MISSING, SpecCode.KEPT_LINE_LENGTH,
                                       SpecCode.ALL_LINES_KEPT, SpecCode.ACROSTIC_CLASH, SpecCode.NO_ROOM)},
    SpecCode.UNKNOWN_CHARS: E_UNKNOWN_CHARS,
    SpecCode.EXAMPLES_UNKNOWN: E_UNKNOWN_CHARS,
    SpecCode.UNKNOWN_STYLE: E_UNKNOWN_STYLE,
}


class SpecError(ValueError):
    """A request refused: code (the bot.texts key), its parameters, and an English message."""

    def __init__(self, code: SpecCode | str, message: str = "", **values: object) -> None:
        super().__init__(message or str(code))
        self.code = code
        self.key = code.value if isinstance(code, SpecCode) else code
        self.values = values
        self.message = message or self.key

    @property
    def result_code(self) -> str:
        """The protocol.jobs E_* code a worker answers with."""
        return RESULT_CODES.get(self.code, E_INVALID) if isinstance(self.code, SpecCode) else E_INVALID


@dataclass(frozen=True)
class PoemSpec:
    """What one poem request asks for, normalised (simplified script, no punctuation) and checked."""
    form: Form                                       # for a 词: 词, its longest line, its lines (the tune's main form)
    title: str = ""                                  # the occasion (秋夜, 送友人); a titled model writes to it
    keywords: tuple[str, ...] = ()                   # theme words, each set inside one line
    acrostic: str = ""                               # 藏头: the first character of line 1, 2, ...
    style: str = ""                                  # a style adapter's id; "" the base model
    style_title: str = ""                            # how the style is shown (李白)
    like_texts: tuple[str, ...] = ()                 # imitation: a latent near these poems
    kept_lines: tuple[tuple[int, str], ...] = ()     # (0-based line, its text), kept as they are (✏️)
    traditional: bool = False                        # the reader's script; the poem is written simplified
    sampling: Sampling = SAMPLING
    seed: int | None = None                          # the same seed, the same poem; None: the worker draws one
    tune: str = ""                                   # a 词牌 (verse.tunes canonical name); "" a 诗 of form

    @property
    def kept(self) -> dict[int, str]:
        return dict(self.kept_lines)

    @property
    def line_lengths(self) -> tuple[int, ...]:
        """Characters in each line: the form's, or the tune's main form's line by line."""
        return line_lengths(self.form, self.tune)

    def fields(self) -> dict[str, Any]:
        """The spec as parse_spec() reads it (plain values), to change some and parse again."""
        return {"form": self.form.name, "title": self.title, "keywords": list(self.keywords),
                "acrostic": self.acrostic, "style": self.style, "style_title": self.style_title,
                "like_texts": list(self.like_texts), "kept_lines": self.kept, "traditional": self.traditional,
                "sampling": self.sampling, "seed": self.seed, "tune": self.tune}

    def to_wire(self) -> dict[str, Any]:
        """A JSON object, versioned (its "v")."""
        body = self.fields()
        body["kept_lines"] = {str(i): text for i, text in self.kept_lines}
        body["sampling"] = {name: getattr(self.sampling, name) for name in SAMPLING_FIELDS}
        return {"v": SPEC_VERSION, **body}

    def changed(self, **changes: Any) -> "PoemSpec":
        """This spec with some fields changed, checked again (kept lines may clash with an acrostic)."""
        return require(parse_spec({**self.fields(), **changes}))


SAMPLING_FIELDS = ("temperature", "top_p", "min_p", "best_of", "latent_scale")


def from_wire(body: Any, **checks: Any) -> PoemSpec:
    """A spec from its JSON object (to_wire); SpecError when it is not one this version reads or its
    values are refused. checks: parse_spec's chars, to_simplified and styles."""
    if not isinstance(body, Mapping):
        raise SpecError(SpecCode.BAD_FIELD, "spec must be a JSON object", field="spec")
    if body.get("v") != SPEC_VERSION:
        raise SpecError(SpecCode.BAD_FIELD, f"spec has version {body.get('v')!r}; this build reads version "
                        f"{SPEC_VERSION} (upgrade the older side)", field="v")
    return require(parse_spec(body, **checks))


def from_legacy(request: Mapping[str, Any], form: str) -> PoemSpec | None:
    """The spec of a poem recorded before specs existed (its request dict and form), None if unreadable."""
    spec = parse_spec({**{k: request.get(k) for k in ("keywords", "acrostic", "like_texts", "style",
                                                       "style_title", "title") if request.get(k) is not None},
                       "form": request.get("form") or form})
    return spec if isinstance(spec, PoemSpec) else None


def line_lengths(form: Form, tune: str = "") -> tuple[int, ...]:
    """Characters in each line of a poem of form, or of a 词 of tune (its main form)."""
    found = tunes.get(tune) if tune else None
    return found.main.lengths if found is not None else (form.line_len,) * form.n_lines


def close_tunes(name: str, limit: int = CLOSE_TUNES) -> list[str]:
    """Canonical names of the tunes whose names or aliases are nearest name, nearest first; the most
    common tunes when none is near."""
    table = tunes.load()
    # Least common first, so that an alias two tunes share names the more common one.
    names = {alias: tune.name for tune in reversed(table.tunes) for alias in (*tune.aliases, tune.name)}
    near = [names[n] for n in difflib.get_close_matches(name, list(names), n=limit * 3, cutoff=0.5)]
    found = list(dict.fromkeys(near))[:limit]
    return found or [tune.name for tune in table.tunes[:limit]]


def require(spec: PoemSpec | SpecError) -> PoemSpec:
    """parse_spec's answer, its error raised."""
    if isinstance(spec, SpecError):
        raise spec
    return spec


def _strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sampling(value: Any) -> Sampling:
    """A Sampling from a Sampling or its JSON object (missing fields: the defaults)."""
    if isinstance(value, Sampling):
        return value
    if value is None:
        return SAMPLING
    if not isinstance(value, Mapping):
        raise SpecError(SpecCode.BAD_FIELD, "sampling must be an object", field="sampling")
    return replace(SAMPLING, **{k: value[k] for k in SAMPLING_FIELDS if k in value})


def _check_sampling(s: Sampling) -> None:
    lo, hi = TEMPERATURE_RANGE
    for name, ok, low, high in (
            ("temperature", _number(s.temperature) and lo <= s.temperature <= hi, lo, hi),
            ("top_p", _number(s.top_p) and 0.0 < s.top_p <= 1.0, "(0", "1]"),
            ("min_p", _number(s.min_p) and 0.0 <= s.min_p < 1.0, "[0", "1)"),
            ("best_of", isinstance(s.best_of, int) and not isinstance(s.best_of, bool)
             and 1 <= s.best_of <= MAX_BEST_OF, 1, MAX_BEST_OF),
            ("latent_scale", _number(s.latent_scale) and 0.0 <= s.latent_scale <= 2.0, 0, 2)):
        if not ok:
            raise SpecError(SpecCode.BAD_SAMPLING, f"{name} must be between {low} and {high}",
                            field=name, low=low, high=high)


def parse_spec(raw: Mapping[str, Any], *, chars: Callable[[str], bool] | None = None,
               to_simplified: Callable[[str], str] | None = None,
               styles: Collection[str] | None = None) -> PoemSpec | SpecError:
    """THE check of a poem request: the normalised PoemSpec of raw (parse_spec's field names, plain
    values, as PoemSpec.fields() or to_wire() write them), or the SpecError that refuses it.

    chars(c): whether the model can write c (without it, characters are not checked);
    to_simplified: user text to the model's script; styles: the style ids served (None: not checked).
    """
    try:
        return _parse(raw, chars, to_simplified or (lambda s: s), styles)
    except SpecError as exc:
        return exc


def _parse(raw: Mapping[str, Any], chars: Callable[[str], bool] | None, conv: Callable[[str], str],
           styles: Collection[str] | None) -> PoemSpec:
    def need(condition: bool, code: SpecCode, message: str, **values: object) -> None:
        if not condition:
            raise SpecError(code, message, **values)

    # Types first: a spec read from the stream holds whatever JSON its sender wrote, and a wrong type
    # must be refused here, not raise TypeError mid-batch in the worker.
    title, acrostic = raw.get("title", ""), raw.get("acrostic", "")
    keywords, like_texts = raw.get("keywords", ()), raw.get("like_texts", ())
    style, style_title = raw.get("style", ""), raw.get("style_title", "")
    kept_raw, traditional = raw.get("kept_lines") or {}, raw.get("traditional", False)
    tune_name = raw.get("tune") or ""
    for name, ok, what in (("title", isinstance(title, str), "text"), ("acrostic", isinstance(acrostic, str), "text"),
                           ("keywords", _strings(keywords), "a list of words"),
                           ("like_texts", _strings(like_texts), "a list of poems"),
                           ("style_title", isinstance(style_title, str), "text"),
                           ("kept_lines", isinstance(kept_raw, Mapping), "a map of line numbers to text"),
                           ("traditional", isinstance(traditional, bool), "true or false"),
                           ("tune", isinstance(tune_name, str), "a tune's name")):
        need(ok, SpecCode.BAD_FIELD, f"{name} must be {what}", field=name)

    tune_name = clean_text(tune_name)
    if tune_name or str(raw.get("form")).strip() in CI_NAMES:
        # A 词: the form is the tune's main form; a 诗's form beside a tune is a contradiction, not a choice.
        need(raw.get("form") is None or str(raw.get("form")).strip() in CI_NAMES, SpecCode.BAD_FIELD,
             f"a tune makes a 词; the form {raw.get('form')!r} cannot go with it", field="form")
        need(bool(tune_name), SpecCode.TUNE_MISSING, "a 词 needs a tune (词牌), e.g. 浣溪沙", example="浣溪沙")
        tune = tunes.get(tune_name)
        close = close_tunes(tune_name) if tune is None else []
        need(tune is not None, SpecCode.UNKNOWN_TUNE, f"no tune {tune_name!r}; close: {', '.join(close)}",
             name=tune_name, close="、".join(close))
        tune_name = tune.name
        form = Form(CI, max(tune.main.lengths), len(tune.main.lengths))
        need(not style, SpecCode.CI_STYLE, f"styles write 诗, not a 词 of {tune_name}", tune=tune_name)
        need(not like_texts, SpecCode.CI_IMITATION, f"a 词 of {tune_name} cannot imitate a poem", tune=tune_name)
    else:
        form_name = normalise_form_name(str(raw.get("form"))) if raw.get("form") is not None else None
        need(form_name is not None, SpecCode.UNKNOWN_FORM,
             f"unknown form {raw.get('form')!r}; choose one of {', '.join(FORMS)}", form=str(raw.get("form")))
        form = FORMS[form_name]
    lengths = line_lengths(form, tune_name)
    shape = tune_name or form.name

    need(isinstance(style, str) and len(style) <= MAX_STYLE_CHARS and not any(c.isspace() for c in style),
         SpecCode.BAD_STYLE, f"style must be a name of at most {MAX_STYLE_CHARS} characters without spaces",
         limit=MAX_STYLE_CHARS)
    if styles is not None and style:
        served = sorted(styles)
        need(style in styles, SpecCode.UNKNOWN_STYLE,
             f"no style {style!r}; the styles are: {', '.join(served) or 'none'}",
             name=style_title or style, styles_zh="、".join(served), styles_en=", ".join(served),
             example=served[0] if served else "")
    sampling = _sampling(raw.get("sampling"))
    _check_sampling(sampling)
    seed = raw.get("seed")
    if isinstance(seed, str) and seed.isascii() and seed.isdigit():      # typed: seed:7
        seed = int(seed)
    need(seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < MAX_SEED),
         SpecCode.BAD_SEED, f"a seed is a whole number from 0 to {MAX_SEED - 1}, not {seed!r}", value=str(seed))

    title = conv(clean_text(title))
    need(len(title) <= MAX_TITLE_CHARS, SpecCode.TITLE_TOO_LONG,
         f"a title has at most {MAX_TITLE_CHARS} characters", limit=MAX_TITLE_CHARS)

    acrostic = conv(clean_text(acrostic))
    need(len(acrostic) <= form.n_lines, SpecCode.ACROSTIC_TOO_LONG,
         f"an acrostic of {len(acrostic)} characters needs more than the {form.n_lines} lines of a {shape}",
         limit=form.n_lines)

    need(len(keywords) <= MAX_KEYWORDS, SpecCode.TOO_MANY_KEYWORDS, f"at most {MAX_KEYWORDS} keywords",
         limit=MAX_KEYWORDS)
    keywords = [k for k in (conv(clean_text(k)) for k in keywords) if k]
    for k in keywords:
        need(len(k) <= form.line_len, SpecCode.KEYWORD_TOO_LONG,
             f"keyword {k!r} is longer than the longest line of a {shape} ({form.line_len} characters)",
             word=k, n=form.line_len)

    kept: dict[int, str] = {}
    for index, text in kept_raw.items():
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise SpecError(SpecCode.BAD_FIELD, f"kept line number {index!r} is not a number",
                            field="kept_lines") from None
        need(0 <= i < form.n_lines, SpecCode.KEPT_LINE_MISSING,
             f"a {shape} has lines 1..{form.n_lines}; there is no line {i + 1}", line=i + 1,
             n_lines=form.n_lines)
        line = conv(clean_text(str(text)))
        need(len(line) == lengths[i], SpecCode.KEPT_LINE_LENGTH,
             f"fixed line {i + 1} {line!r} has {len(line)} characters; line {i + 1} of a {shape} has {lengths[i]}",
             line=i + 1, text=line, n=lengths[i])
        kept[i] = line
    need(len(kept) < form.n_lines or not keywords, SpecCode.ALL_LINES_KEPT,
         "every line is fixed: there is no room for keywords")
    for i, ch in enumerate(acrostic):
        if i in kept:
            need(kept[i][0] == ch, SpecCode.ACROSTIC_CLASH,
                 f"line {i + 1} is fixed as {kept[i]!r} but the acrostic wants it to start with {ch!r}",
                 line=i + 1, text=kept[i], char=ch)
    free = sum(lengths[i] - (1 if i < len(acrostic) else 0) for i in range(form.n_lines) if i not in kept)
    need_chars = sum(len(k) for k in keywords)
    need(need_chars <= free, SpecCode.NO_ROOM,
         f"the keywords need {need_chars} characters but only {free} are free", need=need_chars, free=free)

    need(len(like_texts) <= MAX_LIKE_TEXTS, SpecCode.TOO_MANY_EXAMPLES,
         f"at most {MAX_LIKE_TEXTS} example poems", limit=MAX_LIKE_TEXTS)
    like_texts = [conv(t) for t in like_texts]
    for t in like_texts:
        need(len(t) <= MAX_TEXT_CHARS, SpecCode.EXAMPLE_TOO_LONG,
             f"an example poem may have at most {MAX_TEXT_CHARS} characters", limit=MAX_TEXT_CHARS)

    if chars is not None:
        unknown = "".join(sorted({c for c in acrostic + "".join(keywords) + "".join(kept.values())
                                  if not chars(c)}))
        need(not unknown, SpecCode.UNKNOWN_CHARS,
             f"the model cannot write {unknown}: choose other characters", chars=" ".join(unknown))
        if like_texts:
            need(any(any(chars(c) for c in clean_text(t)) for t in like_texts), SpecCode.EXAMPLES_UNKNOWN,
                 "the example poems have no characters the model knows")

    return PoemSpec(form=form, title=title, keywords=tuple(keywords), acrostic=acrostic, style=style,
                    style_title=style_title if style else "", like_texts=tuple(like_texts),
                    kept_lines=tuple(sorted(kept.items())), traditional=traditional, sampling=sampling, seed=seed,
                    tune=tune_name)
