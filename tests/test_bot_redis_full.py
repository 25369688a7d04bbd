"""Redis full (maxmemory, noeviction): the bot still talks to Telegram, so a user whose request
Redis cannot take hears at once that it waits, and gets the poem, once, when Redis takes it
(issue 22). A real Redis server at its memory limit, the real bot, the Bot API emulator."""
from __future__ import annotations

import redis

from botkit import emu, make_config, running_bot, stand_in  # noqa: F401
from devtools.emulator import BotApiEmulator

ALICE = BotApiEmulator.user(1001, "Alice")
BOB = BotApiEmulator.user(1002, "Bob", language_code="en-US")


def verse(text: str) -> bool:
    """A poem message: its header names the form (七绝 · 《春风》)."""
    return text.startswith("<b>七绝")


async def test_a_request_redis_cannot_take_is_acknowledged_then_answered_once(emu, redis_url, stand_in) -> None:
    admin = redis.Redis.from_url(redis_url)
    async with running_bot(make_config(emu, redis_url)):
        since = emu.mark()
        await emu.send_text(ALICE, "/start")                          # the poller is up and polling
        await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)                              # every write is refused now
        try:
            since = emu.mark()
            await emu.send_text(ALICE, "/poem 春风")
            await emu.send_text(BOB, "/poem 明月")
            held_zh = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=30)
            held_en = await emu.wait_for_call("sendMessage", since=since, chat_id=BOB["id"], timeout=30)
            assert "稍后送到" in held_zh.text and "will follow" in held_en.text
        finally:
            admin.config_set("maxmemory", 0)                          # memory comes back
        poems = [await emu.wait_for_call("sendMessage", since=since, chat_id=user["id"], timeout=60,
                                         where=lambda call: verse(call.text))
                 for user in (ALICE, BOB)]
        assert all(verse(p.text) for p in poems)
        # Drained: once the poems are out, nothing more is pending for either chat.
        since_poems = emu.mark()
        await emu.send_text(ALICE, "/start")
        await emu.wait_for_call("sendMessage", since=since_poems, chat_id=ALICE["id"])
        for user in (ALICE, BOB):
            sent = [c for c in emu.find_calls("sendMessage", since) if c.params.get("chat_id") == user["id"]]
            assert sum(verse(c.text) for c in sent) == 1, [c.text for c in sent]        # the poem, once
            assert sum(("稍后送到" in c.text or "will follow" in c.text) for c in sent) == 1   # one note
    admin.close()
