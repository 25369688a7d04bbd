"""The daily poem: subscription, firing at an injected time, once per day across replicas and restarts.

Real bot code against the emulator, real Redis, and the stand-in worker for the poems.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError

from bot.daily import DAILY_JOB_NAME, due_slot, fire_daily
from bot.state import State
from botkit import (card_fonts, emu, make_config, running_bot, stand_in,  # noqa: F401
                    StandInWorker, eventually)
from devtools.emulator import BotApiEmulator, check_html, png_size
from protocol.keys import JOBS_STREAM, RESULTS_GROUP, RESULTS_STREAM, SUBSCRIBERS_KEY

ALICE = BotApiEmulator.user(2001, "Alice")
BOB = BotApiEmulator.user(2002, "Bob", language_code="en")
CAROL = BotApiEmulator.user(2003, "Carol")
ADMIN = BotApiEmulator.user(900, "Admin")
CHANNEL = -100777
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Two hours from the real now, so a bot starting during the test never finds the slot due.
SLOT = (datetime.now(SHANGHAI) + timedelta(hours=2)).time().replace(second=0, microsecond=0)


def at(minutes_after_slot: int, day: int = 15) -> datetime:
    """An injected 'now': minutes after (or before, if negative) the slot on 2026-05-day, Shanghai."""
    return datetime.combine(datetime(2026, 5, day).date(), SLOT, tzinfo=SHANGHAI) + timedelta(minutes=minutes_after_slot)


async def jobs_in_stream(state: State) -> int:
    return int(await state.redis.xlen(JOBS_STREAM))


async def test_due_slot_and_firing_with_injected_time(emu, redis_url) -> None:
    config = make_config(emu, redis_url, daily_time=SLOT, tz="Asia/Shanghai", daily_grace_s=3600)
    async with running_bot(config) as app:
        rt = app.bot_data["rt"]
        job = app.job_queue.get_jobs_by_name(DAILY_JOB_NAME)[0]
        assert job.next_t.astimezone(SHANGHAI).time() == SLOT

        assert due_slot(rt, at(-1)) is None
        assert due_slot(rt, at(0)) == at(0)
        assert due_slot(rt, at(60)) == at(0)      # within the grace window
        assert due_slot(rt, at(61)) is None
        # The same instant written in UTC is the same slot.
        assert due_slot(rt, at(15).astimezone(ZoneInfo("UTC"))) == at(0)
        # A grace window that runs past midnight still belongs to the day before.
        rt.config = rt.config.model_copy(update={"daily_grace_s": 26 * 3600})
        assert due_slot(rt, at(24 * 60 - 1)) == at(0)
        rt.config = rt.config.model_copy(update={"daily_grace_s": 3600})

        state = rt.state
        before = await jobs_in_stream(state)
        assert await fire_daily(rt, at(-1)) is False
        assert await fire_daily(rt, at(0)) is True
        assert await fire_daily(rt, at(1)) is False          # claimed already today
        assert await fire_daily(rt, at(0, day=16)) is True    # tomorrow is a new day
        assert await fire_daily(rt, at(90, day=17)) is False    # too late: past the grace window
        assert await jobs_in_stream(state) == before + 2


async def test_subscribers_and_channel_receive_the_daily_poem(emu, redis_url, stand_in, card_fonts) -> None:
    config = make_config(emu, redis_url, daily_time=SLOT, tz="Asia/Shanghai", daily_chat_id=CHANNEL)
    async with running_bot(config) as app:
        await emu.send_text(ALICE, "/daily on")
        assert f"已订阅每日一诗，每天 {SLOT:%H:%M}" in (await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])).text

        await emu.send_text(BOB, "/daily")
        status = await emu.wait_for_call("sendMessage", chat_id=BOB["id"])
        assert "do not get" in status.text
        answer = await emu.press_and_answer(BOB, status, status.button("Subscribe")["callback_data"])
        assert "Subscribed" in answer.params["text"]

        # Carol subscribes, then blocks the bot: she is dropped at the first failed delivery.
        await emu.send_text(CAROL, "/daily 订阅")
        await emu.wait_for_call("sendMessage", chat_id=CAROL["id"])
        emu.blocked_chats.add(CAROL["id"])
        rt = app.bot_data["rt"]
        assert set(await rt.state.subscribers.subscribers()) == {ALICE["id"], BOB["id"], CAROL["id"]}

        since = emu.mark()
        assert await fire_daily(rt, at(0, day=20)) is True
        posts = await emu.wait_for_calls("sendPhoto", 3, since=since)      # the card, the text its caption
        by_chat = {c.params["chat_id"]: c for c in posts}
        assert set(by_chat) == {ALICE["id"], BOB["id"], CHANNEL}
        uploads = [c for c in posts if isinstance(c.params["photo"], bytes)]
        assert len(uploads) == 1 and png_size(uploads[0].params["photo"])     # uploaded once, then its file_id
        assert all(c.params["photo"] == uploads[0].result["photo"][-1]["file_id"] for c in posts if c not in uploads)
        assert "每日一诗 · 2026-05-20" in by_chat[ALICE["id"]].text
        assert "Poem of the day · 2026-05-20" in by_chat[BOB["id"]].text
        assert all(check_html(c.text) is None for c in posts)
        assert by_chat[ALICE["id"]].text.split("\n", 1)[1] == by_chat[CHANNEL].text.split("\n", 1)[1]
        await eventually(rt.state.subscribers.subscribers, lambda subs: CAROL["id"] not in subs)

        # Anyone may like the daily poem (it belongs to no one).
        answer = await emu.press_and_answer(ALICE, by_chat[ALICE["id"]],
                                            by_chat[ALICE["id"]].button("喜欢")["callback_data"])
        assert answer.params["text"] == "已收藏 ❤️"

        await emu.send_text(ALICE, "/daily off")
        assert "已退订" in (await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])).text
        assert ALICE["id"] not in await rt.state.subscribers.subscribers()


async def test_without_card_fonts_the_daily_poem_goes_as_text(emu, redis_url, stand_in, tmp_path,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("POEMBOT_FONT_DIR", str(tmp_path))          # nothing fetched there
    # The slot and zone at() speaks in: with make_config's (UTC, an hour from now) the injected
    # instant fell on 05-21 in UTC whenever the test ran between 14:00 and 22:00 UTC.
    config = make_config(emu, redis_url, daily_time=SLOT, tz="Asia/Shanghai", daily_chat_id=CHANNEL)
    async with running_bot(config) as app:
        since = emu.mark()
        assert await fire_daily(app.bot_data["rt"], at(0, day=22)) is True
        post = await emu.wait_for_call("sendMessage", since=since, chat_id=CHANNEL)
        assert "每日一诗 · 2026-05-22" in post.text and post.button("喜欢")
        assert not emu.find_calls("sendPhoto", since)


async def test_two_replicas_firing_the_same_slot_post_once(emu, redis_url, stand_in, card_fonts) -> None:
    base = make_config(emu, redis_url, daily_time=SLOT, tz="Asia/Shanghai", daily_chat_id=CHANNEL)
    async with running_bot(base.model_copy(update={"consumer_name": "replica-a"})) as a, \
            running_bot(base.model_copy(update={"consumer_name": "replica-b"})) as b:
        since = emu.mark()
        fired = await asyncio.gather(fire_daily(a.bot_data["rt"], at(0, day=21)),
                                     fire_daily(b.bot_data["rt"], at(1, day=21)),
                                     fire_daily(b.bot_data["rt"], at(0, day=21)))
        assert sorted(fired) == [False, False, True]
        await emu.wait_for_call("sendPhoto", since=since, chat_id=CHANNEL)
        # Both consumers drained the results stream before we count.
        state = a.bot_data["rt"].state
        await eventually(lambda: state.redis.xpending(RESULTS_STREAM, RESULTS_GROUP), lambda p: p["pending"] == 0)
        assert len(emu.find_calls("sendPhoto", since, chat_id=CHANNEL)) == 1
        assert len([j for j in stand_in.jobs if j.reply.get("purpose") == "daily"]) == 1


async def test_replica_started_after_a_missed_slot_posts_once(emu, redis_url, stand_in, card_fonts) -> None:
    # A zone where it is daytime now, so "ten minutes ago" is still today.
    now_utc = datetime.now(ZoneInfo("UTC"))
    tz = next(z for z in ("UTC", "Etc/GMT-12", "Etc/GMT+12")
              if 1 <= now_utc.astimezone(ZoneInfo(z)).hour <= 22)
    missed = (now_utc.astimezone(ZoneInfo(tz)) - timedelta(minutes=10)).time().replace(second=0, microsecond=0)
    config = make_config(emu, redis_url, daily_time=missed, tz=tz, daily_chat_id=CHANNEL)
    since = emu.mark()
    async with running_bot(config):
        post = await emu.wait_for_call("sendPhoto", since=since, chat_id=CHANNEL)
        assert daily_heading(stand_in) in post.text
    # A restart the same day does not post again.
    async with running_bot(config) as app:
        rt = app.bot_data["rt"]
        assert await fire_daily(rt) is False
    assert len(emu.find_calls("sendPhoto", since, chat_id=CHANNEL)) == 1
    assert len([j for j in stand_in.jobs if j.reply.get("purpose") == "daily"]) == 1


async def test_daily_now_is_for_admins_only(emu, redis_url, stand_in, card_fonts) -> None:
    config = make_config(emu, redis_url, daily_chat_id=CHANNEL)
    async with running_bot(config):
        await emu.send_text(ALICE, "/daily_now")
        assert "只有管理员" in (await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])).text
        assert not stand_in.jobs

        since = emu.mark()
        await emu.send_text(ADMIN, "/daily_now")
        assert "已安排" in (await emu.wait_for_call("sendMessage", since=since, chat_id=ADMIN["id"])).text
        post = await emu.wait_for_call("sendPhoto", since=since, chat_id=CHANNEL)
        assert daily_heading(stand_in) in post.text


def daily_heading(stand_in: StandInWorker) -> str:
    """The heading of today's daily post (these tests run on any day: on Sundays it is a 词's)."""
    job = [j for j in stand_in.jobs if j.reply.get("purpose") == "daily"][-1]
    return "每日一词" if job.tune else "每日一诗"


async def subscribe_many(state: State, first_chat_id: int, n: int) -> set[int]:
    """n subscribers written straight into Redis (as /daily on would leave them), half in English."""
    chats = range(first_chat_id, first_chat_id + n)
    await state.redis.hset(SUBSCRIBERS_KEY, mapping={str(c): "en" if c % 2 else "zh" for c in chats})
    return set(chats)


def daily_posts(emu: BotApiEmulator, since: int, chats: set[int]) -> Counter[int]:
    """How many daily posts (card or text) each of chats got since the mark."""
    return Counter(c.params["chat_id"] for m in ("sendMessage", "sendPhoto")
                   for c in emu.find_calls(m, since) if c.params["chat_id"] in chats)


async def broadcast_while_asked(emu: BotApiEmulator, redis_url: str, stand_in: Any, n: int) -> dict[str, Any]:
    """Broadcast a daily poem to n subscribers (written straight into Redis) as fast as the emulator
    takes it; once it has begun, a user asks for a poem. Asserts that the reply came while the
    broadcast was still going (by order in the emulator's log) and that every subscriber got one post;
    returns the figures. (The caller's test points POEMBOT_FONT_DIR at nothing: text posts.)"""
    # Telegram's 30 sends/s would make 10,000 posts take six minutes: the emulator takes any rate.
    config = make_config(emu, redis_url, daily_time=SLOT, tz="Asia/Shanghai", send_per_s=100_000)
    async with running_bot(config) as app:
        rt = app.bot_data["rt"]
        subscribers = await subscribe_many(rt.state, 10_000_000, n)
        since = emu.mark()
        began = time.monotonic()
        assert await fire_daily(rt, at(0, day=23)) is True
        await emu.wait_for_call("sendMessage", since=since, timeout=60,
                                where=lambda c: c.params["chat_id"] in subscribers)     # it has begun
        asked, asked_at = emu.mark(), time.monotonic()
        await emu.send_text(ALICE, "/poem 春风")
        reply = await emu.wait_for_call("sendMessage", since=asked, chat_id=ALICE["id"], timeout=120)
        replied_at = time.monotonic()
        daily_id = next(j.job_id for j in stand_in.jobs if j.reply.get("purpose") == "daily")
        # Many seconds on a busy machine: each post goes through PTB, HTTP and the emulator, and its
        # chat's marker to an fsync-always Redis (slow answers from it the broadcast survives, and so
        # does this wait).
        await eventually(lambda: rt.state.deliveries.is_delivered(daily_id), bool, timeout=600, every=0.5,
                         tolerate=(RedisError,))
        ended = time.monotonic()
    posts = daily_posts(emu, since, subscribers)
    assert set(posts) == subscribers and set(posts.values()) == {1}
    broadcast = [c.seq for c in emu.find_calls("sendMessage", since) if c.params["chat_id"] in subscribers]
    assert reply.seq < max(broadcast), "the /poem reply waited for the whole broadcast"
    return {"subscribers": n, "broadcast_s": round(ended - began, 1),
            "poem_reply_s": round(replied_at - asked_at, 2),
            "posts_before_the_reply": sum(seq < reply.seq for seq in broadcast)}


async def test_a_broadcast_does_not_hold_up_poem_replies(emu, redis_url, stand_in, tmp_path, monkeypatch) -> None:
    # 1,000 chats keep it to seconds here; tests/robustness/test_broadcast.py sends to 10,000.
    monkeypatch.setenv("POEMBOT_FONT_DIR", str(tmp_path))
    await broadcast_while_asked(emu, redis_url, stand_in, 1000)


async def test_a_broadcast_stopped_halfway_is_finished_by_another_replica_once_per_chat(
        emu, redis_url, stand_in, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("POEMBOT_FONT_DIR", str(tmp_path))
    # Telegram's pace (the broadcast's share: 20 sends/s), so 200 chats take ten seconds.
    config = make_config(emu, redis_url, daily_time=SLOT, tz="Asia/Shanghai", claim_idle_ms=1000)
    since = emu.mark()
    async with running_bot(config.model_copy(update={"consumer_name": "replica-a"})) as a:
        subscribers = await subscribe_many(a.bot_data["rt"].state, 20_000_000, 200)
        assert await fire_daily(a.bot_data["rt"], at(0, day=24)) is True
        await emu.wait_for_calls("sendMessage", 10, since=since, timeout=60)
    sent_by_a = daily_posts(emu, since, subscribers)
    assert 10 <= sum(sent_by_a.values()) < len(subscribers), "the stop came after the broadcast's end"
    async with running_bot(config.model_copy(update={"consumer_name": "replica-b"})) as b:
        daily_id = next(j.job_id for j in stand_in.jobs if j.reply.get("purpose") == "daily")
        await eventually(lambda: b.bot_data["rt"].state.deliveries.is_delivered(daily_id), bool, timeout=120, every=0.2,
                         tolerate=(RedisError,))
    posts = daily_posts(emu, since, subscribers)
    assert set(posts) == subscribers and set(posts.values()) == {1}


def test_test_config_slot_is_an_hour_away_in_any_machine_time_zone(monkeypatch) -> None:
    """botkit.make_config's daily slot must be an hour off in the config's own zone, so the daily
    tests hold on a machine west (or east) of UTC too."""
    try:
        for zone in ("America/Los_Angeles", "Asia/Shanghai", "UTC"):
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            config = make_config(BotApiEmulator(), "redis://unused")
            now = datetime.now(ZoneInfo(config.tz))
            slot = now.replace(hour=config.daily_time.hour, minute=config.daily_time.minute)
            gap_min = ((slot - now).total_seconds() / 60) % (24 * 60)
            assert 55 <= gap_min <= 61, (zone, config.daily_time, now)
    finally:
        monkeypatch.undo()
        time.tzset()
