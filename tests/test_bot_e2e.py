"""End to end with every real part: the bot (PTB over HTTP to the emulator), Redis, and the real worker
(worker.service.Worker on a thread) decoding with conftest's tiny random model.

Slower than test_bot_flows.py (TensorFlow), so it covers the main paths once each.
"""
from __future__ import annotations

from typing import Any

from bot import callbacks
from bot.daily import fire_daily
from bot.state import State
from botkit import (card_fonts, emu, eventually, make_config, running_bot, start_worker,  # noqa: F401
                    synthetic_index)
from devtools.emulator import BotApiEmulator, check_html, png_size
from verse.vocab import N_SPECIALS

ALICE = BotApiEmulator.user(4001, "Alice")
BOB = BotApiEmulator.user(4002, "Bob", language_code="en")
CHANNEL = -100999
# A 五绝 made of characters the tiny model knows (conftest.TINY_EXTRA); not a real poem.
PASTED = "春风花月明，江天云雨来。\n山水人归去，秋冬雪日明。"
POEM_TIMEOUT = 90.0      # the first decode of each form traces a tf.function on a busy 2-core CPU


def verse_lines(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if line.endswith(("，", "。"))]


async def ask(emu: BotApiEmulator, user: dict, text: str, timeout: float = POEM_TIMEOUT, **kw: Any) -> Any:
    since = emu.mark()
    message = await emu.send_text(user, text, **kw)
    return await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"], timeout=timeout)


async def test_loading_before_the_first_worker_then_answered_when_it_is_ready(emu, redis_url,
                                                                              start_worker) -> None:
    async with running_bot(make_config(emu, redis_url)):
        call = await ask(emu, ALICE, "/poem 春风", timeout=10)
        assert call.text == "模型加载中，诗马上就来。"          # not "offline": no worker was ever ready
        since = emu.mark()
        start_worker()
        poem = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=POEM_TIMEOUT)
        lines = verse_lines(poem.text)
        assert len(lines) == 4 and all(len(line) == 7 for line in lines)
        assert "春风" in "".join(lines)
        assert check_html(poem.text) is None and [b["text"] for b in poem.buttons][0] == "❤️ 喜欢"
        assert ("平起" in poem.text or "仄起" in poem.text) and "平仄合律" in poem.text   # the prosody note


async def test_variants_buttons_and_similar_with_the_real_worker(emu, redis_url, start_worker) -> None:
    start_worker()
    async with running_bot(make_config(emu, redis_url), index=synthetic_index()):
        poem = await ask(emu, ALICE, "/poem 五律 明月")
        lines = verse_lines(poem.text)
        assert len(lines) == 8 and all(len(x) == 5 for x in lines) and "明月" in "".join(lines)
        assert "五律" in poem.text

        acrostic = await ask(emu, ALICE, "/acrostic 春夏秋冬")
        assert [x[0] for x in verse_lines(acrostic.text)] == list("春夏秋冬")

        pasted = await emu.send_text(ALICE, PASTED)
        await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])
        imitation = await ask(emu, ALICE, "/poem", reply_to=pasted)
        assert "仿作" in imitation.text and len(verse_lines(imitation.text)) == 4

        # ✏️ keep lines 2 and 4 of the 五律; the worker rewrites the rest around them.
        poem_id = callbacks.decode(poem.buttons[0]["callback_data"]).poem_id
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, callbacks.keep_go(poem_id, 0b1010))
        rewritten = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=POEM_TIMEOUT)
        new = verse_lines(rewritten.text)
        assert len(new) == 8 and new[1] == lines[1] and new[3] == lines[3]

        # 🔄 the same request again.
        since = emu.mark()
        await emu.press_and_answer(ALICE, acrostic, acrostic.button("再来")["callback_data"])
        again = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=POEM_TIMEOUT)
        assert [x[0] for x in verse_lines(again.text)] == list("春夏秋冬")

        # /similar after a like, then as a reply to a pasted poem (an EncodeJob through the worker).
        answer = await emu.press_and_answer(ALICE, poem, poem.button("喜欢")["callback_data"])
        assert answer.params["text"] == "已收藏 ❤️"
        taste = await ask(emu, ALICE, "/similar", timeout=10)
        assert "与你的口味相近" in taste.text and taste.text.count("试题") == 5
        neighbours = await ask(emu, ALICE, "/similar", reply_to=pasted)
        assert "与这首诗相近" in neighbours.text and neighbours.text.count("试题") == 5


async def test_unknown_characters_are_refused_by_bot_or_worker(emu, redis_url, start_worker,
                                                              tiny_vocab) -> None:
    start_worker()
    async with running_bot(make_config(emu, redis_url)):        # the worker judges
        call = await ask(emu, BOB, "/poem 龘")
        assert "cannot write these characters: 龘" in call.text
    chars = frozenset(tiny_vocab.chars[N_SPECIALS:])
    async with running_bot(make_config(emu, redis_url), chars=chars):   # the bot judges first
        call = await ask(emu, ALICE, "/poem 龘", timeout=10)
        assert "模型不会写这些字：龘" in call.text


async def test_daily_poem_from_the_real_worker_is_a_card_with_its_text(emu, redis_url, start_worker,
                                                                       card_fonts) -> None:
    start_worker()
    config = make_config(emu, redis_url, daily_chat_id=CHANNEL)
    async with running_bot(config) as app:
        await emu.send_text(BOB, "/daily on")
        await emu.wait_for_call("sendMessage", chat_id=BOB["id"])
        since = emu.mark()
        assert await fire_daily(app.bot_data["rt"], force=True)
        posts = await emu.wait_for_calls("sendPhoto", 2, since=since, timeout=POEM_TIMEOUT)
        assert {c.params["chat_id"] for c in posts} == {CHANNEL, BOB["id"]}
        assert all(len(verse_lines(c.params["caption"])) in (4, 8) and check_html(c.params["caption"]) is None
                   for c in posts)
        channel = next(c for c in posts if c.params["chat_id"] == CHANNEL)
        assert "每日一诗" in channel.params["caption"] and channel.button("喜欢")
        assert png_size(emu.photo_bytes(channel.result["photo"][-1]["file_id"]))


async def test_card_button_and_inline_mode_with_the_real_worker(emu, redis_url, start_worker,
                                                                card_fonts) -> None:
    worker = start_worker()
    async with running_bot(make_config(emu, redis_url, card_chat_id=CHANNEL)):
        poem = await ask(emu, ALICE, "/poem 七绝 明月")          # also traces the decoder for the queries below
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, poem.button("🖼")["callback_data"])
        card = await emu.wait_for_call("sendPhoto", since=since, chat_id=ALICE["id"], timeout=30)
        assert png_size(card.params["photo"]) and card.params["reply_parameters"]["message_id"] == poem.result["message_id"]

        # Inline: fresh poems from the worker within Telegram's limit (the emulator refuses late answers).
        since = emu.mark()
        query_id = await emu.inline_query(BOB, "七绝 明月")
        answer = await emu.wait_for_call("answerInlineQuery", since=since, inline_query_id=query_id, timeout=15)
        fresh = [r for r in answer.params["results"] if r["type"] == "article" and r["id"].startswith("f")]
        assert len(fresh) == 3 and all("明月" in r["input_message_content"]["message_text"] for r in fresh)
        assert any(r["type"] == "photo" for r in answer.params["results"])

        # The worker stops: the same theme is answered from the recent poems, at once.
        worker.stop()
        await eventually(lambda: app_state_alive(redis_url), lambda n: n == 0, timeout=30)
        since = emu.mark()
        query_id = await emu.inline_query(BOB, "明月")
        cached = await emu.wait_for_call("answerInlineQuery", since=since, inline_query_id=query_id, timeout=15)
        articles = [r for r in cached.params["results"] if r["type"] == "article"]
        assert len(articles) >= 3 and all("明月" in r["input_message_content"]["message_text"] for r in articles)


async def app_state_alive(redis_url: str) -> int:
    """Workers with a live heartbeat, as the bot counts them."""
    state = State.from_url(redis_url)
    try:
        return await state.workers.workers_alive()
    finally:
        await state.close()
