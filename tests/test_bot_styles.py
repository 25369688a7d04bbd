"""Styles in the bot ("write like 李白"): the registry the workers publish, telling a style from a theme,
/styles, the default style in /settings, the style under each poem and 🔄 keeping it.

Units first (parsing with hypothesis, rendering, the Redis registry), then flows through the Bot API
emulator with real Redis and a stand-in worker that serves styles the way worker.service does (each poem
names its style, a style it lacks is an E_UNKNOWN_STYLE result), then end to end with the real worker
and a real (random) adapter from model.styles.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import callbacks
from bot.callbacks import CallbackError
from bot.card import poem_card
from bot.inline_cache import cached_spec, slim, theme_of
from bot.parsing import ParseError, parse_poem_args
from bot.render import format_poem, format_styles, settings_keyboard, settings_text
from bot.state import State
from bot.stores.users import UserSettings
from bot.styles import FAMOUS_POETS, Style, StyleBook, is_famous_poet, style_key
from bot.texts import EN, ZH, error_text, t
from botkit import (StandInWorker, emu, eventually, make_config, running_bot, stand_in,  # noqa: F401
                    stand_in_poem)
from devtools.emulator import BotApiEmulator, check_html
from protocol.jobs import (E_UNKNOWN_STYLE, GenerateJob, JobFormatError, Result, ValidationError, job_from_fields,
                        result_fields, validate_generate)
from protocol.keys import RESULTS_MAXLEN, RESULTS_STREAM, STYLES_KEY
from factories import spec
from worker.request import echo, unpack_spec

CARDS = [
    {"id": "libai", "title": "李白", "line": "飘逸豪放，明月与酒", "line_en": "free and soaring: moon and wine",
     "aliases": ["李太白", "太白", "libai", "li bai"]},
    {"id": "dufu", "title": "杜甫", "line": "沉郁顿挫，忧国伤时", "line_en": "grave and dense, grieving for the times",
     "aliases": ["杜子美", "子美", "dufu", "du fu"]},
    {"id": "wangwei", "title": "王维", "line": "诗中有画，山水空静", "line_en": "paintings in verse, quiet hills",
     "aliases": ["摩诘", "wang wei"]},
    {"id": "sushi", "title": "苏轼", "line": "旷达清雄", "line_en": "broad-minded and bold",
     "aliases": ["苏东坡", "东坡", "su shi"]},
    {"id": "luyou", "title": "陆游", "line": "铁马冰河，家国之思", "line_en": "iron horses, frozen rivers",
     "aliases": ["陆放翁", "放翁", "lu you"]},
]
BOOK = StyleBook(Style.from_json(c["id"], json.dumps(c, ensure_ascii=False)) for c in CARDS)
TITLES = [c["title"] for c in CARDS]


# --- the registry --------------------------------------------------------------------------------

def test_style_book_reads_the_registry_and_skips_what_is_not_a_style() -> None:
    entries = {c["id"]: json.dumps(c, ensure_ascii=False) for c in CARDS}
    entries |= {"broken": "{not json", "other": json.dumps({"id": "mismatch", "title": "X"}),
                "has space": json.dumps({"title": "Y"}), "list": "[1, 2]",
                "mine": json.dumps({"title": "<b>我的</b>", "line": "  two\n lines ", "aliases": [3, "", "我"]})}
    book = StyleBook.from_hash(entries)
    assert [s.title for s in book] == sorted(s.title for s in book)       # shown in title order
    assert {s.id for s in book} == {"libai", "dufu", "wangwei", "sushi", "luyou", "mine"}
    mine = book.get("mine")
    assert mine.line == "two lines" and mine.aliases == ("我",) and mine.line_en == ""
    for word, wanted in [("李白", "libai"), ("libai", "libai"), ("LiBai", "libai"), ("li bai", "libai"),
                         ("Li-Bai", "libai"), ("太白", "libai"), ("蘇軾", "sushi"), ("東坡", "sushi"),
                         ("ｌｉｂａｉ", "libai"), ("王維", "wangwei"), ("杜子美", "dufu")]:
        assert book.find(word) is not None and book.find(word).id == wanted, word
    assert book.find("白居易") is None and book.find("") is None
    assert book.title_of("dufu") == "杜甫" and book.title_of("gone") == "gone"
    assert "libai" in book and "李白" not in book and len(book) == 6 and not StyleBook()


async def test_shipped_styles_are_named_until_a_worker_publishes_its_own(redis_url: str) -> None:
    """On a first start the registry is empty while the worker loads its model: the shipped cards
    (model/styles) name the styles, so /poem 李白 waits for the worker instead of being refused."""
    from protocol.settings import SHIPPED_STYLES_DIR

    shipped = StyleBook.from_cards(SHIPPED_STYLES_DIR)
    assert {"libai", "dufu", "wangwei", "sushi", "luyou"} <= {s.id for s in shipped}
    assert shipped.find("李白").id == "libai" and shipped.find("东坡").id == "sushi"
    state = State.from_url(redis_url)
    try:
        state.style_cache.shipped_styles = shipped
        assert (await state.style_cache.styles(max_age_s=0)).find("李白").id == "libai"
        await state.redis.hset(STYLES_KEY, "mine", json.dumps({"title": "我的"}))
        assert [s.id for s in await state.style_cache.styles(max_age_s=0)] == ["mine"]    # what workers serve wins
    finally:
        await state.close()


def test_a_style_no_worker_refreshes_drops_out_of_the_list() -> None:
    from protocol.keys import STYLES_FRESH_S

    now = 1_000_000.0
    entries = {"libai": json.dumps({**CARDS[0], "seen_at": now - 5}, ensure_ascii=False),
               "dufu": json.dumps({**CARDS[1], "seen_at": now - STYLES_FRESH_S - 1}, ensure_ascii=False),
               "sushi": json.dumps(CARDS[3], ensure_ascii=False)}          # by hand: no seen_at
    assert sorted(s.id for s in StyleBook.from_hash(entries, now)) == ["libai", "sushi"]


def test_an_alias_never_hides_another_styles_id_or_title() -> None:
    a = Style("a1", "甲", aliases=("b1", "乙"))
    b = Style("b1", "乙")
    book = StyleBook([a, b])
    assert book.find("b1").id == "b1" and book.find("乙").id == "b1" and book.find("甲").id == "a1"


def test_famous_poets_are_names_only() -> None:
    assert len(FAMOUS_POETS) >= 40
    for name in ("白居易", "李商隐", "杜牧", "孟浩然", "王昌龄", "辛弃疾", "陆游", "杨万里"):
        assert is_famous_poet(name) and is_famous_poet(FAMOUS_POETS[name])
    assert is_famous_poet("白樂天") and is_famous_poet("Bai Juyi")
    # No common theme word is taken for a poet.
    for word in ("春风", "明月", "秋思", "送别", "边塞", "思乡", "梅花", "江南", "故人", "仿佛"):
        assert not is_famous_poet(word)
    assert all(len(name) >= 2 for name in FAMOUS_POETS)


async def test_registry_is_read_from_redis_and_cached_a_few_seconds(redis_url: str) -> None:
    state = State.from_url(redis_url)
    try:
        assert not await state.style_cache.styles()                        # nothing published yet
        await state.redis.hset(STYLES_KEY, "libai", json.dumps(CARDS[0], ensure_ascii=False))
        assert not await state.style_cache.styles()                        # still the cached answer
        assert [s.title for s in await state.style_cache.styles(max_age_s=0)] == ["李白"]
        await state.redis.hset(STYLES_KEY, "dufu", json.dumps(CARDS[1], ensure_ascii=False))
        assert len(await state.style_cache.styles()) == 1 and len(await state.style_cache.styles(max_age_s=0)) == 2

        assert (await state.users.settings(7)).style == ""
        await state.users.set_setting(7, "style", "dufu")
        assert (await state.users.settings(7)).style == "dufu"
        await state.users.set_setting(7, "style", "not valid")       # ignored on read
        assert (await state.users.settings(7)).style == ""
    finally:
        await state.close()


# --- parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, style, form, keywords, acrostic", [
    ("李白 明月", "libai", None, ["明月"], ""),
    ("杜甫 七律 秋兴", "dufu", "七律", ["秋兴"], ""),
    ("libai", "libai", None, [], ""),
    ("七律 秋兴 杜甫", "dufu", "七律", ["秋兴"], ""),             # any argument may name the style
    ("Li Bai 春风", "libai", None, ["春风"], ""),
    ("仿李白 明月", "libai", None, ["明月"], ""),
    ("风格:王维 山", "wangwei", None, ["山"], ""),
    ("风格： 苏轼 月", "sushi", None, ["月"], ""),
    ("style:luyou 五绝", "luyou", "五绝", [], ""),
    ("蘇軾 明月", "sushi", None, ["明月"], ""),
    ("李白 libai 明月", "libai", None, ["明月"], ""),             # one style, named twice
    ("风格:无 春风", "", None, ["春风"], ""),                      # the base model, explicitly
    ("style:none", "", None, [], ""),
    ("明月", None, None, ["明月"], ""),                            # no style named: the default applies
    ("仿佛 春", None, None, ["仿佛", "春"], ""),                    # 仿 + not a poet: a theme word
    ("主题:屈原", None, None, ["屈原"], ""),                       # a poet's name kept as a theme
    ("李白 藏头 春夏秋冬", "libai", None, [], "春夏秋冬"),
    ("藏头 李白", None, None, [], "李白"),                         # a lone name after 藏头 is the acrostic
    ("风格:杜甫 藏头 李白", "dufu", None, [], "李白"),
])
def test_styles_are_named_by_any_argument(args: str, style: str | None, form: str | None,
                                          keywords: list[str], acrostic: str) -> None:
    request = parse_poem_args(args, styles=BOOK)
    assert (request.style, request.form, request.keywords, request.acrostic) == (style, form, keywords, acrostic)
    assert request.style_title == (BOOK.title_of(style) if style else "")


def test_acrostic_command_takes_a_style_but_a_lone_name_is_the_acrostic() -> None:
    request = parse_poem_args("李白 春夏秋冬", acrostic_command=True, styles=BOOK)
    assert (request.style, request.acrostic) == ("libai", "春夏秋冬")
    request = parse_poem_args("李白", acrostic_command=True, styles=BOOK)
    assert (request.style, request.acrostic) == (None, "李白")
    request = parse_poem_args("白居易", acrostic_command=True, styles=BOOK)     # not even unknown
    assert (request.style, request.acrostic) == (None, "白居易")


@pytest.mark.parametrize("args, key, values", [
    ("白居易 春", "unknown_style", {"name": "白居易"}),
    ("bai juyi", "unknown_style", {"name": "bai juyi"}),
    ("风格:王勃", "unknown_style", {"name": "王勃"}),
    ("style:nobody 春", "unknown_style", {"name": "nobody"}),
    ("仿杜牧 山", "unknown_style", {"name": "杜牧"}),
    ("李白 杜甫", "two_styles", {"first": "李白", "second": "杜甫"}),
    ("李白 风格:无", "two_styles", {"first": "李白", "second": "无"}),
    ("风格:", "style_missing", {}),
])
def test_unknown_styles_are_answered_with_the_list(args: str, key: str, values: dict) -> None:
    with pytest.raises(ParseError) as info:
        parse_poem_args(args, styles=BOOK)
    assert info.value.key == key and values.items() <= info.value.values.items()
    zh, en = t(ZH, key, **info.value.values), t(EN, key, **info.value.values)
    if key == "unknown_style":
        assert "、".join(TITLES) in zh and "主题:" in zh
        assert "李白 (libai)" in en and "杜甫 (dufu)" in en and "/styles" in en


def test_with_no_styles_published_a_poets_name_says_so() -> None:
    with pytest.raises(ParseError) as info:
        parse_poem_args("李白 明月")
    assert info.value.key == "unknown_style_none"
    assert "还没有" in t(ZH, info.value.key, **info.value.values)
    assert parse_poem_args("明月").style is None


def test_the_workers_unknown_style_error_reads_as_the_same_answer() -> None:
    """protocol.jobs' own message for a style a worker lacks, as the bot shows it without a registry."""
    with pytest.raises(ValidationError) as info:
        validate_generate(GenerateJob(style="baijuyi"), styles={"libai", "dufu"})
    assert info.value.code == E_UNKNOWN_STYLE
    text = error_text(ZH, info.value.code, info.value.message)
    assert "没有「baijuyi」这个风格" in text and "dufu、libai" in text
    with pytest.raises(ValidationError) as info:
        validate_generate(GenerateJob(style="baijuyi"), styles=set())
    assert "还没有" in error_text(ZH, info.value.code, info.value.message)
    assert "no poets' styles" in error_text(EN, info.value.code, info.value.message)


# Theme words: common characters, never a style's or a famous poet's name.
THEME_CHARS = "山水云风月花江天人日春秋夜雨青白高远长清明红千万一"
theme_words = st.text(alphabet=THEME_CHARS, min_size=1, max_size=3).filter(
    lambda w: BOOK.find(w) is None and not is_famous_poet(w))


def _style_spellings(style: Style) -> list[str]:
    return [style.id, style.title, "仿" + style.title, "风格:" + style.title, "style:" + style.id,
            *[a for a in style.aliases if " " not in a]]


@settings(max_examples=150, deadline=None)
@given(form=st.sampled_from(["", "五绝", "七律", "qijue"]), words=st.lists(theme_words, max_size=3),
       style=st.sampled_from(list(BOOK)), data=st.data())
def test_a_style_anywhere_leaves_form_and_theme_as_they_were(form: str, words: list[str], style: Style,
                                                             data: st.DataObject) -> None:
    tokens = ([form] if form else []) + words
    plain = parse_poem_args(" ".join(tokens), styles=BOOK)
    spelling = data.draw(st.sampled_from(_style_spellings(style)))
    position = data.draw(st.integers(0, len(tokens)))
    styled = parse_poem_args(" ".join(tokens[:position] + [spelling] + tokens[position:]), styles=BOOK)
    assert (styled.form, styled.keywords, styled.acrostic) == (plain.form, plain.keywords, plain.acrostic)
    assert (styled.style, styled.style_title) == (style.id, style.title) and plain.style is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
@example("李白 白居易")
@example("风格:\u200b")
@example("仿")
@example("style: ")
def test_any_text_parses_or_is_refused_in_words_the_user_can_read(text: str) -> None:
    try:
        request = parse_poem_args(text, styles=BOOK)
    except ParseError as exc:
        assert t(ZH, exc.key, **exc.values) and t(EN, exc.key, **exc.values)
        return
    assert request.style is None or request.style == "" or request.style in BOOK
    assert request.style_title == (BOOK.title_of(request.style) if request.style else "")


@settings(deadline=None)
@given(st.text(max_size=20))
def test_style_key_is_stable(text: str) -> None:
    assert style_key(style_key(text)) == style_key(text)


# --- rendering, buttons, cache, card -------------------------------------------------------------

def test_the_style_is_named_under_the_poem_in_the_readers_language_and_script() -> None:
    request = {"keywords": ["明月"], "style": "sushi", "style_title": "苏轼"}
    asked = spec("五绝", **request)
    zh = format_poem(["春风吹柳绿"] * 4, "五绝", ZH, spec=asked, poem={"rhyme_ok": True})
    assert "春风吹柳绿。\n— 仿苏轼\n\n<i>押平水韵</i>" in zh and check_html(zh) is None
    assert "— in the manner of 苏轼" in format_poem(["春风吹柳绿"] * 4, "五绝", EN, spec=asked)
    assert "— 仿蘇軾" in format_poem(["春风吹柳绿"] * 4, "五绝", ZH, traditional=True, spec=asked)
    assert "仿" not in format_poem(["春风吹柳绿"] * 4, "五绝", ZH, spec=spec("五绝", style=""))
    hostile = format_poem(["春风吹柳绿"] * 4, "五绝", ZH, spec=spec("五绝", style="x", style_title="<b>&"))
    assert check_html(hostile) is None and "仿&lt;b&gt;&amp;" in hostile
    assert poem_card(["春风吹柳绿"] * 4, "五绝", asked).note == "仿苏轼"
    assert poem_card(["春风吹柳绿"] * 4, "五绝", spec("五绝", **request, acrostic="春夏")).note == "藏头·仿苏轼"


def test_styles_list_one_line_each_with_a_hint_or_says_there_are_none() -> None:
    zh = format_styles(BOOK, ZH, False, default_style="dufu")
    assert check_html(zh) is None
    assert "<b>李白</b> — 飘逸豪放，明月与酒" in zh and zh.count("<b>") == 5
    assert "/poem 李白 明月" in zh and "/settings" in zh and "你的默认风格：杜甫" in zh
    en = format_styles(BOOK, EN, False)
    assert "<b>李白</b> (libai) — free and soaring: moon and wine" in en and "Usage: /poem 李白" in en
    assert "蘇軾" in format_styles(BOOK, ZH, True)
    assert format_styles(StyleBook(), ZH, False) == t(ZH, "styles_none")
    hostile = StyleBook([Style("x", "<i>", line="a<b")])
    assert check_html(format_styles(hostile, EN, False)) is None


def test_settings_offer_the_styles_and_name_the_default() -> None:
    settings_ = UserSettings(style="dufu")
    assert "默认风格：杜甫" in settings_text(settings_, "七绝", ZH, BOOK)
    assert "默认风格：不仿" in settings_text(UserSettings(), "七绝", ZH, BOOK)
    assert "Default style: dufu (unavailable now)" in settings_text(settings_, "七绝", EN, StyleBook())
    rows = settings_keyboard(settings_, "七绝", ZH, BOOK).inline_keyboard
    style_buttons = [b for row in rows for b in row if b.callback_data.startswith("st:style:")]
    assert [b.text for b in style_buttons] == ["不仿", "李白", "• 杜甫 •", "王维", "苏轼", "陆游"]
    assert [callbacks.decode(b.callback_data).value for b in style_buttons][:2] == ["-", "libai"]
    # No styles: no style row, unless one is still set (so it can be cleared).
    assert not any("style" in b.callback_data for row in settings_keyboard(UserSettings(), "七绝", ZH).inline_keyboard
                   for b in row)
    kept = settings_keyboard(settings_, "七绝", ZH, StyleBook()).inline_keyboard
    assert [b.text for row in kept for b in row if "style" in b.callback_data] == ["不仿"]


def test_style_setting_callbacks_round_trip_and_refuse_forgeries() -> None:
    for style_id in ("", "libai", "my_style-2", "我的风格"):
        data = callbacks.style_setting(style_id)
        assert data is not None and callbacks.encode(callbacks.decode(data)) == data
    assert callbacks.style_setting("长" * 20) is None                 # over 64 bytes: no button
    for forged in ("st:style:", "st:style:a b", "st:style:" + "x" * 33, "st:styles:libai", "st:style:a:b"):
        with pytest.raises(CallbackError):
            callbacks.decode(forged)


def test_inline_cache_keeps_the_style_apart() -> None:
    assert theme_of(spec(keywords=["明月"], style="libai")) == "s:libai:k:明月"
    assert theme_of(spec(keywords=["明月"], style="")) == "k:明月"
    assert theme_of(spec(style="libai")) == "s:libai:any"
    cached = slim({"lines": ["一"], "form": "七绝"}, spec(style="libai", style_title="李白"))
    assert (cached_spec(cached).style, cached_spec(cached).style_title) == ("libai", "李白")


# --- flows: the bot with a stand-in worker that serves styles --------------------------------------

ALICE = BotApiEmulator.user(5001, "Alice")
BOB = BotApiEmulator.user(5002, "Bob", language_code="en")


class StyledStandIn(StandInWorker):
    """The stand-in worker, serving styles as worker.service does: every poem names its style, and a
    style it lacks gets an E_UNKNOWN_STYLE result carrying validate_generate's message."""

    def __init__(self, redis_url: str, styles: set[str]) -> None:
        super().__init__(redis_url, worker_id="styled-stand-in")
        self.styles = set(styles)

    async def publish(self, cards: list[dict[str, Any]]) -> None:
        await self.redis.hset(STYLES_KEY, mapping={c["id"]: json.dumps(c, ensure_ascii=False) for c in cards})

    async def _serve(self, entry: dict) -> None:
        try:
            job = job_from_fields(entry)
        except JobFormatError:
            return
        if not isinstance(job, GenerateJob):
            await super()._serve(entry)
            return
        job = unpack_spec(job)                 # the spec in the job's fields, as worker.request does
        self.jobs.append(job)
        try:
            validate_generate(job, styles=self.styles)
            poems = []
            for k in range(job.n):
                lines = stand_in_poem(job, self._seed + k)
                poems.append({"lines": lines, "form": job.form, "rhyme_ok": True, "tone_rate": 0.875,
                              "style": job.style, "seed": self._seed + k})
            self._seed += job.n
            result = Result(job_id=job.job_id, ok=True, worker_id=self.worker_id, reply=job.reply, poems=poems)
        except ValidationError as exc:
            result = Result.error(job.job_id, exc.code, exc.message, reply=job.reply, worker_id=self.worker_id)
        echo(job, result)
        await self.redis.xadd(RESULTS_STREAM, result_fields(result), maxlen=RESULTS_MAXLEN, approximate=True)


@pytest.fixture
async def styled(redis_url: str):
    """The stand-in serving the five shipped styles, and their registry published."""
    worker = await StyledStandIn(redis_url, {c["id"] for c in CARDS}).start()
    await worker.publish(CARDS)
    yield worker
    await worker.stop()


async def ask(emu: BotApiEmulator, user: dict, text: str, **kw: Any) -> Any:
    since = emu.mark()
    message = await emu.send_text(user, text, **kw)
    return await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"])


def verse_lines(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if line.endswith(("，", "。"))]


async def test_poem_in_a_style_is_labelled_and_another_keeps_the_style(emu, redis_url, styled) -> None:
    async with running_bot(make_config(emu, redis_url)):
        poem = await ask(emu, ALICE, "/poem 李白 明月")
        lines = verse_lines(poem.text)
        assert len(lines) == 4 and all(len(x) == 7 for x in lines) and "明月" in "".join(lines)
        assert "— 仿李白" in poem.text and "七绝 · 《明月》" in poem.text and check_html(poem.text) is None
        assert styled.jobs[-1].style == "libai" and styled.jobs[-1].keywords == ["明月"]

        poem2 = await ask(emu, BOB, "/poem 杜甫 七律 秋兴")
        assert len(verse_lines(poem2.text)) == 8 and "— in the manner of 杜甫" in poem2.text
        assert (styled.jobs[-1].style, styled.jobs[-1].form, styled.jobs[-1].keywords) == ("dufu", "七律", ["秋兴"])

        acrostic = await ask(emu, ALICE, "/acrostic 王维 春夏秋冬")
        assert [x[0] for x in verse_lines(acrostic.text)] == list("春夏秋冬") and "— 仿王维" in acrostic.text

        # 🔄 keeps the poem's style, and ✏️ does too.
        since = emu.mark()
        await emu.press(ALICE, poem, poem.button("再来")["callback_data"])
        again = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert "— 仿李白" in again.text and styled.jobs[-1].style == "libai"
        poem_id = callbacks.decode(poem.button("保留")["callback_data"]).poem_id
        since = emu.mark()
        await emu.press(ALICE, poem, callbacks.keep_go(poem_id, 0b1))
        kept = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert "— 仿李白" in kept.text and styled.jobs[-1].style == "libai"
        assert verse_lines(kept.text)[0] == lines[0]


async def test_unknown_styles_get_the_list_and_never_reach_the_worker(emu, redis_url, styled) -> None:
    async with running_bot(make_config(emu, redis_url)) as app:
        n_jobs = len(styled.jobs)
        answer = await ask(emu, ALICE, "/poem 白居易 春风")
        assert "没有「白居易」这个风格" in answer.text and "李白、杜甫、王维、苏轼、陆游" in answer.text
        answer = await ask(emu, BOB, "/poem style:nobody")
        assert "no style “nobody”" in answer.text and "李白 (libai)" in answer.text
        answer = await ask(emu, ALICE, "/poem 李白 杜甫")
        assert "只能仿一种风格" in answer.text
        assert len(styled.jobs) == n_jobs

        # 主题: keeps a poet's name a theme; a word that is no poet stays a theme as before.
        poem = await ask(emu, ALICE, "/poem 主题:屈原")
        assert "屈原" in "".join(verse_lines(poem.text)) and "仿" not in poem.text
        assert styled.jobs[-1].style == ""

        # A style in the registry (another worker's) that this worker lacks: its refusal lists what it has.
        await styled.publish([{"id": "baijuyi", "title": "白居易", "line": "老妪能解"}])
        await app.bot_data["rt"].state.style_cache.styles(max_age_s=0)      # as if the bot's cache had run out
        answer = await ask(emu, ALICE, "/poem 白居易 春风")
        assert styled.jobs[-1].style == "baijuyi"
        assert "没有「白居易」这个风格。现有风格：李白、杜甫、王维、苏轼、陆游" in answer.text


async def test_styles_command_lists_them_or_says_there_are_none(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)) as app:
        assert "styles" in {c["command"] for c in emu.commands[""]}
        assert "style" in next(c["description"] for c in emu.commands["en"] if c["command"] == "styles")
        help_text = await ask(emu, ALICE, "/help")
        assert "/styles" in help_text.text and "/poem 李白 明月" in help_text.text

        none = await ask(emu, ALICE, "/styles")
        assert none.text == t(ZH, "styles_none")
        answer = await ask(emu, ALICE, "/poem 李白 明月")
        assert "还没有可仿的诗人风格" in answer.text and not stand_in.jobs
        assert "李白" not in (await ask(emu, ALICE, "/settings")).text

        state: State = app.bot_data["rt"].state
        await state.redis.hset(STYLES_KEY, mapping={c["id"]: json.dumps(c, ensure_ascii=False) for c in CARDS})
        await state.style_cache.styles(max_age_s=0)                # as if the cache had run out
        listing = await ask(emu, ALICE, "/styles")
        assert listing.params["parse_mode"] == "HTML" and check_html(listing.text) is None
        body = listing.text.split("\n\n")[0].splitlines()
        assert body[1:] == [f"<b>{c['title']}</b> — {c['line']}" for c in sorted(CARDS, key=lambda c: c["title"])]
        english = await ask(emu, BOB, "/styles")
        assert "<b>陆游</b> (luyou) — iron horses, frozen rivers" in english.text


async def test_default_style_in_settings_applies_and_an_explicit_one_wins(emu, redis_url, styled) -> None:
    async with running_bot(make_config(emu, redis_url)):
        menu = await ask(emu, ALICE, "/settings")
        assert "默认风格：不仿" in menu.text
        answer = await emu.press_and_answer(ALICE, menu, menu.button("杜甫")["callback_data"])
        assert answer.params["text"] == "已保存。"
        edit = emu.find_calls("editMessageText")[-1]
        assert "默认风格：杜甫" in edit.text and edit.button("• 杜甫 •")

        plain = await ask(emu, ALICE, "/poem 春风")
        assert "— 仿杜甫" in plain.text and styled.jobs[-1].style == "dufu"
        explicit = await ask(emu, ALICE, "/poem 李白 春风")
        assert "— 仿李白" in explicit.text and styled.jobs[-1].style == "libai"
        base = await ask(emu, ALICE, "/poem 风格:无 春风")
        assert "仿" not in base.text and styled.jobs[-1].style == ""
        # 🔄 under the base poem stays the base, whatever the default.
        since = emu.mark()
        await emu.press(ALICE, base, base.button("再来")["callback_data"])
        again = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert "仿" not in again.text and styled.jobs[-1].style == ""
        assert "你的默认风格：杜甫" in (await ask(emu, ALICE, "/styles")).text

        # A style button for a style no longer served is refused; the base button always works.
        answer = await emu.press_and_answer(ALICE, menu, callbacks.style_setting("gone"))
        assert answer.params["text"] == t(ZH, "style_gone") and answer.params["show_alert"] is True
        await emu.press_and_answer(ALICE, menu, callbacks.style_setting(""))
        await ask(emu, ALICE, "/poem 春风")
        assert styled.jobs[-1].style == ""


async def test_inline_query_in_a_style(emu, redis_url, styled) -> None:
    async with running_bot(make_config(emu, redis_url)):
        since = emu.mark()
        query_id = await emu.inline_query(ALICE, "李白 明月")
        answer = await emu.wait_for_call("answerInlineQuery", since=since, inline_query_id=query_id, timeout=15)
        fresh = [r for r in answer.params["results"] if r["type"] == "article" and r["id"].startswith("f")]
        assert len(fresh) == 3 and all("— 仿李白" in r["input_message_content"]["message_text"] for r in fresh)
        assert styled.jobs[-1].style == "libai" and styled.jobs[-1].n == 3

        since = emu.mark()
        query_id = await emu.inline_query(ALICE, "白居易")
        hint = await emu.wait_for_call("answerInlineQuery", since=since, inline_query_id=query_id, timeout=15)
        assert hint.params["results"] == [] and "白居易" in hint.params["button"]["text"]


# --- end to end: the real worker serving real (random) adapters on the tiny model ------------------

POEM_TIMEOUT = 90.0      # the first decode traces a tf.function on a busy CPU


@pytest.fixture(scope="module")
def styled_generator(tiny_model_dir, tmp_path_factory):
    """conftest's tiny model with two random adapters carrying the shipped cards of 李白 and 杜甫."""
    from model.decode import Generator
    from search.files import model_version
    from model.styles import random_adapter, save_style

    folder = tmp_path_factory.mktemp("styles")
    for seed, card in enumerate(CARDS[:2]):
        save_style(folder, card["id"], random_adapter(tiny_model_dir, rank=4, seed=seed, scale=0.1),
                   {**card, "base_version": model_version(tiny_model_dir)})
    return Generator.load(tiny_model_dir, novelty=False, styles_dir=folder)


@pytest.fixture
def styled_worker(redis_url, styled_generator):
    """A real worker.service.Worker on a thread, serving the styled generator."""
    import threading

    from protocol.settings import WorkerSettings
    from worker.service import Worker

    settings_ = WorkerSettings(redis_url=redis_url, max_batch=8, max_wait_ms=5, worker_id="styled-worker")
    worker = Worker(settings_, styled_generator, block_ms=100)
    thread = threading.Thread(target=worker.run, name="styled-worker", daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(30)
    assert not thread.is_alive(), "worker did not stop"


async def test_end_to_end_with_the_real_worker_and_adapters(emu, redis_url, styled_worker) -> None:
    async with running_bot(make_config(emu, redis_url)) as app:
        state: State = app.bot_data["rt"].state
        # The worker publishes its styles with its heartbeat; the bot reads them from Redis.
        book = await eventually(lambda: state.style_cache.styles(max_age_s=0), lambda b: len(b) == 2, timeout=30)
        assert [s.title for s in book] == ["李白", "杜甫"] and book.get("libai").line == CARDS[0]["line"]

        since = emu.mark()
        await emu.send_text(ALICE, "/poem 李白 明月")
        poem = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=POEM_TIMEOUT)
        lines = verse_lines(poem.text)
        assert len(lines) in (4, 8) and len({len(x) for x in lines}) == 1 and len(lines[0]) in (5, 7)
        assert "明月" in "".join(lines) and "— 仿李白" in poem.text and check_html(poem.text) is None

        unknown = await ask(emu, ALICE, "/poem 白居易 春风")
        assert "没有「白居易」这个风格。现有风格：李白、杜甫" in unknown.text
        listing = await ask(emu, BOB, "/styles")
        assert "<b>李白</b> (libai) — free and soaring" in listing.text and "<b>杜甫</b> (dufu)" in listing.text

        # 🔄 keeps the style.
        since = emu.mark()
        await emu.press(ALICE, poem, poem.button("再来")["callback_data"])
        again = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=POEM_TIMEOUT)
        assert "— 仿李白" in again.text and "明月" in "".join(verse_lines(again.text))

        # The default style from /settings applies to a /poem that names none.
        menu = await ask(emu, ALICE, "/settings")
        await emu.press_and_answer(ALICE, menu, menu.button("杜甫")["callback_data"])
        since = emu.mark()
        await emu.send_text(ALICE, "/poem 五律 春风")
        plain = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=POEM_TIMEOUT)
        lines = verse_lines(plain.text)
        assert len(lines) == 8 and all(len(x) == 5 for x in lines) and "— 仿杜甫" in plain.text
