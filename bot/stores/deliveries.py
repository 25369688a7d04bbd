"""Delivery exactly once: a per-job lease on sending its reply, and the mark that it was sent.

The jobs-in-flight entry (Limits) leaves when the reply is recorded sent."""
from __future__ import annotations

from typing import Any

from bot.stores.leases import Leases
from protocol.keys import DELIVERED_TTL_S, INFLIGHT_KEY, delivered_key
from streams import results_consumer, run_async


class Deliveries:
    def __init__(self, redis: Any, leases: Leases, lease_s: int = 30) -> None:
        self.redis = redis
        self.leases = leases
        self.lease_s = lease_s       # a replica that dies mid-send loses its claim after this

    async def begin_delivery(self, job_id: str, consumer: str) -> str:
        """Claim the right to send job_id's reply: "mine", "sent" (done before) or "busy"
        (another replica holds the lease right now)."""
        if await self.redis.set(delivered_key(job_id), f"sending:{consumer}", nx=True, ex=self.lease_s):
            return "mine"
        return "sent" if await self.redis.get(delivered_key(job_id)) == "sent" else "busy"

    async def finish_delivery(self, job_id: str) -> None:
        """Record job_id's reply sent, then take it off the jobs in flight. The keys sit in different
        Cluster slots, so no MULTI: a replica killed between the two leaves its results entry
        unacknowledged, and whoever reads it again finds it sent and calls forget_inflight."""
        await self.redis.set(delivered_key(job_id), "sent", ex=DELIVERED_TTL_S)
        await self.redis.zrem(INFLIGHT_KEY, job_id)

    async def forget_inflight(self, job_id: str) -> None:
        """Take a job whose reply was recorded sent off the jobs in flight (idempotent): a result read
        again after its delivery, e.g. by a replica that died before acknowledging it."""
        await self.redis.zrem(INFLIGHT_KEY, job_id)

    async def abort_delivery(self, job_id: str) -> None:
        await self.redis.delete(delivered_key(job_id))

    async def renew_delivery(self, job_id: str, consumer: str, entry_id: str) -> bool:
        """Keep job_id's lease (begin_delivery) for consumer another lease_s, and its results entry
        with it, so no replica takes it over; False when the lease is no longer consumer's (another
        replica holds it, or the reply was recorded sent)."""
        held = await self.leases.hold(delivered_key(job_id), f"sending:{consumer}", self.lease_s * 1000)
        if held:
            # Reset the entry's idle time: claim_stale hands out only entries idle past claim_idle_ms.
            await run_async(self.redis, results_consumer(consumer).keep([entry_id]))
        return held

    async def is_delivered(self, job_id: str) -> bool:
        return await self.redis.get(delivered_key(job_id)) == "sent"
