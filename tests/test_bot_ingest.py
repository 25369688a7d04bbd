"""The durable update intake (bot/ingest.py): updates stored once, re-runs that enqueue nothing new,
updates left behind by a dead replica taken over, and a Redis outage that delays but loses nothing.

Real bot, emulator and Redis; the stand-in worker answers jobs. tests/robustness/ does the same with
killed processes under load.
"""
from __future__ import annotations

import json

from telegram import Update

from bot.ingest import update_key
from bot.state import UPDATES_GROUP, UPDATES_STREAM, State
from botkit import emu, make_config, running_bot, stand_in  # noqa: F401
from emulator import BotApiEmulator, command_entities

ALICE = BotApiEmulator.user(3001, "Alice")


def verse(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if line.endswith(("，", "。"))]


async def test_an_update_fetched_twice_is_stored_once(redis_url) -> None:
    state = State.from_url(redis_url)
    await state.ensure_groups()
    data = json.dumps({"update_id": 7, "message": {"text": "/poem"}})
    await state.ingest_updates([(update_key(7, data), data)])
    await state.ingest_updates([(update_key(7, data), data)])        # Telegram sent it again
    other = json.dumps({"update_id": 7, "message": {"text": "/help"}})   # ids restart: new content
    await state.ingest_updates([(update_key(7, other), other)])
    assert await state.redis.xlen(UPDATES_STREAM) == 2
    await state.close()


async def test_running_an_update_again_enqueues_and_answers_nothing_new(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)) as app:
        await emu.send_text(ALICE, "/poem 春风")
        first = await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])
        assert "春风" in "".join(verse(first.text))
        state: State = app.bot_data["rt"].state
        (entry_id, fields), = await state.redis.xrange(UPDATES_STREAM)
        update = Update.de_json(json.loads(fields["update"]), app.bot)

        # As after a crash between handling and acknowledging: the same update runs once more.
        assert await app.bot_data["updates"].process(update, update_key(update.update_id, fields["update"]))
        since = emu.mark()
        await emu.send_text(ALICE, "/help")                  # handled after the re-run's effects
        await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert len(stand_in.jobs) == 1
        assert [c.text for c in emu.find_calls("sendMessage", chat_id=ALICE["id"]) if c.buttons] \
            == [first.text]


async def test_an_update_a_dead_replica_held_is_taken_over(emu, redis_url, stand_in) -> None:
    state = State.from_url(redis_url)
    await state.ensure_groups()
    message = {"message_id": 1, "date": 0, "chat": BotApiEmulator.private_chat(ALICE), "from": ALICE,
               "text": "/poem 明月", "entities": command_entities("/poem 明月")}
    data = json.dumps({"update_id": 99, "message": message})
    await state.ingest_updates([(update_key(99, data), data)])
    # A replica read it and died before acknowledging it.
    taken = await state.redis.xreadgroup(UPDATES_GROUP, "dead-replica", {UPDATES_STREAM: ">"}, count=10)
    assert len(taken[0][1]) == 1
    async with running_bot(make_config(emu, redis_url, claim_idle_ms=300)):
        poem = await emu.wait_for_call("sendMessage", chat_id=ALICE["id"], timeout=20)
        assert "明月" in "".join(verse(poem.text))
    assert await state.updates_pending() == 0
    await state.close()


async def test_a_request_during_a_redis_restart_is_answered_once(emu, redis_server, stand_in) -> None:
    async with running_bot(make_config(emu, redis_server.url, claim_idle_ms=1000)):
        await emu.send_text(ALICE, "/poem 山")
        await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])
        redis_server.stop()
        since = emu.mark()
        # Sent while Redis is down: the poller keeps it unconfirmed until it can be stored.
        await emu.send_text(ALICE, "/poem 江")
        redis_server.start()
        poem = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=60)
        assert "江" in "".join(verse(poem.text))
        since = emu.mark()
        await emu.send_text(ALICE, "/help")
        await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=30)
        assert len([c for c in emu.find_calls("sendMessage", chat_id=ALICE["id"]) if "· 江<" in c.text]) == 1
