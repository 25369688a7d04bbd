"""The durable update intake (bot/ingest.py): updates stored once, re-runs that enqueue nothing new,
updates left behind by a dead replica taken over, and a Redis outage that delays but loses nothing.

Real bot, emulator and Redis; the stand-in worker answers jobs. tests/robustness/ does the same with
killed processes under load.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from telegram import Update

from bot.ingest import MAX_ATTEMPTS, stored, update_key
from bot.state import State
from protocol.keys import UPDATES_GROUP, UPDATES_STREAM
from streams import run_async, updates_consumer
from bot.texts import EN, ZH, t
from botkit import emu, eventually, make_config, running_bot, stand_in  # noqa: F401
from devtools.emulator import BotApiEmulator, command_entities

ALICE = BotApiEmulator.user(3001, "Alice")


def verse(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if line.endswith(("，", "。"))]


async def held_by_dead_replica(state: State, user: dict[str, Any], text: str, runs: int = 1) -> None:
    """Store a message update from user that a replica took `runs` times, dying each time before it
    acknowledged it (so the next replica to claim it sees runs + 1 deliveries)."""
    await state.groups.ensure_groups()
    message = {"message_id": 1, "date": 0, "chat": BotApiEmulator.private_chat(user), "from": user,
               "text": text, "entities": command_entities(text)}
    data = json.dumps({"update_id": 99, "message": message})
    await state.intake.ingest_updates([(update_key(99, data), data)])
    dead = updates_consumer("dead-replica")
    (entry_id, _, _), = await run_async(state.redis, dead.read(10, block_ms=0))
    await state.redis.xclaim(UPDATES_STREAM, UPDATES_GROUP, "dead-replica", 0, [entry_id], retrycount=runs)
    assert await run_async(state.redis, dead.deliveries(entry_id)) == runs


async def test_an_update_fetched_twice_is_stored_once(redis_url) -> None:
    state = State.from_url(redis_url)
    await state.groups.ensure_groups()
    data = json.dumps({"update_id": 7, "message": {"text": "/poem"}})
    await state.intake.ingest_updates([(update_key(7, data), data)])
    await state.intake.ingest_updates([(update_key(7, data), data)])        # Telegram sent it again
    other = json.dumps({"update_id": 7, "message": {"text": "/help"}})   # ids restart: new content
    await state.intake.ingest_updates([(update_key(7, other), other)])
    assert await state.redis.xlen(UPDATES_STREAM) == 2
    await state.close()


async def test_running_an_update_again_enqueues_and_answers_nothing_new(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)) as app:
        message = {"message_id": 1, "date": 0, "chat": BotApiEmulator.private_chat(ALICE), "from": ALICE,
                   "text": "/poem 春风", "entities": command_entities("/poem 春风")}
        sent = await emu.inject({"message": message})
        first = await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])
        assert "春风" in "".join(verse(first.text))
        state: State = app.bot_data["rt"].state
        await eventually(state.groups.updates_pending, lambda n: n == 0)
        assert await state.redis.xlen(UPDATES_STREAM) == 0          # handled: acknowledged and deleted
        update = Update.de_json(sent, app.bot)

        # As after a crash between handling and acknowledging: the same update runs once more.
        assert await app.bot_data["updates"].process(update, stored(update)[0])
        since = emu.mark()
        await emu.send_text(ALICE, "/help")                  # handled after the re-run's effects
        await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
        assert len(stand_in.jobs) == 1
        assert [c.text for c in emu.find_calls("sendMessage", chat_id=ALICE["id"]) if c.buttons] \
            == [first.text]


async def test_an_update_a_dead_replica_held_is_taken_over(emu, redis_url, stand_in) -> None:
    state = State.from_url(redis_url)
    await held_by_dead_replica(state, ALICE, "/poem 明月")
    async with running_bot(make_config(emu, redis_url, claim_idle_ms=300)):
        poem = await emu.wait_for_call("sendMessage", chat_id=ALICE["id"], timeout=20)
        assert "明月" in "".join(verse(poem.text))
    assert await state.groups.updates_pending() == 0
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
        assert len([c for c in emu.find_calls("sendMessage", chat_id=ALICE["id"]) if "· 《江》<" in c.text]) == 1


@pytest.mark.parametrize("language_code, lang", [("zh-hans", ZH), ("en-US", EN)])
async def test_an_update_that_used_up_its_attempts_is_dropped_with_an_apology(
        emu, redis_url, stand_in, language_code: str, lang: str) -> None:
    user = BotApiEmulator.user(3002, "Bo", language_code=language_code)
    state = State.from_url(redis_url)
    await held_by_dead_replica(state, user, "/poem 明月", runs=MAX_ATTEMPTS)
    async with running_bot(make_config(emu, redis_url, claim_idle_ms=300)):
        apology = await emu.wait_for_call("sendMessage", chat_id=user["id"], timeout=20)
        assert apology.text == t(lang, "gave_up")
        await eventually(state.groups.updates_pending, lambda n: n == 0)
    assert stand_in.jobs == []                      # dropped: not run a sixth time
    assert emu.find_calls("sendMessage", ok=None, chat_id=user["id"]) == [apology]
    await state.close()


@pytest.mark.parametrize("runs, blocked, tries", [(MAX_ATTEMPTS, True, 1), (MAX_ATTEMPTS + 1, False, 0)])
async def test_an_apology_is_tried_once_at_most(emu, redis_url, runs: int, blocked: bool, tries: int) -> None:
    """An apology that fails is not retried, and an update dropped again (its acknowledgement was
    lost after the apology) is not apologised for twice; either way the update is acknowledged."""
    if blocked:
        emu.blocked_chats.add(ALICE["id"])
    state = State.from_url(redis_url)
    await held_by_dead_replica(state, ALICE, "/poem 明月", runs=runs)
    async with running_bot(make_config(emu, redis_url, claim_idle_ms=300)):
        await eventually(state.groups.updates_pending, lambda n: n == 0, timeout=20)
        await asyncio.sleep(1.0)                    # several claim rounds: nothing comes back
    assert len(emu.find_calls("sendMessage", ok=None, chat_id=ALICE["id"])) == tries
    await state.close()
