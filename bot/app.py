"""Wiring: build_application() makes the whole bot from a Config; run_bot() runs it (polling or webhook).

Start-up work (command list, consumer groups, results consumer, daily schedule and missed-slot catch-up)
lives in post_init so run_polling, run_webhook and tests all go through the same code.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from telegram import BotCommand, Update
from telegram.ext import (AIORateLimiter, Application, CallbackQueryHandler, CommandHandler,
                          MessageHandler, filters)

from bot import handlers
from bot.config import Config, ConfigError
from bot.daily import fire_daily, schedule_daily
from bot.delivery import ResultConsumer
from bot.redact import install_redaction
from bot.runtime import Runtime, load_chars
from bot.similar import Index, find_index
from bot.state import State
from bot.texts import EN, ZH, t

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "poem", "acrostic", "similar", "daily", "settings")


def bot_commands(lang: str) -> list[BotCommand]:
    return [BotCommand(name, t(lang, f"cmd_{name}")) for name in COMMANDS]


async def _post_init(app: Application) -> None:
    rt: Runtime = app.bot_data["rt"]
    await app.bot.set_my_commands(bot_commands(ZH))
    await app.bot.set_my_commands(bot_commands(EN), language_code="en")
    await rt.state.ensure_groups()
    consumer = ResultConsumer(rt, app.bot)
    app.bot_data["consumer_task"] = rt.spawn(consumer.run())
    schedule_daily(app, rt)
    # A replica that starts after today's slot (deploy, crash) still posts within the grace window.
    if await fire_daily(rt):
        log.info("posted a daily poem missed while no replica was running")


async def _post_stop(app: Application) -> None:
    await app.bot_data["rt"].stop_tasks()


async def _post_shutdown(app: Application) -> None:
    await app.bot_data["rt"].state.close()


def build_application(config: Config, *, state: State | None = None, index: Index | None = None,
                      chars: frozenset[str] | None = None, claim_idle_ms: int = 60_000) -> Application:
    """The one place the Application is assembled; tests pass a state/index, production passes none."""
    install_redaction(config.token, *(s for s in [config.webhook_secret] if s))
    if index is None and (config.index_path or config.model_dir):
        index = find_index(config.model_dir, config.index_path)
    vocab = config.vocab_path or (Path(config.model_dir) / "vocab.json" if config.model_dir else None)
    if chars is None and vocab is not None and vocab.exists():
        chars = load_chars(vocab)
    state = state or State.from_url(config.redis_url, poem_ttl_s=config.poem_ttl_s,
                                    history_cap=config.history_cap)
    app = (Application.builder()
           .token(config.token)
           .base_url(f"{config.api_url}/bot")
           .base_file_url(f"{config.api_url}/file/bot")
           # Retries 429s after the server's retry_after and paces broadcasts (daily poem).
           .rate_limiter(AIORateLimiter(max_retries=3))
           .concurrent_updates(True)
           .post_init(_post_init)
           .post_stop(_post_stop)
           .post_shutdown(_post_shutdown)
           .build())
    app.bot_data["rt"] = Runtime(config, state, index=index, chars=chars, claim_idle_ms=claim_idle_ms)

    # Only new messages run commands: an edited "/poem" must not write a second poem.
    new = filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler("start", handlers.start, filters=new))
    app.add_handler(CommandHandler("help", handlers.help_command, filters=new))
    app.add_handler(CommandHandler("poem", handlers.poem, filters=new))
    app.add_handler(CommandHandler("acrostic", handlers.acrostic, filters=new))
    app.add_handler(CommandHandler("similar", handlers.similar, filters=new))
    app.add_handler(CommandHandler("daily", handlers.daily, filters=new))
    app.add_handler(CommandHandler("daily_now", handlers.daily_now, filters=new))
    app.add_handler(CommandHandler("settings", handlers.settings_command, filters=new))
    app.add_handler(CallbackQueryHandler(handlers.button))
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, handlers.edited))
    private = filters.ChatType.PRIVATE & new
    app.add_handler(MessageHandler(private & filters.TEXT, handlers.private_text))
    app.add_handler(MessageHandler(private & ~filters.TEXT, handlers.private_other))
    app.add_error_handler(handlers.on_error)
    return app


def run_bot(config: Config) -> None:
    """`poembot bot`: long polling, or a webhook server when WEBHOOK_URL is set. Blocks."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    # httpx logs every request URL at INFO, and the URL holds the token: keep it at WARNING
    # (the redaction filter is the second line of defence).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = build_application(config)
    if config.webhook_mode:
        app.run_webhook(listen=config.webhook_listen, port=config.webhook_port,
                        url_path=config.webhook_path, webhook_url=config.webhook_url,
                        secret_token=config.webhook_secret, allowed_updates=Update.ALL_TYPES)
    else:
        app.run_polling(allowed_updates=Update.ALL_TYPES)


def main() -> int:
    """Entry for `poembot bot`: configuration from the environment, a clear message when it is wrong."""
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"poembot bot: {exc}", file=sys.stderr)
        return 2
    run_bot(config)
    return 0
