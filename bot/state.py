"""The bot's Redis state: one client, and a store per concern over it (bot/stores/), wired here once.

Every key name, TTL and cap comes from protocol.keys; every replica shares this state.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.stores.deliveries import Deliveries
from bot.stores.groups import Groups
from bot.stores.intake import Intake
from bot.stores.leases import Leases
from bot.stores.limits import Limits
from bot.stores.poems import Poems
from bot.stores.styles import StyleCache
from bot.stores.subscribers import Subscribers
from bot.stores.users import Users
from bot.stores.workers import Workers
from protocol.connections import Backoff, connect_async

log = logging.getLogger(__name__)


async def retry_redis(step: Callable[[], Awaitable[Any]], what: str, patience_s: float) -> None:
    """Run step, retrying while Redis is away for up to patience_s, then give up with its error.

    For writes that must not be skipped and must not cause the work before them to be redone:
    recording a reply that has gone out, acknowledging an update whose handlers ran."""
    loop = asyncio.get_running_loop()
    deadline, delays = loop.time() + patience_s, Backoff()
    while True:
        try:
            await step()
            return
        except RedisError as exc:
            if loop.time() > deadline:
                raise
            log.warning("could not record %s yet: %s", what, exc)
            await asyncio.sleep(delays.next_delay())


class State:
    """The bot's stores over one Redis client; one instance per process, shared by handlers."""

    def __init__(self, redis: aioredis.Redis, poem_ttl_s: int = 7 * 24 * 3600,
                 history_cap: int = 50, delivery_lease_s: int = 30) -> None:
        self.redis = redis
        leases = Leases(redis)
        self.limits = Limits(redis)
        self.deliveries = Deliveries(redis, leases, delivery_lease_s)
        self.poems = Poems(redis, poem_ttl_s)
        self.users = Users(redis, history_cap)
        self.subscribers = Subscribers(redis)
        self.style_cache = StyleCache(redis)
        self.intake = Intake(redis, leases)
        self.workers = Workers(redis)
        self.groups = Groups(redis)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "State":
        return cls(connect_async(url, decode_responses=True), **kwargs)

    async def close(self) -> None:
        await self.redis.aclose()
