"""The daily poem's subscribers, the claim of each day's post, and of each chat of a broadcast."""
from __future__ import annotations

from typing import Any

from protocol.keys import DAILY_TTL_S, DELIVERED_TTL_S, SUBSCRIBERS_KEY, daily_key, recipient_key


class Subscribers:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def subscribe(self, chat_id: int, lang: str) -> bool:
        return bool(await self.redis.hset(SUBSCRIBERS_KEY, str(chat_id), lang))

    async def unsubscribe(self, chat_id: int) -> bool:
        return bool(await self.redis.hdel(SUBSCRIBERS_KEY, str(chat_id)))

    async def is_subscribed(self, chat_id: int) -> bool:
        return bool(await self.redis.hexists(SUBSCRIBERS_KEY, str(chat_id)))

    async def subscribers(self) -> dict[int, str]:
        """Subscribed chat id -> the language the subscriber used."""
        return {int(c): lang for c, lang in (await self.redis.hgetall(SUBSCRIBERS_KEY)).items()}

    async def claim_recipient(self, job_id: str, chat_id: int, owner: str | None = None) -> bool:
        """True once per (job, chat): a broadcast resumed by another replica skips chats already sent.
        With owner, also True for the owner's own claim again: its first answer may have been lost
        (a Redis timeout after the SET), and the owner knows which chats it has really sent."""
        key = recipient_key(job_id, chat_id)
        if await self.redis.set(key, owner or "1", nx=True, ex=DELIVERED_TTL_S):
            return True
        return owner is not None and await self.redis.get(key) == owner

    async def release_recipient(self, job_id: str, chat_id: int) -> None:
        await self.redis.delete(recipient_key(job_id, chat_id))

    async def claim_daily(self, date: str, owner: str) -> bool:
        """True for exactly one caller per date, across replicas and restarts."""
        return bool(await self.redis.set(daily_key(date), owner, nx=True, ex=DAILY_TTL_S))
