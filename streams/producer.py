"""The writers of the streams, each a Lua script that writes an entry together with the mark that
makes it once per id: a job per job id (the bot, and every test and benchmark), a result per job id
(the workers), an update per update key (the bot's intake).
"""
from __future__ import annotations

from protocol import keys
from protocol.jobs import Job, Result, job_fields, result_to_json
from streams.ops import Lua, Op, text

# A job is XADDed once per job id, however often the update that made it is re-run.
ENQUEUE_LUA = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', ARGV[3], ARGV[4])
end
return false
"""

# Publish once, then ack and delete the job: all or nothing, so a crash cannot lose or double a result.
PUBLISH_LUA = """
local fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if fresh then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', ARGV[4], ARGV[5])
end
if ARGV[7] ~= '' then
  redis.call('XACK', KEYS[3], ARGV[6], ARGV[7])
  redis.call('XDEL', KEYS[3], ARGV[7])
end
if fresh then return 1 else return 0 end
"""

# Store each update once (Telegram re-sends unconfirmed ones): the seen mark and the entry together.
# KEYS: the updates stream, then each update's seen mark; ARGV: the marks' TTL, the stream's MAXLEN,
# the entry's field name, then each update's JSON (in the order of KEYS).
INGEST_LUA = """
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', ARGV[3], ARGV[i + 2])
  end
end
return 1
"""


def enqueue(job: Job) -> Op[str | None]:
    """XADD job to the jobs stream unless a job with its id was enqueued before; its entry id, else None."""
    (name, value), = job_fields(job).items()
    entry = yield Lua(ENQUEUE_LUA, [keys.JOBS_STREAM, keys.enqueued_key(job.job_id)],
                      [keys.ENQUEUED_TTL_S, keys.JOBS_MAXLEN, name, value])
    return text(entry) if entry else None


def publish_result(result: Result, worker_id: str, entry_id: str = "") -> Op[bool]:
    """XADD result to the results stream unless one for its job was published before, and acknowledge
    and delete the job's entry (entry_id; "" for none); True when it was published now."""
    fresh = yield Lua(PUBLISH_LUA,
                      [keys.result_dedup_key(result.job_id), keys.RESULTS_STREAM, keys.JOBS_STREAM],
                      [worker_id, keys.RESULT_DEDUP_TTL_S, keys.RESULTS_MAXLEN, keys.RESULT_FIELD,
                       result_to_json(result), keys.WORKER_GROUP, entry_id])
    return bool(fresh)


def store_updates(updates: list[tuple[str, str]]) -> Op[None]:
    """Store (key, JSON) pairs (bot.ingest.stored) in the updates stream, each key once."""
    if updates:
        yield Lua(INGEST_LUA, [keys.UPDATES_STREAM, *(keys.seen_key(key) for key, _ in updates)],
                  [keys.UPDATE_SEEN_TTL_S, keys.UPDATES_MAXLEN, keys.UPDATE_FIELD, *(data for _, data in updates)])
