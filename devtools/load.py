"""Load: simulated Telegram users against real bot and worker processes, a real Redis and the Bot API
emulator (Cluster); every request must be answered exactly once (run_load's report).

Each user sends its requests one after another (a /poem variant, /similar, or a button on its last
poem) and waits for the answer; all users run at once. Faults (kill -9 a worker mid-batch, kill -9 and
restart the bot, restart Redis) can be injected when a share of the requests has been answered.
tests/ (the cluster fixture, tests/robustness/) and `python -m benchmarks.load` drive the same code.
"""
from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import numpy as np

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from devtools.emulator import ApiCall, BotApiEmulator
from devtools.procs import RedisServer, child_env, eventually, poembot_child
from protocol import keys
from protocol.keys import INFLIGHT_KEY, RESULTS_GROUP, UPDATES_GROUP, UPDATES_STREAM
from run.child import Child

# Characters every model here can write (the shipped vocabulary and the tests' tiny one).
THEMES = ["春风", "明月", "秋雨", "江山", "山水", "云天", "风雪", "归人", "江月", "花雨"]
ACROSTICS = ["春夏秋冬", "风花雪月", "山水云天", "江月人归"]
FORMS = ["五绝", "七绝", "五律", "七律"]
KINDS = ("poem", "poem_form", "acrostic", "similar", "again", "like")
WEIGHTS = (3, 2, 2, 1, 1, 1)
BUTTON = {"again": "🔄", "like": "❤️"}


@dataclass
class Request:
    user_id: int
    kind: str
    keys: list[tuple]           # answers that make up this request's reply (message and/or button)
    sent_at: float
    answered_at: float | None = None
    answer_kind: str = ""       # "poem" (has buttons), "text" (any other message), "alert"
    unlinked: bool = False      # answered by a message that quotes nothing


@dataclass
class Fault:
    """Something to do once `at` (a share of all requests) have been answered."""
    at: float
    name: str
    action: Callable[["Cluster"], Awaitable[dict[str, Any]]]
    fired_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class Answers:
    """Every reply the bot sent, filed by what it answers: (chat, replied-to message) or ("cq", query).

    Quick replies in a private chat (e.g. "the model cannot write 夜") quote nothing: they are filed under
    (chat, None) and belong to that user's one request in flight.
    """

    def __init__(self) -> None:
        self.by_key: dict[tuple, list[ApiCall]] = defaultdict(list)
        self.changed = asyncio.Event()

    def on_call(self, call: ApiCall) -> None:
        if not call.ok:
            return
        if call.method == "sendMessage":
            reply = call.params.get("reply_parameters") or {}
            target = reply.get("message_id") if isinstance(reply, dict) else None
            self.by_key[(call.params.get("chat_id"), target)].append(call)
        elif call.method == "answerCallbackQuery":
            self.by_key[("cq", call.params.get("callback_query_id"))].append(call)
        else:
            return
        self.changed.set()

    async def wait(self, key: tuple, count: int, timeout: float, unlinked: int | None = None) -> ApiCall:
        """The count-th answer under key, or a new unquoted one in its chat when unlinked (how many
        there were before the request) is given."""
        deadline = time.monotonic() + timeout
        loose = (key[0], None)

        def done() -> bool:
            return len(self.by_key[key]) >= count or (unlinked is not None and len(self.by_key[loose]) > unlinked)

        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer for {key} within {timeout:.0f}s")
            self.changed.clear()
            if done():
                break
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass
        return self.by_key[key][count - 1] if len(self.by_key[key]) >= count else self.by_key[loose][-1]


class Cluster:
    """Redis, the emulator, one bot process and N worker processes, each restartable or killable."""

    def __init__(self, model_dir: Path, workers: int = 2, index_path: Path | None = None,
                 claim_idle_ms: int = 3000, visibility_ms: int = 5000, max_batch: int = 32,
                 bot_env: dict[str, Any] | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.n_workers = workers
        self.index_path = index_path
        self.claim_idle_ms = claim_idle_ms
        self.visibility_ms = visibility_ms
        self.max_batch = max_batch
        self.bot_env = bot_env or {}
        self.dir = Path(tempfile.mkdtemp(prefix="pbl"))        # short: unix socket paths are limited
        self.redis = RedisServer(self.dir)
        self.emu = BotApiEmulator()
        self.bots: list[Child] = []
        self.workers: dict[int, Child] = {}
        self.generation = 0
        self.client: aioredis.Redis | None = None

    async def __aenter__(self) -> "Cluster":
        await asyncio.to_thread(self.redis.start)
        self.client = aioredis.from_url(self.redis.url, decode_responses=True)
        await self.emu.start()
        for i in range(self.n_workers):
            self.start_worker(i)
        self.start_bot()
        await self.until(self.workers_alive, lambda n: n >= self.n_workers, 300, "workers did not start")
        await self.until(self.polling, bool, 120, "the bot did not start polling")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for child in [*self.bots, *self.workers.values()]:
            await asyncio.to_thread(child.stop)
        await self.emu.stop()
        if self.client is not None:
            await self.client.aclose()
        await asyncio.to_thread(self.redis.stop)
        if not any(exc):
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- processes ---------------------------------------------------------------------------
    def _name(self, role: str) -> str:
        self.generation += 1
        return f"{role}{self.generation}"

    def start_worker(self, slot: int) -> Child:
        name = self._name(f"worker{slot}-")
        argv = ["-m", "poembot_cli", "worker", "--model", str(self.model_dir), "--worker-id", name,
                "--max-batch", str(self.max_batch), "--max-wait-ms", "20",
                "--visibility-ms", str(self.visibility_ms)]
        child = poembot_child(name, argv, child_env(REDIS_URL=self.redis.url), self.dir).start()
        self.workers[slot] = child
        return child

    def start_bot(self) -> Child:
        name = self._name("bot")
        env = child_env(TELEGRAM_BOT_TOKEN=self.emu.token, TELEGRAM_API_URL=self.emu.url,
                        REDIS_URL=self.redis.url, POEMBOT_MODEL_DIR=self.model_dir,
                        POEMBOT_INDEX_PATH=self.index_path, POEMBOT_CONSUMER_NAME=name,
                        POEMBOT_CLAIM_IDLE_MS=self.claim_idle_ms, POEMBOT_POLL_TIMEOUT_S=1,
                        POEMBOT_RATE_PER_MIN=60, POEMBOT_QUEUE_CAP=100_000, **self.bot_env)
        argv = ["-c", "from bot.app import main; raise SystemExit(main())"]
        child = poembot_child(name, argv, env, self.dir).start()
        self.bots.append(child)
        return child

    @property
    def bot(self) -> Child:
        return self.bots[-1]

    # --- probes -------------------------------------------------------------------------------
    async def until(self, probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], timeout: float,
                    message: str) -> Any:
        """procs.eventually, through Redis restarts (OSError, RedisError), with the processes' logs."""
        return await eventually(probe, ok, timeout, message=message, tolerate=(OSError, RedisError),
                                details=self._logs)

    def _logs(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.log()[-3000:]}" for c in [*self.bots, *self.workers.values()])

    async def workers_alive(self) -> int:
        return int(await self.client.zcount(keys.WORKERS_ALIVE_KEY, keys.alive_since(time.time()), "+inf"))

    async def polling(self) -> bool:
        return self.emu.waiting_polls > 0

    async def queue_depth(self) -> int:
        return int(await self.client.xlen(keys.JOBS_STREAM))

    async def unfinished(self) -> dict[str, int]:
        """Work anywhere in the system: jobs, results and updates not yet acknowledged, jobs in flight."""
        out = {"jobs": int(await self.client.xlen(keys.JOBS_STREAM)),
               "inflight": int(await self.client.zcard(INFLIGHT_KEY))}
        for name, stream, group in (("results", keys.RESULTS_STREAM, RESULTS_GROUP),
                                    ("updates", UPDATES_STREAM, UPDATES_GROUP)):
            try:
                out[name] = int((await self.client.xpending(stream, group))["pending"])
            except aioredis.ResponseError:
                out[name] = 0       # no group yet: nothing read, nothing pending
        return out

    # --- faults -------------------------------------------------------------------------------
    async def kill_worker_mid_batch(self, slot: int = 0) -> dict[str, Any]:
        """kill -9 worker `slot` while it holds jobs, then start a replacement (as a supervisor would)."""
        victim = self.workers[slot]
        holding = await self.until(lambda: self._holding(victim.name), lambda n: n > 0, 120,
                                   f"{victim.name} never held a job")
        await asyncio.to_thread(victim.kill)
        self.start_worker(slot)
        return {"worker": victim.name, "jobs_in_hand": holding}

    async def _holding(self, consumer: str) -> int:
        for info in await self.client.xinfo_consumers(keys.JOBS_STREAM, keys.WORKER_GROUP):
            if info["name"] == consumer:
                return int(info["pending"])
        return 0

    async def kill_and_restart_bot(self) -> dict[str, Any]:
        victim = self.bot
        await asyncio.to_thread(victim.kill)
        self.start_bot()
        return {"bot": victim.name, "restarted_as": self.bot.name}

    async def restart_redis(self) -> dict[str, Any]:
        started = time.monotonic()
        await asyncio.to_thread(self.redis.restart)
        return {"redis_down_s": round(time.monotonic() - started, 2)}


async def user_session(cluster: Cluster, answers: Answers, user_id: int, n: int, rng: random.Random,
                       timeout: float, out: list[Request]) -> None:
    emu = cluster.emu
    user = BotApiEmulator.user(user_id, f"u{user_id}", language_code="en" if user_id % 5 == 0 else "zh-hans")
    last_poem: ApiCall | None = None
    for _ in range(n):
        kind = rng.choices(KINDS, WEIGHTS)[0]
        if kind in BUTTON and last_poem is None:
            kind = "poem"
        started = time.monotonic()
        if kind in BUTTON:
            data = next(b["callback_data"] for b in last_poem.buttons if BUTTON[kind] in b["text"])
            query = await emu.press(user, last_poem, data)
            wanted = [("cq", query)]
            if kind == "again":           # the new poem answers the poem message it was asked from
                wanted.append((user_id, last_poem.result["message_id"]))
        else:
            text = {"poem": f"/poem {rng.choice(THEMES)}",
                    "poem_form": f"/poem {rng.choice(FORMS)} {rng.choice(THEMES)}",
                    "acrostic": f"/acrostic {rng.choice(ACROSTICS)}",
                    "similar": "/similar"}[kind]
            message = await emu.send_text(user, text)
            wanted = [(user_id, message["message_id"])]
        request = Request(user_id, kind, wanted, started)
        out.append(request)
        loose = len(answers.by_key[(user_id, None)])
        try:
            reply = None
            for key in wanted:
                expected = sum(1 for r in out if key in r.keys)   # earlier 🔄 on the same poem count too
                reply = await answers.wait(key, expected, timeout, None if key[0] == "cq" else loose)
                if reply.params.get("reply_parameters") is None and reply.method == "sendMessage":
                    request.unlinked = True
                    request.keys = [k for k in request.keys if k != key]
                    break
        except TimeoutError:
            return          # counted as unanswered; this user stops like an impatient person would
        request.answered_at = time.monotonic()
        if reply.method == "answerCallbackQuery":
            request.answer_kind = "alert"
        elif any(BUTTON["again"] in b["text"] for b in reply.buttons):
            request.answer_kind = "poem"
            last_poem = reply
        else:
            request.answer_kind = "text"


async def run_load(cluster: Cluster, users: int, per_user: int, *, faults: list[Fault] = (),
                   seed: int = 0, timeout: float = 300.0) -> dict[str, Any]:
    """Drive the load; returns the report (figures and every inconsistency found)."""
    answers = Answers()
    cluster.emu.listeners.append(answers.on_call)
    requests: list[Request] = []
    total = users * per_user
    peak = {"queue": 0, "inflight": 0}
    stop_sampling = asyncio.Event()

    async def sample() -> None:
        while not stop_sampling.is_set():
            try:
                peak["queue"] = max(peak["queue"], await cluster.queue_depth())
                peak["inflight"] = max(peak["inflight"], int(await cluster.client.zcard(INFLIGHT_KEY)))
            except (OSError, RedisError):
                pass            # Redis restarting
            try:
                await asyncio.wait_for(stop_sampling.wait(), 0.1)
            except TimeoutError:
                pass

    async def inject_faults() -> None:
        for fault in sorted(faults, key=lambda f: f.at):
            await cluster.until(lambda: _answered(requests), lambda n: n >= fault.at * total, timeout,
                                f"load stalled before fault {fault.name}")
            fault.fired_at = time.monotonic() - t0
            fault.detail = await fault.action(cluster)

    t0 = time.monotonic()
    calls0 = len(cluster.emu.calls)
    sampler = asyncio.get_running_loop().create_task(sample())
    rngs = [random.Random(seed * 100_003 + u) for u in range(users)]
    sessions = [user_session(cluster, answers, 10_000 + u, per_user, rngs[u], timeout, requests)
                for u in range(users)]
    await asyncio.gather(inject_faults(), *sessions)
    load_s = time.monotonic() - t0
    sends = sum(1 for c in cluster.emu.calls[calls0:] if c.params.get("chat_id") is not None)
    # Quiet means nothing left anywhere that could still send a reply: then count duplicates.
    await cluster.until(cluster.unfinished, lambda u: not any(u.values()), timeout,
                        "work left unfinished after the load")
    stop_sampling.set()
    await sampler
    cluster.emu.listeners.remove(answers.on_call)
    result = report(requests, answers, total, load_s, peak, faults, t0)
    # AIORateLimiter keeps a bot to Telegram's ~30 requests/s with a chat_id: the ceiling of this load.
    result["bot_api_sends_per_s"] = round(sends / load_s, 1)
    return result


async def _answered(requests: list[Request]) -> int:
    return sum(1 for r in requests if r.answered_at is not None)


def report(requests: list[Request], answers: Answers, total: int, load_s: float, peak: dict[str, int],
           faults: list[Fault], t0: float) -> dict[str, Any]:
    expected: Counter = Counter(key for r in requests for key in r.keys)
    expected.update((r.user_id, None) for r in requests if r.unlinked)
    expected.update({k: 0 for k in answers.by_key})       # an answer nobody asked for is a duplicate too
    duplicates = {k: len(answers.by_key[k]) - n for k, n in expected.items() if len(answers.by_key[k]) > n}
    wall0 = time.time() - (time.monotonic() - t0)      # emulator calls carry wall-clock times
    unanswered = [r for r in requests if r.answered_at is None]
    latencies = np.array([r.answered_at - r.sent_at for r in requests if r.answered_at is not None])
    pct = (lambda q: round(float(np.percentile(latencies, q)), 3)) if latencies.size else (lambda q: None)
    by_kind = Counter(r.kind for r in requests)
    answer_kinds = Counter(f"{r.kind}->{r.answer_kind}" for r in requests if r.answered_at is not None)
    return {
        "requests": total, "sent": len(requests), "answered": len(requests) - len(unanswered),
        "unanswered": len(unanswered) + (total - len(requests)), "duplicates": sum(duplicates.values()),
        "duplicate_keys": {str(k): [(round(c.at - wall0, 2), c.text[:24]) for c in answers.by_key[k]]
                           for k in list(duplicates)[:10]},
        "unanswered_sample": [{"user": r.user_id, "kind": r.kind, "sent_s": round(r.sent_at - t0, 1),
                               "keys": [list(k) for k in r.keys]} for r in unanswered[:10]],
        "latency_s": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100)},
        "throughput_per_s": round(len(latencies) / load_s, 1) if load_s else None,
        "load_s": round(load_s, 1), "peak_queue_depth": peak["queue"], "peak_inflight": peak["inflight"],
        "by_kind": dict(by_kind), "answers": dict(answer_kinds),
        "faults": [{"name": f.name, "at_share": f.at, "at_s": round(f.fired_at, 1) if f.fired_at else None,
                    **f.detail} for f in faults],
    }


def standard_faults() -> list[Fault]:
    return [Fault(0.15, "kill -9 a worker mid-batch", lambda c: c.kill_worker_mid_batch(0)),
            Fault(0.40, "kill -9 the bot, start a new one", lambda c: c.kill_and_restart_bot()),
            Fault(0.65, "restart Redis (AOF)", lambda c: c.restart_redis())]


def summary(result: dict[str, Any]) -> str:
    lat = result["latency_s"]
    return (f"load: {result['answered']}/{result['requests']} answered, {result['duplicates']} twice, "
            f"p50 {lat['p50']}s p99 {lat['p99']}s, {result['throughput_per_s']}/s "
            f"({result.get('bot_api_sends_per_s')} Bot API sends/s), "
            f"peak queue {result['peak_queue_depth']}, faults {len(result['faults'])}"
            + (f"; one user alone: p50 {result['baseline_one_user_latency_s']['p50']}s"
               if "baseline_one_user_latency_s" in result else ""))
