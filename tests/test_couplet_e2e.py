"""/couplet end to end: the real bot (PTB over HTTP to the emulator), a real Redis, and the real worker
(worker.service.Worker on a thread) with conftest's tiny random poem model and a tiny random couplet
model beside it — never the shipped ones. The daily 春联 goes out as a card on a fixed date.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

import pytest

from bot.daily import fire_daily
from botkit import card_fonts, emu, make_config, running_bot, start_worker  # noqa: F401
from devtools.emulator import BotApiEmulator, check_html, png_size
from model.couplet_rules import violations
from test_couplet import couplet_dir, tiny_couplet_dir  # noqa: F401  (the tiny couplet model fixture)

ALICE = BotApiEmulator.user(5001, "Alice")
BOB = BotApiEmulator.user(5002, "Bob", language_code="en")
CHANNEL = -100525
TIMEOUT = 90.0           # the first decode traces the tf.functions on a busy 2-core CPU


@pytest.fixture
def couplet_worker(start_worker, tiny_generator: Any, couplet_dir) -> Callable[[], Any]:
    """Starts a real worker with the tiny poem model and the tiny couplet model on a thread."""
    from model.couplet import CoupletWriter

    return lambda: start_worker(couplets=CoupletWriter.load(couplet_dir, novelty=False, poems=tiny_generator))


def pair_of(text: str) -> tuple[str, str]:
    """(上联, 下联) as the message shows them: 「上联　…」 and 「下联　…」 lines."""
    found = {}
    for line in text.splitlines():
        for label in ("上联", "下联", "横批"):
            if line.startswith(label + "　"):
                found[label] = line.split("　", 1)[1]
    return found["上联"], found["下联"]


async def ask(emu: BotApiEmulator, user: dict, text: str, timeout: float = TIMEOUT, **kw: Any) -> Any:
    since = emu.mark()
    message = await emu.send_text(user, text, **kw)
    return await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"], timeout=timeout)


async def test_couplet_end_to_end(emu, redis_url, couplet_worker, card_fonts, tiny_vocab) -> None:
    couplet_worker()
    first = "春风明月山水云"          # characters the tiny vocabulary has; not a real line
    assert all(c in tiny_vocab for c in first)
    async with running_bot(make_config(emu, redis_url)):
        answer = await ask(emu, ALICE, f"/couplet {first}")
        assert check_html(answer.text) is None
        up, down = pair_of(answer.text)
        assert up == first and violations(up, down) == [] and "横批" in answer.text
        assert [b["text"] for b in answer.buttons] == ["🔄 再来", "📖 注音释义", "🖼 春联图"]

        # 🔄: more 下联 for the same 上联, as a new message.
        since = emu.mark()
        await emu.press_and_answer(ALICE, answer, answer.button("再来")["callback_data"], timeout=TIMEOUT)
        again = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=TIMEOUT)
        up2, down2 = pair_of(again.text)
        assert up2 == first and violations(up2, down2) == []

        # 📖: the reading aid of both lines; 🖼: the 春联 card as a photo under the couplet.
        since = emu.mark()
        await emu.press_and_answer(ALICE, answer, answer.button("📖")["callback_data"], timeout=TIMEOUT)
        reading = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=30)
        assert first[0] in reading.text and down[0] in reading.text
        since = emu.mark()
        await emu.press_and_answer(ALICE, answer, answer.button("🖼")["callback_data"], timeout=TIMEOUT)
        card = await emu.wait_for_call("sendPhoto", since=since, chat_id=ALICE["id"], timeout=30)
        width, height = png_size(card.params["photo"])
        assert height > width > 300

        # /对联, and a reply to a one-line message.
        chinese = await ask(emu, ALICE, "/对联 明月山水春风")
        assert violations(*pair_of(chinese.text)) == []
        line = await emu.send_text(ALICE, "山水云雨人归来")
        await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])          # the chatter hint
        replied = await ask(emu, ALICE, "/couplet", reply_to=line)
        assert pair_of(replied.text)[0] == "山水云雨人归来"

        # Refused by the bot at once, in the user's language.
        short = await ask(emu, ALICE, "/couplet 春风", timeout=10)
        assert "上联要 4 到 11 个字，你给的是 2 个字" in short.text
        long = await ask(emu, BOB, "/couplet " + "春风明月山水云雨人归来去", timeout=10)
        assert "A 上联 has 4 to 11 characters; yours has 12" in long.text
        latin = await ask(emu, BOB, "/couplet hello", timeout=10)
        assert "Chinese characters only" in latin.text

        # 春 mode: the worker writes the 上联 too (a 七绝 line around the theme), and the 横批.
        spring = await ask(emu, BOB, "/couplet 春 春风")
        assert "春联" in spring.text and "横批" in spring.text and check_html(spring.text) is None
        up, down = pair_of(spring.text)
        assert len(up) == 7 and violations(up, down) == []


async def test_the_daily_post_before_the_spring_festival_is_a_spring_couplet_card(
        emu, redis_url, couplet_worker, card_fonts) -> None:
    couplet_worker()
    config = make_config(emu, redis_url, daily_chat_id=CHANNEL)
    async with running_bot(config) as app:
        since = emu.mark()
        # A fixed clock: 2027-02-01, five days before the Spring Festival (2027-02-06).
        assert await fire_daily(app.bot_data["rt"], datetime(2027, 2, 1, 9, tzinfo=timezone.utc), force=True)
        post = await emu.wait_for_call("sendPhoto", since=since, chat_id=CHANNEL, timeout=TIMEOUT)
        caption = post.params["caption"]
        assert "春联" in caption and "2027-02-01" in caption and check_html(caption) is None
        assert violations(*pair_of(caption)) == []
        assert post.button("🖼") and png_size(emu.photo_bytes(post.result["photo"][-1]["file_id"]))
