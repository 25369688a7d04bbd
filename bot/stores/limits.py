"""Admission: the per-user sliding-window rate limit and the global cap on jobs in flight."""
from __future__ import annotations

import secrets
import time
from typing import Any

from protocol.keys import INFLIGHT_KEY, INFLIGHT_STALE_S, RATE_WINDOW_S, rate_key

# Sliding-window limiter: drop old entries, count, and either refuse with the wait or record.
_RATE_LUA = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZSCORE', key, ARGV[4]) then return '0' end
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('EXPIRE', key, math.ceil(window) + 1)
return '0'
"""

# Global cap on jobs in flight: same shape, keyed by job id, entries leave on delivery.
_RESERVE_LUA = """
local key, now, stale, cap = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - stale)
if redis.call('ZSCORE', key, ARGV[4]) then return 1 end
if redis.call('ZCARD', key) >= cap then return 0 end
redis.call('ZADD', key, now, ARGV[4])
return 1
"""


class Limits:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._rate = redis.register_script(_RATE_LUA)
        self._reserve = redis.register_script(_RESERVE_LUA)

    async def check_rate(self, user_id: int, per_min: int, now: float | None = None,
                         request_id: str | None = None, key: str | None = None) -> float:
        """Record one request; 0 when allowed, else seconds until the user may ask again.

        A request_id already counted (the same update run again) is allowed without counting twice.
        key: another limit's counter (inline queries have their own), rate_key(user_id) by default."""
        now = time.time() if now is None else now
        member = request_id or f"{now:.6f}-{secrets.token_hex(3)}"
        wait = await self._rate(keys=[key or rate_key(user_id)], args=[now, RATE_WINDOW_S, per_min, member])
        return max(0.0, float(wait))

    async def reserve_slot(self, job_id: str, cap: int, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return bool(await self._reserve(keys=[INFLIGHT_KEY], args=[now, INFLIGHT_STALE_S, cap, job_id]))

    async def track_inflight(self, job_id: str, now: float | None = None) -> None:
        """Count a job against the cap without asking (for jobs that must not be refused)."""
        await self.redis.zadd(INFLIGHT_KEY, {job_id: time.time() if now is None else now})

    async def inflight(self) -> int:
        return int(await self.redis.zcard(INFLIGHT_KEY))
