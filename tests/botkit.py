"""Helpers for the bot's tests: a config pointing at the emulator, a running bot, a synthetic index.

Also StandInWorker: a worker double without TensorFlow that answers jobs from the real stream with
deterministic poems, for tests about the bot's own logic; test_bot_e2e.py uses the real worker.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import threading
import time
from pathlib import Path
from datetime import time as dtime
from typing import Any, AsyncIterator, Callable, Iterator

import numpy as np
import pytest
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from telegram.ext import Application

from bot.app import build_application
from protocol.settings import BotSettings
from bot.state import State
from devtools.emulator import BotApiEmulator
from protocol.connections import connect_async, refuses_writes
from streams import jobs_consumer, run_async
from verse import tunes
from verse.forms import FORMS, poem_text
from search.index import Index as LatentIndex
from worker.request import echo, unpack_spec
from protocol.jobs import (E_UNKNOWN_CHARS, EncodeJob, GenerateJob, JobFormatError, Result, job_from_fields,
                        result_fields)
from protocol.keys import (HEARTBEAT_TTL_S, JOBS_STREAM, RESULTS_GROUP, RESULTS_MAXLEN, RESULTS_STREAM, WORKER_GROUP,
                        WORKERS_ALIVE_KEY, WORKERS_READY_KEY, WORKERS_READY_TTL_S, heartbeat_key)
from devtools.procs import eventually  # noqa: F401  (test modules import it from here)

LATENT_DIM = 8           # conftest's tiny model has latent_dim 8 too
SHUTDOWN_TIMEOUT_S = 30
# Synthetic verse material: common characters in arbitrary order, no real poem.
FILLER = "山水云风月花江天人日春秋夜雨青白高远长清明红千万一"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(emu: BotApiEmulator, redis_url: str, **overrides: Any) -> BotSettings:
    """A BotSettings for the emulator whose daily slot is an hour away, so start-up never posts. Built
    unvalidated, as typed values (an emulator not started yet has no URL)."""
    now = time.gmtime()                 # the slot is in tz="UTC", whatever the machine's zone
    base = BotSettings.model_construct(token=emu.token, api_url=emu.url, redis_url=redis_url, model_dir=None,
                                  styles_dir=None, daily_time=dtime((now.tm_hour + 1) % 24, now.tm_min),
                                  tz="UTC", admin_ids=frozenset({900}), typing_max_s=20, poll_timeout_s=2)
    return base.model_copy(update=overrides)


def synthetic_index(n: int = 24, dim: int = LATENT_DIM, seed: int = 0) -> LatentIndex:
    """A real search.index.Index over made-up poems c0..c{n-1}; popularity follows the id order."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    meta = []
    for i in range(n):
        line = "".join(FILLER[(i * 7 + k * 3) % len(FILLER)] for k in range(5))
        meta.append({"title": f"试题{i}", "author": f"作者{i}", "dynasty": "tang" if i % 2 else "song",
                     "form": "五绝", "text": poem_text([line, line[::-1]] * 2),
                     "rank": n - i})
    return LatentIndex("test", [f"c{i}" for i in range(n)], vectors, meta, np.arange(n))


@contextlib.asynccontextmanager
async def running_bot(config: BotSettings, *, index: Any = None, chars: frozenset[str] | None = None,
                      ) -> AsyncIterator[Application]:
    """The real Application, started and stopped the way bot.app.serve does (polling, or the webhook
    server when config has a webhook_url), then stopped."""
    app = build_application(config, index=index, chars=chars)
    await app.initialize()
    await app.post_init(app)
    await app.start()
    try:
        yield app
    finally:
        # Bounded, so a stuck shutdown fails the test with the step's name instead of hanging the run.
        steps = [("stop", app.stop), ("post_stop", lambda: app.post_stop(app)),
                 ("shutdown", app.shutdown), ("post_shutdown", lambda: app.post_shutdown(app))]
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), SHUTDOWN_TIMEOUT_S)
            except TimeoutError:
                raise AssertionError(f"bot shutdown step {name} took over {SHUTDOWN_TIMEOUT_S}s") from None


def fake_mu(text: str, dim: int = LATENT_DIM) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [(b - 128) / 128 for b in digest[:dim]]


def stand_in_poem(job: GenerateJob, seed: int) -> list[str]:
    """Lines meeting the job's acrostic, keywords and fixed lines, filled with FILLER characters; a 词's
    lines have its tune's main form's lengths."""
    form = FORMS.get(job.form)
    lengths = tunes.get(job.tune).main.lengths if job.tune else (form.line_len,) * form.n_lines
    keywords = list(job.keywords)
    lines = []
    for i, length in enumerate(lengths):
        if i in job.fixed_lines:
            lines.append(job.fixed_lines[i])
            continue
        line = job.acrostic[i] if i < len(job.acrostic) else ""
        if keywords and len(line) + len(keywords[0]) <= length:
            line += keywords.pop(0)
        k = seed + i * 5
        while len(line) < length:
            line += FILLER[k % len(FILLER)]
            k += 1
        lines.append(line)
    return lines


def stand_in_ci(job: GenerateJob, lines: list[str], seed: int, index: int) -> dict[str, Any]:
    """A 词's poem dict as the ci model answers (the contract of issue 23): marks of the tune's main form,
    上片 and 下片 joined by a newline, no latent."""
    main = tunes.get(job.tune).main
    marks = [line.mark for line in main.lines]
    k = main.stanza_break or len(lines)
    text = "\n".join("".join(lines[i] + marks[i] for i in part) for part in (range(k), range(k, len(lines))) if part)
    return {"text": text, "lines": lines, "marks": marks, "form": "词", "tune": job.tune,
            "stanza_break": main.stanza_break, "rhyme_ok": True, "tone_rate": 0.8, "form_ok": True, "seed": seed,
            "title": job.title, "index": index, "novel": None, "relaxed": False, "best_of": job.best_of,
            "score": None, "style": "", "mu": []}


class StandInWorker:
    """Serves the jobs stream like worker.service does (same group, heartbeat and Result format)."""

    def __init__(self, redis_url: str, worker_id: str = "stand-in", unknown: str = "") -> None:
        self.redis = connect_async(redis_url, decode_responses=True)     # a cluster client on a cluster
        self.worker_id = worker_id
        self.unknown = set(unknown)         # characters this "model" cannot write
        self.jobs: list[Any] = []
        self._task: asyncio.Task | None = None
        self._seed = 1
        self._stopping = False

    async def start(self) -> "StandInWorker":
        await run_async(self.redis, jobs_consumer(self.worker_id).ensure_group())
        await self._beat()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            # Let the loop end between reads first: a cancel that lands as a redis-py read completes can
            # be swallowed (redis-py 8, Python 3.11) and leave the connection out of step, so the next
            # XREADGROUP never returns and the cancel below would wait out SHUTDOWN_TIMEOUT_S.
            self._stopping = True
            await asyncio.wait({self._task}, timeout=5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, SHUTDOWN_TIMEOUT_S)
        await self.redis.zrem(WORKERS_ALIVE_KEY, self.worker_id)
        await self.redis.delete(heartbeat_key(self.worker_id))
        await self.redis.aclose()

    async def _beat(self) -> None:
        now = time.time()
        await self.redis.set(heartbeat_key(self.worker_id), json.dumps({"at": now}), ex=HEARTBEAT_TTL_S)
        await self.redis.zadd(WORKERS_ALIVE_KEY, {self.worker_id: now})
        await self.redis.expire(WORKERS_ALIVE_KEY, HEARTBEAT_TTL_S)
        await self.redis.set(WORKERS_READY_KEY, self.worker_id, ex=WORKERS_READY_TTL_S)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._beat()
                reply = await self.redis.xreadgroup(WORKER_GROUP, self.worker_id, {JOBS_STREAM: "0"},
                                                    count=8)       # own pending first (after an outage)
                if not reply or not reply[0][1]:
                    reply = await self.redis.xreadgroup(WORKER_GROUP, self.worker_id, {JOBS_STREAM: ">"},
                                                        count=8, block=200)
                for _, entries in reply or []:
                    for entry_id, entry in entries:
                        await self._serve(entry)
                        await self.redis.xack(JOBS_STREAM, WORKER_GROUP, entry_id)
            except (RedisConnectionError, BusyLoadingError, RedisTimeoutError):
                # Redis restarting (or slow to answer on a busy machine): wait for it like worker.service does.
                await asyncio.sleep(0.2)
            except ResponseError as exc:
                if not refuses_writes(exc):          # out of memory or read-only: wait, as the worker does
                    raise
                await asyncio.sleep(0.2)

    async def _serve(self, entry: dict) -> None:
        try:
            job = job_from_fields(entry)
        except JobFormatError:
            return
        if isinstance(job, GenerateJob):
            job = unpack_spec(job)             # the spec in the job's fields, as worker.request does
        self.jobs.append(job)
        if isinstance(job, EncodeJob):
            result = Result(job_id=job.job_id, ok=True, kind="encode", worker_id=self.worker_id,
                            poems=[{"mu": fake_mu(t)} for t in job.texts], reply=job.reply)
        else:
            wanted = set(job.acrostic + "".join(job.keywords))
            if wanted & self.unknown:
                result = Result.error(job.job_id, E_UNKNOWN_CHARS,
                                      f"the model cannot write {''.join(sorted(wanted & self.unknown))}: "
                                      "choose other characters", reply=job.reply, worker_id=self.worker_id)
            else:
                seed = job.seed if job.seed is not None else self._seed
                self._seed += job.n
                poems = []
                for k in range(job.n):
                    lines = stand_in_poem(job, seed + k)
                    if job.tune:
                        poems.append(stand_in_ci(job, lines, seed + k, k))
                        continue
                    text = poem_text(lines, "", "", close=False)
                    poems.append({"text": text, "lines": lines, "form": job.form, "rhyme_ok": True,
                                  "tone_rate": 0.875, "form_ok": True, "mu": fake_mu(text), "seed": seed + k})
                result = Result(job_id=job.job_id, ok=True, worker_id=self.worker_id, reply=job.reply,
                                poems=poems)
        echo(job, result)
        await self.redis.xadd(RESULTS_STREAM, result_fields(result), maxlen=RESULTS_MAXLEN, approximate=True)


async def results_pending(state: State) -> int:
    """Results read by a bot replica but not yet acknowledged."""
    info = await state.redis.xpending(RESULTS_STREAM, RESULTS_GROUP)
    return int(info["pending"])


# --- fixtures (import them into a test module by name; Redis comes from conftest's redis_url) -------

@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def card_fonts() -> Path:
    """The card fonts, fetched by the project's own command into the fonts dir (cached after the first run)."""
    from bot.fonts import fetch_fonts

    return fetch_fonts()


@pytest.fixture
async def stand_in(redis_url: str) -> AsyncIterator[StandInWorker]:
    worker = await StandInWorker(redis_url).start()
    yield worker
    await worker.stop()


@pytest.fixture
def start_worker(redis_url: str, tiny_generator: Any) -> Iterator[Callable[[], Any]]:
    """Starts real workers on threads (call it when the test wants one, with any WorkerSettings
    fields to change, a generator other than the tiny one, a couplet writer); stops them afterwards."""
    from protocol.settings import WorkerSettings
    from worker.service import Worker

    running: list[tuple[Any, threading.Thread]] = []

    def start(generator: Any = None, couplets: Any = None, ci: Any = None, **settings_: Any) -> Any:
        settings = WorkerSettings(redis_url=redis_url, max_batch=8, max_wait_ms=5,
                                  worker_id=f"test-worker-{len(running)}").updated(**settings_)
        worker = Worker(settings, generator or tiny_generator, block_ms=100, couplets=couplets, ci=ci)
        thread = threading.Thread(target=worker.run, name=settings.worker_id, daemon=True)
        thread.start()
        running.append((worker, thread))
        return worker

    yield start
    for worker, thread in running:
        worker.stop()
    for worker, thread in running:
        thread.join(30)
        assert not thread.is_alive(), "worker did not stop"
