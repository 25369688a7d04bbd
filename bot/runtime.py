"""The per-process services handlers share: state, index, vocabulary, and submitting jobs.

submit() applies the per-user rate limit and the global queue cap, enqueues, tells whether a worker
is alive, and keeps the typing indicator up until the reply is delivered (by any replica).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import TelegramError

from protocol.settings import BotSettings
from bot.ingest import current_attempt
from bot.metrics import BotMetrics
from bot.parsing import PoemRequest, spec_fields, unknown_style_error
from bot.similar import Index, IndexSource
from bot.state import State
from bot.stores.users import UserSettings
from protocol.jobs import GenerateJob, Job, generate_job
from protocol.sampling import DEFAULT as SAMPLING
from protocol.spec import CI, PoemSpec, parse_spec, require
from streams import enqueue, run_async
from verse.script import to_simplified

log = logging.getLogger(__name__)

TYPING_REFRESH_S = 4.5    # Telegram shows "typing…" for about 5 s per sendChatAction
# Telegram allows a bot about 30 requests a second and chat actions count: under load, poems first.
TYPING_MAX_ACTIVE = 16
ALIVE_CACHE_S = 2.0       # heartbeats are found by SCAN over the keyspace: not on every request


@dataclass(frozen=True)
class Outcome:
    status: Literal["queued", "loading", "no_worker", "rate_limited", "busy"]
    retry_after: int = 0

    @property
    def accepted(self) -> bool:
        return self.status in ("queued", "loading", "no_worker")


def load_chars(path: Path) -> frozenset[str]:
    """Characters the model can write, from a vocab.json ({"chars": [...]}, specials first)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    chars = data["chars"] if isinstance(data, dict) else data
    return frozenset(c for c in chars if len(c) == 1 and c not in "，。")


class Runtime:
    def __init__(self, config: BotSettings, state: State, index: Index | None = None,
                 chars: frozenset[str] | None = None, index_source: IndexSource | None = None) -> None:
        self.config = config
        self.state = state
        self.index = index
        self.index_source = index_source      # where an index not there at start-up may appear
        self.chars = chars
        self.consumer = config.consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        # Updates and results another replica left unacknowledged this long are taken over.
        self.claim_idle_ms = config.claim_idle_ms
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task] = set()
        # The tasks that must run as long as the bot (poller, consumers): bot.liveness reports any
        # that ended, and `poembot health --role bot` fails on it.
        self.services: dict[str, asyncio.Task] = {}
        self._alive_at = float("-inf")
        self._typing_jobs: set[str] = set()
        self.metrics = BotMetrics()

    def can_write(self, char: str) -> bool:
        return self.chars is None or char in self.chars

    # --- the latent index ----------------------------------------------------------------------
    async def current_index(self) -> Index | None:
        """The latent index, picked up once it appears (built in the background) if none was loaded."""
        if self.index is None and self.index_source is not None:
            self.index = await self.index_source.get()
        return self.index

    def similar_off_key(self) -> str:
        """Why /similar cannot answer: its index is being built, or there is none (texts key)."""
        building = self.index_source is not None and self.index_source.building()
        return "similar_building" if building else "similar_unavailable"

    # --- jobs --------------------------------------------------------------------------------
    async def resolve_style(self, request: PoemRequest, settings: UserSettings) -> None:
        """Settle request.style: none named takes the user's default while it is served; a named one
        (or one kept from an earlier poem) must be served now, else ParseError unknown_style. A 词 takes
        no default style (styles are adapters of the 诗 model; protocol.spec refuses one named with a tune)."""
        styles = await self.state.style_cache.styles()
        if request.style is None and (request.tune or request.form == CI):
            request.style, request.style_title = "", ""
        elif request.style is None:
            default = styles.get(settings.style) if settings.style else None
            request.style, request.style_title = (default.id, default.title) if default else ("", "")
        elif request.style:
            style = styles.get(request.style)
            if style is None:
                raise unknown_style_error(request.style_title or request.style, styles)
            request.style_title = style.title

    def poem_spec(self, request: PoemRequest, settings: UserSettings) -> PoemSpec:
        """The spec of a parsed request in the user's settings; raises protocol.spec.SpecError.

        request.style is settled by resolve_style() first (left None, the spec has no style)."""
        return self.checked_spec(spec_fields(request, settings.form or self.config.default_form), settings)

    async def again_spec(self, spec: PoemSpec, settings: UserSettings, **changes: object) -> PoemSpec:
        """A sent poem's spec asked again (🔄) or with changes (✏️: kept lines), in the user's settings of
        today; the poem's own style ("" the base model), which must still be served."""
        fields = {**spec.fields(), **changes}
        if spec.style:
            styles = await self.state.style_cache.styles()
            style = styles.get(spec.style)
            if style is None:
                raise unknown_style_error(spec.style_title or spec.style, styles)
            fields["style_title"] = style.title
        return self.checked_spec(fields, settings)

    def checked_spec(self, fields: dict[str, object], settings: UserSettings) -> PoemSpec:
        """protocol.spec.parse_spec of fields in the user's script and creativity, against the characters
        the model can write; raises SpecError."""
        return require(parse_spec({**fields, "traditional": settings.traditional,
                                   "sampling": replace(SAMPLING, temperature=settings.temperature)},
                                  chars=self.can_write if self.chars is not None else None,
                                  to_simplified=to_simplified))

    def make_generate_job(self, spec: PoemSpec, *, chat_id: int, user_id: int | None, lang: str,
                          reply_to: int | None = None, n: int = 1, purpose: str = "poem") -> GenerateJob:
        """The job for spec, with where its answer goes."""
        return generate_job(spec, n=n, chat_id=chat_id, user_id=user_id,
                            reply={"chat_id": chat_id, "user_id": user_id, "lang": lang, "reply_to": reply_to,
                                   "purpose": purpose})

    async def submit(self, job: Job, bot: Bot | None, *, user_id: int | None = None,
                     chat_id: int | None = None, limited: bool = True) -> Outcome:
        """Enqueue job unless a limit says no; show typing in chat_id while it is worked on.

        Inside a handler run from the updates stream the job id comes from the update, so running
        the update again (after a crash or a Redis failure) neither counts nor enqueues it twice."""
        attempt = current_attempt()
        if attempt is not None:
            job.job_id = attempt.next_job_id()
        if limited and user_id is not None:
            wait = await self.state.limits.check_rate(user_id, self.config.rate_per_min, request_id=job.job_id)
            if wait > 0:
                return self._counted(Outcome("rate_limited", max(1, round(wait + 0.5))))
        if limited and not await self.state.limits.reserve_slot(job.job_id, self.config.queue_cap):
            return self._counted(Outcome("busy", self.config.busy_retry_s))
        if not limited:
            # System jobs (the daily poem) are never refused but still count against the cap.
            await self.state.limits.track_inflight(job.job_id)
        self._done[job.job_id] = asyncio.Event()
        # Echoed back in the Result, so whichever replica delivers can measure the latency.
        job.reply.setdefault("created_at", job.created_at)
        await run_async(self.state.redis, enqueue(job))
        if not await self.worker_alive():
            # The job stays on the stream; whichever worker starts next will serve it.
            self._done.pop(job.job_id, None)
            return self._counted(Outcome("loading" if await self.state.workers.workers_loading() else "no_worker"))
        if bot is not None and chat_id is not None and len(self._typing_jobs) < TYPING_MAX_ACTIVE:
            self._typing_jobs.add(job.job_id)
            self.spawn(self._typing(bot, chat_id, job.job_id))
        else:
            self._done.pop(job.job_id, None)
        return self._counted(Outcome("queued"))

    def _counted(self, outcome: Outcome) -> Outcome:
        self.metrics.submitted.labels(outcome=outcome.status).inc()
        return outcome

    async def worker_alive(self) -> bool:
        """Whether any worker's heartbeat is live; a yes is trusted for ALIVE_CACHE_S, a no never."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._alive_at < ALIVE_CACHE_S:
            return True
        if await self.state.workers.workers_alive() > 0:
            self._alive_at = loop.time()
            return True
        return False

    def job_done(self, job_id: str) -> None:
        event = self._done.get(job_id)
        if event is not None:
            event.set()

    async def _typing(self, bot: Bot, chat_id: int, job_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.typing_max_s
        done = self._done.get(job_id) or asyncio.Event()
        try:
            while loop.time() < deadline and not done.is_set():
                try:
                    await bot.send_chat_action(chat_id, ChatAction.TYPING)
                except TelegramError as exc:
                    log.debug("typing indicator failed: %s", exc)
                try:
                    await asyncio.wait_for(done.wait(), TYPING_REFRESH_S)
                except TimeoutError:
                    # Another replica may have delivered it.
                    if await self.state.deliveries.is_delivered(job_id):
                        return
        finally:
            self._done.pop(job_id, None)
            self._typing_jobs.discard(job_id)

    # --- background tasks ---------------------------------------------------------------------
    def spawn(self, coro: Any, service: str | None = None) -> asyncio.Task:
        """Run coro in the background; a service (named) is one that should never end while the bot runs."""
        task = asyncio.get_running_loop().create_task(coro, name=service)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        if service is not None:
            self.services[service] = task
        return task

    def dead_services(self) -> list[str]:
        """The services whose task ended: failed, cancelled or returned."""
        return sorted(name for name, task in self.services.items() if task.done())

    def _reap(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def stop_tasks(self) -> None:
        tasks = list(self._tasks)
        while tasks:
            # Cancel again until done: a cancel landing inside redis-py's read can be swallowed,
            # and the task then simply reads on.
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=1.0)
            tasks = [task for task in tasks if not task.done()]
        self._tasks.clear()
