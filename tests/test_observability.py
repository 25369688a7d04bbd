"""Logs and metrics: JSON log lines (token redacted) or readable text, and the bot's Prometheus endpoint.

The log tests run a real subprocess so the root logger of this test process is left alone.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import update_kind
from bot.state import State
from botkit import emu, eventually, make_config, running_bot, stand_in  # noqa: F401
from devtools.emulator import BotApiEmulator
from protocol.keys import JOBS_STREAM
from protocol.logs import setup_logging

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:SECRET-abcdefghijklmnopqrstuvwxyz"

# Logs one plain line with extras, one exception whose text holds the token, and httpx lines.
LOGGING_SCRIPT = """
import logging, sys
from protocol.logs import setup_logging
from bot.redact import install_redaction
token = sys.argv[1]
setup_logging("bot")
setup_logging("bot")                 # a second call must not add a second handler
install_redaction(token)
print(len(logging.getLogger().handlers))
log = logging.getLogger("poembot.test")
log.info("job queued", extra={"job_id": "j1", "chat_id": 42, "unserialisable": object()})
try:
    raise RuntimeError(f"POST /bot{token}/sendMessage failed")
except RuntimeError:
    log.exception("send failed for %s", token, extra={"job_id": "j2"})
logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot%s/getMe", token)
logging.getLogger("httpx").warning("HTTP Request: POST https://api.telegram.org/bot%s/getMe 502", token)
"""


def run_logging(fmt: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POEMBOT_LOG")}
    if fmt is not None:
        env["POEMBOT_LOG_FORMAT"] = fmt
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-c", LOGGING_SCRIPT, TOKEN], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


# auto picks JSON here because the subprocess's stderr is a pipe, not a terminal (as in a container).
@pytest.mark.parametrize("fmt", ["json", None])
def test_json_logs_carry_fields_and_never_the_token(fmt: str | None) -> None:
    proc = run_logging(fmt)
    assert proc.stdout.strip() == "1"
    secret = TOKEN.split(":", 1)[1]
    assert TOKEN not in proc.stderr and secret not in proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    # httpx INFO is below its WARNING floor; the idempotent set-up means no line appears twice.
    assert [line["level"] for line in lines] == ["INFO", "ERROR", "WARNING"]
    queued, failed, httpx = lines
    for line in lines:
        assert line["role"] == "bot" and line["pid"] > 0
        ts = datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
        assert ts.utcoffset() == timezone.utc.utcoffset(None)
        assert abs((datetime.now(timezone.utc) - ts).total_seconds()) < 60
    assert queued["logger"] == "poembot.test" and queued["msg"] == "job queued"
    assert queued["job_id"] == "j1" and queued["chat_id"] == 42 and "unserialisable" not in queued
    assert "exc" not in queued
    assert failed["msg"] == "send failed for <token>" and failed["job_id"] == "j2"
    assert "Traceback" in failed["exc"] and "RuntimeError: POST /bot<token>/sendMessage" in failed["exc"]
    assert httpx["logger"] == "httpx" and "/bot<token>/getMe 502" in httpx["msg"]


def test_text_logs_are_readable_lines() -> None:
    proc = run_logging("text")
    lines = proc.stderr.splitlines()
    assert TOKEN not in proc.stderr
    assert any(line.endswith("INFO [bot] poembot.test: job queued") for line in lines), lines
    assert any("ERROR [bot] poembot.test: send failed for <token>" in line for line in lines)
    assert "RuntimeError: POST /bot<token>/sendMessage failed" in lines
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)


@pytest.mark.parametrize("kwargs", [{"fmt": "xml"}, {"level": "LOUD"}])
def test_bad_log_settings_fail_before_touching_logging(kwargs: dict) -> None:
    import logging
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ValueError):
        setup_logging("bot", **kwargs)
    assert logging.getLogger().handlers == handlers


def test_update_kind_labels_stay_bounded() -> None:
    from telegram import Update
    user = BotApiEmulator.user(7)
    chat = BotApiEmulator.private_chat(user)

    def update(text: str) -> Update:
        message = {"message_id": 1, "date": 0, "chat": chat, "from": user, "text": text}
        return Update.de_json({"update_id": 1, "message": message}, None)

    known = {"poem", "help"}
    assert update_kind(update("/poem 春风"), known) == "poem"
    assert update_kind(update("/Help@PoemBot"), known) == "help"
    assert update_kind(update("/rm -rf"), known) == "unknown_command"
    assert update_kind(update("/"), known) == "unknown_command"
    assert update_kind(update("你好"), known) == "text"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(values: dict, name: str, **labels: str) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


async def scrape(port: int) -> dict:
    def get() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return samples(await asyncio.to_thread(get))


async def test_bot_metrics_endpoint_counts_a_real_conversation(emu, redis_url, stand_in) -> None:
    alice = BotApiEmulator.user(3001, "Alice")
    carol = BotApiEmulator.user(3002, "Carol")
    emu.blocked_chats.add(carol["id"])          # Carol blocked the bot: her poem cannot be delivered
    async with running_bot(make_config(emu, redis_url, metrics_port=0)) as app:
        rt = app.bot_data["rt"]
        port = rt.metrics.port
        assert port

        since = emu.mark()
        await emu.send_text(alice, "/poem")
        await emu.wait_for_call("sendMessage", since=since, chat_id=alice["id"])
        await emu.send_text(alice, "/nonsense")
        await emu.send_text(alice, "随便说说")
        await emu.send_text(carol, "/poem")

        # Updates are handled concurrently, so each counter asserted below is waited for: the text
        # after /nonsense may be counted first.
        def done(v: dict) -> bool:
            return (sample(v, "poembot_bot_results_total", purpose="poem", outcome="sent") >= 1
                    and sample(v, "poembot_bot_results_total", purpose="poem", outcome="failed") >= 1
                    and sample(v, "poembot_bot_updates_total", kind="text") >= 1
                    and sample(v, "poembot_bot_updates_total", kind="unknown_command") >= 1
                    and sample(v, "poembot_bot_updates_total", kind="poem") >= 2
                    and sample(v, "poembot_bot_jobs_submitted_total", outcome="queued") >= 2)
        values = await eventually(lambda: scrape(port), done)
        assert sample(values, "poembot_bot_updates_total", kind="poem") == 2
        assert sample(values, "poembot_bot_updates_total", kind="unknown_command") == 1
        assert sample(values, "poembot_bot_jobs_submitted_total", outcome="queued") == 2
        assert sample(values, "poembot_bot_telegram_errors_total", type="Forbidden") >= 1
        count = sample(values, "poembot_bot_delivery_latency_seconds_count", purpose="poem")
        total = sample(values, "poembot_bot_delivery_latency_seconds_sum", purpose="poem")
        assert count == 1 and 0 < total < 60        # only the delivered poem is a latency sample

        # The gauges read the shared Redis at each refresh: compare with what Redis itself says. Carol's
        # failed delivery may still be settling (her job leaves the in-flight count when the failure is
        # recorded), so a refresh and a read that straddle that moment differ; they are compared until
        # one pair falls between moves — the guarantee is the refresh's value, not a frozen system.
        state = State.from_url(redis_url)

        async def gauges_and_redis() -> tuple[dict, int, int]:
            await rt.metrics.refresh(rt.state)
            return await scrape(port), await state.redis.xlen(JOBS_STREAM), await state.limits.inflight()

        def agree(seen: tuple[dict, int, int]) -> bool:
            gauges, depth, inflight = seen
            return (sample(gauges, "poembot_bot_queue_depth") == depth
                    and sample(gauges, "poembot_bot_jobs_inflight") == inflight)
        try:
            _, depth, _ = await eventually(gauges_and_redis, agree)
            assert depth >= 2
        finally:
            await state.close()
    # Shutdown closes the endpoint rather than leaking a server thread per bot.
    with pytest.raises(urllib.error.URLError):
        await scrape(port)
