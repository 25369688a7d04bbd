"""Prometheus metrics of a bot replica: updates, submitted jobs, deliveries, Telegram errors, latency, queue.

Each Runtime owns a registry (like worker.metrics), so several bots in one test process do not collide.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from redis.exceptions import RedisError
from telegram import Update

from protocol.keys import JOBS_STREAM

log = logging.getLogger(__name__)

# Request to delivered poem: queueing + decoding + the send; a cold worker takes minutes.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
REFRESH_S = 5.0
PURPOSES = ("poem", "similar", "daily", "inline")


class BotMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = {"registry": self.registry}
        self.updates = Counter("poembot_bot_updates", "Updates received, by kind (command name, callback, "
                               "text, edited, other)", ["kind"], **labels)
        self.submitted = Counter("poembot_bot_jobs_submitted", "Jobs offered to the queue, by outcome",
                                 ["outcome"], **labels)
        self.delivered = Counter("poembot_bot_results", "Results handled, by purpose and outcome "
                                 "(sent, error_reply, failed, retry, duplicate_skipped)",
                                 ["purpose", "outcome"], **labels)
        self.telegram_errors = Counter("poembot_bot_telegram_errors", "Telegram API errors by exception type",
                                       ["type"], **labels)
        self.latency = Histogram("poembot_bot_delivery_latency_seconds", "Job created to reply sent",
                                 ["purpose"], buckets=LATENCY_BUCKETS, **labels)
        self.inflight = Gauge("poembot_bot_jobs_inflight", "Jobs holding a queue slot (all replicas)",
                              **labels)
        self.queue_depth = Gauge("poembot_bot_queue_depth", "Entries in the jobs stream", **labels)
        self.port: int | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # --- counting -----------------------------------------------------------------------------
    def update(self, update: object, commands: Iterable[str]) -> None:
        self.updates.labels(kind=update_kind(update, commands)).inc()

    def telegram_error(self, exc: BaseException) -> None:
        self.telegram_errors.labels(type=type(exc).__name__).inc()

    def result(self, purpose: Any, outcome: str, created_at: Any = None, now: float | None = None) -> None:
        """Count one handled result; a sent one with a known creation time is a latency sample."""
        label = purpose if purpose in PURPOSES else "other"
        self.delivered.labels(purpose=label, outcome=outcome).inc()
        if outcome == "sent" and isinstance(created_at, (int, float)) and now is not None:
            self.latency.labels(purpose=label).observe(max(0.0, now - float(created_at)))

    # --- gauges ------------------------------------------------------------------------------
    async def refresh(self, state: Any) -> None:
        """Read the gauges from Redis (shared by all replicas, so any replica reports the same)."""
        self.inflight.set(await state.limits.inflight())
        self.queue_depth.set(await state.redis.xlen(JOBS_STREAM))

    async def refresh_loop(self, state: Any, every: float = REFRESH_S) -> None:
        while True:
            try:
                await self.refresh(state)
            except RedisError as exc:
                log.debug("metrics refresh skipped: %s", exc)
            await asyncio.sleep(every)

    # --- HTTP ---------------------------------------------------------------------------------
    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on port (0 picks a free port, for tests); .port tells which."""
        self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        self.port = self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def update_kind(update: object, commands: Iterable[str]) -> str:
    """A bounded label: a known command's name, callback, text, edited, or other."""
    if not isinstance(update, Update):
        return "other"
    if update.callback_query is not None:
        return "callback"
    if update.inline_query is not None:
        return "inline"
    if update.edited_message is not None or update.edited_channel_post is not None:
        return "edited"
    message = update.message or update.channel_post
    if message is None:
        return "other"
    text = message.text or ""
    if text.startswith("/"):
        words = text[1:].split(maxsplit=1)
        name = words[0].split("@", 1)[0].lower() if words else ""
        # Unknown commands share one label: user-typed names must not grow the series without bound.
        return name if name in set(commands) else "unknown_command"
    return "text" if message.text is not None else "other"
