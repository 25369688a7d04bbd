"""protocol.spec: one typed request, checked once, that survives the wire and old stored shapes."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.parsing import parse_poem_args, spec_fields
from bot.stores.poems import PoemRecord
from botkit import emu, make_config, running_bot, stand_in  # noqa: F401
from devtools.emulator import BotApiEmulator
from bot.texts import EN, ZH, t
from protocol.jobs import (E_IMPOSSIBLE, E_INVALID, E_UNKNOWN_CHARS, E_UNKNOWN_STYLE, GenerateJob, job_from_json,
                           job_to_json, generate_job, result_from_json, result_to_json, Result)
from protocol.sampling import DEFAULT as SAMPLING
from protocol.spec import (MAX_KEYWORDS, MAX_LIKE_TEXTS, MAX_STYLE_CHARS, MAX_TEXT_CHARS, MAX_TITLE_CHARS,
                           SPEC_VERSION, PoemSpec, SpecCode, SpecError, from_legacy, from_wire, parse_spec, require)
from verse.forms import FORMS
from worker.request import echo, model_request, unpack_spec

NATURE = "春夏秋冬风花雪月山水江天云雨"
ALICE = BotApiEmulator.user(1001, "Alice")


def test_a_request_is_normalised_once() -> None:
    spec = require(parse_spec({"form": "七絕", "acrostic": "春 夏，", "keywords": [" 明月 ", ""],
                               "kept_lines": {"1": "夏二三四五六七"}, "title": "《秋夜》"}))
    assert spec.form is FORMS["七绝"] and spec.acrostic == "春夏" and spec.keywords == ("明月",)
    assert spec.kept == {1: "夏二三四五六七"} and spec.title == "秋夜" and spec.sampling == SAMPLING


def test_the_script_converter_applies_to_what_the_user_typed() -> None:
    spec = require(parse_spec({"form": "五绝", "acrostic": "風"}, chars=lambda c: c == "风",
                              to_simplified=lambda s: s.replace("風", "风")))
    assert spec.acrostic == "风"


# Each refusal: the fields, the code, the parameters the user's text is filled with, the result code.
REFUSALS = [
    ({"form": "五古"}, SpecCode.UNKNOWN_FORM, {"form": "五古"}, E_INVALID),
    ({"form": "词"}, SpecCode.TUNE_MISSING, {"example": "浣溪沙"}, E_INVALID),
    ({"tune": "浣西沙"}, SpecCode.UNKNOWN_TUNE, {"name": "浣西沙", "close": "浣溪沙"}, E_INVALID),
    ({"tune": "浣溪沙", "form": "七绝"}, SpecCode.BAD_FIELD, {"field": "form"}, E_INVALID),
    ({"tune": "浣溪沙", "style": "libai"}, SpecCode.CI_STYLE, {"tune": "浣溪沙"}, E_INVALID),
    ({"tune": "浣溪沙", "like_texts": ["春风"]}, SpecCode.CI_IMITATION, {"tune": "浣溪沙"}, E_INVALID),
    ({"tune": "念奴娇", "kept_lines": {0: "一二三四五"}}, SpecCode.KEPT_LINE_LENGTH,
     {"line": 1, "text": "一二三四五", "n": 4}, E_IMPOSSIBLE),
    ({"form": "五绝", "keywords": "春"}, SpecCode.BAD_FIELD, {"field": "keywords"}, E_INVALID),
    ({"form": "五绝", "kept_lines": {"x": "一二三四五"}}, SpecCode.BAD_FIELD, {"field": "kept_lines"}, E_INVALID),
    ({"form": "五绝", "acrostic": "一二三四五"}, SpecCode.ACROSTIC_TOO_LONG, {"limit": 4}, E_IMPOSSIBLE),
    ({"form": "七绝", "keywords": ["春"] * (MAX_KEYWORDS + 1)}, SpecCode.TOO_MANY_KEYWORDS,
     {"limit": MAX_KEYWORDS}, E_INVALID),
    ({"form": "五绝", "keywords": ["一二三四五六"]}, SpecCode.KEYWORD_TOO_LONG, {"word": "一二三四五六", "n": 5},
     E_IMPOSSIBLE),
    ({"form": "七绝", "title": "春" * (MAX_TITLE_CHARS + 1)}, SpecCode.TITLE_TOO_LONG, {"limit": MAX_TITLE_CHARS},
     E_INVALID),
    ({"form": "五绝", "kept_lines": {4: "一二三四五"}}, SpecCode.KEPT_LINE_MISSING, {"line": 5, "n_lines": 4},
     E_IMPOSSIBLE),
    ({"form": "五绝", "kept_lines": {0: "一二三"}}, SpecCode.KEPT_LINE_LENGTH, {"line": 1, "text": "一二三", "n": 5},
     E_IMPOSSIBLE),
    ({"form": "五绝", "keywords": ["春"], "kept_lines": {i: "一二三四五" for i in range(4)}}, SpecCode.ALL_LINES_KEPT,
     {}, E_IMPOSSIBLE),
    ({"form": "五绝", "acrostic": "春", "kept_lines": {0: "一二三四五"}}, SpecCode.ACROSTIC_CLASH,
     {"line": 1, "text": "一二三四五", "char": "春"}, E_IMPOSSIBLE),
    ({"form": "五绝", "keywords": ["一二三四五"] * 4, "acrostic": "甲"}, SpecCode.NO_ROOM, {"need": 20, "free": 19},
     E_IMPOSSIBLE),
    ({"form": "五绝", "like_texts": ["春"] * (MAX_LIKE_TEXTS + 1)}, SpecCode.TOO_MANY_EXAMPLES,
     {"limit": MAX_LIKE_TEXTS}, E_INVALID),
    ({"form": "五绝", "like_texts": ["字" * (MAX_TEXT_CHARS + 1)]}, SpecCode.EXAMPLE_TOO_LONG,
     {"limit": MAX_TEXT_CHARS}, E_INVALID),
    ({"form": "五绝", "style": "li bai"}, SpecCode.BAD_STYLE, {"limit": MAX_STYLE_CHARS}, E_INVALID),
    ({"form": "五绝", "sampling": {"temperature": 9.0}}, SpecCode.BAD_SAMPLING,
     {"field": "temperature", "low": 0.05, "high": 2.0}, E_INVALID),
    ({"form": "五绝", "sampling": {"best_of": 0}}, SpecCode.BAD_SAMPLING, {"field": "best_of", "low": 1, "high": 16},
     E_INVALID),
    ({"form": "五绝", "seed": "-1"}, SpecCode.BAD_SEED, {"value": "-1"}, E_INVALID),
]
REFUSED_BY_THE_WORKER = [
    ({"form": "五绝", "acrostic": "春夏"}, {"chars": lambda c: c != "夏"}, SpecCode.UNKNOWN_CHARS, {"chars": "夏"},
     E_UNKNOWN_CHARS),
    ({"form": "五绝", "like_texts": ["夏夏"]}, {"chars": lambda c: c != "夏"}, SpecCode.EXAMPLES_UNKNOWN, {},
     E_UNKNOWN_CHARS),
    ({"form": "五绝", "style": "baijuyi"}, {"styles": {"libai", "dufu"}}, SpecCode.UNKNOWN_STYLE,
     {"name": "baijuyi", "styles_zh": "dufu、libai", "styles_en": "dufu, libai", "example": "dufu"},
     E_UNKNOWN_STYLE),
]


@pytest.mark.parametrize("fields, checks, code, values, result_code",
                         [(f, {}, c, v, r) for f, c, v, r in REFUSALS] + REFUSED_BY_THE_WORKER)
def test_every_refusal_has_its_code_parameters_and_text(fields, checks, code, values, result_code) -> None:
    error = parse_spec(fields, **checks)
    assert isinstance(error, SpecError) and error.code is code and error.values == values
    assert error.result_code == result_code and error.message
    # The bot says it in the user's language: 中文 first, English for English speakers.
    zh, en = t(ZH, error.key, **error.values), t(EN, error.key, **error.values)
    assert zh != en and all(str(v) in zh and str(v) in en for v in values.values() if isinstance(v, (int, str))
                            and code is not SpecCode.UNKNOWN_STYLE)


def test_every_code_is_exercised_and_has_both_texts() -> None:
    seen = {code for _, code, _, _ in REFUSALS} | {code for _, _, code, _, _ in REFUSED_BY_THE_WORKER}
    assert seen == set(SpecCode)


def test_the_worker_messages_still_name_the_problem() -> None:
    """bot.texts reads the characters and styles out of these English messages in a worker's result."""
    assert "cannot write 夏:" in parse_spec({"form": "五绝", "acrostic": "春夏"}, chars=lambda c: c != "夏").message
    assert "no style 'baijuyi'; the styles are: dufu, libai" == \
        parse_spec({"form": "五绝", "style": "baijuyi"}, styles={"libai", "dufu"}).message


specs = st.builds(
    lambda form, acrostic, keywords, title, style, trad, temperature, kept: parse_spec({
        "form": form, "acrostic": acrostic, "keywords": keywords, "title": title, "style": style,
        "traditional": trad, "sampling": {"temperature": temperature}, "kept_lines": kept}),
    st.sampled_from(list(FORMS)), st.text(NATURE, max_size=4), st.lists(st.text(NATURE, min_size=1, max_size=2),
                                                                         max_size=3),
    st.text(NATURE, max_size=8), st.sampled_from(["", "libai"]), st.booleans(), st.floats(0.05, 2.0),
    st.dictionaries(st.integers(0, 3), st.text(NATURE, min_size=5, max_size=5), max_size=2))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(spec=specs)
def test_a_spec_survives_the_wire_and_parsing_again(spec: PoemSpec | SpecError) -> None:
    if isinstance(spec, SpecError):
        return
    wire = json.loads(json.dumps(spec.to_wire(), ensure_ascii=False))
    assert wire["v"] == SPEC_VERSION and from_wire(wire) == spec
    assert require(parse_spec(spec.fields())) == spec


def test_a_spec_of_another_version_is_refused_by_name() -> None:
    wire = require(parse_spec({"form": "五绝"})).to_wire()
    for version in (None, SPEC_VERSION + 1):
        with pytest.raises(SpecError, match="version"):
            from_wire({**wire, "v": version})
    with pytest.raises(SpecError):
        from_wire("五绝")


def test_changed_checks_again() -> None:
    spec = require(parse_spec({"form": "五绝", "acrostic": "春夏"}))
    assert spec.changed(kept_lines={1: "夏二三四五"}).kept == {1: "夏二三四五"}
    with pytest.raises(SpecError) as err:
        spec.changed(kept_lines={0: "一二三四五"})
    assert err.value.code is SpecCode.ACROSTIC_CLASH


def test_a_job_carries_the_spec_and_the_worker_maps_it_and_echoes_it() -> None:
    spec = require(parse_spec({"form": "五律", "acrostic": "春夏", "keywords": ["明月"], "style": "libai",
                               "kept_lines": {2: "一二三四五"}, "traditional": True,
                               "sampling": {"temperature": 0.8, "best_of": 2}}))
    job = job_from_json(job_to_json(generate_job(spec, n=3, reply={"purpose": "poem"})))
    assert isinstance(job, GenerateJob) and from_wire(job.spec) == spec and job.n == 3
    unpack_spec(job)
    assert (job.form, job.acrostic, job.keywords, job.style, job.fixed_lines) == \
        ("五律", "春夏", ["明月"], "libai", {2: "一二三四五"})
    assert (job.temperature, job.best_of, job.traditional) == (0.8, 2, False)   # written simplified
    result = result_from_json(result_to_json(echo(job, Result(job_id=job.job_id, ok=True))))
    assert from_wire(result.spec) == spec


def test_a_version_1_job_without_a_spec_still_reads() -> None:
    body = json.loads(job_to_json(GenerateJob(job_id="old", form="五绝", acrostic="春")))
    body["v"] = 1
    body.pop("spec")
    job = unpack_spec(job_from_json(json.dumps(body)))
    assert (job.job_id, job.form, job.acrostic, job.spec) == ("old", "五绝", "春", None)


def test_a_poem_recorded_before_specs_still_loads_with_its_request() -> None:
    old = {"poem_id": "pid12345", "owner_id": 7, "chat_id": 7, "form": "五绝", "lines": ["一二三四五"] * 4,
           "request": {"form": "五绝", "keywords": ["春"], "acrostic": "", "like_texts": [], "style": "libai",
                       "style_title": "李白", "title": "春"}, "mu": None, "seed": 3, "created_at": 1.0}
    record = PoemRecord.from_json(json.dumps(old))
    assert record.spec == require(parse_spec({"form": "五绝", "keywords": ["春"], "style": "libai",
                                              "style_title": "李白", "title": "春"}))
    assert PoemRecord.from_json(record.to_json()) == record
    couplet = PoemRecord.from_json(json.dumps({**old, "form": "对联", "request": {"kind": "couplet"}}))
    assert couplet.spec is None and couplet.request == {"kind": "couplet"}
    assert from_legacy({"acrostic": "一二三四五"}, "五绝") is None


def test_sampling_is_protocol_samplings_type() -> None:
    spec = require(parse_spec({"form": "七绝", "sampling": replace(SAMPLING, temperature=0.8)}))
    assert spec.sampling == replace(SAMPLING, temperature=0.8)


def test_a_seed_typed_by_the_user_reaches_the_model() -> None:
    spec = require(parse_spec(spec_fields(parse_poem_args("秋夜 种子:7"), "七绝")))
    assert spec.seed == 7 and spec.title == "秋夜" and spec.keywords == ("秋夜",)
    assert require(parse_spec(spec_fields(parse_poem_args("seed: 7 秋夜"), "七绝"))) == spec
    assert from_wire(spec.to_wire()).seed == 7 and unpack_spec(generate_job(spec)).seed == 7
    assert unpack_spec(generate_job(spec.changed(seed=None))).seed is None      # the worker draws one
    error = parse_spec(spec_fields(parse_poem_args("秋夜 seed:七"), "七绝"))
    assert isinstance(error, SpecError) and error.code is SpecCode.BAD_SEED and "七" in t(ZH, error.key, **error.values)


async def test_the_same_seed_writes_the_same_poem_and_another_draws_a_new_one(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        poems = []
        for _ in range(2):
            since = emu.mark()
            message = await emu.send_text(ALICE, "/poem 秋夜 种子:7")
            poems.append(await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"]))
        assert poems[0].text == poems[1].text and [job.seed for job in stand_in.jobs] == [7, 7]
        since = emu.mark()
        await emu.press_and_answer(ALICE, poems[1], poems[1].button("🔄")["callback_data"])
        again = await emu.wait_for_call("sendMessage", since=since)
        assert stand_in.jobs[-1].seed != 7 and again.text != poems[0].text


# --- 词 by 词牌 (issue 23) ------------------------------------------------------------------------

@pytest.mark.parametrize("typed, name", [("浣溪沙", "浣溪沙"), ("《菩萨蛮》", "菩萨蛮"), ("菩薩蠻", "菩萨蛮"),
                                         ("念奴嬌", "念奴娇"), ("酹江月", "念奴娇"), ("大江东去", "念奴娇"),
                                         ("望江南", "忆江南")])
def test_a_tune_by_its_name_an_alias_or_in_traditional_characters_is_its_canonical_name(typed: str,
                                                                                     name: str) -> None:
    spec = require(parse_spec({"tune": typed}))
    assert spec.tune == name and spec.form.name == "词" and spec.fields()["tune"] == name


def test_a_ci_has_its_tunes_main_form_line_by_line() -> None:
    spec = require(parse_spec({"tune": "念奴娇", "form": "詞"}))       # the form may be named too, 简 or 繁
    assert spec.line_lengths == (4, 5, 4, 7, 6, 4, 4, 5, 4, 6, 6, 4, 5, 7, 6, 4, 4, 5, 4, 6)
    assert (spec.form.n_lines, spec.form.line_len) == (20, 7)        # its lines, its longest line
    assert require(parse_spec({"form": "五律"})).line_lengths == (5,) * 8


def test_kept_lines_keep_the_length_of_their_own_line_of_the_tune() -> None:
    kept = {0: "凭高眺远", 1: "见长空万里", 3: "桂魄飞来光射处"}
    spec = require(parse_spec({"tune": "念奴娇", "kept_lines": kept}))
    assert spec.kept == kept
    error = parse_spec({"tune": "念奴娇", "kept_lines": {1: "凭高眺远"}})         # line 2 has 5
    assert isinstance(error, SpecError) and error.code is SpecCode.KEPT_LINE_LENGTH and error.values["n"] == 5
    error = parse_spec({"tune": "浣溪沙", "kept_lines": {6: "一二三四五六七"}})      # 浣溪沙 has 6 lines
    assert isinstance(error, SpecError) and error.code is SpecCode.KEPT_LINE_MISSING
    assert error.values == {"line": 7, "n_lines": 6}


def test_the_acrostic_and_keywords_are_checked_against_the_tune() -> None:
    assert require(parse_spec({"tune": "如梦令", "acrostic": "春夏秋冬风花雪"})).acrostic == "春夏秋冬风花雪"
    error = parse_spec({"tune": "如梦令", "acrostic": "春夏秋冬风花雪月"})               # 7 lines
    assert isinstance(error, SpecError) and error.code is SpecCode.ACROSTIC_TOO_LONG and error.values == {"limit": 7}
    error = parse_spec({"tune": "浣溪沙", "keywords": ["一二三四五六七八"]})             # its longest line: 7
    assert isinstance(error, SpecError) and error.code is SpecCode.KEYWORD_TOO_LONG and error.values["n"] == 7
    # The room left is counted line by line: 如梦令 7·6·5·6·2·2·6 less a kept first line is 27 characters.
    error = parse_spec({"tune": "如梦令", "keywords": ["一二三四五六"] * 5, "kept_lines": {0: "水垢何曾相受"}})
    assert isinstance(error, SpecError) and error.code is SpecCode.NO_ROOM and error.values == {"need": 30, "free": 27}


def test_close_tunes_are_named_for_a_misspelt_one_and_common_ones_otherwise() -> None:
    error = parse_spec({"tune": "满江"})
    assert isinstance(error, SpecError) and error.values == {"name": "满江", "close": "满江红"}
    error = parse_spec({"tune": "秋夜"})             # nothing near: the most common tunes
    assert isinstance(error, SpecError) and error.values["close"] == "浣溪沙、水调歌头、鹧鸪天"
    assert "满江红" in t(ZH, error.key, name="满江", close="满江红")


@pytest.mark.parametrize("tune", ["浣溪沙", "水调歌头", "如梦令", "沁园春"])
def test_a_ci_spec_survives_the_wire_and_an_old_spec_without_a_tune_still_reads(tune: str) -> None:
    spec = require(parse_spec({"tune": tune, "title": "春愁", "keywords": ["春愁"], "acrostic": "春",
                               "kept_lines": {1: "一" * require(parse_spec({"tune": tune})).line_lengths[1]},
                               "seed": 5, "traditional": True}))
    wire = json.loads(json.dumps(spec.to_wire(), ensure_ascii=False))
    assert wire["tune"] == tune and wire["form"] == "词" and from_wire(wire) == spec
    old = require(parse_spec({"form": "七绝", "title": "春"})).to_wire()
    old.pop("tune")
    assert from_wire(old).tune == "" and from_wire(old).form is FORMS["七绝"]


def test_a_ci_job_reaches_the_model_as_a_ci_request() -> None:
    spec = require(parse_spec({"tune": "浣溪紗", "title": "春愁", "keywords": ["春愁"],
                               "kept_lines": {3: "花片片飞风弄蝶"}, "seed": 9}))
    job = job_from_json(job_to_json(generate_job(spec, n=2, reply={"purpose": "poem"})))
    unpack_spec(job)
    assert (job.form, job.tune, job.fixed_lines, job.title) == ("词", "浣溪沙", {3: "花片片飞风弄蝶"}, "春愁")
    request = model_request(job, None)          # no generator: the shape checks only
    assert (request.form, request.tune, request.keywords, request.seed, request.n) == ("词", "浣溪沙", ["春愁"], 9, 2)
    result = result_from_json(result_to_json(echo(job, Result(job_id=job.job_id, ok=True))))
    assert from_wire(result.spec) == spec
