"""One consumer of a stream in a consumer group: read, claim stale entries, acknowledge, count
deliveries, keep entries in hand, prune the group's gone consumers.

Written once for the three streams that have readers in groups: the updates (bot replicas), the
results (bot replicas) and the jobs (workers). Each method returns an operation (streams.ops) that
run() or run_async() executes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple

from redis.exceptions import ResponseError

from protocol import keys
from streams.ops import Command, Lua, Op, text

# Acknowledge an entry and delete it (an acknowledged update is never read again).
ACK_DELETE_LUA = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return acked
"""


class Entry(NamedTuple):
    """A stream entry handed to this consumer, and how often it has been handed out (1 for a new one)."""
    entry_id: str
    fields: dict[Any, Any]
    deliveries: int


@dataclass(frozen=True)
class StreamConsumer:
    """Who reads which stream in which group, and how.

    block_ms: how long read() waits for a first entry. min_idle_ms: claim_stale() takes over entries
    another consumer (or this one, before a restart) has held unacknowledged this long. start: where a
    new group begins ("0": entries written before any reader ran are read too; "$": new ones only).
    delete_acked: an acknowledged entry is deleted too (the stream then holds only work not yet done)."""
    stream: str
    group: str
    consumer: str
    block_ms: int = 1000
    min_idle_ms: int = 30_000
    start: str = "0"
    delete_acked: bool = False

    def ensure_group(self) -> Op[None]:
        """Create the group, and the stream, unless the group exists (idempotent)."""
        try:
            yield Command("xgroup_create", (self.stream, self.group), {"id": self.start, "mkstream": True})
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):      # BUSYGROUP: the group exists already
                raise

    def read(self, count: int, block_ms: int | None = None) -> Op[list[Entry]]:
        """Up to count entries never handed out before; waits block_ms (default self.block_ms, 0: not
        at all) for the first."""
        wait_ms = self.block_ms if block_ms is None else block_ms
        reply = yield Command("xreadgroup", (self.group, self.consumer, {self.stream: ">"}),
                              {"count": count, "block": wait_ms or None})
        return [Entry(text(eid), fields, 1) for _, entries in reply or [] for eid, fields in entries]

    def claim_stale(self, count: int, start_id: str = "0-0") -> Op[tuple[str, list[Entry]]]:
        """Entries idle past min_idle_ms (their consumer died or gave up), taken over by this consumer
        with how many times each has now been handed out; and the id to resume the scan from.

        An entry trimmed away meanwhile is left out (Redis 7 drops it from the pending list itself; 6.2
        answers it without even its id, so it stays pending there); one acknowledged between the
        claim and the count (its first run finished) is left out too."""
        reply = yield Command("xautoclaim", (self.stream, self.group, self.consumer),
                              {"min_idle_time": self.min_idle_ms, "start_id": start_id, "count": count})
        cursor = text(reply[0]) if reply else "0-0"
        live = [(text(eid), fields) for eid, fields in (reply[1] if reply else []) if eid is not None and fields]
        if not live:
            return cursor, []
        counts = yield [self._pending_of(entry_id) for entry_id, _ in live]
        return cursor, [Entry(entry_id, fields, int(info[0]["times_delivered"]))
                        for (entry_id, fields), info in zip(live, counts) if info]

    def deliveries(self, entry_id: str) -> Op[int]:
        """How often a pending entry was handed out; 0 once it is acknowledged."""
        info = yield self._pending_of(entry_id)
        return int(info[0]["times_delivered"]) if info else 0

    def _pending_of(self, entry_id: str) -> Command:
        return Command("xpending_range", (self.stream, self.group),
                       {"min": entry_id, "max": entry_id, "count": 1})

    def ack(self, entry_id: str) -> Op[None]:
        if self.delete_acked:
            yield Lua(ACK_DELETE_LUA, [self.stream], [self.group, entry_id])
        else:
            yield Command("xack", (self.stream, self.group, entry_id))

    def keep(self, entry_ids: list[str]) -> Op[None]:
        """Reset the idle time of entries in hand, so claim_stale() elsewhere leaves them alone (a
        JUSTID claim by their own consumer counts no delivery)."""
        if entry_ids:
            yield Command("xclaim", (self.stream, self.group, self.consumer),
                          {"min_idle_time": 0, "message_ids": entry_ids, "justid": True})

    def pending(self) -> Op[int]:
        """Entries handed out and not yet acknowledged, across the group."""
        info = yield Command("xpending", (self.stream, self.group))
        return int(info["pending"])

    def prune(self, alive: Iterable[str], idle_ms: int) -> Op[list[str]]:
        """Delete the group's consumers of processes that are gone (gone_consumers); without this every
        process that ever ran (names change at each start) stays in XINFO CONSUMERS. Returns their names."""
        consumers = yield Command("xinfo_consumers", (self.stream, self.group))
        gone = gone_consumers(consumers, {text(name) for name in alive}, idle_ms)
        for name in gone:
            yield Command("xgroup_delconsumer", (self.stream, self.group, name))
        return gone


def gone_consumers(consumers: Iterable[dict], alive: set[str], idle_ms: int) -> list[str]:
    """The consumers (XINFO CONSUMERS rows) of processes that are gone: not alive, nothing pending
    (what a dead one held is claimed by others first), idle for idle_ms."""
    return [text(c["name"]) for c in consumers
            if text(c["name"]) not in alive and c["pending"] == 0 and c["idle"] >= idle_ms]


# The three streams read in groups, each described once.

def jobs_consumer(name: str, block_ms: int = 1000, min_idle_ms: int = 30_000) -> StreamConsumer:
    """A worker on the jobs stream, from the stream's start (jobs queued before any worker ran are
    served); a job's entry is deleted when its result is published (producer.publish_result)."""
    return StreamConsumer(keys.JOBS_STREAM, keys.WORKER_GROUP, name, block_ms, min_idle_ms, start="0")


def results_consumer(name: str, block_ms: int = 1000, min_idle_ms: int = 30_000) -> StreamConsumer:
    """A bot replica on the results stream: new results only; entries stay (RESULTS_MAXLEN) for tools."""
    return StreamConsumer(keys.RESULTS_STREAM, keys.RESULTS_GROUP, name, block_ms, min_idle_ms, start="$")


def updates_consumer(name: str, block_ms: int = 1000, min_idle_ms: int = 30_000) -> StreamConsumer:
    """A bot replica on the updates stream: an update handled is deleted (the stream holds only updates
    not yet handled, and UPDATES_MAXLEN at most should every replica be gone)."""
    return StreamConsumer(keys.UPDATES_STREAM, keys.UPDATES_GROUP, name, block_ms, min_idle_ms, start="0",
                          delete_acked=True)
