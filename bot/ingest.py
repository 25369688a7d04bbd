"""Durable update intake: every Telegram update is written to a Redis stream before it is confirmed,
and handlers run from that stream, so a killed bot replica or a Redis restart loses no request.

Polling: one replica at a time (a Redis lease) calls getUpdates and confirms an offset only after the
updates are in the stream. Webhook: bot/webhook.py stores each POST before it answers 200.
Every replica consumes the stream in one consumer group; an update is acknowledged after its handlers
ran, re-run after a Redis failure, and taken over from a replica that died holding it. One that has
used up MAX_ATTEMPTS runs is dropped, and its chat is told so once (UpdateConsumer.apologise).
"""
from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TypeVar

from redis.exceptions import RedisError, ResponseError
from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot.state import State, retry_redis
from bot.texts import t, user_lang
from protocol.connections import Backoff
from protocol.keys import UPDATE_FIELD
from streams import Entry, run_async, updates_consumer
from streams.ops import Op

log = logging.getLogger(__name__)

LEASE_PER_POLL = 3            # the polling lease lasts this many long-polls: renewed before each
MAX_ATTEMPTS = 5              # runs of one update before it is dropped as poison
REDIS_RERUNS = 7              # re-runs of the handlers while they fail on Redis, backing off to 30 s
ACK_PATIENCE_S = 60.0         # how long Redis may stay away while a handled update is acknowledged
DRAIN_S = 10.0                # at shutdown, how long updates in hand may take to finish
CONCURRENCY = 64              # updates handled at once per replica (PTB's own default is 256)
CLAIM_BATCH = 16              # stale updates taken over per look

T = TypeVar("T")


def update_key(update_id: int, data: str) -> str:
    """Names one update: its id plus a digest, because ids restart (a new emulator, a week of silence)."""
    return f"{update_id}-{hashlib.sha1(data.encode()).hexdigest()[:10]}"


def stored(update: Update) -> tuple[str, str]:
    data = json.dumps(update.to_dict(), ensure_ascii=False, sort_keys=True)
    return update_key(update.update_id, data), data


@dataclass
class Attempt:
    """One run of the handlers for one update; handlers see it through current_attempt()."""
    key: str
    submits: int = 0
    redis_failed: bool = False

    def next_job_id(self) -> str:
        """Deterministic per update, so a re-run enqueues the same job ids (and the stream drops them)."""
        self.submits += 1
        return f"u{self.key}.{self.submits}"


_attempt: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("poembot_attempt", default=None)


def current_attempt() -> Attempt | None:
    return _attempt.get()


def redis_backoff() -> Backoff:
    return Backoff(base_s=0.5, cap_s=30.0)


class Poller:
    """getUpdates → stream, confirming each batch only once it is stored; one polling replica at a time."""

    def __init__(self, app: Application, state: State, owner: str, timeout_s: int = 10) -> None:
        self.app = app
        self.state = state
        self.owner = owner
        self.timeout_s = timeout_s
        # A replica that dies while polling hands over after lease_ms; standbys look this often.
        self.lease_ms = LEASE_PER_POLL * max(1, timeout_s) * 1000
        self.standby_s = max(1.0, timeout_s / 2)
        self.offset = 0
        self.held: set[int] = set()      # updates Redis refused whose user was told they wait

    async def run(self) -> None:
        delays = redis_backoff()
        webhook_cleared = False
        while True:
            try:
                if not await self._may_poll():
                    await asyncio.sleep(self.standby_s)
                    continue
                if not webhook_cleared:
                    # getUpdates answers 409 while a webhook is set (e.g. left over from webhook mode).
                    await self.app.bot.delete_webhook()
                    webhook_cleared = True
                updates = await self.app.bot.get_updates(
                    offset=self.offset, timeout=self.timeout_s, allowed_updates=Update.ALL_TYPES,
                    read_timeout=self.timeout_s + 10)
                if updates:
                    try:
                        await self.state.intake.ingest_updates([stored(u) for u in updates])
                    except RedisError:
                        await self._tell_held(updates)
                        raise
                    # Only now may Telegram forget them: the next call confirms this offset.
                    self.offset = updates[-1].update_id + 1
                    self.held.difference_update(u.update_id for u in updates)
                delays.reset()
            except asyncio.CancelledError:
                raise
            except InvalidToken:
                log.critical("Telegram rejected the bot token; polling stops")
                raise
            except RetryAfter as exc:
                await asyncio.sleep(float(exc.retry_after if isinstance(exc.retry_after, (int, float))
                                          else exc.retry_after.total_seconds()))
            except Conflict as exc:
                # Another process polls with this token (or a webhook was set meanwhile).
                log.warning("getUpdates conflict: %s", exc)
                webhook_cleared = False
                await asyncio.sleep(delays.next_delay())
            except (NetworkError, TelegramError, RedisError) as exc:
                log.warning("polling failed, retrying: %s", exc)
                await asyncio.sleep(delays.next_delay())

    async def _may_poll(self) -> bool:
        """Whether this replica polls now: it holds the lease, or — while Redis refuses writes (out
        of memory, a read-only replica) — the lease it held still names it. Then no other replica
        can take the lease either, and polling on lets users hear that their request waits."""
        try:
            return await self.state.intake.hold_poller_lease(self.owner, self.lease_ms)
        except RedisError as exc:
            if await self.state.intake.poller_lease_holder() != self.owner:
                raise
            log.warning("Redis refuses the polling lease (%s); polling on under the lease held", exc)
            return True

    async def _tell_held(self, updates: list[Update]) -> None:
        """Tell each user whose message could not be stored that it will be answered: Telegram keeps
        the update until Redis takes it, and then it runs as usual. Once per update in this
        process; a note lost with a crash is sent again by the next poller (a duplicate note, never
        a lost request)."""
        for update in updates:
            message = update.effective_message
            if update.update_id in self.held or message is None or not (message.text or "").startswith("/"):
                continue
            self.held.add(update.update_id)
            try:
                await self.app.bot.send_message(message.chat_id, t(user_lang(update), "request_held"),
                                                reply_to_message_id=message.message_id)
            except TelegramError as exc:
                log.warning("could not say a request waits: %s", exc)
        log.warning("Redis refused %d updates; they stay with Telegram until it takes them", len(updates))

    async def release(self) -> None:
        try:
            await self.state.intake.release_poller_lease(self.owner)
        except RedisError:
            pass     # it expires on its own


class UpdateConsumer:
    """Runs the Application's handlers for updates from the stream and acknowledges them after."""

    def __init__(self, app: Application, state: State, consumer: str, block_ms: int = 1000,
                 claim_idle_ms: int = 30_000, concurrency: int = CONCURRENCY) -> None:
        self.app = app
        self.state = state
        self.consumer = consumer
        self.stream = updates_consumer(consumer, block_ms, claim_idle_ms)
        self.claim_idle_ms = claim_idle_ms
        self.concurrency = concurrency
        self.slots = asyncio.Semaphore(concurrency)
        self.running: set[asyncio.Task] = set()
        self.in_hand: set[str] = set()       # entry ids being handled here; never claimed twice
        self.stopping = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        claim_every = max(0.2, self.claim_idle_ms / 2000)
        next_claim = loop.time()
        delays = redis_backoff()
        try:
            while not self.stopping:
                try:
                    entries: list[Entry] = []
                    if loop.time() >= next_claim:
                        _, claimed = await self._run(self.stream.claim_stale(CLAIM_BATCH))
                        entries += claimed
                        next_claim = loop.time() + claim_every
                    free = max(1, self.concurrency - len(self.running))   # no more than we can start
                    entries += await self._run(self.stream.read(free))
                    delays.reset()
                except RedisError as exc:
                    if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                        await self.state.groups.ensure_groups()     # Redis came back empty
                        continue
                    log.warning("updates stream unavailable: %s", exc)
                    await asyncio.sleep(delays.next_delay())
                    continue
                for entry_id, fields, deliveries in entries:
                    if entry_id in self.in_hand:
                        continue
                    await self.slots.acquire()
                    self.in_hand.add(entry_id)
                    task = loop.create_task(self._handle(entry_id, fields, deliveries))
                    self.running.add(task)
                    task.add_done_callback(self.running.discard)
            if self.running:
                # Shutting down: let updates in hand finish; what does not is re-run by another replica.
                await asyncio.wait(set(self.running), timeout=DRAIN_S)
        finally:
            for task in list(self.running):
                task.cancel()
            await asyncio.gather(*self.running, return_exceptions=True)

    def stop(self) -> None:
        """Read no more updates; run() returns once those in hand are done (or DRAIN_S passed)."""
        self.stopping = True

    async def _handle(self, entry_id: str, fields: dict, deliveries: int) -> None:
        try:
            if deliveries > 1 and not await self._run(self.stream.deliveries(entry_id)):
                return          # its first run (here) finished after the claim: nothing left to do
            try:
                data = fields[UPDATE_FIELD]
                update = Update.de_json(json.loads(data), self.app.bot)
            except (KeyError, ValueError, TypeError) as exc:
                log.error("dropping unreadable update entry %s: %s", entry_id, exc)
                await self._ack(entry_id)
                return
            if deliveries > MAX_ATTEMPTS:
                log.error("dropping update entry %s after %d runs", entry_id, MAX_ATTEMPTS)
                # Only on the first delivery past the limit: a later one means the apology was tried
                # already and the acknowledgement after it was lost, so it never goes out twice.
                if deliveries == MAX_ATTEMPTS + 1:
                    await self.apologise(update)
                await self._ack(entry_id)
                return
            if await self.process(update, update_key(update.update_id, data)):
                await self._ack(entry_id)
            # else: left pending; another run (here or on another replica) takes it after claim_idle_ms
        except RedisError as exc:
            log.warning("update entry %s stays pending: %s", entry_id, exc)
        finally:
            self.in_hand.discard(entry_id)
            self.slots.release()

    async def process(self, update: Update, key: str) -> bool:
        """Run the handlers, re-running while they fail on Redis; True when the update is done."""
        delays = redis_backoff()
        for _ in range(REDIS_RERUNS + 1):
            attempt = Attempt(key)
            token = _attempt.set(attempt)
            try:
                await self.app.process_update(update)
            finally:
                _attempt.reset(token)
            if not attempt.redis_failed:
                return True
            await asyncio.sleep(delays.next_delay())
        return False

    async def apologise(self, update: Update) -> None:
        """Tell the chat of a dropped update, in its sender's language, that it was not handled.

        One try, plain text (nothing to escape); a failure is logged, never raised, so the apology
        cannot keep the update pending and make itself run again."""
        chat = update.effective_chat
        if chat is None:
            return          # an inline query: no chat to write to
        try:
            await self.app.bot.send_message(chat.id, t(user_lang(update), "gave_up"))
        except Exception as exc:
            log.warning("could not apologise to chat %s for a dropped update: %s", chat.id, exc)

    async def _ack(self, entry_id: str) -> None:
        await retry_redis(lambda: self._run(self.stream.ack(entry_id)), f"update entry {entry_id} as handled",
                          ACK_PATIENCE_S)

    async def _run(self, op: Op[T]) -> T:
        return await run_async(self.state.redis, op)
