"""The bot end to end against the Bot API emulator and a real Redis, with a stand-in worker.

The stand-in answers the real jobs stream without TensorFlow, so these tests are about the bot:
commands, buttons, state, limits and failure handling. test_bot_e2e.py repeats the core with the real worker.
"""
from __future__ import annotations

import logging
import re

from bot import callbacks
from bot.state import State
from protocol.sampling import CREATIVITY_TEMPERATURES
from protocol.keys import poem_key
from botkit import (card_fonts, emu, make_config, running_bot, stand_in,  # noqa: F401
                    StandInWorker, eventually, results_pending, synthetic_index)
from devtools.emulator import BotApiEmulator, check_html, png_size
from protocol.jobs import EncodeJob, GenerateJob

ALICE = BotApiEmulator.user(1001, "Alice")
BOB = BotApiEmulator.user(1002, "Bob", language_code="en-US")
GROUP = BotApiEmulator.group_chat(-5001)


async def ask_poem(emu: BotApiEmulator, user: dict, text: str, **kw) -> tuple[dict, object]:
    """Send text and return (the user's message, the bot's sendMessage answering it)."""
    since = emu.mark()
    message = await emu.send_text(user, text, **kw)
    call = await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"])
    return message, call


async def press_for_markup(emu: BotApiEmulator, user: dict, message: object, data: str) -> object:
    """Press a button whose handler edits the keyboard; return that edit."""
    since = emu.mark()
    await emu.press_and_answer(user, message, data)
    edits = emu.find_calls("editMessageReplyMarkup", since)
    assert edits, f"pressing {data} did not edit the keyboard"
    return edits[-1]


def verse_lines(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if line.endswith(("，", "。"))]


async def test_start_help_and_command_list(emu, redis_url) -> None:
    async with running_bot(make_config(emu, redis_url)):
        zh = emu.commands[""]
        assert {c["command"] for c in zh} >= {"start", "help", "poem", "acrostic", "similar", "daily", "settings"}
        assert "写" in next(c["description"] for c in zh if c["command"] == "poem")
        assert "Write" in next(c["description"] for c in emu.commands["en"] if c["command"] == "poem")

        await emu.send_text(ALICE, "/start")
        call = await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])
        assert "Alice" in call.text and "/acrostic" in call.text and "你好" in call.text

        await emu.send_text(BOB, "/help")
        call = await emu.wait_for_call("sendMessage", chat_id=BOB["id"])
        assert "Reply /poem to a poem" in call.text


async def test_poem_shows_typing_then_replies_with_buttons(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        since = emu.mark()
        message = await emu.send_text(ALICE, "/poem")
        await emu.wait_for_call("sendChatAction", since=since, chat_id=ALICE["id"], action="typing")
        call = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert call.params["parse_mode"] == "HTML" and check_html(call.text) is None
        lines = verse_lines(call.text)
        assert len(lines) == 4 and all(len(line) == 7 for line in lines)      # 七绝 by default
        assert "七绝" in call.text and "押平水韵" in call.text and "88%" in call.text
        assert call.params["reply_parameters"]["message_id"] == message["message_id"]
        labels = [b["text"] for b in call.buttons]
        assert labels == ["❤️ 喜欢", "🔄 再来", "🔍 相似", "✏️ 保留", "📖 注音释义", "🖼 诗卡"]
        assert all(len(b["callback_data"].encode()) <= 64 for b in call.buttons)
        poem_id = callbacks.decode(call.buttons[0]["callback_data"]).poem_id
        state = State.from_url(redis_url)
        record = await state.poems.load_poem(poem_id)
        assert record.lines == lines and record.owner_id == ALICE["id"]
        assert 0 < await state.redis.ttl(poem_key(poem_id)) <= 7 * 24 * 3600
        assert [h["pid"] for h in await state.users.history(ALICE["id"])] == [poem_id]
        await state.close()


async def test_poem_variants_reach_the_worker_as_constraints(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        _, call = await ask_poem(emu, ALICE, "/poem 春风")
        assert "春风" in "".join(verse_lines(call.text)) and "七绝 · 《春风》" in call.text

        _, call = await ask_poem(emu, ALICE, "/poem 五律 明月")
        lines = verse_lines(call.text)
        assert len(lines) == 8 and all(len(x) == 5 for x in lines) and "明月" in "".join(lines)

        for text in ("/poem 藏头 春夏秋冬", "/acrostic 春夏秋冬"):
            _, call = await ask_poem(emu, ALICE, text)
            assert [x[0] for x in verse_lines(call.text)] == list("春夏秋冬")
            assert "藏头「春夏秋冬」" in call.text

        # Traditional input is converted for the model; eight acrostic characters pick a 律诗.
        _, call = await ask_poem(emu, ALICE, "/acrostic 春風秋月夏雨冬雪")
        assert [x[0] for x in verse_lines(call.text)] == list("春风秋月夏雨冬雪")

    forms = [j.form for j in stand_in.jobs]
    assert forms == ["七绝", "五律", "七绝", "七绝", "七律"]
    assert stand_in.jobs[0].keywords == ["春风"] and stand_in.jobs[2].acrostic == "春夏秋冬"


async def test_reply_poem_to_a_poem_imitates_it(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        pasted = await emu.send_text(ALICE, "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。")
        await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])       # the chatter hint
        _, call = await ask_poem(emu, ALICE, "/poem", reply_to=pasted)
        assert "仿作" in call.text
    job = stand_in.jobs[-1]
    assert job.like_texts == ["白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"]
    assert job.form == "五绝"             # the form of the imitated poem


async def test_buttons_like_another_keep_and_cancel(emu, redis_url, stand_in) -> None:
    state = State.from_url(redis_url)
    async with running_bot(make_config(emu, redis_url)):
        _, poem = await ask_poem(emu, ALICE, "/poem 五绝 明月")
        poem_id = callbacks.decode(poem.button("喜欢")["callback_data"]).poem_id

        answer = await emu.press_and_answer(ALICE, poem, poem.button("喜欢")["callback_data"])
        assert answer.params["text"] == "已收藏 ❤️"
        assert list(await state.users.likes(ALICE["id"])) == [poem_id]
        answer = await emu.press_and_answer(ALICE, poem, poem.button("喜欢")["callback_data"])
        assert answer.params["text"] == "已经收藏过了。"

        # Someone else may not like or edit Alice's poem in a group, but may ask for another.
        answer = await emu.press_and_answer(BOB, poem, poem.button("喜欢")["callback_data"])
        assert "someone else's" in answer.params["text"] and answer.params["show_alert"] is True
        answer = await emu.press_and_answer(BOB, poem, poem.button("保留")["callback_data"])
        assert "someone else's" in answer.params["text"]

        # 🔄: same request, new seed, a new message.
        since = emu.mark()
        await emu.press(ALICE, poem, poem.button("再来")["callback_data"])
        again = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert "明月" in "".join(verse_lines(again.text)) and again.text != poem.text
        assert stand_in.jobs[-1].form == "五绝" and stand_in.jobs[-1].keywords == ["明月"]

        # ✏️: choose lines 1 and 3, rewrite the rest.
        markup = await press_for_markup(emu, ALICE, poem, callbacks.keep(poem_id))
        toggles = [b for b in markup.buttons if b["callback_data"].startswith("kt:")]
        assert len(toggles) == 4 and all(b["text"].startswith("▫️") for b in toggles)
        markup = await press_for_markup(emu, ALICE, poem, toggles[0]["callback_data"])
        assert markup.buttons[0]["text"].startswith("✅")
        markup = await press_for_markup(emu, ALICE, poem, markup.buttons[2]["callback_data"])
        go = markup.button("重写其余")["callback_data"]
        assert callbacks.decode(go).mask == 0b101
        since = emu.mark()
        await emu.press(ALICE, poem, go)
        rewritten = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        old, new = verse_lines(poem.text), verse_lines(rewritten.text)
        assert new[0] == old[0] and new[2] == old[2] and (new[1], new[3]) != (old[1], old[3])
        assert stand_in.jobs[-1].fixed_lines == {0: old[0], 2: old[2]}

        # Cancel restores the poem's own buttons.
        await press_for_markup(emu, ALICE, poem, callbacks.keep(poem_id))
        markup = await press_for_markup(emu, ALICE, poem, callbacks.keep_cancel(poem_id))
        assert [b["text"] for b in markup.buttons][0] == "❤️ 喜欢"

        # Keeping nothing or everything is refused.
        answer = await emu.press_and_answer(ALICE, poem, callbacks.keep_go(poem_id, 0))
        assert "至少" in answer.params["text"]
        answer = await emu.press_and_answer(ALICE, poem, callbacks.keep_go(poem_id, 0b1111))
        assert "全部保留" in answer.params["text"]
    await state.close()


async def test_forged_and_stale_callbacks_get_clear_answers(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        _, poem = await ask_poem(emu, ALICE, "/poem")
        poem_id = callbacks.decode(poem.buttons[0]["callback_data"]).poem_id
        for data, expected in [("l:../../etc", "按钮无效"), ("zz:1", "按钮无效"), ("l", "按钮无效"),
                               (callbacks.like("AAAAAAAAAAAA"), "已过期"),
                               (callbacks.keep_toggle(poem_id, 0x80), "按钮无效")]:   # no line 8 in a 绝句
            answer = await emu.press_and_answer(ALICE, poem, data)
            assert expected in answer.params["text"], data
            assert answer.params["show_alert"] is True


async def test_similar_for_new_user_then_after_likes_and_as_reply(emu, redis_url, stand_in) -> None:
    index = synthetic_index()
    async with running_bot(make_config(emu, redis_url), index=index):
        _, call = await ask_poem(emu, ALICE, "/similar")
        assert "常被传诵" in call.text and check_html(call.text) is None
        assert [f"试题{i}" in call.text for i in range(5)] == [True] * 5        # the 5 most popular

        _, poem = await ask_poem(emu, ALICE, "/poem 春风")
        await emu.press_and_answer(ALICE, poem, poem.button("喜欢")["callback_data"])
        _, call = await ask_poem(emu, ALICE, "/similar")
        assert "与你的口味相近" in call.text
        # Each answer says why: here, the liked poem it is near (the user's only poem).
        assert call.text.count(f"<i>近你收藏的「{verse_lines(poem.text)[0]}」") == 5
        shown_before = {f"试题{i}" for i in range(5)}
        titles = {f"试题{n}" for n in re.findall(r"试题(\d+)", call.text)}
        assert len(titles) == 5 and not titles & shown_before      # nothing shown twice

        # As a reply to a pasted poem: an EncodeJob goes through the worker.
        pasted = await emu.send_text(ALICE, "山水云风月，花江天人日。春秋夜雨青，白高远长清。")
        await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])
        _, call = await ask_poem(emu, ALICE, "/similar", reply_to=pasted)
        assert "与这首诗相近" in call.text and call.text.count("<i>") == 5 and "近你" not in call.text
        assert isinstance(stand_in.jobs[-1], EncodeJob)

        # The 🔍 button on one of our poems uses its stored μ (no job).
        n_jobs = len(stand_in.jobs)
        since = emu.mark()
        await emu.press(ALICE, poem, poem.button("相似")["callback_data"])
        call = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert "与这首诗相近" in call.text and len(stand_in.jobs) == n_jobs


async def test_similar_without_index_says_so(emu, redis_url) -> None:
    async with running_bot(make_config(emu, redis_url)):
        _, call = await ask_poem(emu, BOB, "/similar")
        assert "not available" in call.text


async def test_settings_buttons_change_script_form_and_creativity(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        _, menu = await ask_poem(emu, ALICE, "/settings")
        assert "默认诗体：七绝" in menu.text
        for data in (callbacks.setting("script", "t"), callbacks.setting("form", "2"), callbacks.setting("cr", "2")):
            answer = await emu.press_and_answer(ALICE, menu, data)
            assert answer.params["text"] == "已保存。"
        edit = emu.find_calls("editMessageText")[-1]
        assert "繁體" in edit.text and "五律" in edit.text and "奇" in edit.text

        _, call = await ask_poem(emu, ALICE, "/poem 春风")
        assert len(verse_lines(call.text)) == 8 and "春風" in call.text      # 五律, traditional output
    assert stand_in.jobs[-1].form == "五律" and stand_in.jobs[-1].temperature == CREATIVITY_TEMPERATURES[2]


async def test_an_occasion_becomes_the_title(emu, redis_url, stand_in) -> None:
    """/poem 送友人归江南: words too long for a line are the poem's title, not a phrase to set in it;
    short theme words are the title and must appear; 题: names a title alone."""
    chars = frozenset("春风明月山水云花江天人日秋夜雨青白高远长清红千万一夏冬送友归南")
    async with running_bot(make_config(emu, redis_url), chars=chars):
        _, call = await ask_poem(emu, ALICE, "/poem 五绝 送友人归江南")
        job = stand_in.jobs[-1]
        assert (job.title, job.keywords) == ("送友人归江南", []) and "五绝 · 《送友人归江南》" in call.text
        _, call = await ask_poem(emu, ALICE, "/poem 秋夜")
        assert (stand_in.jobs[-1].title, stand_in.jobs[-1].keywords) == ("秋夜", ["秋夜"])
        _, call = await ask_poem(emu, ALICE, "/poem 题:江南春 明月")
        assert (stand_in.jobs[-1].title, stand_in.jobs[-1].keywords) == ("江南春", ["明月"])
        assert "《江南春》" in call.text


async def test_bad_inputs_get_answers_in_the_users_language(emu, redis_url, stand_in) -> None:
    chars = frozenset("春风明月山水云花江天人日秋夜雨青白高远长清红千万一夏冬")
    async with running_bot(make_config(emu, redis_url), chars=chars):
        cases = [
            (ALICE, "/poem 七古 春", "不认识的诗体「七古」"),
            (BOB, "/poem 词 春", "A 词 is written to a tune"),
            (ALICE, "/poem " + "春" * 41, "太长"),
            (ALICE, "/poem spring", "只能用汉字"),
            (ALICE, "/poem 龘", "模型不会写这些字：龘"),
            (BOB, "/acrostic", "An acrostic needs"),
            (ALICE, "/poem 五绝 藏头 春夏秋冬春", "藏头最多 4 个字"),
            (ALICE, "/poem 题:" + "春" * 25, "题目太长了：最多 24 个字"),
            (BOB, "/poem title:" + "春" * 25, "The title is too long"),
            (ALICE, "hello", "/poem 春风"),
            (BOB, "/daily sometimes", "Usage: /daily on"),
        ]
        for user, text, expected in cases:
            _, call = await ask_poem(emu, user, text)
            assert expected in call.text, (text, call.text)

        since = emu.mark()
        await emu.send_sticker(ALICE)
        assert "只看得懂文字" in (await emu.wait_for_call("sendMessage", since=since)).text

        # An edited command is not run again; the user is told.
        original, _ = await ask_poem(emu, ALICE, "/poem 春风")
        n_jobs = len(stand_in.jobs)
        since = emu.mark()
        await emu.edit_text(original, "/poem 秋月")
        assert "修改过的消息" in (await emu.wait_for_call("sendMessage", since=since)).text
        assert len(stand_in.jobs) == n_jobs
    # No refused request reached the worker.
    assert all(j.keywords != ["龘"] for j in stand_in.jobs if isinstance(j, GenerateJob))


async def test_worker_error_result_is_explained(emu, redis_url) -> None:
    worker = await StandInWorker(redis_url, unknown="龘").start()
    try:
        async with running_bot(make_config(emu, redis_url)):       # no vocabulary: the worker checks
            _, call = await ask_poem(emu, BOB, "/poem 龘")
            assert "cannot write these characters: 龘" in call.text
    finally:
        await worker.stop()


async def test_group_commands_with_botname_work_and_chatter_is_ignored(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)):
        since = emu.mark()
        await emu.send_text(ALICE, "今天天气真好", chat=GROUP)
        await emu.send_sticker(ALICE, chat=GROUP)
        await emu.send_text(ALICE, "/poem@other_bot 春风", chat=GROUP)
        await emu.send_text(ALICE, "/poem@poem_test_bot 春风", chat=GROUP)
        call = await emu.wait_for_call("sendMessage", since=since, chat_id=GROUP["id"])
        assert "春风" in "".join(verse_lines(call.text))
        assert len(emu.find_calls("sendMessage", since)) == 1
        assert len(stand_in.jobs) == 1


async def test_rate_limit_and_queue_cap_answer_politely(emu, redis_url, stand_in) -> None:
    config = make_config(emu, redis_url, rate_per_min=2)
    async with running_bot(config):
        await ask_poem(emu, ALICE, "/poem")
        await ask_poem(emu, ALICE, "/poem")
        _, call = await ask_poem(emu, ALICE, "/poem")
        assert "写得太快啦" in call.text and "秒后再试" in call.text
        seconds = int(call.text.split("请 ")[1].split(" 秒")[0])
        assert 1 <= seconds <= 60
    assert len(stand_in.jobs) == 2

    await stand_in.stop()          # nothing drains the queue now
    config = make_config(emu, redis_url, queue_cap=1, busy_retry_s=17)
    async with running_bot(config):
        await ask_poem(emu, BOB, "/poem")            # queued, no worker
        _, call = await ask_poem(emu, BOB, "/poem")
        assert call.text == "I am busy right now: try again in 17 s."


async def test_loading_before_any_worker_then_offline_once_workers_are_gone(emu, redis_url) -> None:
    async with running_bot(make_config(emu, redis_url)):
        _, call = await ask_poem(emu, ALICE, "/poem 秋夜")
        assert call.text == "模型加载中，诗马上就来。"           # no worker was ever ready here
        since = emu.mark()
        worker = await StandInWorker(redis_url).start()
        try:
            poem = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
            assert "秋夜" in "".join(verse_lines(poem.text))
        finally:
            await worker.stop()          # a clean stop takes its heartbeat away at once
        _, call = await ask_poem(emu, BOB, "/poem")
        assert "offline" in call.text and "queued" in call.text


async def test_429_is_retried_and_a_failed_send_is_redelivered_once(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url, claim_idle_ms=300)):
        emu.fail_next("sendMessage", code=429, retry_after=1)
        _, call = await ask_poem(emu, ALICE, "/start")
        assert "你好" in call.text
        assert [c.error for c in emu.calls if not c.ok] == ["Too Many Requests: retry after 1"]

        # A 502 on the poem's send: the result stays pending, is re-read and sent exactly once.
        emu.fail_next("sendMessage", code=502, retry_after=None)
        since = emu.mark()
        await emu.send_text(ALICE, "/poem 江")
        await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"],
                                where=lambda c: "江" in c.text, timeout=15)
        assert [c.error for c in emu.find_calls("sendMessage", since, ok=False)] == ["Internal Server Error"]
        # Wait until the result is acknowledged: nothing left that could be sent again.
        state = State.from_url(redis_url)
        await eventually(lambda: results_pending(state), lambda n: n == 0)
        await state.close()
        sent = emu.find_calls("sendMessage", since, chat_id=ALICE["id"])
        assert len(sent) == 1


async def test_token_never_reaches_the_logs(emu, redis_url, stand_in, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_bot(make_config(emu, redis_url)):
        await ask_poem(emu, ALICE, "/poem")
        logging.getLogger("httpx").info("HTTP Request: POST %s/bot%s/sendMessage", emu.url, emu.token)
    text = caplog.text
    assert "sendMessage" in text and "<token>" in text
    assert emu.token not in text and emu.token.split(":")[1] not in text


async def test_reading_aid_under_a_poem_and_under_a_similar_answer(emu, redis_url, stand_in) -> None:
    from reading.gloss import CREDIT, CREDIT_ZH

    async with running_bot(make_config(emu, redis_url), index=synthetic_index()):
        # 📖 under one of our poems: each line with its pinyin and glosses, pinyin first for 中文.
        _, poem = await ask_poem(emu, ALICE, "/poem")
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, poem.button("注音释义")["callback_data"])
        # The first reading after a start may wait for CC-CEDICT to load (seconds on a busy machine).
        reading = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=60)
        first = verse_lines(poem.text)[0]
        shown = reading.text.splitlines()
        assert shown[0] == first and all(ord(c) < 0x3000 for c in shown[1].replace(" ", ""))
        assert reading.text.endswith(CREDIT_ZH) and " — " in reading.text
        assert len(reading.text) <= 4096 and reading.params.get("parse_mode") is None

        # An English user sees the button in English and gets the English layout.
        _, poem_en = await ask_poem(emu, BOB, "/poem")
        since = emu.mark()
        await emu.press_and_answer(BOB, poem_en, poem_en.button("Reading aid")["callback_data"])
        reading_en = await emu.wait_for_call("sendMessage", since=since, chat_id=BOB["id"])
        assert reading_en.text.endswith(CREDIT) and "(" in reading_en.text.splitlines()[0]

        # 📖 n under a /similar answer reads the n-th corpus poem.
        _, answer = await ask_poem(emu, ALICE, "/similar")
        assert [b["text"] for b in answer.buttons] == [f"📖 {i}" for i in range(1, 6)]
        since = emu.mark()
        await emu.press_and_answer(ALICE, answer, answer.button("📖 2")["callback_data"])
        corpus_reading = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        second_id = callbacks.decode(answer.button("📖 2")["callback_data"]).key
        second = synthetic_index().get(second_id)
        assert second["title"] in answer.text.split("\n\n")[2]      # the answer's 2nd poem
        assert corpus_reading.text.splitlines()[0] == second["text"].split("，")[0]

        # A corpus id the index does not hold gets a clear answer.
        gone = await emu.press_and_answer(ALICE, answer, callbacks.gloss_corpus("no-such-poem"))
        assert gone.params["show_alert"] is True and "索引" in gone.params["text"]


async def test_card_button_sends_the_poem_as_a_picture_in_the_readers_script(emu, redis_url, stand_in,
                                                                            card_fonts, tmp_path,
                                                                            monkeypatch) -> None:
    async with running_bot(make_config(emu, redis_url)):
        _, poem = await ask_poem(emu, ALICE, "/poem 春风")
        since = emu.mark()
        answer = await emu.press_and_answer(ALICE, poem, poem.button("🖼")["callback_data"])
        photo = await emu.wait_for_call("sendPhoto", since=since, chat_id=ALICE["id"])
        assert not answer.params.get("show_alert")
        assert photo.params["reply_parameters"]["message_id"] == poem.result["message_id"]
        simplified = photo.params["photo"]
        assert png_size(simplified) and photo.result["photo"][0]["width"] == png_size(simplified)[0]

        # In traditional script the card changes; Bob (not the owner) may ask for it too.
        _, settings = await ask_poem(emu, ALICE, "/settings")
        await emu.press_and_answer(ALICE, settings, settings.button("繁體")["callback_data"])
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, poem.button("🖼")["callback_data"])
        traditional = (await emu.wait_for_call("sendPhoto", since=since, chat_id=ALICE["id"])).params["photo"]
        assert traditional != simplified
        assert "Card" in (await ask_poem(emu, BOB, "/poem"))[1].button("🖼")["text"]

        # Without the fonts there is no card, and the alert says so.
        monkeypatch.setenv("POEMBOT_FONT_DIR", str(tmp_path))
        since = emu.mark()
        answer = await emu.press_and_answer(ALICE, poem, poem.button("🖼")["callback_data"])
        assert answer.params["show_alert"] is True and "诗卡" in answer.params["text"]
        assert not emu.find_calls("sendPhoto", since)
