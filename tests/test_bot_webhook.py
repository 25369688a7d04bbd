"""Webhook mode: the bot registers its URL and secret, serves updates posted with the secret header,
and rejects requests without it.
"""
from __future__ import annotations

import json

import aiohttp

from protocol.settings import BotSettings
from botkit import (emu, free_port, make_config, running_bot,  # noqa: F401
                    stand_in)
from devtools.emulator import BotApiEmulator, command_entities

ALICE = BotApiEmulator.user(3001, "Alice")
SECRET = "s3cret_Token-42"


async def test_webhook_with_secret_token(emu, redis_url, stand_in) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg-hook"
    config = make_config(emu, redis_url, webhook_url=url, webhook_secret=SECRET, webhook_listen="127.0.0.1",
                         webhook_port=port)
    assert config.webhook_mode and config.webhook_path == "tg-hook"
    async with running_bot(config):
        registered = emu.find_calls("setWebhook")[-1]
        assert registered.params["url"] == url and registered.params["secret_token"] == SECRET

        # The emulator posts updates the way Telegram does, with the secret header.
        await emu.send_text(ALICE, "/poem 春风")
        reply = await emu.wait_for_call("sendMessage", chat_id=ALICE["id"])
        assert "春风" in reply.text and emu.webhook_posts == [200]

        # Anyone else who finds the URL is turned away, with or without a guess at the secret.
        update = {"update_id": 999, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"},
                                                "from": {"id": 1, "is_bot": False, "first_name": "M"},
                                                "text": "/start"}}
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                async with session.post(url, data=json.dumps(update),
                                        headers={"Content-Type": "application/json", **headers}) as resp:
                    assert resp.status == 403
    assert not emu.find_calls("sendMessage", chat_id=1)


def test_webhook_config_from_env_requires_a_valid_secret() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "123:" + "a" * 30, "WEBHOOK_URL": "https://bot.example.com/hook"}
    for secret, ok in ((None, False), ("has space", False), ("good_Secret-1", True)):
        values = dict(env, **({"WEBHOOK_SECRET": secret} if secret else {}))
        try:
            config = BotSettings.from_env(values)
        except ValueError as exc:
            assert not ok, exc
            assert "WEBHOOK_SECRET" in str(exc)
        else:
            assert ok and config.webhook_secret == secret and config.webhook_path == "hook"


async def test_an_update_the_bot_cannot_store_is_refused_so_telegram_sends_it_again(emu, redis_server,
                                                                                   stand_in) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    config = make_config(emu, redis_server.url, webhook_url=url, webhook_secret=SECRET,
                         webhook_listen="127.0.0.1", webhook_port=port)
    update = {"update_id": 500, "message": {
        "message_id": 1, "date": 0, "chat": BotApiEmulator.private_chat(ALICE), "from": ALICE,
        "text": "/poem 秋月", "entities": command_entities("/poem 秋月")}}
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with running_bot(config), aiohttp.ClientSession() as session:
        redis_server.stop()
        async with session.post(url, data=json.dumps(update), headers=headers) as resp:
            assert resp.status == 503              # not stored, so not acknowledged
        redis_server.start()
        for _ in range(2):                         # Telegram's retry, then a duplicate delivery of it
            async with session.post(url, data=json.dumps(update), headers=headers) as resp:
                assert resp.status == 200
        poem = await emu.wait_for_call("sendMessage", chat_id=ALICE["id"], timeout=60)
        assert "秋月" in poem.text
        since = emu.mark()
        await emu.send_text(ALICE, "/help")        # answered after anything the duplicate could cause
        await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=30)
    assert len([c for c in emu.find_calls("sendMessage", chat_id=ALICE["id"]) if c.buttons]) == 1
