"""Inline mode through the Bot API emulator: inline_query updates in, answerInlineQuery out.

Real bot, real Redis, the stand-in worker; test_bot_e2e.py asks once more with the real worker.
"""
from __future__ import annotations

from typing import Any

from botkit import (card_fonts, emu, make_config, running_bot, stand_in,  # noqa: F401
                    StandInWorker)
from devtools.emulator import ApiCall, BotApiEmulator, check_html
from protocol.keys import INLINE_CACHE_CAP, INLINE_CACHE_TTL_S, inline_cache_key

ALICE = BotApiEmulator.user(3001, "Alice")
BOB = BotApiEmulator.user(3002, "Bob", language_code="en")
CARD_CHAT = -100555


async def ask_inline(emu: BotApiEmulator, user: dict[str, Any], query: str, timeout: float = 15.0) -> ApiCall:
    """Type "@bot query" as user; the bot's answerInlineQuery for exactly that query."""
    since = emu.mark()
    query_id = await emu.inline_query(user, query)
    return await emu.wait_for_call("answerInlineQuery", since=since, timeout=timeout, inline_query_id=query_id)


def articles(answer: ApiCall) -> list[dict[str, Any]]:
    return [r for r in answer.params["results"] if r["type"] == "article"]


def sent_text(result: dict[str, Any]) -> str:
    return result["input_message_content"]["message_text"]


async def test_fresh_poems_then_recent_ones_when_no_worker_is_up(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url)) as app:
        answer = await ask_inline(emu, ALICE, "春风")
        fresh = articles(answer)
        assert len(fresh) == 3 and all("春风" in sent_text(r) for r in fresh)
        assert all(check_html(sent_text(r)) is None and r["input_message_content"]["parse_mode"] == "HTML"
                   for r in fresh)
        assert answer.params["is_personal"] is True and answer.params["cache_time"] == 0
        assert stand_in.jobs[-1].n == 3 and stand_in.jobs[-1].keywords == ["春风"]

        acrostic = articles(await ask_inline(emu, BOB, "藏头 春夏秋冬"))
        assert len(acrostic) >= 3
        first_chars = ["".join(line[0] for line in sent_text(r).splitlines()[1:5]) for r in acrostic[:3]]
        assert first_chars == ["春夏秋冬"] * 3 and "acrostic" in sent_text(acrostic[0])

        # The cache is bounded and expires.
        redis = app.bot_data["rt"].state.redis
        assert 0 < await redis.ttl(inline_cache_key("k:春风")) <= INLINE_CACHE_TTL_S
        assert await redis.llen(inline_cache_key("k:春风")) <= INLINE_CACHE_CAP

        await stand_in.stop()                  # nobody writes now: the same theme comes from the cache
        jobs_before = len(stand_in.jobs)
        cached = articles(await ask_inline(emu, ALICE, "春风"))
        assert {sent_text(r) for r in cached[:3]} == {sent_text(r) for r in fresh}
        assert all(r["id"].startswith("r") for r in cached) and len(stand_in.jobs) == jobs_before


async def test_a_theme_never_asked_falls_back_to_recent_poems_or_a_hint(emu, redis_url) -> None:
    async with running_bot(make_config(emu, redis_url)):
        empty = await ask_inline(emu, ALICE, "明月")          # no worker, nothing cached yet
        assert empty.params["results"] == [] and empty.params["button"]["text"] == "现在写不出来，稍后再试"
        bad = await ask_inline(emu, BOB, "藏头")
        assert bad.params["results"] == [] and "acrostic" in bad.params["button"]["text"].lower()

        worker = await StandInWorker(redis_url).start()
        try:
            assert len(articles(await ask_inline(emu, ALICE, "春风"))) == 3
        finally:
            await worker.stop()
        other = articles(await ask_inline(emu, ALICE, "明月"))   # recent poems of any theme
        assert len(other) == 3


async def test_inline_queries_are_rate_limited_per_user(emu, redis_url, stand_in) -> None:
    async with running_bot(make_config(emu, redis_url, inline_per_min=2)):
        for _ in range(2):
            assert len(articles(await ask_inline(emu, ALICE, "秋夜"))) >= 3
        jobs = len(stand_in.jobs)
        limited = await ask_inline(emu, ALICE, "秋夜")          # over the limit: the cache answers
        assert len(articles(limited)) >= 3 and len(stand_in.jobs) == jobs
        assert all(r["id"].startswith("r") for r in articles(limited))
        await ask_inline(emu, BOB, "秋夜")                       # Bob has his own limit
        assert len(stand_in.jobs) == jobs + 1


async def test_a_card_chat_turns_the_first_poem_into_a_photo_result(emu, redis_url, stand_in, card_fonts) -> None:
    async with running_bot(make_config(emu, redis_url, card_chat_id=CARD_CHAT)):
        answer = await ask_inline(emu, ALICE, "五律 江南")
        photos = [r for r in answer.params["results"] if r["type"] == "photo"]
        upload = emu.find_calls("sendPhoto", chat_id=CARD_CHAT)
        assert len(photos) == 1 and len(upload) == 1
        assert photos[0]["photo_file_id"] == upload[0].result["photo"][-1]["file_id"]
        assert "江南" in photos[0]["caption"] and photos[0]["parse_mode"] == "HTML"
        assert upload[0].params["disable_notification"] is True

        await stand_in.stop()                        # the same poem again: its card is not uploaded twice
        again = await ask_inline(emu, ALICE, "江南")
        assert [r for r in again.params["results"] if r["type"] == "photo"][0]["photo_file_id"] == \
            photos[0]["photo_file_id"]
        assert len(emu.find_calls("sendPhoto", chat_id=CARD_CHAT)) == 1


async def test_a_tune_never_asked_with_these_words_falls_back_to_ci_of_that_tune_only(emu, redis_url) -> None:
    """A query for 浣溪沙 with fresh words, no worker up: recent 浣溪沙 only, never a 诗 of the cache."""
    async with running_bot(make_config(emu, redis_url)):
        worker = await StandInWorker(redis_url).start()
        try:
            # The 诗 come last, so they head the any-theme list.
            assert len(articles(await ask_inline(emu, ALICE, "浣溪沙 春愁"))) == 3     # 词, cached
            assert len(articles(await ask_inline(emu, ALICE, "春风"))) >= 3            # 诗, cached
        finally:
            await worker.stop()
        recent = articles(await ask_inline(emu, ALICE, "浣溪沙 秋思"))
        assert len(recent) == 3 and all(r["description"].startswith("浣溪沙") for r in recent)
        assert all(not r["id"].startswith("f") for r in recent)
        other = articles(await ask_inline(emu, ALICE, "明月"))   # a 诗 query may still show any recent poem
        assert len(other) >= 3
