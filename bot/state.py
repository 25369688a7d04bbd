"""Everything the bot keeps in Redis: poems by id, user history, likes, settings, subscribers, limits.

Every key name, TTL and cap comes from protocol.keys; every replica shares this state.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, field, fields
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from protocol.connections import Backoff, connect_async, ensure_group, gone_consumers
from verse.forms import FORM_NAMES, FORMS
from protocol.jobs import Job, job_fields
from protocol.spec import PoemSpec, SpecError, from_legacy, from_wire
from bot.styles import StyleBook, valid_style_id
from protocol.keys import (BOT_PRUNE_EVERY_S, BOT_PRUNE_KEY, BOTS_ALIVE_KEY, DAILY_TTL_S, DELIVERED_TTL_S,
                           ENQUEUED_TTL_S, INFLIGHT_KEY, INFLIGHT_STALE_S, JOBS_MAXLEN, JOBS_STREAM, LIKES_CAP,
                           POLLER_KEY, RATE_WINDOW_S, RESULTS_GROUP, RESULTS_STREAM, SHOWN_CAP, STYLES_KEY,
                           SUBSCRIBERS_KEY, UPDATE_FIELD, UPDATE_SEEN_TTL_S, UPDATES_GROUP, UPDATES_MAXLEN,
                           UPDATES_STREAM, USER_TTL_S, WORKER_GROUP, WORKERS_ALIVE_KEY, WORKERS_LOADING_KEY,
                           WORKERS_READY_KEY, alive_since, bots_alive_since, daily_key, delivered_key, enqueued_key,
                           message_key, poem_key, rate_key, recipient_key, seen_key, user_key)

from protocol.sampling import CREATIVITY_TEMPERATURES, DEFAULT_CREATIVITY

log = logging.getLogger(__name__)

# 稳 中 奇: protocol/sampling.py's, whose middle one is the default that `poembot generate` and
# `poembot evaluate` use too.
# The style registry changes when a worker starts with other adapters; every /poem reads it, so each
# process keeps its copy this long (a new style shows up within seconds, Redis sees one HGETALL).
STYLES_CACHE_S = 5.0


def new_poem_id() -> str:
    return secrets.token_urlsafe(9)    # 12 characters of [A-Za-z0-9_-]


@dataclass
class PoemRecord:
    """A poem the bot sent, kept so its buttons can act on it without carrying it in callback_data."""
    poem_id: str
    owner_id: int | None               # None: public (the daily poem); anyone may like it
    chat_id: int
    form: str
    lines: list[str]                   # simplified, without punctuation
    request: dict[str, Any] = field(default_factory=dict)   # a couplet's request (bot.couplet)
    mu: list[float] | None = None
    seed: int | None = None
    rhyme_ok: bool | None = None
    tone_rate: float | None = None
    created_at: float = field(default_factory=time.time)
    spec: PoemSpec | None = None       # what a poem was asked with; None for a couplet

    def to_json(self) -> str:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        body["spec"] = self.spec.to_wire() if self.spec is not None else None
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "PoemRecord":
        body = json.loads(text)
        known = {f.name for f in fields(cls)} - {"spec"}
        record = cls(**{k: v for k, v in body.items() if k in known})
        record.spec = _spec_of(body.get("spec"), record)
        return record


def _spec_of(wire: Any, record: PoemRecord) -> PoemSpec | None:
    """A stored record's spec; for a poem kept before specs existed, the one its request dict says."""
    if wire is not None:
        try:
            return from_wire(wire)
        except SpecError as exc:
            log.warning("poem %s has an unreadable spec: %s", record.poem_id, exc)
    return from_legacy(record.request or {}, record.form) if record.form in FORMS else None


@dataclass
class UserSettings:
    script: str = "s"                  # "s" simplified | "t" traditional
    form: str | None = None            # None: the bot's default form
    creativity: int = DEFAULT_CREATIVITY   # index into CREATIVITY_TEMPERATURES
    style: str = ""                    # default style id for a /poem that names none; "" the base model

    @property
    def traditional(self) -> bool:
        return self.script == "t"

    @property
    def temperature(self) -> float:
        return CREATIVITY_TEMPERATURES[self.creativity]

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> "UserSettings":
        """A user's settings hash as stored; a value this version did not write is its default."""
        s = cls()
        if raw.get("script") in ("s", "t"):
            s.script = raw["script"]
        if raw.get("form") in FORM_NAMES:
            s.form = raw["form"]
        # Compared as text: str.isdigit() passes "²", which int() refuses.
        if raw.get("cr") in {str(i) for i in range(len(CREATIVITY_TEMPERATURES))}:
            s.creativity = int(raw["cr"])
        if valid_style_id(raw.get("style")):
            s.style = raw["style"]
        return s


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

# Store each update once (Telegram re-sends unconfirmed ones): the seen mark and the entry together.
# KEYS: the updates stream, then each update's seen mark; ARGV: the marks' TTL, the stream's MAXLEN,
# the entry's field name, then each update's JSON (in the order of KEYS).
_INGEST_LUA = """
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', ARGV[3], ARGV[i + 2])
  end
end
return 1
"""

# A job is XADDed once per job id, however often the update that made it is re-run.
_ENQUEUE_LUA = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', ARGV[3], ARGV[4])
end
return false
"""

# Acknowledge an entry and delete it (an acknowledged update is never read again).
_ACK_DELETE_LUA = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return acked
"""

# The poller lease: take it when free, extend it when ours.
_LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
"""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


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
    """Async access to the bot's Redis state; one instance per process, shared by handlers."""

    def __init__(self, redis: aioredis.Redis, poem_ttl_s: int = 7 * 24 * 3600,
                 history_cap: int = 50, delivery_lease_s: int = 30) -> None:
        self.redis = redis
        self.delivery_lease_s = delivery_lease_s   # a replica that dies mid-send loses its claim after this
        self.poem_ttl_s = poem_ttl_s
        self.history_cap = history_cap
        self._rate = redis.register_script(_RATE_LUA)
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._ingest = redis.register_script(_INGEST_LUA)
        self._enqueue = redis.register_script(_ENQUEUE_LUA)
        self._lease = redis.register_script(_LEASE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._ack = redis.register_script(_ACK_DELETE_LUA)
        self._styles: StyleBook | None = None
        self._styles_at = float("-inf")
        # The shipped styles (Config.styles_dir), named while no worker has published its own.
        self.shipped_styles = StyleBook()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "State":
        return cls(connect_async(url, decode_responses=True), **kwargs)

    async def close(self) -> None:
        await self.redis.aclose()

    # --- streams -----------------------------------------------------------------------
    async def ensure_groups(self) -> None:
        """Create the worker group (from the start of the stream, so jobs queued before any worker
        ran are still served) and the bots' results group (new results only)."""
        for stream, group, start in ((JOBS_STREAM, WORKER_GROUP, "0"), (RESULTS_STREAM, RESULTS_GROUP, "$"),
                                     (UPDATES_STREAM, UPDATES_GROUP, "0")):
            await ensure_group(self.redis, stream, group, start)

    async def enqueue(self, job: Job) -> str | None:
        """XADD job unless a job with its id was enqueued before (then None)."""
        (name, value), = job_fields(job).items()
        return await self._enqueue(keys=[JOBS_STREAM, enqueued_key(job.job_id)],
                                   args=[ENQUEUED_TTL_S, JOBS_MAXLEN, name, value])

    # --- updates (bot.ingest) ------------------------------------------------------------
    async def ingest_updates(self, updates: list[tuple[str, str]]) -> None:
        """Store (key, JSON) pairs (bot.ingest.stored) in the updates stream, each key once."""
        if not updates:
            return
        await self._ingest(keys=[UPDATES_STREAM, *(seen_key(key) for key, _ in updates)],
                           args=[UPDATE_SEEN_TTL_S, UPDATES_MAXLEN, UPDATE_FIELD, *(data for _, data in updates)])

    async def read_updates(self, consumer: str, block_ms: int, count: int = 16) -> list[tuple[str, dict]]:
        reply = await self.redis.xreadgroup(UPDATES_GROUP, consumer, {UPDATES_STREAM: ">"},
                                            count=count, block=block_ms)
        return [(entry_id, entry) for _, entries in reply or [] for entry_id, entry in entries]

    async def claim_stale_updates(self, consumer: str, min_idle_ms: int,
                                  count: int = 16) -> list[tuple[str, dict, int]]:
        """Updates a replica took and never acknowledged (it died, or Redis failed under it), with
        how many times each has now been handed out."""
        reply = await self.redis.xautoclaim(UPDATES_STREAM, UPDATES_GROUP, consumer,
                                            min_idle_time=min_idle_ms, start_id="0-0", count=count)
        claimed = []
        for entry_id, entry in (reply[1] if reply else []):
            if not entry:
                await self.ack_update(entry_id)       # trimmed away meanwhile
                continue
            delivered = await self.update_deliveries(entry_id)
            if delivered:
                claimed.append((entry_id, entry, delivered))
        return claimed

    async def update_deliveries(self, entry_id: str) -> int:
        """How often a pending update entry was handed out; 0 once it is acknowledged."""
        info = await self.redis.xpending_range(UPDATES_STREAM, UPDATES_GROUP, min=entry_id,
                                               max=entry_id, count=1)
        return int(info[0]["times_delivered"]) if info else 0

    async def ack_update(self, entry_id: str) -> None:
        """Acknowledge a handled update and delete its entry: the stream holds only updates not yet
        handled (and UPDATES_MAXLEN at most, should every replica be gone)."""
        await self._ack(keys=[UPDATES_STREAM], args=[UPDATES_GROUP, entry_id])

    async def updates_pending(self) -> int:
        info = await self.redis.xpending(UPDATES_STREAM, UPDATES_GROUP)
        return int(info["pending"])

    async def hold_poller_lease(self, owner: str, lease_ms: int) -> bool:
        return bool(await self._lease(keys=[POLLER_KEY], args=[owner, lease_ms]))

    async def poller_lease_holder(self) -> str | None:
        """Who holds the polling lease now (a read: it answers while Redis refuses writes)."""
        holder = await self.redis.get(POLLER_KEY)
        return holder.decode() if isinstance(holder, bytes) else holder

    async def release_poller_lease(self, owner: str) -> None:
        await self._release(keys=[POLLER_KEY], args=[owner])

    async def workers_alive(self) -> int:
        """Workers whose last heartbeat is fresh (one ZCOUNT of WORKERS_ALIVE_KEY)."""
        return int(await self.redis.zcount(WORKERS_ALIVE_KEY, alive_since(time.time()), "+inf"))

    async def workers_loading(self) -> bool:
        """No worker was ever ready (a first start), or one is loading its model right now."""
        if not await self.redis.exists(WORKERS_READY_KEY):
            return True
        return bool(await self.redis.zcount(WORKERS_LOADING_KEY, time.time(), "+inf"))

    async def read_results(self, consumer: str, block_ms: int, count: int = 16) -> list[tuple[str, dict]]:
        reply = await self.redis.xreadgroup(RESULTS_GROUP, consumer, {RESULTS_STREAM: ">"},
                                            count=count, block=block_ms)
        return [(entry_id, entry) for _, entries in reply or [] for entry_id, entry in entries]

    async def claim_stale_results(self, consumer: str, min_idle_ms: int,
                                  count: int = 16) -> list[tuple[str, dict]]:
        """Results another replica read but never acknowledged (it died): take them over."""
        reply = await self.redis.xautoclaim(RESULTS_STREAM, RESULTS_GROUP, consumer,
                                            min_idle_time=min_idle_ms, start_id="0-0", count=count)
        entries = reply[1] if reply else []
        return [(entry_id, entry) for entry_id, entry in entries if entry]

    async def ack_result(self, entry_id: str) -> None:
        await self.redis.xack(RESULTS_STREAM, RESULTS_GROUP, entry_id)

    async def take_prune_turn(self, owner: str) -> bool:
        """True for one caller per BOT_PRUNE_EVERY_S across replicas: its turn to prune the groups."""
        return bool(await self.redis.set(BOT_PRUNE_KEY, owner, nx=True, ex=BOT_PRUNE_EVERY_S))

    async def prune_consumers(self, idle_ms: int) -> list[str]:
        """Delete the updates and results groups' consumers of bot replicas that are gone (not in
        BOTS_ALIVE_KEY; protocol.connections.gone_consumers): without this every replica that ever ran
        (host-pid names change at each start) stays in XINFO CONSUMERS. Returns "stream/name"s."""
        alive = set(await self.redis.zrangebyscore(BOTS_ALIVE_KEY, bots_alive_since(time.time()), "+inf"))
        gone = []
        for stream, group in ((UPDATES_STREAM, UPDATES_GROUP), (RESULTS_STREAM, RESULTS_GROUP)):
            for name in gone_consumers(await self.redis.xinfo_consumers(stream, group), alive, idle_ms):
                await self.redis.xgroup_delconsumer(stream, group, name)
                gone.append(f"{stream}/{name}")
        return gone

    # --- delivery exactly once -------------------------------------------------------------
    async def begin_delivery(self, job_id: str, consumer: str) -> str:
        """Claim the right to send job_id's reply: "mine", "sent" (done before) or "busy"
        (another replica holds the lease right now)."""
        if await self.redis.set(delivered_key(job_id), f"sending:{consumer}", nx=True, ex=self.delivery_lease_s):
            return "mine"
        return "sent" if await self.redis.get(delivered_key(job_id)) == "sent" else "busy"

    async def finish_delivery(self, job_id: str) -> None:
        await self.redis.set(delivered_key(job_id), "sent", ex=DELIVERED_TTL_S)
        await self.redis.zrem(INFLIGHT_KEY, job_id)

    async def abort_delivery(self, job_id: str) -> None:
        await self.redis.delete(delivered_key(job_id))

    async def renew_delivery(self, job_id: str, consumer: str, entry_id: str) -> bool:
        """Keep job_id's lease (begin_delivery) for consumer another delivery_lease_s, and its results
        entry with it, so no replica takes it over; False when the lease is no longer consumer's
        (another replica holds it, or the reply was recorded sent)."""
        held = bool(await self._lease(keys=[delivered_key(job_id)],
                                      args=[f"sending:{consumer}", self.delivery_lease_s * 1000]))
        if held:
            # Reset the entry's idle time: XAUTOCLAIM hands out only entries idle past claim_idle_ms.
            await self.redis.xclaim(RESULTS_STREAM, RESULTS_GROUP, consumer, min_idle_time=0,
                                    message_ids=[entry_id], justid=True)
        return held

    async def is_delivered(self, job_id: str) -> bool:
        return await self.redis.get(delivered_key(job_id)) == "sent"

    # --- limits ----------------------------------------------------------------------------
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

    # --- poems -----------------------------------------------------------------------------
    async def save_poem(self, record: PoemRecord) -> None:
        await self.redis.set(poem_key(record.poem_id), record.to_json(), ex=self.poem_ttl_s)

    async def load_poem(self, poem_id: str) -> PoemRecord | None:
        text = await self.redis.get(poem_key(poem_id))
        return PoemRecord.from_json(text) if text else None

    async def remember_message(self, chat_id: int, message_id: int, poem_id: str) -> None:
        """Which poem a sent message shows (for replies and buttons on it), until the poem expires."""
        await self.remember_messages([(chat_id, message_id, poem_id)])

    async def remember_messages(self, messages: list[tuple[int, int, str]]) -> None:
        """remember_message for many (chat_id, message_id, poem_id) in one round trip (a broadcast's)."""
        pipe = self.redis.pipeline(transaction=False)   # keys in many Cluster slots: no MULTI
        for chat_id, message_id, poem_id in messages:
            pipe.set(message_key(chat_id, message_id), poem_id, ex=self.poem_ttl_s)
        await pipe.execute()

    async def poem_for_message(self, chat_id: int, message_id: int) -> PoemRecord | None:
        poem_id = await self.redis.get(message_key(chat_id, message_id))
        return await self.load_poem(poem_id) if poem_id else None

    # --- per-user keys: each expires USER_TTL_S after its last write or read --------------------
    async def _user_read(self, key: str, read: Callable[[Any], Any]) -> Any:
        """read(pipe) queues one command on key; run it and renew the key's TTL in one round trip
        (a read for the user's own request is use: an active user's keys never expire)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            read(pipe)
            pipe.expire(key, USER_TTL_S)
            value, _ = await pipe.execute()
        return value

    async def add_history(self, user_id: int, poem_id: str, mu: list[float] | None) -> None:
        key = user_key(user_id, "history")
        entry = json.dumps({"pid": poem_id, "mu": mu}, separators=(",", ":"))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, entry)
            pipe.ltrim(key, 0, self.history_cap - 1)
            pipe.expire(key, USER_TTL_S)
            await pipe.execute()

    async def history(self, user_id: int) -> list[dict[str, Any]]:
        key = user_key(user_id, "history")
        return [json.loads(e) for e in await self._user_read(key, lambda pipe: pipe.lrange(key, 0, -1))]

    async def add_like(self, user_id: int, poem_id: str, mu: list[float] | None) -> bool:
        """True when newly liked; the oldest likes go once there are LIKES_CAP of them."""
        key = user_key(user_id, "likes")
        entry = json.dumps({"mu": mu, "at": time.time()}, separators=(",", ":"))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, poem_id, entry)
            pipe.expire(key, USER_TTL_S)
            pipe.hlen(key)
            added, _, count = await pipe.execute()
        added = bool(added)
        if added and count > LIKES_CAP:
            likes = await self.redis.hgetall(key)
            oldest = sorted(likes, key=lambda pid: json.loads(likes[pid]).get("at", 0))
            await self.redis.hdel(key, *oldest[: len(likes) - LIKES_CAP])
        return added

    async def likes(self, user_id: int) -> dict[str, dict[str, Any]]:
        key = user_key(user_id, "likes")
        raw = await self._user_read(key, lambda pipe: pipe.hgetall(key))
        return {pid: json.loads(v) for pid, v in raw.items()}

    async def mark_shown(self, user_id: int, corpus_ids: list[str]) -> None:
        if not corpus_ids:
            return
        key = user_key(user_id, "shown")
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {cid: now for cid in corpus_ids})
            pipe.zremrangebyrank(key, 0, -SHOWN_CAP - 1)
            pipe.expire(key, USER_TTL_S)
            await pipe.execute()

    async def shown(self, user_id: int) -> set[str]:
        key = user_key(user_id, "shown")
        return set(await self._user_read(key, lambda pipe: pipe.zrange(key, 0, -1)))

    # --- settings ----------------------------------------------------------------------------
    async def settings(self, user_id: int) -> UserSettings:
        key = user_key(user_id, "settings")
        raw = await self._user_read(key, lambda pipe: pipe.hgetall(key))
        return UserSettings.from_hash(raw)

    async def set_setting(self, user_id: int, key: str, value: str) -> None:
        name = user_key(user_id, "settings")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, key, value)
            pipe.expire(name, USER_TTL_S)
            await pipe.execute()

    # --- styles ------------------------------------------------------------------------------
    async def styles(self, max_age_s: float = STYLES_CACHE_S) -> StyleBook:
        """The styles the workers serve (protocol.keys.STYLES_KEY), read at most every max_age_s; the
        shipped ones while no worker has published any (its model still loading): a first
        `/poem 李白 明月` then waits for the worker like any poem instead of being refused."""
        now = time.monotonic()
        if self._styles is None or now - self._styles_at >= max_age_s:
            self._styles = StyleBook.from_hash(await self.redis.hgetall(STYLES_KEY)) or self.shipped_styles
            self._styles_at = now
        return self._styles

    # --- daily -------------------------------------------------------------------------------
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
