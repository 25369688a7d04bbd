"""The update intake's state: the updates stream's writer and the polling lease (bot.ingest)."""
from __future__ import annotations

from typing import Any

from bot.stores.leases import Leases
from protocol.keys import POLLER_KEY
from streams import run_async, store_updates


class Intake:
    def __init__(self, redis: Any, leases: Leases) -> None:
        self.redis = redis
        self.leases = leases

    async def ingest_updates(self, updates: list[tuple[str, str]]) -> None:
        """Store (key, JSON) pairs (bot.ingest.stored) in the updates stream, each key once."""
        await run_async(self.redis, store_updates(updates))

    async def hold_poller_lease(self, owner: str, lease_ms: int) -> bool:
        return await self.leases.hold(POLLER_KEY, owner, lease_ms)

    async def poller_lease_holder(self) -> str | None:
        """Who holds the polling lease now (a read: it answers while Redis refuses writes)."""
        holder = await self.redis.get(POLLER_KEY)
        return holder.decode() if isinstance(holder, bytes) else holder

    async def release_poller_lease(self, owner: str) -> None:
        await self.leases.release(POLLER_KEY, owner)
