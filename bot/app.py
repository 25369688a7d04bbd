"""Wiring: build_application() makes the whole bot from a BotSettings; run_bot() runs it (polling or webhook).

Start-up work (command list, consumer groups, update intake, results consumer, daily schedule and
missed-slot catch-up) lives in post_init so serve() and the tests go through the same code.
"""
from __future__ import annotations

import asyncio
import threading
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import (AIORateLimiter, Application, CallbackQueryHandler, CommandHandler,
                          InlineQueryHandler, MessageHandler, TypeHandler, filters)

from bot import handlers, inline
from bot.couplet import COMMAND_RE as COUPLET_RE
from bot.card import warm_up
from reading.gloss import warm_up as warm_reading_aid
from bot.styles import StyleBook
from protocol.settings import BotSettings, ConfigError
from bot.daily import fire_daily, schedule_daily
from bot.delivery import ResultConsumer
from bot.ingest import Poller, UpdateConsumer
from bot.liveness import retire, watch
from bot.redact import install_redaction
from bot.runtime import Runtime, load_chars
from bot.similar import Index, IndexSource
from bot.state import State
from bot.texts import EN, ZH, t
from bot.webhook import WebhookServer
from protocol.logs import setup_logging

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "poem", "ci", "acrostic", "styles", "similar", "couplet", "daily", "settings")


def bot_commands(lang: str) -> list[BotCommand]:
    return [BotCommand(name, t(lang, f"cmd_{name}")) for name in COMMANDS]


async def _post_init(app: Application) -> None:
    rt: Runtime = app.bot_data["rt"]
    await app.bot.set_my_commands(bot_commands(ZH))
    await app.bot.set_my_commands(bot_commands(EN), language_code="en")
    await rt.state.groups.ensure_groups()
    consumer = ResultConsumer(rt, app.bot)
    app.bot_data["consumer"] = consumer
    app.bot_data["consumer_task"] = rt.spawn(consumer.run(), service="results")
    rt.spawn(consumer.broadcasts.run(), service="broadcast")
    updates = UpdateConsumer(app, rt.state, rt.consumer, claim_idle_ms=rt.claim_idle_ms)
    app.bot_data["updates"] = updates
    app.bot_data["updates_task"] = rt.spawn(updates.run(), service="updates")
    config = rt.config
    if config.webhook_mode:
        hook = WebhookServer(app, rt.state, config.webhook_secret or "", config.webhook_path,
                             config.webhook_listen, config.webhook_port)
        await hook.start()
        app.bot_data["webhook"] = hook
        await app.bot.set_webhook(config.webhook_url, secret_token=config.webhook_secret,
                                  allowed_updates=Update.ALL_TYPES)
    else:
        poller = Poller(app, rt.state, rt.consumer, timeout_s=config.poll_timeout_s)
        app.bot_data["poller"] = poller
        app.bot_data["poller_task"] = rt.spawn(poller.run(), service="poller")
    schedule_daily(app, rt)
    # Card fonts and the reading aid's dictionary load in the background (seconds), not in front of
    # the first 🖼, inline query or 📖 — in daemon threads: the default executor would make a stop
    # wait for a load still running (a bot stopped soon after its start, on a busy CPU, hit the
    # supervisor's kill -9 after 30 s).
    for load in (warm_up, warm_reading_aid):
        threading.Thread(target=load, name=f"warm-{load.__module__}", daemon=True).start()
    if rt.config.metrics_port is not None:
        rt.metrics.serve(rt.config.metrics_port)
        rt.spawn(rt.metrics.refresh_loop(rt.state), service="metrics")
    # After every service is spawned: the first record already lists them all.
    app.bot_data["watchdog_task"] = rt.spawn(watch(rt))
    # A replica that starts after today's slot (deploy, crash) still posts within the grace window.
    if await fire_daily(rt):
        log.info("posted a daily poem missed while no replica was running")


async def _post_stop(app: Application) -> None:
    """Stop taking updates, let those in hand finish, then stop the rest."""
    rt: Runtime = app.bot_data["rt"]
    # First the watchdog, so the services stopped below are not reported dead; the record goes
    # with it, so a process restarted in this one's place is not judged by it.
    watchdog: asyncio.Task | None = app.bot_data.get("watchdog_task")
    if watchdog is not None:
        watchdog.cancel()
        await asyncio.wait({watchdog}, timeout=1.0)
        await retire(rt.state.redis, rt.consumer)
    poller: Poller | None = app.bot_data.get("poller")
    if poller is not None:
        app.bot_data["poller_task"].cancel()
        await poller.release()
    hook: WebhookServer | None = app.bot_data.get("webhook")
    if hook is not None:
        await hook.stop()
    updates: UpdateConsumer | None = app.bot_data.get("updates")
    if updates is not None:
        updates.stop()
        await asyncio.gather(app.bot_data["updates_task"], return_exceptions=True)
    consumer: ResultConsumer | None = app.bot_data.get("consumer")
    if consumer is not None:
        await consumer.broadcasts.stop()       # between two sends: another replica finishes it
    await rt.stop_tasks()


async def _post_shutdown(app: Application) -> None:
    app.bot_data["rt"].metrics.close()
    await app.bot_data["rt"].state.close()


def build_application(config: BotSettings, *, state: State | None = None, index: Index | None = None,
                      chars: frozenset[str] | None = None) -> Application:
    """The one place the Application is assembled; tests pass a state/index, production passes none."""
    install_redaction(config.token, *(s for s in [config.webhook_secret] if s))
    source = None
    if index is None and (config.index_path or config.model_dir):
        # Not there yet (`poembot run` may be building it): /similar picks it up when it appears.
        source = IndexSource.for_model(config.model_dir, config.index_path)
        index = source.load_now()
    vocab = config.vocab_path or (Path(config.model_dir) / "vocab.json" if config.model_dir else None)
    if chars is None and vocab is not None and vocab.exists():
        chars = load_chars(vocab)
    state = state or State.from_url(config.redis_url, poem_ttl_s=config.poem_ttl_s,
                                    delivery_lease_s=config.delivery_lease_s,
                                    history_cap=config.history_cap)
    if config.styles_dir is not None:
        state.style_cache.shipped_styles = StyleBook.from_cards(config.styles_dir)
    app = (Application.builder()
           .token(config.token)
           .updater(None)
           .base_url(f"{config.api_url}/bot")
           .base_file_url(f"{config.api_url}/file/bot")
           # Holds every send to POEMBOT_SEND_PER_S and retries 429s after the server's retry_after
           # (the daily broadcast keeps to a share of it: bot.delivery.Broadcasts).
           .rate_limiter(AIORateLimiter(overall_max_rate=config.send_per_s, max_retries=3))
           .concurrent_updates(True)
           .post_init(_post_init)
           .post_stop(_post_stop)
           .post_shutdown(_post_shutdown)
           .build())
    app.bot_data["rt"] = Runtime(config, state, index=index, chars=chars, index_source=source)

    # Only new messages run commands: an edited "/poem" must not write a second poem.
    new = filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler("start", handlers.start, filters=new))
    app.add_handler(CommandHandler("help", handlers.help_command, filters=new))
    app.add_handler(CommandHandler("poem", handlers.poem, filters=new))
    app.add_handler(CommandHandler("acrostic", handlers.acrostic, filters=new))
    app.add_handler(CommandHandler("ci", handlers.ci, filters=new))
    app.add_handler(CommandHandler("styles", handlers.styles_command, filters=new))
    app.add_handler(CommandHandler("similar", handlers.similar, filters=new))
    app.add_handler(CommandHandler("couplet", handlers.couplet, filters=new))
    # /对联: Telegram command names are Latin, so the Chinese spelling arrives as plain text.
    app.add_handler(MessageHandler(filters.Regex(COUPLET_RE) & new, handlers.couplet))
    app.add_handler(CommandHandler("daily", handlers.daily, filters=new))
    app.add_handler(CommandHandler("daily_now", handlers.daily_now, filters=new))
    app.add_handler(CommandHandler("settings", handlers.settings_command, filters=new))
    app.add_handler(CallbackQueryHandler(handlers.button))
    app.add_handler(InlineQueryHandler(inline.inline_query))
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, handlers.edited))
    # After every CommandHandler: catches only commands none of them took.
    app.add_handler(MessageHandler(filters.COMMAND & new, handlers.unknown_command))
    private = filters.ChatType.PRIVATE & new
    app.add_handler(MessageHandler(private & filters.TEXT, handlers.private_text))
    app.add_handler(MessageHandler(private & ~filters.TEXT, handlers.private_other))
    app.add_error_handler(handlers.on_error)
    _add_metrics_handlers(app)
    return app


def _add_metrics_handlers(app: Application) -> None:
    """Count every update (in a group of its own, so it never stops the real handlers) and API errors."""
    metrics = app.bot_data["rt"].metrics
    known = frozenset(COMMANDS) | {"daily_now"}

    async def count_update(update: object, _context: object) -> None:
        metrics.update(update, known)

    async def count_error(_update: object, context: Any) -> None:
        if isinstance(context.error, TelegramError):
            metrics.telegram_error(context.error)

    app.add_handler(TypeHandler(Update, count_update), group=-100)
    app.add_error_handler(count_error)


def run_bot(config: BotSettings) -> None:
    """`poembot bot`: long polling, or a webhook server when WEBHOOK_URL is set. Blocks."""
    # Also keeps httpx at WARNING: its INFO lines are request URLs holding the token (the redaction
    # filter build_application installs is the second line of defence).
    setup_logging("bot")
    # Either way updates reach the handlers through bot.ingest (post_init starts the poller or the
    # webhook server): PTB's own updater would acknowledge updates before they are stored.
    asyncio.run(serve(build_application(config)))


async def serve(app: Application) -> None:
    """Run app until SIGINT/SIGTERM, the way run_polling / run_webhook would, without PTB's updater."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.initialize()
    try:
        await app.post_init(app)
        await app.start()
        await stop.wait()
    finally:
        if app.running:
            await app.stop()
        await app.post_stop(app)
        await app.shutdown()
        await app.post_shutdown(app)


def main() -> int:
    """Entry for `poembot bot`: configuration from the environment, a clear message when it is wrong."""
    try:
        config = BotSettings.from_env()
    except ConfigError as exc:
        print(f"poembot bot: {exc}", file=sys.stderr)
        return 2
    run_bot(config)
    return 0
