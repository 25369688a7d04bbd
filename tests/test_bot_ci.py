"""词 by 词牌 in the bot (issue 23): /ci and /poem with a tune, the message, the buttons, the card, inline
mode and the daily post.

The bot end to end against the Bot API emulator and a real Redis, with the stand-in worker answering a 词
as the ci model does (botkit.stand_in_ci: the contract's poem dict); the rendering and the card's layout
are checked on their own below.
"""
from __future__ import annotations

import io
from datetime import date
from typing import Any

from PIL import Image

from bot import callbacks
from bot.card import CI_COLUMNS, Card, columns_of, png_bytes, poem_card
from bot.daily import CI_WEEKDAY, DAILY_TUNES, daily_job
from bot.render import LISTED_TUNES, ci_layout, format_poem, format_tunes, split_message
from bot.state import State
from bot.texts import EN, ZH
from botkit import card_fonts, emu, eventually, make_config, running_bot, stand_in  # noqa: F401
from devtools.emulator import BotApiEmulator, check_html, png_size
from factories import spec
from protocol.jobs import GenerateJob
from protocol.spec import from_wire
from verse import tunes

ALICE = BotApiEmulator.user(4001, "Alice")
BOB = BotApiEmulator.user(4002, "Bob", language_code="en-US")

# Real Song ci in their tunes' main forms (张先, 苏轼), as the ci corpus cuts them into 句.
HUANXISHA = ["楼倚春江百尺高", "烟中还未见归桡", "几时期信似江潮", "花片片飞风弄蝶", "柳阴阴下水平桥", "日长才过又今宵"]
SHUIDIAO = ["昵昵儿女语", "灯火夜微明", "恩冤尔汝来去", "弹指泪和声", "忽变轩昂勇士", "一鼓填然作气", "千里不留行",
            "回首暮云远", "飞絮搅青冥", "众禽里", "真彩凤", "独不鸣", "跻攀寸步千险", "一落百寻轻", "烦子指间风雨",
            "置我肠中冰炭", "起坐不能平", "推手从归去", "无泪与君倾"]
QINYUANCHUN = ["孤馆灯青", "野店鸡号", "旅枕梦残", "渐月华收练", "晨霜耿耿", "云山摛锦", "朝露清清", "世路无穷",
               "劳生有限", "似此区区长鲜欢", "微吟罢", "凭征鞍无语", "往事千端", "当时共客长安", "似二陆初来俱少年",
               "有笔头千字", "胸中万卷", "致君尧舜", "此事何难", "用舍由时", "行藏在我", "袖手何妨闲处看", "身长健",
               "但优游卒岁", "且斗尊前"]
RUMENGLING = ["水垢何曾相受", "细看两俱无有", "寄语揩背人", "尽日劳君挥肘", "轻手", "轻手", "居士本来无垢"]


def ci_poem(tune: str, lines: list[str], **fields: Any) -> dict[str, Any]:
    """The poem dict a worker sends for a 词 (issue 23's contract), with its tune's marks."""
    main = tunes.get(tune).main
    return {"lines": lines, "marks": [ln.mark for ln in main.lines], "form": "词", "tune": tune,
            "stanza_break": main.stanza_break, "rhyme_ok": True, "tone_rate": 0.83, "form_ok": True, "seed": 1,
            "mu": [], **fields}


def rows_of(text: str) -> list[str]:
    """The message's rows after its heading (the heading is the first row, the note the last paragraph)."""
    return text.split("\n\n<i>")[0].splitlines()[1:]


# --- rendering -----------------------------------------------------------------------------------

def test_a_ci_message_is_headed_by_its_tune_a_ju_a_row_with_a_blank_row_between_the_stanzas() -> None:
    poem = ci_poem("浣溪沙", HUANXISHA)
    text = format_poem(HUANXISHA, "词", ZH, spec=spec(form="词", tune="浣溪沙", title="春愁"), poem=poem)
    assert check_html(text) is None and text.startswith("<b>浣溪沙 · 《春愁》</b>\n")
    assert rows_of(text) == ["楼倚春江百尺高。", "烟中还未见归桡。", "几时期信似江潮。", "",
                             "花片片飞风弄蝶，", "柳阴阴下水平桥。", "日长才过又今宵。"]
    assert text.endswith("<i>押词韵 · 平仄合律 83%</i>") and "平水韵" not in text
    # The worker's marks win over the tune's; a 单调 has no blank row.
    mine = format_poem(RUMENGLING, "词", EN, spec=spec(form="词", tune="如梦令"),
                       poem=ci_poem("如梦令", RUMENGLING, marks=["！"] * 7))
    assert rows_of(mine) == [line + "！" for line in RUMENGLING] and "rhymes (词韵)" in mine


def test_a_ci_message_escapes_what_it_shows_and_reads_in_the_readers_script() -> None:
    shown = spec(form="词", tune="菩萨蛮", title="<b>&")
    lines = ["闻人语著仙卿字", "瞋情恨意还须喜", "何况草长时", "酒前频共伊", "娇香堆宝帐", "月到梨花上", "心事两人知",
             "掩灯罗幕垂"]
    text = format_poem(lines, "词", ZH, True, shown, ci_poem("菩萨蛮", lines))
    assert check_html(text) is None and "《&lt;b&gt;&amp;》" in text and "<b>&" not in text
    assert text.startswith("<b>菩薩蠻") and rows_of(text)[4] == "" and rows_of(text)[0] == "聞人語著仙卿字。"


def test_the_layout_of_a_ci_comes_from_the_worker_else_from_its_tune() -> None:
    assert ci_layout(HUANXISHA, "浣溪沙", {"marks": list("，，。，，。"), "stanza_break": 3}) == (list("，，。，，。"), 3)
    assert ci_layout(HUANXISHA, "浣溪沙") == (list("。。。，。。"), 3)          # the tune's main form
    assert ci_layout(RUMENGLING, "如梦令", {"stanza_break": None})[1] is None
    assert ci_layout(["一二三"] * 3, "浣溪沙") == (["，", "，", "。"], None)    # not its shape: plain marks


def test_ci_alone_lists_the_common_tunes_with_their_patterns() -> None:
    text = format_tunes(ZH, False)
    assert check_html(text) is None
    rows = text.split("\n\n")[0].splitlines()
    assert len(rows) == 1 + LISTED_TUNES and rows[1] == "<b>浣溪沙</b> 7·7·7 / 7·7·7"
    assert "<b>菩萨蛮</b> 7·7·5·5 / 5·5·5·5" in rows and "/ci 浣溪沙 春愁" in text
    assert "<b>菩薩蠻</b>" in format_tunes(EN, True) and "Usage: /ci" in format_tunes(EN, False)


def test_a_long_reading_aid_goes_in_several_messages_cut_between_lines() -> None:
    blocks = ["一" * 1000, "二" * 1000, "三" * 1000, "四" * 1000, "五" * 1000]
    parts = split_message("\n\n".join(blocks))
    assert parts == ["\n\n".join(blocks[:4]), blocks[4]] and all(len(p) <= 4096 for p in parts)
    assert split_message("短") == ["短"]


# --- the card --------------------------------------------------------------------------------------

def test_a_ci_card_sets_short_ju_together_and_breaks_between_the_stanzas() -> None:
    card = poem_card(HUANXISHA, "词", spec(form="词", tune="浣溪沙", title="春愁"), stanza_break=3)
    assert (card.title, card.note, card.ci) == ("浣溪沙", "春愁", True)
    columns = columns_of(card)
    assert [c.lines for c in columns] == [(line,) for line in HUANXISHA]      # 7-character 句: one a column
    assert [c.stanza_end for c in columns] == [False, False, True, False, False, False]

    long = columns_of(Card(SHUIDIAO, "", ci=True, stanza_break=9))
    assert len(long) <= CI_COLUMNS and [x for c in long for x in c.lines] == SHUIDIAO
    assert sum(c.stanza_end for c in long) == 1
    upper = next(i for i, c in enumerate(long) if c.stanza_end)
    assert [x for c in long[:upper + 1] for x in c.lines] == SHUIDIAO[:9]     # no column spans the break
    assert any(len(c.lines) > 1 for c in long)                                  # short 句 share a column
    # A 诗 keeps one line a column and a space after each couplet.
    assert [c.gap > 0 for c in columns_of(Card(["一二三四五"] * 4, "五绝"))] == [False, True, False, True]


def test_ci_cards_fit_telegram(card_fonts) -> None:
    sizes = {}
    for tune, lines, brk in (("浣溪沙", HUANXISHA, 3), ("水调歌头", SHUIDIAO, 9), ("沁园春", QINYUANCHUN, 13),
                             ("如梦令", RUMENGLING, None)):
        data = png_bytes(poem_card(lines, "词", spec(form="词", tune=tune, title="春愁"), day=date(2026, 12, 6),
                                   stanza_break=brk))
        width, height = Image.open(io.BytesIO(data)).size
        sizes[tune] = (width, height)
        assert 900 <= width <= 2000 and 600 <= height <= 1600 and max(width, height) / min(width, height) < 2.5
        assert len(data) < 1_000_000
    # The longest tune is set in more columns and taller ones than the shortest, in the same frame of sizes.
    assert sizes["沁园春"][0] > sizes["如梦令"][0] and sizes["沁园春"][1] > sizes["如梦令"][1]


# --- the daily post ------------------------------------------------------------------------------

def test_the_daily_post_is_a_ci_on_sundays_its_tune_turning_week_by_week() -> None:
    sundays = [date(2026, 11, 1 + 7 * k) for k in range(4)] + [date(2026, 12, 6)]
    assert all(d.weekday() == CI_WEEKDAY for d in sundays)
    specs = [from_wire(daily_job(d).spec) for d in sundays]
    assert all(s.form.name == "词" and s.title for s in specs)
    common = [t.name for t in tunes.load().tunes[:DAILY_TUNES]]
    assert all(s.tune in common for s in specs) and len({s.tune for s in specs}) == len(specs)
    monday = daily_job(date(2026, 12, 7))
    assert isinstance(monday, GenerateJob) and from_wire(monday.spec).tune == ""


# --- the bot ----------------------------------------------------------------------------------------

async def ask(emu: BotApiEmulator, user: dict, text: str) -> Any:
    since = emu.mark()
    message = await emu.send_text(user, text)
    return await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"])


async def test_ci_command_listing_refusals_and_the_command_list(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        assert "ci" in {c["command"] for c in emu.commands[""]}
        listing = await ask(emu, ALICE, "/ci")
        assert listing.params["parse_mode"] == "HTML" and "浣溪沙</b> 7·7·7 / 7·7·7" in listing.text
        assert "Common tunes" in (await ask(emu, BOB, "/ci")).text
        assert "/ci" in (await ask(emu, ALICE, "/help")).text

        unknown = await ask(emu, ALICE, "/ci 浣西沙 春愁")
        assert "浣西沙" in unknown.text and "浣溪沙" in unknown.text
        assert "tune" in (await ask(emu, BOB, "/ci 满江 春愁")).text and not stand_in.jobs
        missing = await ask(emu, ALICE, "/poem 词 春愁")
        assert "词牌" in missing.text and not stand_in.jobs


async def test_ci_and_poem_with_a_tune_write_a_ci_with_its_buttons(emu, redis_url, stand_in) -> None:
    state = State.from_url(redis_url)
    async with running_bot(make_config(emu, redis_url)):
        call = await ask(emu, ALICE, "/ci 浣溪沙 春愁")
        assert check_html(call.text) is None and call.text.startswith("<b>浣溪沙 · 《春愁》</b>")
        rows = rows_of(call.text)
        assert len(rows) == 7 and rows[3] == "" and all(len(r) == 8 for r in rows if r) and "春愁" in rows[0]
        assert [b["text"] for b in call.buttons] == ["🔄 再来", "✏️ 保留", "📖 注音释义", "🖼 诗卡"]
        job = stand_in.jobs[-1]
        assert (job.form, job.tune, job.keywords, job.title) == ("词", "浣溪沙", ["春愁"], "春愁")
        record = await state.poems.load_poem(callbacks.decode(call.buttons[0]["callback_data"]).poem_id)
        assert record.form == "词" and record.tune == "浣溪沙" and record.stanza_break == 3
        assert record.marks == [ln.mark for ln in tunes.get("浣溪沙").main.lines] and len(record.lines) == 6

        # /poem takes a tune's own name, 简 or 繁; an alias that is an everyday word stays a theme.
        trad = await ask(emu, ALICE, "/poem 菩薩蠻 春愁")
        assert trad.text.startswith("<b>菩萨蛮") and stand_in.jobs[-1].tune == "菩萨蛮"
        assert [len(r) for r in rows_of(trad.text)] == [8, 8, 6, 6, 0, 6, 6, 6, 6]
        await ask(emu, ALICE, "/poem 出塞")
        assert stand_in.jobs[-1].tune == "" and stand_in.jobs[-1].form == "七绝"
        assert (await ask(emu, ALICE, "/ci 出塞 春愁")).text.startswith("<b>谒金门")     # /ci reads aliases
    await state.close()


async def test_every_button_under_a_ci(emu, redis_url, stand_in, card_fonts) -> None:
    from reading.gloss import CREDIT_ZH

    async with running_bot(make_config(emu, redis_url)):
        ci = await ask(emu, ALICE, "/ci 念奴娇 大江")
        lines = [r[:-1] for r in rows_of(ci.text) if r]
        assert [len(x) for x in lines] == list(tunes.get("念奴娇").main.lengths)
        poem_id = callbacks.decode(ci.button("再来")["callback_data"]).poem_id

        # 🔄: the same tune and theme, a new seed.
        since = emu.mark()
        await emu.press(ALICE, ci, ci.button("再来")["callback_data"])
        again = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert again.text.startswith("<b>念奴娇 · 《大江》</b>") and again.text != ci.text
        assert stand_in.jobs[-1].tune == "念奴娇" and stand_in.jobs[-1].seed is None     # the worker draws anew

        # ✏️: one toggle per 句 (20 of them: more than a 律诗's 8), lines 1 and 4 kept at their own lengths.
        since = emu.mark()
        await emu.press_and_answer(ALICE, ci, callbacks.keep(poem_id))
        markup = emu.find_calls("editMessageReplyMarkup", since)[-1]
        toggles = [b for b in markup.buttons if b["callback_data"].startswith("kt:")]
        assert len(toggles) == 20
        go = callbacks.keep_go(poem_id, 1 << 0 | 1 << 3 | 1 << 19)
        since = emu.mark()
        await emu.press(ALICE, ci, go)
        kept = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        new = [r[:-1] for r in rows_of(kept.text) if r]
        assert (new[0], new[3], new[19]) == (lines[0], lines[3], lines[19])
        assert stand_in.jobs[-1].fixed_lines == {0: lines[0], 3: lines[3], 19: lines[19]}
        assert stand_in.jobs[-1].tune == "念奴娇"

        # 📖: each 句 with its reading, in as many messages as it takes.
        since = emu.mark()
        await emu.press_and_answer(ALICE, ci, ci.button("注音释义")["callback_data"])
        reading = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=60)
        assert reading.text.splitlines()[0] == lines[0]

        async def readings() -> list[Any]:
            return emu.find_calls("sendMessage", since)

        parts = await eventually(readings, lambda calls: calls and calls[-1].text.endswith(CREDIT_ZH))
        assert all(len(p.text) <= 4096 for p in parts)
        assert all(line in "".join(p.text for p in parts).split() for line in lines)

        # 🖼: a card of 20 句 in its columns, then in traditional script after 简/繁.
        since = emu.mark()
        await emu.press_and_answer(ALICE, ci, ci.button("🖼")["callback_data"])
        photo = (await emu.wait_for_call("sendPhoto", since=since, chat_id=ALICE["id"])).params["photo"]
        width, height = png_size(photo)
        assert 900 <= width <= 2000 and 600 <= height <= 1600
        settings = await ask(emu, ALICE, "/settings")
        await emu.press_and_answer(ALICE, settings, settings.button("繁體")["callback_data"])
        since = emu.mark()
        await emu.press_and_answer(ALICE, ci, ci.button("🖼")["callback_data"])
        assert (await emu.wait_for_call("sendPhoto", since=since, chat_id=ALICE["id"])).params["photo"] != photo
        shown = await ask(emu, ALICE, "/ci 念奴娇 大江")
        assert shown.text.startswith("<b>念奴嬌") and stand_in.jobs[-1].tune == "念奴娇"


async def test_inline_mode_offers_a_ci_of_the_tune_asked(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        since = emu.mark()
        query_id = await emu.inline_query(ALICE, "浣溪沙 春愁")
        answer = await emu.wait_for_call("answerInlineQuery", since=since, timeout=15, inline_query_id=query_id)
        fresh = [r for r in answer.params["results"] if r["type"] == "article" and r["id"].startswith("f")]
        assert len(fresh) == 3 and stand_in.jobs[-1].tune == "浣溪沙" and stand_in.jobs[-1].n == 3
        text = fresh[0]["input_message_content"]["message_text"]
        assert check_html(text) is None and text.startswith("<b>浣溪沙 · 《春愁》</b>")
        assert rows_of(text)[3] == "" and fresh[0]["description"].startswith("浣溪沙")
