"""Property-based tests (hypothesis) of everything that reads user input: /poem and /acrostic
arguments, pasted and replied-to poems, callback data, stored settings values, and the job checks the
bot and the worker share. Each property is a promise the code documents: a round trip, a bound on
what comes out, or "refused with the documented error, never another exception".

derandomize=True: the examples come from a fixed seed, so a run is repeatable and cannot be flaky;
max_examples keeps the file at a few seconds. The @example cases are the bugs these properties found.
"""
from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import callbacks
from bot.callbacks import Callback, CallbackError
from bot.parsing import (LONG_FORMS, MAX_ACROSTIC, MAX_ARG_CHARS, PINYIN_FORMS, ParseError, extract_poem_lines,
                         form_of_token, parse_poem_args, spec_fields)
from bot.render import format_poem
from bot.stores.users import UserSettings
from protocol.sampling import CREATIVITY_TEMPERATURES
from bot.styles import is_famous_poet, valid_style_id
from bot.texts import EN, ZH, t
from protocol.jobs import (IGNORED_CHARS, MAX_KEYWORDS, MAX_N, TYPED_LINE_BREAKS, GenerateJob, JobFormatError,
                           ValidationError, clean_text, job_from_json, job_to_json, split_lines, validate_generate,
                           validate_job)
from protocol.spec import SpecError, parse_spec, require
from verse.forms import FORM_NAMES, FORMS, is_han, poem_text
from verse.script import for_script

QUICK = settings(max_examples=100, deadline=None, derandomize=True)
THOROUGH = settings(max_examples=250, deadline=None, derandomize=True)

# Han characters of plain nature words: no two of them spell a form (五绝), a famous poet or 藏头.
NATURE = "春夏秋冬风花雪月山水江天云雨柳烟霜露松竹梅兰"
nature_words = st.text(alphabet=NATURE, min_size=1, max_size=3).filter(lambda w: not is_famous_poet(w))
any_han = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
# Text as users type it: anything at all, and runs of the tokens the parser treats specially.
TOKENS = ["五绝", "七律", "qijue", "七言绝句", "藏头", "acrostic", "风格:", "style:", "主题:", "仿", "李白", "libai",
          "词", "七古", "春", "明月", "，", "、", ";", " ", "\u200b", "\u202e", "ａ", "A", "1", "😀", "。"]
typed = st.one_of(st.text(max_size=60),
                  st.lists(st.sampled_from(TOKENS) | st.text(alphabet=NATURE, max_size=4), max_size=10).map(" ".join),
                  st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=10).map("".join))


def all_han(text: str) -> bool:
    return all(is_han(c) for c in text)


# --- /poem and /acrostic arguments -----------------------------------------------------------------

@THOROUGH
@given(text=typed, acrostic_command=st.booleans())
@example(text="藏头 风格:", acrostic_command=False)
@example(text="七绝 藏头春夏秋冬风", acrostic_command=False)
def test_arguments_parse_within_bounds_or_are_refused_in_both_languages(text: str, acrostic_command: bool) -> None:
    try:
        request = parse_poem_args(text, acrostic_command=acrostic_command)
        spec = require(parse_spec(spec_fields(request, "七绝")))    # the limits are the spec's
    except SpecError as exc:                                       # ParseError is one too
        assert t(ZH, exc.key, **exc.values) and t(EN, exc.key, **exc.values)
        return
    assert request.form is None or request.form in FORMS
    assert len(request.keywords) <= MAX_KEYWORDS and len(spec.keywords) == len(request.keywords)
    assert all(word and all_han(word) for word in request.keywords)
    assert all_han(request.acrostic) and len(request.acrostic) <= MAX_ACROSTIC
    assert bool(request.acrostic) or not acrostic_command, "/acrostic never comes back without one"
    if request.form:
        assert len(request.acrostic) <= FORMS[request.form].n_lines
    for default in FORMS:               # whatever the user's default, the form written can hold it
        assert FORMS[request.resolved_form(default)].n_lines >= len(request.acrostic)
    assert request.style is None and not request.style_title, "no style is served: none is chosen"


FORM_SPELLINGS = list(FORMS) + list(PINYIN_FORMS) + [p.upper() for p in PINYIN_FORMS] + list(LONG_FORMS)


@THOROUGH
@given(form=st.none() | st.sampled_from(FORM_SPELLINGS), words=st.lists(nature_words, max_size=3),
       acrostic=st.text(alphabet=NATURE, max_size=4).filter(lambda a: not is_famous_poet(a)),
       joined=st.booleans(), separator=st.sampled_from([" ", "，", "、", ",", " ， "]))
def test_what_a_user_asks_for_is_what_the_request_holds(form: str | None, words: list[str], acrostic: str,
                                                         joined: bool, separator: str) -> None:
    tokens = ([form] if form else []) + words
    if acrostic:
        tokens += ["藏头" + acrostic] if joined else ["藏头", acrostic]
    text = separator.join(tokens)
    assert len("".join(text.split())) <= MAX_ARG_CHARS
    request = parse_poem_args(text)
    assert request.form == (form_of_token(form) if form else None)
    assert (request.keywords, request.acrostic) == (words, acrostic)


# --- pasted and replied-to poems --------------------------------------------------------------------

@THOROUGH
@given(st.one_of(st.text(max_size=120),
                 st.lists(st.text(alphabet=NATURE + "，。\n 　a", max_size=12), max_size=10).map("\n".join)))
def test_extracted_lines_are_verse_or_nothing(text: str) -> None:
    lines = extract_poem_lines(text)
    assert lines == [] or len(lines) >= 2
    assert all(4 <= len(line) <= 9 and all_han(line) for line in lines)


def poem_lines(form: str) -> st.SearchStrategy[list[str]]:
    f = FORMS[form]
    line = st.text(alphabet=any_han, min_size=f.line_len, max_size=f.line_len)
    return st.lists(line, min_size=f.n_lines, max_size=f.n_lines)


NOTES = st.fixed_dictionaries({}, optional={
    "rhyme_ok": st.booleans(), "rhyme_group": st.sampled_from(["一東", "十一尤"]),
    "pattern": st.sampled_from(["平起", "仄起"]), "tone_rate": st.floats(0, 1), "form_ok": st.booleans()})
REQUESTS = st.fixed_dictionaries({}, optional={
    "keywords": st.lists(nature_words, max_size=2), "acrostic": st.text(alphabet=NATURE, max_size=4),
    "style": st.just("sushi"), "style_title": st.sampled_from(["苏轼", "李商隐", "王维诗选"])})


@THOROUGH
@given(data=st.data(), form=st.sampled_from(list(FORMS)), lang=st.sampled_from([ZH, EN]),
       traditional=st.booleans(), request=REQUESTS, poem=NOTES,
       heading=st.none() | st.sampled_from(["每日一诗 · 2026-12-01", "Poem of the day · 2026-12-01"]))
@example(data=None, form="五绝", lang=ZH, traditional=False, request={}, poem={"rhyme_ok": True}, heading=None)
def test_a_poem_message_of_the_bot_gives_back_exactly_its_lines(data: st.DataObject | None, form: str, lang: str,
                                                                 traditional: bool, request: dict, poem: dict,
                                                                 heading: str | None) -> None:
    """What a reply to one of the bot's poems reads (/similar, /poem like this), as Telegram hands the
    text over: without its tags. The prosody note (押平水韵, alone on its line) was read as a fifth line."""
    lines = data.draw(poem_lines(form)) if data else ["春风吹柳绿", "秋月照江明", "山高云自在", "水远客归来"]
    shown = [for_script(line, traditional) for line in lines]
    spec = require(parse_spec({"form": form, **request}))
    html = format_poem(lines, form, lang, traditional=traditional, spec=spec, poem=poem, heading=heading)
    assert extract_poem_lines(unescape(re.sub(r"<[^>]+>", "", html))) == shown


@QUICK
@given(data=st.data(), form=st.sampled_from(list(FORMS)),
       layout=st.sampled_from([("", "\n"), ("\n", "\n"), ("", ""), ("", "\n\n"), ("\n", "\n\n"), (" ", "\r\n")]),
       title=st.sampled_from(["", "静夜思\n", "春江花月\n\n", "李白《静夜思》\n"]))
def test_a_pasted_poem_gives_back_its_lines(data: st.DataObject, form: str, layout: tuple[str, str],
                                            title: str) -> None:
    lines = data.draw(poem_lines(form))
    assert extract_poem_lines(title + poem_text(lines, *layout)) == lines


# --- callback data ------------------------------------------------------------------------------------

poem_ids = st.from_regex(r"[A-Za-z0-9_-]{8,24}", fullmatch=True)
produced = st.one_of(
    st.builds(Callback, st.sampled_from(sorted(callbacks.POEM_ACTIONS - callbacks.MASK_ACTIONS)), poem_ids),
    st.builds(Callback, st.sampled_from(sorted(callbacks.MASK_ACTIONS)), poem_ids,
              mask=st.integers(0, callbacks.MAX_MASK)),
    st.sampled_from([Callback(callbacks.SETTING, key=k, value=v)
                     for k, values in callbacks.SETTING_VALUES.items() for v in sorted(values)]),
    st.builds(Callback, st.just(callbacks.SETTING), key=st.just(callbacks.STYLE_SETTING),
              value=st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True) | st.just(callbacks.BASE_STYLE)),
    st.builds(Callback, st.just(callbacks.DAILY), key=st.sampled_from(["0", "1"])),
    st.builds(Callback, st.just(callbacks.GLOSS_CORPUS), key=st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)),
)


@THOROUGH
@given(produced)
def test_every_button_the_bot_makes_decodes_to_itself(cb: Callback) -> None:
    data = callbacks.encode(cb)
    assert len(data.encode()) <= callbacks.MAX_BYTES
    assert callbacks.decode(data) == cb


# Any string Telegram could hand back, lone surrogates included, and near misses of real data.
forged = st.one_of(st.text(alphabet=st.characters(exclude_categories=()), max_size=80),
                   produced.map(callbacks.encode).flatmap(
                       lambda d: st.sampled_from([d + "\n", d + ":", d[:-1], d.upper(), d + "0", " " + d])))


@THOROUGH
@given(forged)
@example("l:abcdefgh\n")             # "$" matched before the newline: a poem id with "\n" in it
@example("st:style:alpha\n")
@example("gc:abc\n")
@example("l:\ud800")                 # a lone surrogate raised UnicodeEncodeError, not CallbackError
def test_callback_data_decodes_within_its_sets_or_is_refused(data: str) -> None:
    try:
        cb = callbacks.decode(data)
    except CallbackError:
        return
    assert callbacks.encode(cb) == data
    if cb.action in callbacks.POEM_ACTIONS:
        assert callbacks.POEM_ID_RE.fullmatch(cb.poem_id) and 0 <= cb.mask <= callbacks.MAX_MASK
    elif cb.action == callbacks.SETTING:
        assert cb.value in callbacks.SETTING_VALUES.get(cb.key, ()) or (
            cb.key == callbacks.STYLE_SETTING and (cb.value == callbacks.BASE_STYLE or valid_style_id(cb.value)))
    elif cb.action == callbacks.DAILY:
        assert cb.key in ("0", "1")
    else:
        assert cb.action == callbacks.GLOSS_CORPUS and callbacks.CORPUS_ID_RE.fullmatch(cb.key)


# --- stored settings values -------------------------------------------------------------------------

@THOROUGH
@given(st.dictionaries(st.sampled_from(["script", "form", "cr", "style"]) | st.text(max_size=5),
                       st.text(max_size=12) | st.sampled_from(["s", "t", "0", "2", "3", "²", "١", "七律", "-1"])))
@example({"cr": "²"})                # str.isdigit() passed it, then int() raised
@example({"style": "alpha\n"})
def test_any_stored_settings_read_as_valid_settings(raw: dict[str, str]) -> None:
    s = UserSettings.from_hash(raw)
    assert s.script in ("s", "t") and (s.form is None or s.form in FORM_NAMES)
    assert 0 <= s.creativity < len(CREATIVITY_TEMPERATURES) and s.temperature in CREATIVITY_TEMPERATURES
    assert s.style == "" or valid_style_id(s.style)


@pytest.mark.parametrize("key, value", [(k, v) for k, vs in callbacks.SETTING_VALUES.items() for v in sorted(vs)]
                         + [(callbacks.STYLE_SETTING, "sushi"), (callbacks.STYLE_SETTING, callbacks.BASE_STYLE)])
def test_every_settings_button_is_read_back_as_pressed(key: str, value: str) -> None:
    """What the /settings buttons store (bot.handlers: a form by name, the base style as "") reads back."""
    cb = callbacks.decode(callbacks.setting(key, value))
    stored = FORM_NAMES[int(cb.value)] if key == "form" else ("" if cb.value == callbacks.BASE_STYLE else cb.value)
    s = UserSettings.from_hash({key: stored})
    read = {"script": s.script, "form": s.form, "cr": str(s.creativity), "style": s.style}[key]
    assert read == stored


# --- the job checks the bot and the worker share ------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10)
JOB_FIELDS = ["form", "acrostic", "keywords", "fixed_lines", "like_texts", "latent", "tone_mode", "rhyme", "n",
              "best_of", "max_repeat", "temperature", "top_p", "min_p", "seed", "style", "reply", "texts"]
plausible = {"form": st.sampled_from(FORM_SPELLINGS) | st.text(max_size=4),
             "acrostic": st.text(alphabet=NATURE + " ，x", max_size=9),
             "keywords": st.lists(st.text(alphabet=NATURE + "，x", max_size=8), max_size=8),
             "fixed_lines": st.dictionaries(st.integers(-1, 8).map(str), st.text(alphabet=NATURE, max_size=8),
                                            max_size=3),
             "texts": st.lists(st.text(max_size=20), max_size=3)}


@THOROUGH
@given(kind=st.sampled_from(["generate", "encode"]),
       body=st.dictionaries(st.sampled_from(JOB_FIELDS), json_values, max_size=5),
       likely=st.fixed_dictionaries({}, optional=plausible))
@example(kind="generate", body={"keywords": [None]}, likely={})
@example(kind="generate", body={"acrostic": ["春"]}, likely={})
@example(kind="encode", body={"texts": None}, likely={})
@example(kind="generate", body={"reply": 5}, likely={})
def test_any_job_message_is_refused_cleanly_or_validates_within_bounds(kind: str, body: dict[str, Any],
                                                                       likely: dict[str, Any]) -> None:
    """A stream entry holds whatever JSON its sender wrote: JobFormatError or ValidationError, never a
    TypeError in the middle of a batch (which fails the batch and leaves the job to be redelivered)."""
    text = json.dumps({"v": 1, "kind": kind, "job_id": "j", **likely, **body})
    try:
        job = job_from_json(text)
    except JobFormatError:
        return
    assert isinstance(job.reply, dict)
    try:
        validate_job(job, chars=lambda c: c in NATURE)
    except ValidationError as exc:
        assert exc.code and exc.message
        return
    if not isinstance(job, GenerateJob):
        assert job.texts and all(isinstance(x, str) and x for x in job.texts)
        return
    form = FORMS[job.form]
    assert 1 <= job.n <= MAX_N and len(job.acrostic) <= form.n_lines and all_han(job.acrostic)
    assert all(k and len(k) <= form.line_len and set(k) <= set(NATURE) for k in job.keywords)
    assert all(0 <= i < form.n_lines and len(line) == form.line_len for i, line in job.fixed_lines.items())
    # Validation normalises: the job it returns travels as JSON and validates to itself.
    again = validate_generate(job_from_json(job_to_json(job)), chars=lambda c: c in NATURE)
    assert (again.form, again.acrostic, again.keywords, again.fixed_lines) == \
        (job.form, job.acrostic, job.keywords, job.fixed_lines)


@THOROUGH
@given(st.text(max_size=200))
def test_split_lines_gives_clean_nonempty_lines(text: str) -> None:
    lines = split_lines(text)
    assert all(line and line == clean_text(line) and not any(c.isspace() for c in line) for line in lines)
    assert not any(c in IGNORED_CHARS for line in lines for c in line)


@THOROUGH
@given(lines=st.lists(st.text(alphabet=any_han, min_size=1, max_size=9), min_size=1, max_size=8),
       breaks=st.lists(st.text(alphabet=TYPED_LINE_BREAKS + " ", min_size=1, max_size=3)
                       .filter(lambda b: any(c in TYPED_LINE_BREAKS for c in b)), min_size=8, max_size=8),
       spaces=st.sampled_from(["", " ", "\u3000", "\t"]))
def test_a_typed_poem_splits_into_its_lines(lines: list[str], breaks: list[str], spaces: str) -> None:
    """However a user ends lines (，。？！ or newlines, doubled, spaced), the lines come back."""
    text = "".join(spaces.join(line) + sep for line, sep in zip(lines, breaks))
    assert split_lines(text) == lines
