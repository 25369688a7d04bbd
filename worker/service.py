"""The decoding worker: Redis Streams consumer group in, results stream out, dynamic batching.

At-least-once delivery with exactly-once effect: a job is acked (and deleted) in the same Lua script
that publishes its result, guarded by a SET NX key per job_id, so a re-delivered job publishes nothing new
(streams.producer.publish_result; the reading is streams.consumer's, as the bot's).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import redis

from protocol import keys
from protocol.connections import Backoff, connect, refuses_writes
from protocol.jobs import (E_BAD_MESSAGE, E_DEAD_LETTER, E_INTERNAL, Job, JobFormatError, Result, job_from_fields,
                           job_id_from_fields, reply_from_fields)
from model.generate import load_generator
from worker.request import serve
from worker.metrics import WorkerMetrics
from protocol.settings import PRETRAINED_DIR
from protocol.settings import WorkerSettings
from streams import Entry, jobs_consumer, publish_result, run

log = logging.getLogger("poembot.worker")

CPU_BATCH, CPU_WAIT_MS = 64, 25          # 2-core CPU: batches past ~64 poems gain little throughput
GPU_BATCH, GPU_WAIT_MS = 512, 10
BLOCK_MS = 1000                           # longest blocking read: bounds how late a SIGTERM is seen
PRUNE_EVERY_S = 60.0                      # how often a worker deletes the group consumers of stopped ones
PRUNE_IDLE_MS = 10 * 60_000               # a stopped worker's consumer is deleted once idle this long


def default_batching(settings: WorkerSettings) -> WorkerSettings:
    """settings with the max_batch / max_wait_ms the environment left unset filled in by device."""
    if settings.max_batch is not None and settings.max_wait_ms is not None:
        return settings
    # A generator that runs on TensorFlow has imported it by now; without it nothing runs on a GPU
    # (and a Worker built without a model need not load TensorFlow to find that out).
    tf = sys.modules.get("tensorflow")
    gpu = bool(tf and tf.config.list_physical_devices("GPU"))
    batch, wait = (GPU_BATCH, GPU_WAIT_MS) if gpu else (CPU_BATCH, CPU_WAIT_MS)
    return settings.model_copy(update={
        "max_batch": batch if settings.max_batch is None else settings.max_batch,
        "max_wait_ms": wait if settings.max_wait_ms is None else settings.max_wait_ms})


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Worker:
    """One consumer of the jobs stream. `run()` blocks until `stop()` (or SIGTERM via run_worker).

    block_ms: the longest blocking read, so how late a stop is seen (tests stop sooner with less).
    couplets: the couplet model (model.couplet.CoupletWriter) that serves CoupletJobs, or None
    (they are then answered E_NO_COUPLET_MODEL). ci: the 词 model (model.ci.CiWriter) that serves
    poem jobs with a tune, or None (they are then answered E_NO_MODEL)."""

    def __init__(self, settings: WorkerSettings, generator: Any, block_ms: int = BLOCK_MS,
                 couplets: Any = None, ci: Any = None) -> None:
        self.s = default_batching(settings)
        self.block_ms = block_ms
        self.generator = generator
        self.couplets = couplets
        self.ci = ci
        self.client = connect(settings.redis_url)
        self.beat_client = connect(settings.redis_url)
        self.jobs = jobs_consumer(settings.worker_id, block_ms, min_idle_ms=settings.visibility_ms)
        self.metrics = WorkerMetrics(settings.worker_id)
        self.stopping = threading.Event()
        self.in_flight: set[str] = set()          # entry ids being decoded now (kept visible to us)
        self.lock = threading.Lock()
        # Results decoded but not yet published: (entry id, result, job created_at).
        self.outbox: list[tuple[str, Result, float | None]] = []
        self.started_at = time.time()
        self.write_refusals = 0         # times Redis refused a write (out of memory, read-only)
        self.jobs_done = 0
        self.busy_batch = 0
        self._last_claim = 0.0
        self._claim_cursor = "0-0"

    # --- lifecycle ------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def run(self) -> None:
        if self.s.metrics_port is not None:
            self.metrics.serve(self.s.metrics_port)
        beat = threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True)
        beat.start()
        backoff = Backoff()
        ready = False
        log.info("worker %s: batch ≤%d, wait ≤%d ms", self.s.worker_id, self.s.max_batch, self.s.max_wait_ms)
        while not self.stopping.is_set():
            try:
                if not ready:
                    run(self.client, self.jobs.ensure_group())
                    ready = True
                    backoff.reset()
                self._flush_outbox()
                self._step()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError) as exc:
                ready = False
                self.metrics.redis_reconnects.inc()
                delay = backoff.next_delay()
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
                self.stopping.wait(delay)
            except redis.ResponseError as exc:
                if refuses_writes(exc):
                    # Out of memory or a read-only replica: it passes, as an outage does.
                    self.write_refusals += 1
                    delay = backoff.next_delay()
                    log.warning("redis refuses writes (%s); retrying in %.1fs", exc, delay)
                    self.stopping.wait(delay)
                    continue
                if "NOGROUP" not in str(exc):
                    raise
                ready = False            # Redis came back empty: make the group again
        self._flush_outbox_on_exit()
        beat.join(timeout=5)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(keys.WORKERS_ALIVE_KEY, self.s.worker_id)
            pipe.delete(keys.heartbeat_key(self.s.worker_id))
            pipe.execute()
        except redis.RedisError:
            pass
        log.info("worker %s stopped after %d jobs", self.s.worker_id, self.jobs_done)

    # --- one iteration ------------------------------------------------------------------------
    def _step(self) -> None:
        entries: list[Entry] = []
        now = time.monotonic()
        if now - self._last_claim >= self.s.beat_s:
            self._last_claim = now
            entries += self._claim()
        room = self.s.max_batch - len(entries)
        if room > 0:
            entries += self._read(room, block_ms=0 if entries else self.block_ms)
        if entries:
            self._handle(entries)

    def _read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to count new entries: block for the first (0: not at all), then gather more for at most
        max_wait_ms."""
        out = run(self.client, self.jobs.read(count, block_ms))
        if not out:
            return out
        deadline = time.monotonic() + self.s.max_wait_ms / 1000
        while len(out) < count:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = run(self.client, self.jobs.read(count - len(out), left_ms))
            if not more:
                break
            out += more
        return out

    def _claim(self) -> list[Entry]:
        """Jobs idle past the visibility timeout (their consumer died or gave up), with delivery counts."""
        # Resume the scan where it stopped, so idle jobs behind many live ones are reached too.
        self._claim_cursor, entries = run(self.client, self.jobs.claim_stale(self.s.max_batch, self._claim_cursor))
        if entries:
            self.metrics.claimed.inc(len(entries))
            log.info("claimed %d idle jobs", len(entries))
        return entries

    def _handle(self, entries: list[Entry]) -> None:
        jobs: list[tuple[str, Job]] = []
        for entry_id, fields, delivered in entries:
            try:
                job = job_from_fields(fields)
            except JobFormatError as exc:
                self._dead_letter(entry_id, fields, f"{E_BAD_MESSAGE}: {exc}", delivered,
                                  E_BAD_MESSAGE, f"this request could not be read: {exc}")
                continue
            if delivered > self.s.max_deliveries:
                self._dead_letter(entry_id, fields, f"failed {delivered - 1} deliveries", delivered,
                                  E_DEAD_LETTER, "this request failed repeatedly and was set aside")
                continue
            jobs.append((entry_id, job))
        if not jobs:
            return
        with self.lock:
            self.in_flight = {eid for eid, _ in jobs}
        self.busy_batch = len(jobs)
        try:
            try:
                self._beat()                     # tell the bot we are busy now, not at the next beat
            except redis.RedisError:
                pass
            started = time.perf_counter()
            results = self._run(jobs)
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
            self.metrics.batch_size.observe(len(jobs))
            for entry_id, job in jobs:
                # By job id, never by position: a generator that drops or reorders a result must
                # not hand one user another's poem.
                result = results.get(job.job_id)
                if result is None:
                    continue                     # stays pending; redelivered after the visibility timeout
                result.worker_id = self.s.worker_id
                result.finished_at = time.time()
                self.outbox.append((entry_id, result, getattr(job, "created_at", None)))
            self._flush_outbox()
        finally:
            with self.lock:
                self.in_flight = set()
            self.busy_batch = 0

    def _run(self, jobs: list[tuple[str, Job]]) -> dict[str, Result]:
        """Results of the batch by job id; if the batch fails, each job alone, so one poison job
        fails alone (and has no result: it stays pending)."""
        try:
            return {r.job_id: r for r in self._serve([job for _, job in jobs])}
        except Exception:                        # noqa: BLE001 - isolate the culprit below
            if len(jobs) == 1:
                log.exception("job %s failed", jobs[0][1].job_id)
                self.metrics.errors.labels(code=E_INTERNAL).inc()
                return {}
            log.warning("batch of %d failed; retrying its jobs one by one", len(jobs))
        out: dict[str, Result] = {}
        for item in jobs:
            out.update(self._run([item]))
        return out

    def _serve(self, jobs: list[Job]) -> list[Result]:
        """Each job checked and mapped to the model's request, couplets to the couplet model, ci to
        the ci model and the rest (poems, encodings) to the poem generator, the answers mapped back
        (worker.request)."""
        return serve(jobs, self.generator, self.couplets, self.ci)

    # --- publishing -----------------------------------------------------------------------------
    def _publish(self, entry_id: str, result: Result, created_at: float | None = None) -> bool:
        fresh = run(self.client, publish_result(result, self.s.worker_id, entry_id))
        kind = result.kind
        if fresh:
            outcome = "ok" if result.ok else "error"
            self.metrics.jobs.labels(kind=kind, outcome=outcome).inc()
            if not result.ok:
                self.metrics.errors.labels(code=result.error_code or E_INTERNAL).inc()
            if created_at:
                self.metrics.job_latency.labels(kind=kind).observe(max(0.0, time.time() - created_at))
            self.jobs_done += 1
        else:
            self.metrics.jobs.labels(kind=kind, outcome="duplicate").inc()
        return bool(fresh)

    def _flush_outbox(self) -> None:
        while self.outbox:
            entry_id, result, created_at = self.outbox[0]
            self._publish(entry_id, result, created_at)
            self.outbox.pop(0)

    def _flush_outbox_on_exit(self) -> None:
        try:
            self._flush_outbox()
        except redis.RedisError as exc:
            log.warning("%d results unpublished at exit (%s); their jobs will be redone",
                        len(self.outbox), exc)

    def _dead_letter(self, entry_id: str, fields: dict, reason: str, delivered: int, code: str,
                     message: str) -> None:
        job_id = job_id_from_fields(fields) or f"entry:{entry_id}"
        body = {_s(k): _s(v) for k, v in fields.items()}
        body.update({"reason": reason, "deliveries": str(delivered), "worker_id": self.s.worker_id,
                     "entry_id": entry_id, "job_id": job_id})
        self.client.xadd(keys.DEAD_STREAM, body, maxlen=keys.DEAD_MAXLEN, approximate=True)
        self.metrics.dead_letters.inc()
        log.warning("dead-lettered %s (%s)", job_id, reason)
        result = Result.error(job_id, code, message, reply=reply_from_fields(fields),
                              worker_id=self.s.worker_id)
        self._publish(entry_id, result)

    # --- heartbeat and visibility ---------------------------------------------------------------
    def _beat_loop(self) -> None:
        next_prune = 0.0
        while not self.stopping.is_set():
            try:
                # Styles first: a worker whose heartbeat is seen has its styles in the registry.
                # Here, not in _beat: _beat also runs at the start of every batch, a hot path.
                self._publish_styles()
                self._beat()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    alive = self.beat_client.zrangebyscore(keys.WORKERS_ALIVE_KEY, keys.alive_since(time.time()),
                                                           "+inf")
                    gone = run(self.beat_client, self.jobs.prune(alive, max(self.s.visibility_ms, PRUNE_IDLE_MS)))
                    if gone:
                        log.info("pruned the consumers of %d stopped workers: %s", len(gone), ", ".join(gone))
            except redis.RedisError as exc:
                log.debug("heartbeat failed: %s", exc)
            self.stopping.wait(self.s.beat_s)

    def _beat(self) -> None:
        with self.lock:
            ids = sorted(self.in_flight)
        run(self.beat_client, self.jobs.keep(ids))    # no other worker claims what this one decodes
        status = {"worker_id": self.s.worker_id, "pid": os.getpid(), "host": socket.gethostname(),
                  "started_at": self.started_at, "at": time.time(), "busy": self.busy_batch,
                  "jobs_done": self.jobs_done, "max_batch": self.s.max_batch, "model_dir": str(self.s.model_dir or ""),
                  "metrics_port": getattr(self.metrics, "port", None)}
        now = time.time()
        pipe = self.beat_client.pipeline(transaction=False)
        pipe.set(keys.heartbeat_key(self.s.worker_id), json.dumps(status), ex=keys.HEARTBEAT_TTL_S)
        pipe.zadd(keys.WORKERS_ALIVE_KEY, {self.s.worker_id: now})
        pipe.zremrangebyscore(keys.WORKERS_ALIVE_KEY, "-inf", f"({keys.alive_since(now)}")
        pipe.expire(keys.WORKERS_ALIVE_KEY, keys.HEARTBEAT_TTL_S)
        # The model is loaded once a Worker exists: from now on, no heartbeat means "offline", not "loading".
        pipe.set(keys.WORKERS_READY_KEY, self.s.worker_id, ex=keys.WORKERS_READY_TTL_S)
        pipe.zrem(keys.WORKERS_LOADING_KEY, self.s.worker_id)
        pipe.execute()
        depth = int(self.beat_client.xlen(keys.JOBS_STREAM))
        self.metrics.queue_depth.set(depth)
        try:
            self.metrics.pending.set(run(self.beat_client, self.jobs.pending()))
        except redis.ResponseError:
            pass


    def _publish_styles(self) -> None:
        """HSET this worker's styles into the registry the bot reads (/styles, style names in
        /poem); the TTL is refreshed each beat, so a registry no worker serves fades away."""
        styles = getattr(self.generator, "styles", None)
        now = time.time()
        if styles:
            self.beat_client.hset(keys.STYLES_KEY, mapping={
                s.id: json.dumps({**s.summary(), "seen_at": now}, ensure_ascii=False) for s in styles.styles})
        stale = []
        for style_id, raw in self.beat_client.hgetall(keys.STYLES_KEY).items():
            try:
                fresh = keys.style_entry_fresh(json.loads(raw), now)
            except (ValueError, TypeError, AttributeError):
                fresh = False
            if not fresh:
                stale.append(style_id)
        if stale:
            self.beat_client.hdel(keys.STYLES_KEY, *stale)
        self.beat_client.expire(keys.STYLES_KEY, keys.STYLES_FRESH_S)


def announce_loading(url: str, worker_id: str) -> None:
    """Tell the bot a model is loading (its first requests then hear "loading", not "offline")."""
    try:
        client = connect(url)
        now = time.time()
        pipe = client.pipeline(transaction=False)
        pipe.zadd(keys.WORKERS_LOADING_KEY, {worker_id: now + keys.WORKER_LOADING_TTL_S})
        pipe.zremrangebyscore(keys.WORKERS_LOADING_KEY, "-inf", now)
        pipe.expire(keys.WORKERS_LOADING_KEY, keys.WORKER_LOADING_TTL_S)
        pipe.execute()
        client.close()
    except redis.RedisError as exc:
        log.debug("could not announce loading: %s", exc)


def load_couplets(settings: WorkerSettings, generator: Any) -> Any:
    """The couplet model beside the poem model (<model dir>/couplet, else the shipped model/couplet),
    writing 春联 上联 with generator; None, with a log line, when there is none."""
    from model.couplet import CoupletWriter, find_couplet_dir

    directory = find_couplet_dir(settings.model_dir or PRETRAINED_DIR)
    if directory is None:
        log.warning("no couplet model: /couplet is answered that it is not ready")
        return None
    log.info("couplet model: %s", directory)
    return CoupletWriter.load(directory, poems=generator)


def load_ci(settings: WorkerSettings, generator: Any) -> Any:
    """The ci model beside the poem model (<model dir>/ci; the shipped one is model/pretrained/ci), checking its
    句 against the poem model's novelty table too; None, with a log line, when there is none."""
    from model.ci import CiWriter, find_ci_dir

    directory = find_ci_dir(settings.model_dir or PRETRAINED_DIR)
    if directory is None:
        log.warning("no ci model: /ci is answered that it is not ready")
        return None
    log.info("ci model: %s", directory)
    return CiWriter.load(directory, poem_novelty=getattr(generator, "novelty", None))


def run_worker(settings: WorkerSettings | None = None) -> int:
    """Load the model and serve jobs until SIGTERM/SIGINT; returns an exit code. settings: what
    `poembot worker` validated before anything loaded (the environment under its options); by
    default, read from the environment."""
    from protocol.logs import setup_logging
    settings = settings or WorkerSettings.from_env()
    setup_logging("worker", settings.log_level, settings.log_format)
    announce_loading(settings.redis_url, settings.worker_id)
    try:
        generator = load_generator(settings.model_dir or PRETRAINED_DIR, settings=settings)
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 2
    worker = Worker(settings, generator, couplets=load_couplets(settings, generator),
                    ci=load_ci(settings, generator))
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
    return 0
