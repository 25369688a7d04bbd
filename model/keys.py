"""Every Redis stream, group and key name poembot uses, in one place.

Pure Python (no Redis or TensorFlow import): the bot, the worker and the tests all read names from here.
"""
from __future__ import annotations

# Names share one prefix so a shared Redis can be inspected (or flushed) by pattern.
PREFIX = "poembot"

# --- the job protocol (worker side) -------------------------------------------------------
JOBS_STREAM = f"{PREFIX}:jobs"            # producers XADD serialised jobs here
RESULTS_STREAM = f"{PREFIX}:results"      # workers XADD serialised results here
DEAD_STREAM = f"{PREFIX}:dead"            # jobs that failed too often, kept for inspection
WORKER_GROUP = "workers"                  # consumer group of the workers on JOBS_STREAM

# Stream entries carry one field holding the JSON message (see model.jobs).
JOB_FIELD = "job"
RESULT_FIELD = "result"

# Approximate caps (XADD MAXLEN ~): streams are queues and logs, not archives.
JOBS_MAXLEN = 100_000
RESULTS_MAXLEN = 20_000
DEAD_MAXLEN = 10_000

HEARTBEAT_PREFIX = f"{PREFIX}:worker:"    # + worker_id -> JSON status, expires after HEARTBEAT_TTL_S
HEARTBEAT_TTL_S = 15
HEARTBEAT_INTERVAL_S = 5.0

RESULT_DEDUP_PREFIX = f"{PREFIX}:done:"   # + job_id -> worker_id; SET NX so a result is published once
RESULT_DEDUP_TTL_S = 24 * 3600


def heartbeat_key(worker_id: str) -> str:
    return f"{HEARTBEAT_PREFIX}{worker_id}"


def heartbeat_pattern() -> str:
    return f"{HEARTBEAT_PREFIX}*"


def result_dedup_key(job_id: str) -> str:
    return f"{RESULT_DEDUP_PREFIX}{job_id}"


# --- bot keys ----------------------------------------------------------------------------
# The bot helper adds its own names below (results consumer group, per-user state, rate limits).
