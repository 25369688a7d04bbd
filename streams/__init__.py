"""The queue room: every Redis stream the bot and the workers share, read and written in one place.

consumer.py: one consumer-group reader (read, claim stale, acknowledge, count deliveries, prune gone
consumers) that the updates, results and jobs streams share; producer.py: the Lua scripts that write
to them (enqueue a job, publish a result, store updates), each once per id. An operation is written
once as a generator of Redis commands; run() executes it on a redis client, run_async() on a
redis.asyncio one (ops.py). Imports protocol (key names, the job format); protocol never imports it.
"""

from streams.consumer import Entry, StreamConsumer, jobs_consumer, results_consumer, updates_consumer
from streams.ops import run, run_async
from streams.producer import enqueue, publish_result, store_updates

__all__ = ["Entry", "StreamConsumer", "enqueue", "jobs_consumer", "publish_result", "results_consumer", "run",
           "run_async", "store_updates", "updates_consumer"]
