"""Bot replica liveness: a watchdog keeps this replica's record in Redis fresh and says which of its
background tasks died; `poembot health --role bot` reads it (keys: protocol.keys.bot_replica_key).

A replica is named by POEMBOT_CONSUMER_NAME (Runtime.consumer; host-pid by default). The health check
runs in another process on the same host: when the variable is set it reads that replica's record;
when it is not, it cannot know the bot's pid, so it reads every live replica's record from this host.
Either way it fails when there is none, when one is stale, or when one names a dead task.

The watchdog also prunes the bots' consumer groups of replicas that are gone, once a minute across
all replicas (Groups.take_prune_turn, bot/stores/groups.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from protocol import keys

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

# A gone replica's consumer is deleted once idle this long, and never before POEMBOT_CLAIM_IDLE_MS
# (what it held must have been claimed by then); the workers' jobs group waits as long.
PRUNE_IDLE_MIN_MS = 10 * 60_000


def replica_record(rt: Runtime, now: float) -> dict[str, Any]:
    """What the watchdog writes: who this replica is, its background tasks and those that ended."""
    return {"replica": rt.consumer, "host": socket.gethostname(), "pid": os.getpid(), "at": now,
            "tasks": sorted(rt.services), "dead": rt.dead_services()}


async def beat(client: aioredis.Redis, record: dict[str, Any]) -> None:
    """Write record and the replica's entry in the live set, both expiring BOT_ALIVE_TTL_S later."""
    name, now = record["replica"], record["at"]
    # No transaction: the two keys may sit in different Cluster slots; each write stands alone.
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.bot_replica_key(name), json.dumps(record, ensure_ascii=False), ex=keys.BOT_ALIVE_TTL_S)
    pipe.zadd(keys.BOTS_ALIVE_KEY, {name: now})
    pipe.zremrangebyscore(keys.BOTS_ALIVE_KEY, "-inf", f"({keys.bots_alive_since(now)}")
    pipe.expire(keys.BOTS_ALIVE_KEY, keys.BOT_ALIVE_TTL_S)
    await pipe.execute()


async def retire(client: aioredis.Redis, replica: str) -> None:
    """Remove a stopping replica's record, so a process restarted in its place is not judged by it."""
    try:
        await client.zrem(keys.BOTS_ALIVE_KEY, replica)
        await client.delete(keys.bot_replica_key(replica))
    except RedisError as exc:
        log.debug("liveness record left to expire: %s", exc)


async def watch(rt: Runtime, every_s: float = keys.BOT_BEAT_INTERVAL_S) -> None:
    """Write this replica's record every every_s, and at once when one of its services ends; prune
    the consumer groups when it is this replica's turn."""
    reported: set[str] = set()
    while True:
        record = replica_record(rt, time.time())
        for name in sorted(set(record["dead"]) - reported):
            log.error("background task %s is not running: this replica reports itself unhealthy", name)
        reported = set(record["dead"])
        try:
            await beat(rt.state.redis, record)
        except RedisError as exc:
            log.warning("liveness record not written: %s", exc)
        try:
            await prune_if_due(rt)
        except RedisError as exc:
            log.warning("bot consumer groups not pruned: %s", exc)
        running = [task for task in rt.services.values() if not task.done()]
        if running:
            await asyncio.wait(running, timeout=every_s, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(every_s)


async def prune_if_due(rt: Runtime) -> None:
    """Prune the bots' consumer groups when it is this replica's turn (once a minute, any replica)."""
    if not await rt.state.groups.take_prune_turn(rt.consumer):
        return
    gone = await rt.state.groups.prune_consumers(max(rt.claim_idle_ms, PRUNE_IDLE_MIN_MS))
    if gone:
        log.info("pruned the consumers of %d gone bot replicas: %s", len(gone), ", ".join(gone))


def live_records(client: redis.Redis, now: float) -> list[dict[str, Any]]:
    """The records of the bot replicas alive now (one ZRANGEBYSCORE, one MGET; client decodes)."""
    names = client.zrangebyscore(keys.BOTS_ALIVE_KEY, keys.bots_alive_since(now), "+inf")
    if not names:
        return []
    return [json.loads(raw) for raw in client.mget([keys.bot_replica_key(n) for n in names]) if raw]


def replica_problem(client: redis.Redis, replica: str | None, host: str,
                    now: float | None = None) -> str | None:
    """Why this bot replica is unhealthy, or None: replica names it (POEMBOT_CONSUMER_NAME); None means
    the default name host-pid, so every live replica on host is judged. client decodes responses."""
    now = time.time() if now is None else now
    if replica:
        raw = client.get(keys.bot_replica_key(replica))
        records, who = [json.loads(raw)] if raw else [], f"bot replica {replica}"
    else:
        records, who = [r for r in live_records(client, now) if r.get("host") == host], f"bot replica on {host}"
    if not records:
        return f"no liveness record from {who}: not started, or its watchdog stopped"
    for record in records:
        age = now - float(record.get("at") or 0)
        if age > keys.BOT_ALIVE_TTL_S:
            return f"the liveness record of bot replica {record.get('replica')} is stale ({age:.0f} s old)"
        if record.get("dead"):
            return (f"bot replica {record.get('replica')}: background task not running: "
                    f"{', '.join(record['dead'])}")
    return None
