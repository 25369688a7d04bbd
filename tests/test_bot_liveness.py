"""Bot replica liveness (bot/liveness.py): `poembot health --role bot` passes while every background
task of the replica runs, and fails, naming the task, once one of them dies; the bots' consumer groups
lose the consumers of replicas that are gone.

Real bot, emulator and Redis; the health check runs as a container runs it, in another process.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
import redis

from bot import liveness
from bot.liveness import replica_problem
from bot.state import State
from protocol.keys import RESULTS_GROUP, UPDATES_GROUP, UPDATES_STREAM
from botkit import emu, eventually, make_config, running_bot  # noqa: F401
from protocol import keys
from protocol.jobs import Result, result_fields
from devtools.procs import ROOT, child_env

GROUPS = ((UPDATES_STREAM, UPDATES_GROUP), (keys.RESULTS_STREAM, RESULTS_GROUP))


async def health(redis_url: str, replica: str | None) -> tuple[int, str]:
    """`poembot health --role bot` in a process of its own: exit status and output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "poembot_cli", "health", "--role", "bot", cwd=ROOT,
        env=child_env(REDIS_URL=redis_url, POEMBOT_CONSUMER_NAME=replica),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def kill(task: asyncio.Task) -> None:
    """Cancel task until it ends (a cancel landing inside a redis-py read can be swallowed)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)


# replica None: the default name (host-pid), which the health check matches by host.
@pytest.mark.parametrize("service, replica", [("poller", "replica-a"), ("updates", None), ("results", "replica-a"),
                                              ("broadcast", None)])
async def test_health_fails_once_a_background_task_dies(emu, redis_url, service: str,
                                                        replica: str | None) -> None:
    code, out = await health(redis_url, replica)
    assert code != 0 and "no liveness record" in out, out          # no bot running yet
    async with running_bot(make_config(emu, redis_url, consumer_name=replica)) as app:
        rt = app.bot_data["rt"]
        code, out = await health(redis_url, replica)
        assert code == 0, out
        await kill(rt.services[service])
        code, out = await eventually(lambda: health(redis_url, replica), lambda r: r[0] != 0, timeout=20)
        assert f"background task not running: {service}" in out, out
    # A clean stop takes the record with it.
    assert not await rt.state.redis.exists(keys.bot_replica_key(rt.consumer))


def test_a_stale_or_foreign_record_does_not_count(redis_url) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    now = time.time()
    record = {"replica": "r1", "host": "h1", "pid": 1, "at": now - 60, "tasks": ["updates"], "dead": []}
    client.set(keys.bot_replica_key("r1"), json.dumps(record))      # as if it had not expired
    client.zadd(keys.BOTS_ALIVE_KEY, {"r1": now - 60})
    assert "stale" in replica_problem(client, "r1", "h1", now)
    assert "no liveness record" in replica_problem(client, None, "h1", now)
    record["at"] = now
    client.set(keys.bot_replica_key("r1"), json.dumps(record))
    client.zadd(keys.BOTS_ALIVE_KEY, {"r1": now})
    assert replica_problem(client, "r1", "h1", now) is None
    assert replica_problem(client, None, "h1", now) is None
    assert "no liveness record" in replica_problem(client, None, "h2", now)   # another host's replica
    client.close()


async def consumers(state: State) -> dict[str, set[str]]:
    """The consumer names of each bot group, by stream."""
    return {stream: {c["name"] for c in await state.redis.xinfo_consumers(stream, group)}
            for stream, group in GROUPS}


async def test_consumers_of_gone_replicas_are_pruned(redis_url) -> None:
    """Only a consumer that is not a live replica, holds nothing and has been idle long enough goes."""
    state = State.from_url(redis_url)
    await state.groups.ensure_groups()
    data = json.dumps({"update_id": 1})
    await state.intake.ingest_updates([("1-x", data)])
    await state.redis.xadd(keys.RESULTS_STREAM, result_fields(Result(job_id="j1", ok=True)))
    # "gone" holds nothing and is no live replica; "holding" has an entry pending; "alive" beats.
    for stream, group in GROUPS:
        await state.redis.xgroup_createconsumer(stream, group, "gone")
        await state.redis.xgroup_createconsumer(stream, group, "alive")
        await state.redis.xreadgroup(group, "holding", {stream: ">"}, count=1)
    await state.redis.zadd(keys.BOTS_ALIVE_KEY, {"alive": time.time()})
    assert await state.groups.prune_consumers(idle_ms=10**9) == []           # nobody idle that long
    assert sorted(await state.groups.prune_consumers(idle_ms=0)) == sorted(f"{s}/gone" for s, _ in GROUPS)
    assert await consumers(state) == {stream: {"holding", "alive"} for stream, _ in GROUPS}
    # Once a minute across replicas: the first to ask takes the turn.
    assert await state.groups.take_prune_turn("replica-a")
    assert not await state.groups.take_prune_turn("replica-b")
    assert 0 < await state.redis.ttl(keys.BOT_PRUNE_KEY) <= keys.BOT_PRUNE_EVERY_S
    await state.close()


async def test_a_running_bot_prunes_a_gone_replica(emu, redis_url, monkeypatch) -> None:
    monkeypatch.setattr(liveness, "PRUNE_IDLE_MIN_MS", 0)       # idle past POEMBOT_CLAIM_IDLE_MS is enough
    state = State.from_url(redis_url)
    await state.groups.ensure_groups()
    for stream, group in GROUPS:
        await state.redis.xgroup_createconsumer(stream, group, "gone-replica")
    await asyncio.sleep(0.5)                                      # idle past claim_idle_ms below
    async with running_bot(make_config(emu, redis_url, claim_idle_ms=300)):
        await eventually(lambda: consumers(state), lambda c: all("gone-replica" not in n for n in c.values()))
    await state.close()
