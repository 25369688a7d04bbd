"""The worker against a real Redis with real worker processes: round trip, takeover after kill -9,
poison jobs, Redis restarts, graceful stop. Where a process adds nothing to what is tested (the
worker that takes over, the loop that outlives a Redis restart, the model that fails on one job),
the worker runs on a thread: each process is ~12 s of CPU, most of it importing TensorFlow. Every
wait polls real state with a deadline.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from protocol import keys
from protocol.connections import connect, live_workers, wait_results
from streams import StreamConsumer, enqueue, jobs_consumer, results_consumer, run, run_async
from model.requests import Answer
from protocol.jobs import (E_BAD_MESSAGE, E_DEAD_LETTER, E_IMPOSSIBLE, E_INVALID, EncodeJob, GenerateJob, Result,
                        job_to_json, result_from_fields)
from botkit import start_worker  # noqa: F401  (a fixture)
from conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
JOBS = jobs_consumer("test")      # the workers' group on the jobs stream, as a test reads it


class WorkerProc:
    """A real worker process; with faults (tests/faulty_worker.py's options, e.g. ["--sleep-s", "60"]),
    the same worker started through that wrapper, whose model is slow or raises on command."""

    def __init__(self, redis_url: str, model_dir: Path, tmp: Path, name: str,
                 env: dict[str, str] | None = None, faults: list[str] | None = None, **opts: object) -> None:
        self.id = name
        entry = [str(ROOT / "tests" / "faulty_worker.py"), *faults, "--"] if faults else ["-m", "poembot_cli"]
        args = [sys.executable, *entry, "worker", "--redis-url", redis_url, "--model", str(model_dir),
                "--worker-id", name, "--metrics-port", "0"]
        for k, v in opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        env = dict(os.environ, POEMBOT_DATA_DIR=str(tmp / "data"),
                   TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT), **(env or {}))
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT)

    def wait_alive(self, client, timeout: float = 90) -> dict:
        def beat():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.id} exited:\n{self.log.read_text()[-3000:]}")
            raw = client.get(keys.heartbeat_key(self.id))
            return json.loads(raw) if raw else None
        return wait_for(beat, timeout=timeout, message=f"worker {self.id} never sent a heartbeat")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture()
def workers(tiny_model_dir, tmp_path, redis_url):
    started: list[WorkerProc] = []

    def start(name: str, env: dict[str, str] | None = None, faults: list[str] | None = None,
              **opts: object) -> WorkerProc:
        w = WorkerProc(redis_url, tiny_model_dir, tmp_path, name, env=env, faults=faults, **opts)
        started.append(w)
        return w
    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(30)


def results_per_job(client) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, fields in client.xrange(keys.RESULTS_STREAM):
        job_id = json.loads(fields[keys.RESULT_FIELD.encode()])["job_id"]
        counts[job_id] = counts.get(job_id, 0) + 1
    return counts


async def test_ensure_group_is_idempotent_with_either_client(redis_client, redis_url) -> None:
    """One operation creates the consumer groups for the worker (sync client) and the bot (asyncio)."""
    import redis.asyncio as aioredis

    run(redis_client, JOBS.ensure_group())
    run(redis_client, JOBS.ensure_group())
    client = aioredis.from_url(redis_url)
    try:
        await run_async(client, JOBS.ensure_group())
        await run_async(client, results_consumer("bot").ensure_group())
        await run_async(client, results_consumer("bot").ensure_group())
        with pytest.raises(Exception, match="WRONGTYPE"):
            redis_client.set("not-a-stream", "x")
            await run_async(client, StreamConsumer("not-a-stream", "g", "c").ensure_group())
    finally:
        await client.aclose()
    assert [g["name"] for g in redis_client.xinfo_groups(keys.JOBS_STREAM)] == [keys.WORKER_GROUP.encode()]
    assert [g["name"] for g in redis_client.xinfo_groups(keys.RESULTS_STREAM)] == [keys.RESULTS_GROUP.encode()]


def test_a_job_is_enqueued_once_per_id(redis_client) -> None:
    """The one enqueue (the bot's, used here as everywhere): a job id sent again adds no entry."""
    job = GenerateJob()
    first = run(redis_client, enqueue(job))
    assert first is not None and run(redis_client, enqueue(job)) is None
    assert [eid.decode() for eid, _ in redis_client.xrange(keys.JOBS_STREAM)] == [first]


def test_claimed_entries_carry_their_delivery_counts(redis_client) -> None:
    """A job another consumer left idle is taken over with how often it was handed out; one trimmed
    away meanwhile is not handed out (empty)."""
    run(redis_client, JOBS.ensure_group())
    kept, trimmed = GenerateJob(), GenerateJob()
    kept_id, trimmed_id = run(redis_client, enqueue(kept)), run(redis_client, enqueue(trimmed))
    dead = jobs_consumer("dead", min_idle_ms=0)
    assert [e.entry_id for e in run(redis_client, dead.read(10, block_ms=0))] == [kept_id, trimmed_id]
    redis_client.xdel(keys.JOBS_STREAM, trimmed_id)
    taker = jobs_consumer("taker", min_idle_ms=0)
    _, claimed = run(redis_client, taker.claim_stale(10))
    assert [(e.entry_id, e.deliveries) for e in claimed] == [(kept_id, 2)]
    assert run(redis_client, taker.deliveries(kept_id)) == 2
    before = run(redis_client, taker.pending())
    run(redis_client, taker.ack(kept_id))
    assert run(redis_client, taker.deliveries(kept_id)) == 0
    assert run(redis_client, taker.pending()) == before - 1


def test_publish_is_once_per_job(redis_client, redis_url) -> None:
    from protocol.settings import WorkerSettings
    from worker.service import Worker
    run(redis_client, JOBS.ensure_group())
    worker = Worker(WorkerSettings(redis_url=redis_url, worker_id="w"), generator=None)
    result = Result(job_id="j1", ok=True, poems=[{"text": "x"}])
    assert worker._publish("", result) is True
    assert worker._publish("", result) is False
    assert results_per_job(redis_client) == {"j1": 1}
    assert redis_client.ttl(keys.result_dedup_key("j1")) > 0


def test_results_are_paired_with_jobs_by_id_not_position(redis_client, redis_url) -> None:
    """A generator that answers out of order, or not at all for one job, still gives each job its
    own result; the unanswered job stays pending for redelivery."""
    from protocol.settings import WorkerSettings
    from worker.service import Worker

    class Shuffling:
        def run(self, requests):
            return [Answer(request_id=r.request_id, ok=True, poems=[{"text": r.acrostic}])
                    for r in reversed(requests) if r.acrostic != "丢"]

    run(redis_client, JOBS.ensure_group())
    worker = Worker(WorkerSettings(redis_url=redis_url, worker_id="w"), generator=Shuffling())
    jobs = [GenerateJob(acrostic=a) for a in ("春", "夏", "丢", "秋")]
    entry_of = {job.acrostic: run(redis_client, enqueue(job)) for job in jobs}
    worker._handle(worker._read(count=10, block_ms=100))
    published = {}
    for _, fields in redis_client.xrange(keys.RESULTS_STREAM):
        result = json.loads(fields[keys.RESULT_FIELD.encode()])
        published[result["job_id"]] = result["poems"][0]["text"]
    assert published == {j.job_id: j.acrostic for j in jobs if j.acrostic != "丢"}
    pending = redis_client.xpending_range(keys.JOBS_STREAM, keys.WORKER_GROUP, "-", "+", 10)
    assert [p["message_id"].decode() for p in pending] == [entry_of["丢"]], \
        "only the unanswered job may stay pending; every answered one is acknowledged"


def test_the_production_worker_takes_no_fault_orders_from_a_job(redis_client, redis_url, monkeypatch) -> None:
    """Fault injection lives in tests/faulty_worker.py: neither the old switch nor a job's reply
    can make the real worker fail (the reply is the sender's, passed through untouched)."""
    from protocol.settings import WorkerSettings
    from worker.service import Worker

    class Echo:
        def run(self, requests):
            return [Answer(request_id=r.request_id, ok=True) for r in requests]

    monkeypatch.setenv("POEMBOT_FAULTS", "1")
    run(redis_client, JOBS.ensure_group())
    worker = Worker(WorkerSettings(redis_url=redis_url, worker_id="w"), generator=Echo())
    job = GenerateJob(reply={"fault": "raise", "fault_worker": "w"})
    run(redis_client, enqueue(job))
    worker._handle(worker._read(count=10, block_ms=100))
    assert results_per_job(redis_client) == {job.job_id: 1}
    assert redis_client.xpending(keys.JOBS_STREAM, keys.WORKER_GROUP)["pending"] == 0


def test_consumers_of_stopped_workers_are_pruned(redis_client) -> None:
    """Only a consumer that is not alive, holds nothing and has been idle long enough goes."""
    import time as clock


    run(redis_client, JOBS.ensure_group())
    run(redis_client, enqueue(GenerateJob()))
    run(redis_client, enqueue(GenerateJob()))
    # "gone" holds nothing and does not beat; "holding" has a pending job; "alive" beats.
    redis_client.xgroup_createconsumer(keys.JOBS_STREAM, keys.WORKER_GROUP, "gone")
    redis_client.xgroup_createconsumer(keys.JOBS_STREAM, keys.WORKER_GROUP, "alive")
    redis_client.xreadgroup(keys.WORKER_GROUP, "holding", {keys.JOBS_STREAM: ">"}, count=1)
    redis_client.zadd(keys.WORKERS_ALIVE_KEY, {"alive": clock.time()})
    alive = redis_client.zrangebyscore(keys.WORKERS_ALIVE_KEY, "-inf", "+inf")
    assert run(redis_client, JOBS.prune(alive, idle_ms=10**9)) == []          # nobody idle that long
    assert run(redis_client, JOBS.prune(alive, idle_ms=0)) == ["gone"]
    names = {c["name"] for c in redis_client.xinfo_consumers(keys.JOBS_STREAM, keys.WORKER_GROUP)}
    assert {n.decode() if isinstance(n, bytes) else n for n in names} == {"holding", "alive"}


def test_the_worker_maps_a_spec_for_the_model_and_echoes_it(redis_client, redis_url) -> None:
    """The generator reads the spec's values in its own fields; the result brings the spec back; a spec
    this build cannot read is answered with an error, not a failed batch."""
    from protocol.jobs import generate_job
    from protocol.settings import WorkerSettings
    from protocol.spec import parse_spec, require
    from worker.service import Worker

    seen = []

    class Recording:
        def run(self, requests):
            seen.extend(requests)
            return [Answer(request_id=r.request_id, ok=True, poems=[{"text": r.acrostic}]) for r in requests]

    run(redis_client, JOBS.ensure_group())
    worker = Worker(WorkerSettings(redis_url=redis_url, worker_id="w"), generator=Recording())
    spec = require(parse_spec({"form": "五律", "acrostic": "春夏", "sampling": {"temperature": 0.8}}))
    good = generate_job(spec, reply={"purpose": "poem"})
    unreadable = generate_job(spec)
    unreadable.spec = {**unreadable.spec, "v": 99}
    for job in (good, unreadable):
        run(redis_client, enqueue(job))
    worker._handle(worker._read(count=10, block_ms=100))
    assert [(r.request_id, r.form, r.acrostic, r.temperature) for r in seen] == [(good.job_id, "五律", "春夏", 0.8)]
    results = {}
    for _, fields in redis_client.xrange(keys.RESULTS_STREAM):
        result = result_from_fields(fields)
        results[result.job_id] = result
    assert results[good.job_id].ok and results[good.job_id].spec == good.spec
    assert not results[unreadable.job_id].ok and results[unreadable.job_id].error_code == E_INVALID
    assert "version 99" in results[unreadable.job_id].error_message


def test_mixed_batch_round_trip(workers, redis_client) -> None:
    jobs = [GenerateJob(form=f, seed=k, acrostic="春秋"[: k % 3], n=1 + k % 2, reply={"chat": k})
            for k, f in enumerate(["五绝", "七绝", "五律", "七律"] * 3)]
    jobs.append(EncodeJob(texts=["春风花月夜，秋雪冬风来。山水江天云，明日人归去。"]))
    bad = GenerateJob(form="五绝", acrostic="春夏秋冬风")
    jobs.append(bad)
    for job in jobs:                               # all queued first, so the worker can batch them
        run(redis_client, enqueue(job))
    w = workers("rt", max_batch=64, max_wait_ms=200)
    status = w.wait_alive(redis_client)
    got = wait_results(redis_client, [j.job_id for j in jobs], timeout_s=120)
    assert all(len(v) == 1 for v in got.values())
    for job in jobs:
        result = got[job.job_id][0]
        assert result.worker_id == "rt"
        if job is bad:
            assert not result.ok and result.error_code == E_IMPOSSIBLE
        elif isinstance(job, EncodeJob):
            assert result.ok and result.kind == "encode" and len(result.poems[0]["mu"]) == 8
        else:
            assert result.ok and result.reply == job.reply and len(result.poems) == job.n
            for poem in result.poems:
                assert poem["form"] == job.form
                assert "".join(line[0] for line in poem["lines"]).startswith(job.acrostic)
    wait_for(lambda: redis_client.xlen(keys.JOBS_STREAM) == 0, timeout=10)
    # the jobs went through in few batches, and the metrics endpoint says so
    port = status["metrics_port"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    batches = next(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("poembot_batch_size_count"))
    assert 1 <= batches < len(jobs) / 2
    assert 'poembot_jobs_total{kind="generate",outcome="ok"} 12.0' in text
    assert w.stop() == 0
    wait_for(lambda: not live_workers(redis_client), timeout=10)    # heartbeat gone: "no worker alive"


def test_worker_serves_and_publishes_its_styles(workers, redis_client, tiny_model_dir, tmp_path) -> None:
    from search.files import model_version
    from protocol.jobs import E_UNKNOWN_STYLE
    from model.styles import random_adapter, save_style

    styles = tmp_path / "styles"
    save_style(styles, "alpha", random_adapter(tiny_model_dir, seed=1, scale=0.5),
               {"title": "甲", "line": "一行", "aliases": ["阿尔法"], "base_version": model_version(tiny_model_dir)})
    save_style(styles, "stale", random_adapter(tiny_model_dir, seed=2), {"base_version": "0" * 16})
    # A style some worker served long ago (taken out of service since): the next beat removes it.
    redis_client.hset(keys.STYLES_KEY, "retired", json.dumps({"title": "旧", "seen_at": 1.0}))
    workers("w1", env={"POEMBOT_STYLES_DIR": str(styles)}).wait_alive(redis_client)
    registry = {k.decode(): json.loads(v) for k, v in redis_client.hgetall(keys.STYLES_KEY).items()}
    assert list(registry) == ["alpha"], "only fresh styles of this base model may be offered"
    assert registry["alpha"]["title"] == "甲" and registry["alpha"]["aliases"] == ["阿尔法"]
    assert keys.style_entry_fresh(registry["alpha"], time.time())
    assert 0 < redis_client.ttl(keys.STYLES_KEY) <= keys.STYLES_FRESH_S
    jobs = [GenerateJob(form="五绝", seed=3, style="alpha"), GenerateJob(form="五绝", seed=3),
            GenerateJob(form="五绝", seed=3, style="stale")]
    for job in jobs:
        run(redis_client, enqueue(job))
    results = wait_results(redis_client, [j.job_id for j in jobs], timeout_s=90)
    styled, plain, refused = (results[j.job_id][0] for j in jobs)
    assert styled.ok and styled.poems[0]["style"] == "alpha" and plain.poems[0]["style"] == ""
    assert styled.poems[0]["lines"] != plain.poems[0]["lines"]
    assert not refused.ok and refused.error_code == E_UNKNOWN_STYLE and "alpha" in refused.error_message


def test_kill_9_mid_batch_another_worker_finishes_every_job(workers, start_worker, redis_client) -> None:
    a = workers("a", faults=["--sleep-s", "60"], visibility_ms=1500, max_wait_ms=300)
    a.wait_alive(redis_client)
    jobs = [GenerateJob(form="七绝", seed=k) for k in range(6)]
    for job in jobs:
        run(redis_client, enqueue(job))

    def a_holds_all() -> bool:
        info = redis_client.xpending(keys.JOBS_STREAM, keys.WORKER_GROUP)
        consumers = {c["name"].decode() if isinstance(c["name"], bytes) else c["name"]: int(c["pending"])
                     for c in info.get("consumers") or []}
        return consumers.get("a", 0) == len(jobs)
    wait_for(a_holds_all, timeout=30, message="worker a never took the batch")
    a.proc.kill()                                  # SIGKILL: no cleanup, jobs stay pending on "a"
    a.proc.wait(10)
    start_worker(worker_id="b", visibility_ms=1500)    # the taker need not be a process of its own
    got = wait_results(redis_client, [j.job_id for j in jobs], timeout_s=120)
    assert all(len(v) == 1 and v[0].ok and v[0].worker_id == "b" for v in got.values())
    wait_for(lambda: redis_client.xlen(keys.JOBS_STREAM) == 0, timeout=10)
    assert results_per_job(redis_client) == {j.job_id: 1 for j in jobs}


def test_poison_job_goes_to_dead_letter_with_an_error_result(start_worker, tiny_generator, redis_client) -> None:
    from faulty_worker import FaultyGenerator

    poison = GenerateJob(form="五绝", seed=1, reply={"chat": 5})
    good = [GenerateJob(form="五绝", seed=k) for k in range(3)]
    unreadable = json.loads(job_to_json(GenerateJob(job_id="future-job")))
    unreadable["v"] = 99
    for job in [poison, *good]:
        run(redis_client, enqueue(job))
    redis_client.xadd(keys.JOBS_STREAM, {keys.JOB_FIELD: json.dumps(unreadable)})
    start_worker(FaultyGenerator(tiny_generator, raise_on=[poison.job_id]), worker_id="p",
                 visibility_ms=600, max_deliveries=2, max_wait_ms=200)
    got = wait_results(redis_client, [poison.job_id, "future-job", *(g.job_id for g in good)], timeout_s=120)
    assert all(got[g.job_id][0].ok for g in good)
    dead = got[poison.job_id]
    assert len(dead) == 1 and not dead[0].ok and dead[0].error_code == E_DEAD_LETTER
    assert dead[0].reply["chat"] == 5
    assert got["future-job"][0].error_code == E_BAD_MESSAGE and "version 99" in got["future-job"][0].error_message
    letters = {json.loads(f[b"job"])["job_id"]: f for _, f in redis_client.xrange(keys.DEAD_STREAM)}
    assert set(letters) == {poison.job_id, "future-job"}
    assert int(letters[poison.job_id][b"deliveries"]) == 3
    wait_for(lambda: redis_client.xlen(keys.JOBS_STREAM) == 0, timeout=10)


def test_worker_reconnects_after_redis_restart(start_worker, redis_server) -> None:
    # On a thread: what is under test is the worker's loop, which a thread runs as a process would.
    client = connect(redis_server.url)
    start_worker(worker_id="r", max_wait_ms=50)
    first = GenerateJob(form="五绝", seed=1)
    run(client, enqueue(first))
    assert wait_results(client, [first.job_id], timeout_s=60)[first.job_id][0].worker_id == "r"
    redis_server.restart()
    client = connect(redis_server.url)
    second = GenerateJob(form="七绝", seed=2)
    run(client, enqueue(second))
    after = wait_results(client, [second.job_id], timeout_s=60)[second.job_id][0]
    assert after.ok and after.worker_id == "r"    # the same worker, alive through the restart


class GatedGenerator:
    """The tiny generator, holding each batch until the test opens the gate."""

    def __init__(self, generator) -> None:
        import threading
        self.generator = generator
        self.entered = threading.Event()
        self.gate = threading.Event()

    def run(self, jobs):
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return self.generator.run(jobs)

    def __getattr__(self, name: str):
        return getattr(self.generator, name)


def test_worker_outlives_redis_out_of_memory(start_worker, tiny_generator, redis_url) -> None:
    """Redis at maxmemory under noeviction refuses the worker's writes (its result, its heartbeat):
    the worker waits it out like an outage, and the result is published once memory comes back."""
    client = connect(redis_url)
    gated = GatedGenerator(tiny_generator)
    worker = start_worker(generator=gated, worker_id="oom", max_wait_ms=5)
    job = GenerateJob(form="五绝", seed=3)
    run(client, enqueue(job))
    assert gated.entered.wait(60)                    # the worker holds the job in hand
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)                # every write is refused from now on
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("probe", "x")
        gated.gate.set()                             # the batch ends; publishing it is refused
        wait_for(lambda: worker.write_refusals > 0, timeout=60, message="the worker never met the refusal")
    finally:
        client.config_set("maxmemory", 0)
    first = wait_results(client, [job.job_id], timeout_s=60)[job.job_id][0]
    assert first.ok and first.worker_id == "oom"
    second = GenerateJob(form="七绝", seed=4)
    run(client, enqueue(second))
    after = wait_results(client, [second.job_id], timeout_s=60)[second.job_id][0]
    assert after.ok and after.worker_id == "oom"     # the same worker, alive through the squeeze


def test_sigterm_finishes_the_batch_in_hand(workers, redis_client) -> None:
    w = workers("t", faults=["--sleep-s", "3"], max_wait_ms=100)
    w.wait_alive(redis_client)
    # Liveness is a bounded sorted set, not a keyspace scan; loading ended with the first beat.
    assert redis_client.zscore(keys.WORKERS_ALIVE_KEY, "t") is not None
    assert 0 < redis_client.ttl(keys.WORKERS_ALIVE_KEY) <= keys.HEARTBEAT_TTL_S
    assert redis_client.zscore(keys.WORKERS_LOADING_KEY, "t") is None
    assert [s["worker_id"] for s in live_workers(redis_client)] == ["t"]
    job = GenerateJob(form="五绝", seed=3)
    run(redis_client, enqueue(job))
    wait_for(lambda: json.loads(redis_client.get(keys.heartbeat_key("t")) or "{}").get("busy"), timeout=30,
             message="worker never started the batch")
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(60) == 0
    got = wait_results(redis_client, [job.job_id], timeout_s=5)
    assert got[job.job_id][0].ok
    assert redis_client.get(keys.heartbeat_key("t")) is None
    assert redis_client.zscore(keys.WORKERS_ALIVE_KEY, "t") is None and live_workers(redis_client) == []
