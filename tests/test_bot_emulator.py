"""The Bot API emulator itself: what it answers, checks and records, so bot tests can trust it."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from botkit import emu, eventually  # noqa: F401
from devtools.emulator import BotApiEmulator


async def call(emu: BotApiEmulator, method: str, token: str | None = None, **params) -> tuple[int, dict]:
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emu.url}/bot{token or emu.token}/{method}", data=form) as resp:
            return resp.status, await resp.json()


async def test_get_updates_long_polls_until_an_update_arrives(emu) -> None:
    user = emu.user(1)
    poll = asyncio.ensure_future(call(emu, "getUpdates", timeout=5, offset=0))
    await eventually(lambda: asyncio.sleep(0, emu.waiting_polls), lambda n: n == 1)   # the poll is held
    message = await emu.send_text(user, "/poem@poem_test_bot 春")
    status, body = await asyncio.wait_for(poll, 5)
    assert status == 200 and body["result"][0]["message"]["text"] == message["text"]
    entity = body["result"][0]["message"]["entities"][0]
    assert entity == {"type": "bot_command", "offset": 0, "length": len("/poem@poem_test_bot")}
    # Confirming with a later offset drops the update.
    status, body = await call(emu, "getUpdates", offset=body["result"][0]["update_id"] + 1, timeout=0)
    assert body["result"] == []


async def test_errors_look_like_telegrams(emu) -> None:
    assert (await call(emu, "getMe", token="1:wrong"))[0] == 401
    assert (await call(emu, "noSuchMethod"))[1]["description"].startswith("Not Found")
    status, body = await call(emu, "sendMessage", chat_id=5, text="<b>open", parse_mode="HTML")
    assert status == 400 and "can't parse entities" in body["description"]
    markup = {"inline_keyboard": [[{"text": "x", "callback_data": "x" * 65}]]}
    assert "BUTTON_DATA_INVALID" in (await call(emu, "sendMessage", chat_id=5, text="hi", reply_markup=markup))[1]["description"]
    emu.fail_next("sendMessage", code=429, retry_after=3)
    status, body = await call(emu, "sendMessage", chat_id=5, text="hi")
    assert status == 429 and body["parameters"] == {"retry_after": 3}
    emu.blocked_chats.add(6)
    assert (await call(emu, "sendMessage", chat_id=6, text="hi"))[0] == 403
    status, body = await call(emu, "sendMessage", chat_id=5, text="hi")
    sent = body["result"]
    status, body = await call(emu, "editMessageText", chat_id=5, message_id=sent["message_id"], text="hi")
    assert status == 400 and "not modified" in body["description"]


async def test_wait_for_call_matches_params_and_times_out_with_a_summary(emu) -> None:
    since = emu.mark()
    await call(emu, "sendMessage", chat_id=5, text="one")
    await call(emu, "sendMessage", chat_id=7, text="two")
    found = await emu.wait_for_call("sendMessage", since=since, chat_id=7)
    assert found.text == "two" and found.params["chat_id"] == 7
    with pytest.raises(AssertionError, match="no sendMessage .* within 0.1s"):
        await emu.wait_for_call("sendMessage", since=since, chat_id=8, timeout=0.1)


def tiny_png(width: int, height: int) -> bytes:
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (255, 255, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


async def send_photo(emu: BotApiEmulator, photo: bytes | str, **params) -> tuple[int, dict]:
    """sendPhoto as a multipart upload (bytes) or by file_id (str), as python-telegram-bot sends it."""
    form = aiohttp.FormData()
    for key, value in params.items():
        form.add_field(key, value if isinstance(value, str) else json.dumps(value))
    if isinstance(photo, bytes):
        form.add_field("photo", photo, filename="card.png", content_type="image/png")
    else:
        form.add_field("photo", photo)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emu.url}/bot{emu.token}/sendPhoto", data=form) as resp:
            return resp.status, await resp.json()


async def test_send_photo_takes_uploads_and_file_ids(emu) -> None:
    status, body = await send_photo(emu, tiny_png(300, 200), chat_id="5", caption="<b>诗</b>", parse_mode="HTML")
    assert status == 200 and body["result"]["photo"][0]["width"] == 300 and body["result"]["caption"] == "<b>诗</b>"
    file_id = body["result"]["photo"][-1]["file_id"]
    assert emu.photo_bytes(file_id) == tiny_png(300, 200)
    status, body = await send_photo(emu, file_id, chat_id="7")
    assert status == 200 and body["result"]["photo"][0]["file_id"] == file_id
    assert "wrong file identifier" in (await send_photo(emu, "no-such-file", chat_id="7"))[1]["description"]
    assert "too long" in (await send_photo(emu, file_id, chat_id="7", caption="字" * 1025))[1]["description"]
    assert "DIMENSIONS" in (await send_photo(emu, tiny_png(2100, 100), chat_id="7"))[1]["description"]


async def test_inline_answers_are_checked_and_expire(emu) -> None:
    user = emu.user(1)
    query_id = await emu.inline_query(user, "春风")
    article = {"type": "article", "id": "a1", "title": "春风",
               "input_message_content": {"message_text": "<b>春风</b>", "parse_mode": "HTML"}}
    assert (await call(emu, "answerInlineQuery", inline_query_id=query_id, results=[article, article]))[0] == 400
    query_id = await emu.inline_query(user, "春风")
    assert (await call(emu, "answerInlineQuery", inline_query_id=query_id, results=[article]))[0] == 200
    # Answered once only; a photo result needs a file Telegram knows (or a URL and a thumbnail).
    assert (await call(emu, "answerInlineQuery", inline_query_id=query_id, results=[article]))[0] == 400
    query_id = await emu.inline_query(user, "春风")
    photo = {"type": "photo", "id": "p1", "photo_file_id": "photo-unknown"}
    assert "MEDIA_INVALID" in (await call(emu, "answerInlineQuery", inline_query_id=query_id,
                                          results=[photo]))[1]["description"]
    emu.inline_timeout_s = 0.0
    query_id = await emu.inline_query(user, "春风")
    status, body = await call(emu, "answerInlineQuery", inline_query_id=query_id, results=[article])
    assert status == 400 and "too old" in body["description"]
