"""The bot side of the results stream: a consumer-group reader that turns Results into replies.

Replicas share one group, so each result reaches one of them; a per-job SET NX lease makes the
reply go out once even when a result is re-read after a crash, and is renewed while the reply is being
sent (LeaseKeeper); a failed send is retried later. The daily broadcast runs in a task of its own at
its own pace (Broadcasts), so replies never wait behind it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import replace
from datetime import date
from typing import Any, Awaitable, Callable, Sequence

from redis.exceptions import RedisError
from telegram import Bot, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError

from bot.card import Card, png_bytes, png_off_loop, poem_card
from bot.couplet import couplet_keyboard, couplet_record, format_couplet, spring_card_of
from bot.daily import daily_job
from bot.inline_cache import publish_inline, remember_poems, slim, theme_of
from bot.parsing import unknown_style_error
from bot.render import ci_layout, fits_caption, format_poem, format_similar, poem_keyboard, similar_keyboard
from bot.runtime import Runtime
from bot.spring_card import spring_png
from bot.state import retry_redis
from bot.stores.poems import PoemRecord, new_poem_id
from bot.styles import Style, StyleBook, valid_style_id
from bot.texts import error_text, t, unknown_style_detail
from protocol.jobs import E_NO_CI_MODEL, E_UNKNOWN_STYLE, JobFormatError, Result, result_from_fields
from protocol.spec import PoemSpec, SpecError, from_legacy, from_wire
from search.reasons import QueryPoem
from streams import results_consumer, run_async

log = logging.getLogger(__name__)

SIMILAR_K = 5
RESULTS_PER_LOOK = 16          # results read (or taken over) at a time
# The daily broadcast sends at most this share of POEMBOT_SEND_PER_S, so replies always have the rest.
BROADCAST_SHARE = 2 / 3
BROADCAST_STOP_WAIT_S = 10.0   # a stopping replica lets the broadcast's send in hand finish this long
# The broadcast records which message holds the poem (for replies to it) this many chats at a time: one
# round trip instead of one per chat; a crash loses at most these records, never a post.
BROADCAST_RECORD_BATCH = 100


def reply_params(message_id: int | None) -> ReplyParameters | None:
    # The request may have been deleted meanwhile; answer anyway rather than fail.
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True) if message_id else None


SETTLE_PATIENCE_S = 120      # how long Redis may stay away while a sent reply is being recorded


async def settle(step: Callable[[], Awaitable[Any]], what: str) -> None:
    """Record something about a reply that has gone out: retried while Redis is away, because letting
    the result be re-read instead would send the reply a second time."""
    await retry_redis(step, what, SETTLE_PATIENCE_S)


async def card_png(card: Card) -> bytes | None:
    """The card as PNG, or None when it cannot be drawn here (then the text goes out alone)."""
    return await png_off_loop(png_bytes, card)


class RetryLater(Exception):
    """A send failed for a transient reason; leave the result unacknowledged so it is re-read."""


class LeaseKeeper:
    """Renews a claimed delivery's lease (Deliveries.begin_delivery) while its reply is being sent.

    A send can outlast the lease: the rate limiter waits out a 429's retry_after before it sends
    again, and a broadcast takes minutes. Another replica would then take the result over and send
    the reply a second time, so the lease and the results entry are renewed every third of the time
    another replica waits for them, until the delivery is recorded or given up."""

    def __init__(self, rt: Runtime, job_id: str, entry_id: str) -> None:
        self.rt, self.job_id, self.entry_id = rt, job_id, entry_id
        self.every_s = min(rt.state.deliveries.lease_s, rt.claim_idle_ms / 1000) / 3
        self.settled = False
        self._task = rt.spawn(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                held = await self.rt.state.deliveries.renew_delivery(self.job_id, self.rt.consumer, self.entry_id)
            except RedisError as exc:
                log.warning("delivery lease of %s not renewed: %s", self.job_id, exc)
                continue
            if not held:
                if not self.settled:
                    log.error("lost the delivery lease of %s: its reply may go out twice", self.job_id,
                              extra={"job_id": self.job_id})
                return

    async def release(self) -> None:
        """Stop renewing; before the lease is given up (a renewal would take it again), after it is
        recorded sent (until then it must not run out)."""
        self.settled = True
        while not self._task.done():
            # Again until done: a cancel landing inside redis-py's read can be swallowed.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)


class Pacer:
    """Spaces calls of wait() at least 1/rate_per_s apart: a sender's own share of the send rate."""

    def __init__(self, rate_per_s: float) -> None:
        self.gap_s = 1.0 / rate_per_s
        self._next = float("-inf")

    async def wait(self) -> None:
        now = asyncio.get_running_loop().time()
        start = max(now, self._next)
        self._next = start + self.gap_s
        if start > now:
            await asyncio.sleep(start - now)


async def send_similar(rt: Runtime, bot: Bot, *, chat_id: int, user_id: int | None, lang: str,
                       traditional: bool, vector: Any, reply_to: int | None, header_key: str,
                       query: Sequence[QueryPoem] = ()) -> None:
    """Send the corpus poems nearest to vector (popular poems when None), skipping ones shown before;
    query: the poem(s) the answers should be near, which their "why" line names."""
    index = await rt.current_index()
    if index is None:
        await bot.send_message(chat_id, t(lang, rt.similar_off_key()), reply_parameters=reply_params(reply_to))
        return
    exclude = await rt.state.users.shown(user_id) if user_id is not None else set()
    try:
        if vector is None:
            items = await asyncio.to_thread(index.popular, SIMILAR_K, exclude)
            header_key = "similar_new_user"
        else:
            items = await asyncio.to_thread(index.recommend, list(vector), SIMILAR_K, exclude, query)
    except ValueError as exc:
        # A μ from another model than the index was built with (different size).
        log.error("latent index cannot answer: %s", exc)
        await bot.send_message(chat_id, t(lang, "similar_unavailable"), reply_parameters=reply_params(reply_to))
        return
    if not items:
        await bot.send_message(chat_id, t(lang, "similar_none"), reply_parameters=reply_params(reply_to))
        return
    await bot.send_message(chat_id, format_similar(items, lang, traditional, header_key),
                           parse_mode=ParseMode.HTML, reply_parameters=reply_params(reply_to),
                           reply_markup=similar_keyboard(items, lang))
    if user_id is not None:
        shown = [str(item["id"]) for item in items]
        await settle(lambda: rt.state.users.mark_shown(user_id, shown), "poems shown")


def spec_of(result: Result) -> PoemSpec | None:
    """The spec a result answers (the worker echoes its job's); from a version-1 result, the request
    dict its reply carried. None when neither can be read."""
    if result.spec is not None:
        try:
            return from_wire(result.spec)
        except SpecError as exc:
            log.error("result %s has an unreadable spec: %s", result.job_id, exc)
            return None
    request = result.reply.get("request")
    form = result.poems[0].get("form") if result.poems and isinstance(result.poems[0], dict) else None
    return from_legacy(request, str(form or "")) if isinstance(request, dict) else None


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


class ResultConsumer:
    def __init__(self, rt: Runtime, bot: Bot, block_ms: int = 1000) -> None:
        self.rt = rt
        self.bot = bot
        self.stream = results_consumer(rt.consumer, block_ms, rt.claim_idle_ms)
        # Its run() is a service of its own (bot.app): the results loop only hands daily results to it.
        self.broadcasts = Broadcasts(self)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        claim_every = max(0.2, self.rt.claim_idle_ms / 2000)
        next_claim = loop.time()
        while True:
            try:
                entries = []
                if loop.time() >= next_claim:
                    _, claimed = await run_async(self.rt.state.redis, self.stream.claim_stale(RESULTS_PER_LOOK))
                    entries += claimed
                    next_claim = loop.time() + claim_every
                entries += await run_async(self.rt.state.redis, self.stream.read(RESULTS_PER_LOOK))
                for entry_id, entry, _ in entries:
                    await self.handle(entry_id, entry)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                # Redis is down or failing over: back off instead of spinning.
                log.warning("results stream unavailable: %s", exc)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("results consumer error")
                await asyncio.sleep(0.2)

    async def handle(self, entry_id: str, entry: dict) -> None:
        state = self.rt.state
        try:
            result = result_from_fields(entry)
        except JobFormatError as exc:
            log.error("dropping unreadable result %s: %s", entry_id, exc)
            await self.ack(entry_id)
            return
        if not isinstance(result.reply, dict) or not result.reply.get("purpose"):
            await self.ack(entry_id)      # a job some other client submitted
            return
        metrics, purpose = self.rt.metrics, result.reply.get("purpose")
        claim = await state.deliveries.begin_delivery(result.job_id, self.rt.consumer)
        if claim == "busy":
            return                                # another replica is sending it; re-read later
        if claim == "sent":
            metrics.result(purpose, "duplicate_skipped")
            await state.deliveries.forget_inflight(result.job_id)
            await self.ack(entry_id)
            self.rt.job_done(result.job_id)
            return
        lease = LeaseKeeper(self.rt, result.job_id, entry_id)
        if purpose == "daily":
            self.broadcasts.put(entry_id, result, lease)    # minutes of sends: not in this loop
            return
        await self.complete(entry_id, result, lease, self.deliver)

    async def ack(self, entry_id: str) -> None:
        await run_async(self.rt.state.redis, self.stream.ack(entry_id))

    async def complete(self, entry_id: str, result: Result, lease: LeaseKeeper,
                       deliver: Callable[[Result], Awaitable[str]]) -> None:
        """Send result's reply with deliver while lease is kept, record it sent and acknowledge the
        entry; after a transient failure give the lease up and leave the entry to be read again."""
        state, metrics, purpose = self.rt.state, self.rt.metrics, result.reply.get("purpose")
        try:
            outcome = await self._attempt(result, deliver)
            if outcome is not None:
                metrics.result(purpose, outcome, result.reply.get("created_at"), time.time())
                await settle(lambda: state.deliveries.finish_delivery(result.job_id), "a delivery")
        finally:
            # Once, on every path: after the reply is recorded sent (until then the lease must not run
            # out), and before a retry gives the lease up below (a renewal would take it again).
            await lease.release()
        if outcome is None:
            metrics.result(purpose, "retry")
            await state.deliveries.abort_delivery(result.job_id)
            return
        await settle(lambda: self.ack(entry_id), "a delivery's acknowledgement")
        self.rt.job_done(result.job_id)

    async def _attempt(self, result: Result, deliver: Callable[[Result], Awaitable[str]]) -> str | None:
        """deliver's outcome; "failed" when it raised for good, None after a transient failure."""
        try:
            return await deliver(result)
        except (RetryLater, NetworkError, RedisError) as exc:
            log.warning("delivery of %s failed, will retry: %s", result.job_id, exc,
                        extra={"job_id": result.job_id})
            if isinstance(exc, TelegramError):
                self.rt.metrics.telegram_error(exc)
            return None
        except Exception as exc:
            log.exception("delivery of %s failed; giving up", result.job_id, extra={"job_id": result.job_id})
            if isinstance(exc, TelegramError):
                self.rt.metrics.telegram_error(exc)
            return "failed"

    async def deliver(self, result: Result) -> str:
        """Send the reply for result (not a daily one: Broadcasts.send); the outcome: sent, error_reply
        or failed."""
        purpose = result.reply.get("purpose")
        if purpose == "similar":
            return await self.deliver_similar(result)
        if purpose == "inline":
            return await self.deliver_inline(result)
        if purpose == "couplet":
            return await self.deliver_couplet(result)
        return await self.deliver_poem(result)

    async def _error_text(self, result: Result, lang: str) -> str:
        """The error for the user; a style the worker lacks is answered with the styles it has, by title."""
        spec = spec_of(result)
        if result.error_code == E_UNKNOWN_STYLE:
            registry = await self.rt.state.style_cache.styles()
            _, ids = unknown_style_detail(result.error_message)
            served = StyleBook(registry.get(i) or Style(i, i) for i in ids if valid_style_id(i))
            name = (spec.style_title or spec.style) if spec is not None and spec.style else "?"
            error = unknown_style_error(name, served)
            return t(lang, error.key, **error.values)
        return error_text(lang, result.error_code, result.error_message)

    async def _send_error(self, result: Result) -> str:
        reply = result.reply
        lang = reply.get("lang", "zh")
        try:
            await self.bot.send_message(int(reply["chat_id"]), await self._error_text(result, lang),
                                        reply_parameters=reply_params(reply.get("reply_to")))
        except (Forbidden, BadRequest) as exc:
            log.info("could not report error to chat: %s", exc)
            self.rt.metrics.telegram_error(exc)
            return "failed"
        return "error_reply"

    async def _record(self, result: Result, owner_id: int | None, chat_id: int) -> PoemRecord:
        poem: dict[str, Any] = result.poems[0]
        spec = spec_of(result)
        # The style the worker wrote in (each poem names it), else the one asked for.
        if spec is not None and isinstance(poem.get("style"), str) and poem["style"] != spec.style:
            style = poem["style"]
            spec = replace(spec, style=style,
                           style_title=(await self.rt.state.style_cache.styles()).title_of(style) if style else "")
        lines = [str(x) for x in poem.get("lines") or []]
        form = str(poem.get("form") or (spec.form.name if spec is not None else ""))
        tune = spec.tune if spec is not None else ""
        marks, stanza_break = ci_layout(lines, tune, poem) if tune else ([], None)
        return PoemRecord(poem_id=new_poem_id(), owner_id=owner_id, chat_id=chat_id, form=form, lines=lines,
                          spec=spec, mu=poem.get("mu"), seed=poem.get("seed"),
                          rhyme_ok=poem.get("rhyme_ok"), tone_rate=poem.get("tone_rate"), marks=marks,
                          stanza_break=stanza_break)

    async def deliver_poem(self, result: Result) -> str:
        reply = result.reply
        chat_id, user_id, lang = int(reply["chat_id"]), reply.get("user_id"), reply.get("lang", "zh")
        if not result.ok or not result.poems or not result.poems[0].get("lines"):
            return await self._send_error(result)
        record = await self._record(result, user_id, chat_id)
        trad = record.spec.traditional if record.spec is not None else bool(reply.get("trad"))
        text = format_poem(record.lines, record.form, lang, trad, record.spec, result.poems[0])
        keyboard = poem_keyboard(record.poem_id, lang, bool(record.tune))
        if not await self._send_kept(record, text, keyboard, reply, "poem"):
            return "failed"
        if user_id is not None:
            await settle(lambda: self.rt.state.users.add_history(int(user_id), record.poem_id, record.mu), "history")
        await self._remember(record.spec, [slim(result.poems[0], record.spec)])
        return "sent"

    async def deliver_couplet(self, result: Result) -> str:
        """A couplet: the best 下联 with the others under it, and 🔄 📖 🖼 buttons."""
        reply = result.reply
        chat_id, user_id = int(reply["chat_id"]), reply.get("user_id")
        lang, trad = reply.get("lang", "zh"), bool(reply.get("trad"))
        if not result.ok or not result.poems or not result.poems[0].get("second"):
            return await self._send_error(result)
        record = couplet_record(result.poems, dict(reply.get("request") or {}), user_id, chat_id)
        keyboard = couplet_keyboard(record.poem_id, lang)
        sent = await self._send_kept(record, format_couplet(record, lang, trad), keyboard, reply, "couplet")
        return "sent" if sent else "failed"

    async def _send_kept(self, record: PoemRecord, text: str, keyboard: Any, reply: dict[str, Any],
                         what: str) -> bool:
        """Keep record, send its message (HTML, with its buttons) and remember which message shows it;
        False when the chat cannot receive it."""
        await self.rt.state.poems.save_poem(record)      # before sending: buttons must work at once
        try:
            message = await self.bot.send_message(record.chat_id, text, parse_mode=ParseMode.HTML,
                                                  reply_markup=keyboard,
                                                  reply_parameters=reply_params(reply.get("reply_to")))
        except (Forbidden, BadRequest) as exc:
            log.info("%s for a chat that cannot receive it: %s", what, exc)
            self.rt.metrics.telegram_error(exc)
            return False
        await settle(lambda: self.rt.state.poems.remember_message(record.chat_id, message.message_id,
                                                                  record.poem_id), f"the {what}'s message")
        return True

    async def _remember(self, spec: PoemSpec | None, poems: list[dict[str, Any]]) -> None:
        """Offer delivered poems to later inline queries of their theme; a failure here loses nothing."""
        try:
            await remember_poems(self.rt.state.redis, theme_of(spec), poems)
        except RedisError as exc:
            log.warning("inline cache not updated: %s", exc)

    async def deliver_inline(self, result: Result) -> str:
        """An inline job's poems: into the theme's cache, and to the inline query waiting for them."""
        spec = spec_of(result)
        poems = [slim(p, spec) for p in (result.poems if result.ok else []) if p.get("lines")]
        await self._remember(spec, poems)
        await publish_inline(self.rt.state.redis, result.job_id, poems)
        return "sent" if poems else "error_reply"

    async def deliver_similar(self, result: Result) -> str:
        reply = result.reply
        if not result.ok or not result.poems or not result.poems[0].get("mu"):
            return await self._send_error(result)
        await send_similar(self.rt, self.bot, chat_id=int(reply["chat_id"]), user_id=reply.get("user_id"),
                           lang=reply.get("lang", "zh"), traditional=bool(reply.get("trad")),
                           vector=result.poems[0]["mu"], reply_to=reply.get("reply_to"),
                           header_key="similar_poem_title",
                           query=[QueryPoem([str(x) for x in result.poems[0].get("lines") or []])])
        return "sent"

    async def _photo_or_none(self, chat_id: int, photo: bytes | str, caption: str, markup: Any) -> Any:
        """Send a card with its caption; None when Telegram refuses the picture itself (then text goes)."""
        try:
            return await self.bot.send_photo(chat_id, photo, caption=caption, parse_mode=ParseMode.HTML,
                                             reply_markup=markup)
        except BadRequest as exc:
            if "photo" not in str(exc).lower() and "file" not in str(exc).lower():
                raise
            log.warning("card refused, sending the text alone: %s", exc)
            return None


class Broadcasts:
    """The daily broadcast, in a task of its own (service "broadcast") at its own pace.

    A broadcast to every subscriber takes minutes (10,000 chats at 20 sends/s: over 8), and in the
    results loop it held up every reply behind it. The results loop claims a daily result and hands
    it here; its entry stays unacknowledged and its lease kept until every chat has the poem, so a
    broadcast cut short (a replica stopped or killed) is finished by another replica, which skips the
    chats already claimed (Subscribers.claim_recipient: before each send, so no chat gets it twice)."""

    def __init__(self, consumer: ResultConsumer) -> None:
        self.consumer = consumer
        self.pacer = Pacer(consumer.rt.config.send_per_s * BROADCAST_SHARE)
        # This process's name on the chats it claims, and the chats it has sent, by job: a claim this
        # process made again (its answer lost) is its own to send, once.
        self.owner = f"{consumer.rt.consumer}:{secrets.token_hex(4)}"
        self._done: dict[str, set[int]] = {}
        self.stopping = False
        self._queue: asyncio.Queue[tuple[str, Result, LeaseKeeper]] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, entry_id: str, result: Result, lease: LeaseKeeper) -> None:
        self._idle.clear()
        self._queue.put_nowait((entry_id, result, lease))

    async def run(self) -> None:
        while True:
            entry_id, result, lease = await self._queue.get()
            try:
                await self.consumer.complete(entry_id, result, lease, self.send)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Recording it failed (Redis away too long): the entry is read again later.
                log.exception("daily broadcast error")
            finally:
                if self._queue.empty():
                    self._idle.set()

    async def stop(self, wait_s: float = BROADCAST_STOP_WAIT_S) -> None:
        """Stop between two sends (a clean stop leaves no chat in doubt) and give up the leases of
        broadcasts not begun: another replica finishes them."""
        self.stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), wait_s)
        while not self._queue.empty():
            _, result, lease = self._queue.get_nowait()
            await lease.release()
            with contextlib.suppress(RedisError):
                await self.consumer.rt.state.deliveries.abort_delivery(result.job_id)

    async def send(self, result: Result) -> str:
        """Post to DAILY_CHAT_ID and every subscriber, each chat at most once per job."""
        consumer, state = self.consumer, self.consumer.rt.state
        day = _parse_day(str(result.reply.get("date") or ""))
        if result.error_code == E_NO_CI_MODEL and day is not None:
            # A Sunday's 词 and no worker has a ci model (yet): the day's 诗 instead, rather than no post.
            log.warning("no worker writes 词: the daily post of %s is a 诗", day)
            await consumer.rt.submit(daily_job(day, bool(result.reply.get("forced")), ci=False), None,
                                     limited=False)
            return "failed"
        if not result.ok or not result.poems or not result.poems[0].get("lines"):
            log.error("daily poem failed: %s %s", result.error_code, result.error_message)
            return "failed"
        recipients = await state.subscribers.subscribers()
        daily_chat_id = consumer.rt.config.daily_chat_id
        if daily_chat_id is not None:
            recipients.setdefault(daily_chat_id, "zh")
        date = str(result.reply.get("date") or "")
        # Before the Spring Festival the daily post is a 春联 (bot.daily): its own record, text and card.
        spring = result.kind == "couplet"
        if spring:
            record = couplet_record(result.poems, dict(result.reply.get("request") or {}), None,
                                    daily_chat_id or 0)
        else:
            record = await consumer._record(result, None, daily_chat_id or 0)
        await state.poems.save_poem(record)
        if spring:
            png = await spring_png(spring_card_of(record, day=_parse_day(date)))
        else:
            png = await card_png(poem_card(record.lines, record.form, record.spec, day=_parse_day(date),
                                           title=(record.spec.title if record.spec is not None else "")
                                           or t("zh", "daily_ci_card_title" if record.tune else "daily_card_title"),
                                           stanza_break=record.stanza_break))
        photo: bytes | str | None = png            # after the first upload, its file_id
        texts: dict[str, str] = {}                 # by language: the same for every chat of one
        sent: list[tuple[int, int, str]] = []      # (chat, message, poem) not yet recorded
        done = self._done.setdefault(result.job_id, set())
        transient = False
        try:
            for chat_id, lang in sorted(recipients.items()):
                if self.stopping:
                    raise RetryLater("stopping: another replica finishes the broadcast")
                if chat_id in done or not await state.subscribers.claim_recipient(result.job_id, chat_id, self.owner):
                    continue
                if lang not in texts and spring:
                    texts[lang] = format_couplet(record, lang, heading=t(lang, "daily_spring_title", date=date))
                if lang not in texts:
                    heading = t(lang, "daily_ci_title" if record.tune else "daily_title", date=date)
                    texts[lang] = format_poem(record.lines, record.form, lang, False, record.spec,
                                              result.poems[0], heading=heading)
                text = texts[lang]
                markup = (couplet_keyboard(record.poem_id, lang) if spring
                          else poem_keyboard(record.poem_id, lang, bool(record.tune)))
                await self.pacer.wait()
                try:
                    message = None
                    if photo is not None and fits_caption(text):
                        message = await consumer._photo_or_none(chat_id, photo, text, markup)
                        photo = message.photo[-1].file_id if message is not None and message.photo else None
                    if message is None:
                        message = await consumer.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML,
                                                                  reply_markup=markup)
                except (Forbidden, BadRequest) as exc:
                    # Blocked, kicked or deleted: stop sending there.
                    log.info("unsubscribing chat that cannot receive the daily poem: %s", exc)
                    consumer.rt.metrics.telegram_error(exc)
                    done.add(chat_id)
                    await state.subscribers.unsubscribe(chat_id)
                    continue
                except (NetworkError, TelegramError) as exc:
                    log.warning("daily poem to one chat failed, will retry: %s", exc)
                    consumer.rt.metrics.telegram_error(exc)
                    await state.subscribers.release_recipient(result.job_id, chat_id)
                    transient = True
                    continue
                done.add(chat_id)
                sent.append((chat_id, message.message_id, record.poem_id))
                if len(sent) >= BROADCAST_RECORD_BATCH:
                    await settle(lambda: state.poems.remember_messages(sent), "the daily poem's messages")
                    sent = []
        finally:
            if sent:
                with contextlib.suppress(RedisError):
                    await state.poems.remember_messages(sent)
        if transient:
            raise RetryLater("some daily recipients failed")
        del self._done[result.job_id]
        return "sent"
