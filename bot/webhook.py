"""The webhook endpoint: a POST from Telegram is checked for the secret and stored in the updates stream
before the 200 goes back, so an update the bot could not store is re-sent by Telegram, never lost.

bot.ingest's UpdateConsumer runs the handlers from the stream, exactly as in polling mode.
"""
from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web
from redis.exceptions import RedisError
from telegram import Update
from telegram.ext import Application

from bot.ingest import stored
from bot.state import State

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024          # Telegram's updates are far smaller; more is not Telegram


class WebhookServer:
    def __init__(self, app: Application, state: State, secret: str, path: str, listen: str, port: int) -> None:
        self.app = app
        self.state = state
        self.secret = secret.encode()
        self.path = "/" + path.strip("/")
        self.listen = listen
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        server = web.Application(client_max_size=MAX_BODY)
        server.router.add_post(self.path, self._post)
        self._runner = web.AppRunner(server, access_log=None)     # access lines would repeat the path
        await self._runner.setup()
        await web.TCPSite(self._runner, self.listen, self.port).start()
        log.info("webhook server on %s:%d", self.listen, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret):
            log.warning("webhook request without the right secret from %s", request.remote)
            return web.Response(status=403)
        try:
            data = json.loads(await request.read())
            update = Update.de_json(data, self.app.bot)
            if update is None or not isinstance(data.get("update_id"), int):
                raise ValueError("no update_id")
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("webhook request that is not an update: %s", exc)
            return web.Response(status=400)
        try:
            await self.state.intake.ingest_updates([stored(update)])
        except RedisError as exc:
            # Not a 200: Telegram keeps the update and posts it again later.
            log.warning("could not store webhook update %s: %s", update.update_id, exc)
            return web.Response(status=503)
        return web.Response(status=200)
