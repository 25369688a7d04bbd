"""/ci end to end: the real bot (PTB over HTTP to the emulator), a real Redis, and the real worker
(worker.service.Worker on a thread) with conftest's tiny random poem model and the tiny ci model grown from
it (CiWriter) — never the shipped ones. Every button under a 词: 🔄 ✏️ 📖 🖼, and 简/繁.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import pytest

from bot import callbacks
from bot.daily import fire_daily
from bot.state import State
from botkit import card_fonts, emu, make_config, running_bot, start_worker  # noqa: F401
from devtools.emulator import BotApiEmulator, check_html, png_size
from verse import tunes
from verse.script import to_traditional

ALICE = BotApiEmulator.user(6001, "Alice")
CHANNEL = -100626
TIMEOUT = 120.0          # the first decode traces the tf.functions on a busy 2-core CPU


@pytest.fixture
def ci_worker(start_worker, tiny_ci_writer) -> Callable[[], Any]:
    """Starts a real worker with the tiny poem model and the tiny ci writer on a thread."""
    return lambda: start_worker(ci=tiny_ci_writer)


async def ask(emu: BotApiEmulator, user: dict, text: str, timeout: float = TIMEOUT) -> Any:
    since = emu.mark()
    message = await emu.send_text(user, text)
    return await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"], timeout=timeout)


def ju_rows(text: str) -> list[str]:
    """The message's rows between its heading and its note: 句 with their marks, "" between the stanzas."""
    return text.split("\n\n<i>")[0].splitlines()[1:]


def ju(text: str) -> list[str]:
    return [row[:-1] for row in ju_rows(text) if row]


async def test_ci_end_to_end_with_every_button(emu, redis_url, ci_worker, card_fonts, tiny_vocab) -> None:
    ci_worker()
    state = State.from_url(redis_url)
    form = tunes.get("浣溪沙").main
    async with running_bot(make_config(emu, redis_url)):
        poem = await ask(emu, ALICE, "/ci 浣溪沙 春风")
        assert check_html(poem.text) is None and poem.text.startswith("<b>浣溪沙 · 《春风》</b>\n")
        rows = ju_rows(poem.text)
        assert rows[3] == "" and [r[-1] for r in rows if r] == [ln.mark for ln in form.lines]
        lines = ju(poem.text)
        assert [len(x) for x in lines] == list(form.lengths) and "春风" in "".join(lines)
        assert all(c in tiny_vocab for c in "".join(lines))
        assert [b["text"] for b in poem.buttons] == ["🔄 再来", "✏️ 保留", "📖 注音释义", "🖼 诗卡"]
        poem_id = callbacks.decode(poem.button("再来")["callback_data"]).poem_id
        record = await state.poems.load_poem(poem_id)
        assert (record.tune, record.stanza_break, record.lines) == ("浣溪沙", 3, lines)
        assert record.marks == [ln.mark for ln in form.lines]

        # 🔄: the same tune and theme, a new 词.
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, poem.button("再来")["callback_data"], timeout=TIMEOUT)
        again = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=TIMEOUT)
        assert again.text.startswith("<b>浣溪沙 · 《春风》</b>") and ju(again.text) != lines
        assert [len(x) for x in ju(again.text)] == list(form.lengths)

        # ✏️: 句 1 and 5 kept as they are, the rest written anew around them.
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, callbacks.keep(poem_id), timeout=TIMEOUT)
        markup = emu.find_calls("editMessageReplyMarkup", since)[-1]
        assert len([b for b in markup.buttons if b["callback_data"].startswith("kt:")]) == 6
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, callbacks.keep_go(poem_id, 0b10001), timeout=TIMEOUT)
        kept = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=TIMEOUT)
        new = ju(kept.text)
        assert new[0] == lines[0] and new[4] == lines[4] and [len(x) for x in new] == list(form.lengths)

        # 📖: the reading aid of its 句.
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, poem.button("注音释义")["callback_data"], timeout=TIMEOUT)
        reading = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=60)
        assert reading.text.splitlines()[0] == lines[0] and lines[3] in reading.text

        # 🖼: the card, then in traditional script after 简/繁, as the next 词's message is.
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, poem.button("🖼")["callback_data"], timeout=TIMEOUT)
        photo = (await emu.wait_for_call("sendPhoto", since=since, chat_id=ALICE["id"], timeout=30)).params["photo"]
        width, height = png_size(photo)
        assert width > height > 500
        settings = await ask(emu, ALICE, "/settings")
        await emu.press_and_answer(ALICE, settings, settings.button("繁體")["callback_data"])
        since = emu.mark()
        await emu.press_and_answer(ALICE, poem, poem.button("🖼")["callback_data"], timeout=TIMEOUT)
        traditional = await emu.wait_for_call("sendPhoto", since=since, chat_id=ALICE["id"], timeout=30)
        assert traditional.params["photo"] != photo
        shown = await ask(emu, ALICE, "/ci 菩萨蛮 春风")
        assert shown.text.startswith("<b>菩薩蠻 · 《春風》</b>")
        assert [len(x) for x in ju(shown.text)] == list(tunes.get("菩萨蛮").main.lengths)
        simplified = (await state.poems.load_poem(callbacks.decode(shown.button("再来")["callback_data"])
                                                  .poem_id)).lines
        assert ju(shown.text) == [to_traditional(x) for x in simplified]       # kept simplified, shown 繁
    await state.close()


async def test_a_worker_without_a_ci_model_says_so_and_still_writes_poems(emu, redis_url, start_worker,
                                                                        card_fonts) -> None:
    start_worker()                      # the tiny poem model only
    async with running_bot(make_config(emu, redis_url, daily_chat_id=CHANNEL)) as app:
        refused = await ask(emu, ALICE, "/ci 浣溪沙 春风")
        assert "填词的模型还没准备好" in refused.text and not refused.buttons
        poem = await ask(emu, ALICE, "/poem 春风")
        assert poem.text.startswith("<b>七绝 · 《春风》</b>")

        # A Sunday's daily 词 with no worker to write it: the day's 诗 goes out instead of nothing.
        rt = app.bot_data["rt"]
        sunday = datetime(2026, 12, 6, 8, 0, tzinfo=rt.config.zone)
        since = emu.mark()
        assert await fire_daily(rt, sunday, force=True)
        post = await emu.wait_for_call("sendPhoto", since=since, chat_id=CHANNEL, timeout=TIMEOUT)
        assert "每日一诗 · 2026-12-06" in post.params["caption"] and "词" not in post.params["caption"]
