"""Redis connections, and what tools and tests read: results, live workers, the queue's depth.

redis-py only (no TensorFlow): the bot, the worker, the tests and the benchmarks share these helpers.
The streams are written and read in groups by the streams package (enqueue, consumers).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Iterable

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from protocol import keys
from protocol.jobs import Result, result_from_fields

SOCKET_TIMEOUT_S = 15.0        # above any BLOCK bot or worker uses (1 s), so a blocked read is not cut short
CONNECT_TIMEOUT_S = 3.0
HEALTH_CHECK_S = 15            # an idle connection is PINGed before reuse after this long


def redis_url(url: str | None = None) -> str:
    """url, else REDIS_URL (validated: ConfigError names it), else the local default."""
    from protocol.settings import RedisSettings

    return url or RedisSettings.from_env().redis_url


# A Redis Cluster is named by any of its nodes with these schemes (redis+cluster://host:6379): the
# clients below are then cluster clients, which find the other nodes and route each key to its slot.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(url: str) -> str | None:
    """The plain redis:// (rediss://) URL of a node when url names a Redis Cluster, else None."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    return f"{plain}://{rest}" if plain else None


def client_options(for_asyncio: bool = False, **kwargs) -> dict:
    """What every client of bot and worker gets: timeouts, so a half-open connection cannot stall a
    (blocking) read forever; a health check of idle connections; and a couple of quick retries with
    jittered exponential backoff for a dropped connection (a command the server may have run is only
    retried where that is safe: enqueueing and publishing are deduplicated by job id). Callers back off
    longer themselves when Redis stays away."""
    retry = (AsyncRetry if for_asyncio else Retry)(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 2)
    options = dict(socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S,
                   health_check_interval=HEALTH_CHECK_S, retry=retry)
    options.update(kwargs)
    return options


def connect(url: str | None = None, **kwargs) -> redis.Redis | RedisCluster:
    """The worker's (and tools') client; a cluster client for a redis+cluster:// URL."""
    options = client_options(**kwargs)
    url = redis_url(url)
    node = cluster_url(url)
    return RedisCluster.from_url(node, **options) if node else redis.Redis.from_url(url, **options)


def connect_async(url: str | None = None, **kwargs) -> aioredis.Redis | AsyncRedisCluster:
    """The asyncio client for url (the bot's), with the same options; a cluster client for a
    redis+cluster:// URL."""
    options = client_options(for_asyncio=True, **kwargs)
    url = redis_url(url)
    node = cluster_url(url)
    return AsyncRedisCluster.from_url(node, **options) if node else aioredis.from_url(url, **options)


def refuses_writes(exc: BaseException) -> bool:
    """Whether a Redis error means "no writes for now" — out of memory under noeviction, or a
    read-only replica — a state that passes, unlike a wrong command. Inside a Lua script redis-py
    sees only a ResponseError whose text carries the reason."""
    if isinstance(exc, (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)):
        return True
    text = str(exc)
    return isinstance(exc, redis.exceptions.ResponseError) and ("OOM command not allowed" in text
                                                               or "READONLY" in text)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: 0.1 s doubling up to cap_s."""
    base_s: float = 0.1
    cap_s: float = 5.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.base_s * (2 ** self.attempt))
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


def read_results(client: redis.Redis, last_id: str = "0", block_ms: int | None = None,
                 count: int = 1000) -> tuple[str, list[Result]]:
    """Results after last_id (plain XREAD, for tools and tests); returns (new last_id, results)."""
    reply = client.xread({keys.RESULTS_STREAM: last_id}, count=count, block=block_ms)
    out: list[Result] = []
    for _, entries in reply or []:
        for entry_id, fields in entries:
            last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            out.append(result_from_fields(fields))
    return last_id, out


def wait_results(client: redis.Redis, job_ids: Iterable[str], timeout_s: float = 60.0,
                 last_id: str = "0") -> dict[str, list[Result]]:
    """Every result for job_ids (a list per job, to let callers see duplicates), until all arrived.

    Raises TimeoutError naming the missing jobs after timeout_s.
    """
    wanted = set(job_ids)
    seen: dict[str, list[Result]] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if wanted <= set(seen):
            return seen
        if remaining_ms <= 0:
            missing = sorted(wanted - set(seen))
            raise TimeoutError(f"{len(missing)} results missing after {timeout_s}s: {missing[:5]}")
        last_id, results = read_results(client, last_id, block_ms=min(remaining_ms, 1000))
        for result in results:
            if result.job_id in wanted:
                seen.setdefault(result.job_id, []).append(result)


def live_workers(client: redis.Redis) -> list[dict]:
    """Heartbeat statuses of the workers alive now (keys.WORKERS_ALIVE_KEY; no keyspace scan)."""
    ids = client.zrangebyscore(keys.WORKERS_ALIVE_KEY, keys.alive_since(time.time()), "+inf")
    if not ids:
        return []
    out = []
    for raw in client.mget([keys.heartbeat_key(_text(i)) for i in ids]):
        if raw:
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
    return out


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def queue_depth(client: redis.Redis) -> int:
    """Jobs waiting or in flight: the workers delete a job's entry when its result is out."""
    return int(client.xlen(keys.JOBS_STREAM))
