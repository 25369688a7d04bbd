"""The bot replicas' consumer groups (updates and results) and the jobs group they feed: created at
start, counted, and pruned of replicas that are gone. Reading them is streams.consumer's."""
from __future__ import annotations

import time
from typing import Any

from protocol.keys import BOT_PRUNE_EVERY_S, BOT_PRUNE_KEY, BOTS_ALIVE_KEY, bots_alive_since
from streams import StreamConsumer, jobs_consumer, results_consumer, run_async, updates_consumer


def bot_groups(consumer: str) -> tuple[StreamConsumer, StreamConsumer]:
    """consumer's place in the updates and the results group."""
    return updates_consumer(consumer), results_consumer(consumer)


class Groups:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def ensure_groups(self) -> None:
        """Create the workers' group on the jobs stream (so jobs queued before any worker ran are
        served) and the bots' groups on the results (new results only) and updates streams."""
        for group in (jobs_consumer(""), *bot_groups("")):
            await run_async(self.redis, group.ensure_group())

    async def updates_pending(self) -> int:
        return await run_async(self.redis, updates_consumer("").pending())

    async def take_prune_turn(self, owner: str) -> bool:
        """True for one caller per BOT_PRUNE_EVERY_S across replicas: its turn to prune the groups."""
        return bool(await self.redis.set(BOT_PRUNE_KEY, owner, nx=True, ex=BOT_PRUNE_EVERY_S))

    async def prune_consumers(self, idle_ms: int) -> list[str]:
        """Delete the updates and results groups' consumers of bot replicas that are gone (not in
        BOTS_ALIVE_KEY; streams.consumer.gone_consumers). Returns "stream/name"s."""
        alive = await self.redis.zrangebyscore(BOTS_ALIVE_KEY, bots_alive_since(time.time()), "+inf")
        gone = []
        for group in bot_groups(""):
            gone += [f"{group.stream}/{name}" for name in await run_async(self.redis, group.prune(alive, idle_ms))]
        return gone
