"""Every Redis key poembot writes either expires or is a stream, hash or set with a stated bound
(protocol.keys.BOUNDED): after an end-to-end run through the emulator with the real bot and the real
worker, a SCAN lists every key and each must have a TTL or be declared bounded. A new key with
neither fails here.
"""
from __future__ import annotations

import fnmatch
from typing import Any

import redis.asyncio as aioredis

from bot import callbacks
from bot.state import State
from botkit import emu, eventually, make_config, running_bot, start_worker, synthetic_index  # noqa: F401
from devtools.emulator import BotApiEmulator
from protocol import keys

ALICE = BotApiEmulator.user(6001, "Alice")
BOB = BotApiEmulator.user(6002, "Bob", language_code="en")
POEM_TIMEOUT = 90.0      # the first decode traces a tf.function on a busy 2-core CPU


async def ask(emu: BotApiEmulator, user: dict, text: str, timeout: float = POEM_TIMEOUT) -> Any:
    since = emu.mark()
    message = await emu.send_text(user, text)
    return await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"], timeout=timeout)


async def key_report(client: aioredis.Redis) -> dict[str, tuple[str, int]]:
    """Every key in Redis -> (its type, its TTL in seconds: -1 when it has none)."""
    return {key: (await client.type(key), await client.ttl(key)) async for key in client.scan_iter(count=500)}


def unbounded(report: dict[str, tuple[str, int]]) -> list[str]:
    """The keys with neither a TTL nor a BOUNDED entry of their type."""
    out = []
    for key, (kind, ttl) in sorted(report.items()):
        bound = keys.bound_of(key)
        if ttl > 0 or (bound is not None and bound.type == kind):
            continue
        out.append(f"{key} ({kind}, ttl {ttl})")
    return out


async def test_every_key_of_an_end_to_end_run_expires_or_is_bounded(emu, redis_url, start_worker) -> None:
    start_worker()
    async with running_bot(make_config(emu, redis_url), index=synthetic_index()) as app:
        poem = await ask(emu, ALICE, "/poem 五绝 明月")
        assert "明月" in poem.text
        answer = await emu.press_and_answer(ALICE, poem, poem.button("喜欢")["callback_data"])
        assert answer.params["text"] == "已收藏 ❤️"
        taste = await ask(emu, ALICE, "/similar", timeout=20)
        assert "与你的口味相近" in taste.text
        menu = await ask(emu, ALICE, "/settings", timeout=20)
        answer = await emu.press_and_answer(ALICE, menu, callbacks.setting("script", "t"))
        assert answer.params["text"] == "已保存。"
        subscribed = await ask(emu, BOB, "/daily on", timeout=20)
        assert subscribed.text
        since = emu.mark()
        query_id = await emu.inline_query(BOB, "明月")
        await emu.wait_for_call("answerInlineQuery", since=since, inline_query_id=query_id, timeout=30)
        state: State = app.bot_data["rt"].state
        await eventually(state.groups.updates_pending, lambda n: n == 0)
        # The updates stream keeps only what is not yet acknowledged (the bound holds while replicas run).
        assert await state.redis.xlen(keys.UPDATES_STREAM) == 0

    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        report = await key_report(client)
    finally:
        await client.aclose()
    assert unbounded(report) == []
    # The run wrote what it should have, so the check above looked at every kind of key.
    for pattern in (keys.user_key(ALICE["id"], "*"), keys.poem_key("*"), keys.JOBS_STREAM, keys.SUBSCRIBERS_KEY,
                    keys.UPDATES_STREAM, keys.heartbeat_key("*"), keys.inline_cache_key("*")):
        assert fnmatch.filter(report, pattern), f"no key {pattern} after the run"
    kinds = {key.rsplit(":", 1)[1] for key in fnmatch.filter(report, keys.user_key(ALICE["id"], "*"))}
    assert kinds >= {"history", "likes", "settings", "shown"}
    for key in fnmatch.filter(report, keys.user_key("*", "*")):
        assert report[key][1] <= keys.USER_TTL_S


async def test_a_users_keys_live_on_while_they_are_used(redis_url) -> None:
    """Per-user keys expire USER_TTL_S after their last use: a read for the user's request renews them."""
    state = State.from_url(redis_url)
    try:
        await state.users.set_setting(7, "script", "t")
        await state.users.add_history(7, "p1", None)
        await state.users.add_like(7, "p1", None)
        await state.users.mark_shown(7, ["c1"])
        names = [keys.user_key(7, what) for what in ("settings", "history", "likes", "shown")]
        for name in names:
            assert keys.USER_TTL_S - 5 < await state.redis.ttl(name) <= keys.USER_TTL_S
            await state.redis.expire(name, 100)         # as if last used USER_TTL_S - 100 s ago
        assert (await state.users.settings(7)).traditional
        assert [h["pid"] for h in await state.users.history(7)] == ["p1"]
        assert list(await state.users.likes(7)) == ["p1"]
        assert await state.users.shown(7) == {"c1"}
        for name in names:
            assert await state.redis.ttl(name) > keys.USER_TTL_S - 5
    finally:
        await state.close()


def test_bounded_keys_are_named_in_keys_and_fixed() -> None:
    """BOUNDED names whole keys (no per-id families: those must expire) of the types that can grow."""
    assert keys.BOUNDED
    for name, bound in keys.BOUNDED.items():
        assert name.startswith(keys.PREFIX) and bound.type in ("stream", "hash", "zset", "set") and bound.why
    assert keys.bound_of(keys.user_key(1, "likes")) is None


def test_lua_scripts_get_their_keys_from_keys() -> None:
    """No script glues a key name together (a cluster routes a script by the KEYS it is given, so a
    name built inside could live on another node); test_cluster.py runs them all on a cluster."""
    import importlib
    import pkgutil

    import bot.stores
    import streams
    modules = [importlib.import_module(f"{package.__name__}.{m.name}")
               for package in (bot.stores, streams) for m in pkgutil.iter_modules(package.__path__)]
    scripts = {f"{module.__name__}.{name}": text for module in modules
               for name, text in vars(module).items() if name.endswith("_LUA")}
    assert len(scripts) >= 8
    assert [name for name, text in scripts.items() if ".." in text] == []
