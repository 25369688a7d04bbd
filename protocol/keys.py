"""Every Redis stream, group and key name poembot uses, in one place.

Pure Python (no Redis or TensorFlow import): the bot, the worker and the tests all read names from here.
"""
from __future__ import annotations

from dataclasses import dataclass

# Names share one prefix so a shared Redis can be inspected (or flushed) by pattern.
PREFIX = "poembot"

# Redis Cluster: the keys one Lua script, one MULTI or one multi-key command uses together must sit
# in one slot, so they share a hash tag (the part of the name in braces, which alone picks the slot):
#   {jobs}      the jobs, results and dead-letter streams, the per-job done and enqueued marks
#               (the enqueue and publish scripts touch a stream and a mark together);
#   {updates}   the updates stream and its per-update seen marks (the ingest script);
#   {workers}   the worker heartbeats and registry (live_workers reads the heartbeats in one MGET);
#   {replicas}  the bot replicas' liveness records (one MGET).
# Every other key is used alone and has no tag, so the per-user, per-poem and per-message keys
# spread over the cluster's slots. What a cluster cannot spread: each tagged group is one slot, so
# the job queue lives on one master (a stream is one key anyway) and the cluster gives that group
# failover, not more throughput.
QUEUE_TAG, UPDATES_TAG, WORKERS_TAG, REPLICAS_TAG = "{jobs}", "{updates}", "{workers}", "{replicas}"

# --- the job protocol (worker side) -------------------------------------------------------
JOBS_STREAM = f"{PREFIX}:{QUEUE_TAG}"            # producers XADD serialised jobs here
RESULTS_STREAM = f"{JOBS_STREAM}:results"       # workers XADD serialised results here
DEAD_STREAM = f"{JOBS_STREAM}:dead"             # jobs that failed too often, kept for inspection
WORKER_GROUP = "workers"                  # consumer group of the workers on JOBS_STREAM

# Stream entries carry one field holding the JSON message (see protocol.jobs).
JOB_FIELD = "job"
RESULT_FIELD = "result"

# Approximate caps (XADD MAXLEN ~): streams are queues and logs, not archives. The streams have no
# TTL; these caps bound them (BOUNDED below), and a worker deletes each job once its result is out.
JOBS_MAXLEN = 100_000
RESULTS_MAXLEN = 20_000
DEAD_MAXLEN = 10_000

WORKERS = f"{PREFIX}:{WORKERS_TAG}"
HEARTBEAT_PREFIX = f"{WORKERS}:worker:"   # + worker_id -> JSON status, expires after HEARTBEAT_TTL_S
HEARTBEAT_TTL_S = 15
HEARTBEAT_INTERVAL_S = 5.0
# Liveness: a sorted set of worker_id -> the time of its last heartbeat (epoch s). A worker is alive
# while that is under HEARTBEAT_TTL_S old; each beat trims older members and sets the key to expire
# HEARTBEAT_TTL_S later, so it holds at most the workers alive now. Readers ask with one ZCOUNT or
# ZRANGEBYSCORE (the status keys above give the details), never a SCAN over the keyspace.
WORKERS_ALIVE_KEY = f"{WORKERS}:alive"

RESULT_DEDUP_PREFIX = f"{JOBS_STREAM}:done:"   # + job_id -> worker_id; SET NX so a result is published once
RESULT_DEDUP_TTL_S = 24 * 3600


# The style adapters the workers can serve: a hash of style id -> JSON {id, title, line, line_en,
# aliases, seen_at}. Each worker HSETs its own with seen_at = now on every heartbeat, deletes entries
# no worker has refreshed for STYLES_FRESH_S (a style taken out of service) and refreshes the key's
# TTL to that; readers skip such stale entries too. Bounded by the number of adapters in service.
STYLES_KEY = f"{PREFIX}:styles"
STYLES_FRESH_S = 600


def style_entry_fresh(entry: dict, now: float) -> bool:
    """Whether a registry entry was refreshed by a worker within STYLES_FRESH_S (an entry without
    seen_at, written by hand, counts as fresh)."""
    seen = entry.get("seen_at")
    return not isinstance(seen, (int, float)) or now - seen < STYLES_FRESH_S


def heartbeat_key(worker_id: str) -> str:
    return f"{HEARTBEAT_PREFIX}{worker_id}"


def alive_since(now: float) -> float:
    """The oldest heartbeat time (epoch s) of a worker still counted alive at now."""
    return now - HEARTBEAT_TTL_S


def result_dedup_key(job_id: str) -> str:
    return f"{RESULT_DEDUP_PREFIX}{job_id}"


# --- the bot (bot/stores/, bot/ingest.py) -------------------------------------------------------
BOT = f"{PREFIX}:bot"
RESULTS_GROUP = "bots"                 # consumer group of the bot replicas on RESULTS_STREAM
UPDATES_GROUP = "bots"                 # consumer group of the bot replicas on UPDATES_STREAM

# Telegram updates, stored before they are confirmed (bot.ingest). Bound: UPDATES_MAXLEN (XADD
# MAXLEN ~), and each entry is deleted once it is acknowledged.
UPDATES_STREAM = f"{BOT}:{UPDATES_TAG}"
UPDATES_MAXLEN = 100_000
# + bot.ingest.update_key: one stored update, so that Telegram's re-sends are stored once.
SEEN_PREFIX = f"{UPDATES_STREAM}:seen:"
UPDATE_FIELD = "update"                # an entry's one field: the update's JSON
UPDATE_SEEN_TTL_S = 24 * 3600

POLLER_KEY = f"{BOT}:poller"           # the one replica allowed to call getUpdates: a lease (PX)
ENQUEUED_TTL_S = 24 * 3600             # a job id re-submitted by a re-run update is enqueued once
# Daily subscribers: a hash chat_id -> language, no TTL. Bound: the number of subscribed chats
# (/daily off and a chat that blocked the bot remove theirs).
SUBSCRIBERS_KEY = f"{BOT}:subscribers"
# Jobs in flight: a zset job_id -> enqueue time, for the global queue cap, no TTL. Bound: members
# leave on delivery, and each reservation drops those older than INFLIGHT_STALE_S.
INFLIGHT_KEY = f"{BOT}:inflight"
INFLIGHT_STALE_S = 3600                # a job this old no longer counts against the cap
DELIVERED_TTL_S = 24 * 3600            # delivered_key, recipient_key once sent
DAILY_TTL_S = 3 * 24 * 3600            # daily_key: the claim of one day's post
SHOWN_CAP = 500                        # corpus poems remembered per user as shown (/similar)
LIKES_CAP = 200                        # likes kept per user
RATE_WINDOW_S = 60                     # rate_key: a sliding window, expiring RATE_WINDOW_S + 1 after use
# Per-user keys (user_key) expire this long after their last use: every write sets the TTL and every
# read for the user's own request renews it, so an active user keeps history, likes and settings.
USER_TTL_S = 180 * 24 * 3600


def poem_key(poem_id: str) -> str:
    """A poem the bot sent (JSON PoemRecord); expires after BotSettings.poem_ttl_s."""
    return f"{BOT}:poem:{poem_id}"


def user_key(user_id: int, what: str) -> str:
    """One user's history (list, capped by BotSettings.history_cap), likes (hash, LIKES_CAP), shown (zset,
    SHOWN_CAP) or settings (hash)."""
    return f"{BOT}:user:{user_id}:{what}"


def rate_key(user_id: int) -> str:
    """One user's /poem requests in the last RATE_WINDOW_S (zset); expires RATE_WINDOW_S + 1 after use."""
    return f"{BOT}:rate:{user_id}"


def delivered_key(job_id: str) -> str:
    """Whether job_id's reply went out ("sending:<replica>" while a lease, "sent" for DELIVERED_TTL_S)."""
    return f"{BOT}:delivered:{job_id}"


def recipient_key(job_id: str, chat_id: int) -> str:
    """One chat of a broadcast (the daily poem) was sent job_id's poem; expires after DELIVERED_TTL_S."""
    return f"{delivered_key(job_id)}:{chat_id}"


def seen_key(update_key: str) -> str:
    """One stored update (bot.ingest.update_key); expires after UPDATE_SEEN_TTL_S."""
    return f"{SEEN_PREFIX}{update_key}"


def enqueued_key(job_id: str) -> str:
    """Job job_id was XADDed once; expires after ENQUEUED_TTL_S."""
    return f"{JOBS_STREAM}:enqueued:{job_id}"


def daily_key(date: str) -> str:
    """Who posts the daily poem of date (SET NX); expires after DAILY_TTL_S."""
    return f"{BOT}:daily:{date}"


def message_key(chat_id: int, message_id: int) -> str:
    """The poem id a sent message shows; expires with the poem (BotSettings.poem_ttl_s)."""
    return f"{BOT}:msg:{chat_id}:{message_id}"


# --- bot liveness and the workers as the bot sees them -------------------------------------

# Whether workers have ever come up, so the bot can tell "loading" from "offline".
WORKERS_READY_KEY = f"{WORKERS}:ready"               # set by every ready worker's heartbeat
WORKERS_READY_TTL_S = 30 * 24 * 3600                 # a month without a worker: a new start says "loading"
# Workers loading their model: a sorted set of worker_id -> the time its loading stops counting
# (WORKER_LOADING_TTL_S after it began: a worker that died while loading). Trimmed by each writer,
# removed from by the worker's first heartbeat, expiring with its newest member.
WORKERS_LOADING_KEY = f"{WORKERS}:loading"
WORKER_LOADING_TTL_S = 600

# Bot replica liveness (bot/liveness.py). Each replica's watchdog checks, every BOT_BEAT_INTERVAL_S
# and whenever one ends, that its background tasks (poller, updates and results consumers, ...) still
# run, and writes bot_replica_key(replica) -> JSON {replica, host, pid, at, tasks, dead} expiring
# BOT_ALIVE_TTL_S later; `poembot health --role bot` fails when this replica's record is missing,
# older than that, or names a dead task. BOTS_ALIVE_KEY: a sorted set of replica -> the time of its
# last record, trimmed of older members and expiring with its newest like WORKERS_ALIVE_KEY, so the
# replicas alive now are one ZRANGEBYSCORE; it holds at most the replicas running.
BOTS_ALIVE_KEY = f"{BOT}:{REPLICAS_TAG}"
BOT_REPLICA_PREFIX = f"{BOTS_ALIVE_KEY}:"
BOT_ALIVE_TTL_S = 15
BOT_BEAT_INTERVAL_S = 5.0

# The bots' consumer groups (updates, results) lose the consumers of replicas that are gone once a
# minute, by whichever replica's watchdog comes first: SET NX with this TTL takes the turn.
BOT_PRUNE_KEY = f"{BOT}:prune"
BOT_PRUNE_EVERY_S = 60


def bot_replica_key(replica: str) -> str:
    return f"{BOT_REPLICA_PREFIX}{replica}"


def bots_alive_since(now: float) -> float:
    """The oldest record time (epoch s) of a bot replica still counted alive at now."""
    return now - BOT_ALIVE_TTL_S


# --- inline mode (bot/inline.py) -------------------------------------------------------------
INLINE_PREFIX = f"{BOT}:inline"
INLINE_CACHE_CAP = 20                  # recent poems kept per theme
INLINE_CACHE_TTL_S = 7 * 24 * 3600     # a theme nobody asked for in a week is forgotten
INLINE_ANY_THEME = "*"                 # the cache of every theme together, for a theme never asked
INLINE_DONE_TTL_S = 120                # a fresh answer waits this long for the inline query that asked
INLINE_RATE_WINDOW_S = 60
CARD_FILE_TTL_S = 30 * 24 * 3600       # Telegram keeps an uploaded photo's file_id valid for a long time


def inline_cache_key(theme: str) -> str:
    """Recent poems of one theme (a list of JSON poems, newest first)."""
    return f"{INLINE_PREFIX}:cache:{theme}"


def inline_done_key(job_id: str) -> str:
    """The poems of one inline job, pushed by whichever bot replica read its result."""
    return f"{INLINE_PREFIX}:done:{job_id}"


def inline_rate_key(user_id: int) -> str:
    return f"{INLINE_PREFIX}:rate:{user_id}"


def card_file_key(digest: str) -> str:
    """The Telegram file_id of an uploaded card, by a digest of what the card shows."""
    return f"{INLINE_PREFIX}:card:{digest}"


# --- keys without a TTL ------------------------------------------------------------------------
@dataclass(frozen=True)
class Bound:
    """Why a key that never expires cannot grow without limit."""
    type: str          # the Redis type (TYPE): stream, hash, zset, set
    why: str


# Every key that has no TTL, by its full name; every other key poembot writes expires (the comment
# at each name says when). tests/test_keys.py lists the keys after an end-to-end run and fails on a
# key that is in neither group.
BOUNDED: dict[str, Bound] = {
    JOBS_STREAM: Bound("stream", f"MAXLEN ~{JOBS_MAXLEN}; a worker deletes each job as it publishes its result"),
    RESULTS_STREAM: Bound("stream", f"MAXLEN ~{RESULTS_MAXLEN}"),
    DEAD_STREAM: Bound("stream", f"MAXLEN ~{DEAD_MAXLEN}"),
    UPDATES_STREAM: Bound("stream", f"MAXLEN ~{UPDATES_MAXLEN}; each entry is deleted as it is acknowledged"),
    SUBSCRIBERS_KEY: Bound("hash", "one field per subscribed chat"),
    INFLIGHT_KEY: Bound("zset", f"jobs in flight: members leave on delivery or after {INFLIGHT_STALE_S} s"),
}


def bound_of(key: str) -> Bound | None:
    return BOUNDED.get(key)
