"""Hostile input against the real bot, the Bot API emulator and real Redis: each case in CASES gets a clear
answer or is ignored on purpose, and others are still served (also through bursts, floods, the real worker)."""
from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from bot import callbacks
from botkit import (emu, make_config, running_bot, stand_in, start_worker,  # noqa: F401
                    StandInWorker, synthetic_index)
from devtools.emulator import ApiCall, BotApiEmulator, check_html, command_entities
from protocol.jobs import Job, job_from_fields
from protocol.keys import JOBS_STREAM

ALICE = BotApiEmulator.user(7001, "Alice")
BOB = BotApiEmulator.user(7002, "Bob", language_code="en-GB")
CAROL = BotApiEmulator.user(7003, "Carol")          # the bystander who must keep getting poems
EVE = BotApiEmulator.user(7004, "<b>Eve</b> & *co* [x](http://evil.example)", language_code="en")
RTL_NAME = BotApiEmulator.user(7005, "\u202eevil\u202c", language_code=None)
MALLORY = BotApiEmulator.user(7006, "Mallory")
ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
GROUP = BotApiEmulator.group_chat(-7100)
CHANNEL = {"id": -1007200, "type": "channel", "title": "诗频道"}
BOT_NAME = "poem_test_bot"          # the emulator's username for the bot
HOSTILE_TITLE = "<script>alert(0)</script>&amp;试题0"
HELP_MARK = "/acrostic"             # in /help, in both languages


def hostile_index() -> Any:
    """The synthetic index with titles and authors that would break HTML if anything forgot to escape."""
    index = synthetic_index()
    for i, meta in enumerate(index.meta):
        meta["title"] = f"<script>alert({i})</script>&amp;试题{i}"
        meta["author"] = "<b>佚名</b> & co"
    return index


# --- what a case sends --------------------------------------------------------------------------

@dataclass
class Ctx:
    emu: BotApiEmulator
    jobs: aioredis.Redis
    poem: ApiCall | None = None      # Alice's poem in GROUP, for the button cases
    # Every reply the test waited for (answers, probes, set-up); after the bot stops, any other is a bug.
    accounted: list[ApiCall] = field(default_factory=list)
    setup_jobs: int = 0              # poems asked for by set-up steps, not by the hostile updates

    async def setup_reply(self, since: int, chat_id: int, **kw: Any) -> ApiCall:
        call = await self.emu.wait_for_call("sendMessage", since=since, chat_id=chat_id, **kw)
        self.accounted.append(call)
        self.setup_jobs += bool(call.buttons)
        return call


@dataclass
class Sent:
    """Where the hostile update went, and the marks taken just before it."""
    chat_id: int
    since: int                       # emulator call index before the update
    jobs_after: str                  # last jobs-stream entry id before the update
    user: dict[str, Any] | None = None
    chat: dict[str, Any] | None = None       # None: the user's private chat
    query_id: str | None = None      # set when the answer is an answerCallbackQuery
    probe: bool = True               # whether a /help in the same chat can show "ignored" in order


Sender = Callable[[Ctx], Awaitable[Sent]]


async def last_job_id(jobs: aioredis.Redis) -> str:
    newest = await jobs.xrevrange(JOBS_STREAM, count=1)
    return newest[0][0] if newest else "0-0"


def job_chat(job: Job) -> int | None:
    chat = getattr(job, "chat_id", None)
    return chat if chat is not None else (job.reply or {}).get("chat_id")


async def marks(ctx: Ctx) -> tuple[int, str]:
    return ctx.emu.mark(), await last_job_id(ctx.jobs)


def text(user: dict[str, Any], body: str, chat: dict[str, Any] | None = None) -> Sender:
    async def send(ctx: Ctx) -> Sent:
        since, jobs_after = await marks(ctx)
        message = await ctx.emu.send_text(user, body, chat=chat)
        return Sent(message["chat"]["id"], since, jobs_after, user=user, chat=chat)
    return send


def sticker(user: dict[str, Any], chat: dict[str, Any] | None = None) -> Sender:
    async def send(ctx: Ctx) -> Sent:
        since, jobs_after = await marks(ctx)
        message = await ctx.emu.send_sticker(user, chat=chat)
        return Sent(message["chat"]["id"], since, jobs_after, user=user, chat=chat)
    return send


def raw(user: dict[str, Any], chat: dict[str, Any], **content: Any) -> Sender:
    """A message the emulator has no helper for (photo with caption, anonymous admin, ...)."""
    async def send(ctx: Ctx) -> Sent:
        since, jobs_after = await marks(ctx)
        # _message numbers the message in its chat like any other, so replies to it resolve.
        message = ctx.emu._message(chat, user, **content)
        await ctx.emu.inject({"message": message})
        return Sent(chat["id"], since, jobs_after, user=user,
                    chat=None if chat["type"] == "private" else chat)
    return send


def channel_post(body: str) -> Sender:
    async def send(ctx: Ctx) -> Sent:
        since, jobs_after = await marks(ctx)
        post = {"message_id": 1, "date": int(time.time()), "chat": CHANNEL, "sender_chat": CHANNEL,
                "text": body, "entities": command_entities(body)}
        await ctx.emu.inject({"channel_post": post})
        return Sent(CHANNEL["id"], since, jobs_after, probe=False)    # nothing in a channel gets answered
    return send


def blocked_by(user: dict[str, Any]) -> Sender:
    """The user blocks the bot: Telegram sends my_chat_member, which needs no answer."""
    async def send(ctx: Ctx) -> Sent:
        since, jobs_after = await marks(ctx)
        bot = dict(ctx.emu.bot)
        await ctx.emu.inject({"my_chat_member": {
            "chat": BotApiEmulator.private_chat(user), "from": user, "date": int(time.time()),
            "old_chat_member": {"status": "member", "user": bot},
            "new_chat_member": {"status": "kicked", "user": bot, "until_date": 0}}})
        return Sent(user["id"], since, jobs_after, user=user)
    return send


def edit(user: dict[str, Any], original: str, edited: str, chat: dict[str, Any] | None = None,
         original_answered: bool = True) -> Sender:
    """Send original (and wait for its own answer), then edit it into edited."""
    async def send(ctx: Ctx) -> Sent:
        chat_id = (chat or BotApiEmulator.private_chat(user))["id"]
        before = ctx.emu.mark()
        message = await ctx.emu.send_text(user, original, chat=chat)
        if original_answered:
            await ctx.setup_reply(before, chat_id)
        since, jobs_after = await marks(ctx)
        await ctx.emu.edit_text(message, edited)
        return Sent(chat_id, since, jobs_after, user=user, chat=chat)
    return send


def reply_to_own(user: dict[str, Any], first: str, command: str) -> Sender:
    """Send first (answered with a hint), then command as a reply to it."""
    async def send(ctx: Ctx) -> Sent:
        before = ctx.emu.mark()
        message = await ctx.emu.send_text(user, first)
        await ctx.setup_reply(before, user["id"])
        since, jobs_after = await marks(ctx)
        await ctx.emu.send_text(user, command, reply_to=message)
        return Sent(user["id"], since, jobs_after, user=user)
    return send


def press(user: dict[str, Any], data: str | Callable[[str], str]) -> Sender:
    """user presses a button on Alice's poem in GROUP; data may be built from the poem's id."""
    async def send(ctx: Ctx) -> Sent:
        assert ctx.poem is not None
        poem_id = callbacks.decode(ctx.poem.buttons[0]["callback_data"]).poem_id
        since, jobs_after = await marks(ctx)
        query_id = await ctx.emu.press(user, ctx.poem, data(poem_id) if callable(data) else data)
        return Sent(GROUP["id"], since, jobs_after, user=user, chat=GROUP, query_id=query_id)
    return send


# --- the table ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    send: Sender
    expect: str | None               # part of the answer (the sender's language); None: ignored on purpose
    jobs: int = 0                    # generation jobs the update may start
    shows: str | None = None         # hostile text the answer must show literally (escaped if HTML)
    needs_poem: bool = False         # the case presses buttons on Alice's poem in GROUP


IGNORED = None
PHOTO = [{"file_id": "p1", "file_unique_id": "p1", "width": 64, "height": 64}]

CASES: list[Case] = [
    # overlong input
    Case("overlong_theme", text(ALICE, "/poem " + "春" * 41), "输入太长了：最多 40 个字"),
    Case("overlong_command_4k", text(BOB, "/poem " + "x" * 4000), "That is too long"),
    Case("overlong_chatter_4k", text(ALICE, "说" * 4096), "想写诗吗"),
    Case("overlong_unknown_command", text(ALICE, "/" + "a" * 200), "我不认识 /" + "a" * 39 + "…"),
    Case("too_many_keywords", text(ALICE, "/poem 春 夏 秋 冬 风 花 雪"), "主题词太多了：最多 6 个"),
    Case("acrostic_too_long", text(BOB, "/acrostic 一二三四五六七八九"), "at most 8 characters"),
    # emoji, zero-width, direction and control characters
    Case("emoji_theme", text(BOB, "/poem 🌸🌙"), "must be Chinese characters", shows="🌙 🌸"),
    Case("emoji_in_acrostic", text(ALICE, "/acrostic 春🌸秋冬"), "只能用汉字：🌸 不行"),
    Case("emoji_only_chatter", text(ALICE, "🌸🌙✨"), "想写诗吗"),
    Case("zero_width_inside_theme", text(ALICE, "/poem 春\u200b风"), "七绝 · 《春风》", jobs=1),
    Case("zero_width_only_theme", text(ALICE, "/poem \u200b\u200c\u200d\ufeff"), "七绝", jobs=1),
    Case("rtl_override_acrostic", text(ALICE, "/acrostic \u202e春夏秋冬\u202c"), "藏头「春夏秋冬」", jobs=1),
    Case("rtl_arabic_theme", text(BOB, "/poem مرحبا"), "must be Chinese characters", shows="م"),
    Case("control_char_theme", text(ALICE, "/poem 春\x07风"), "只能用汉字：U+0007 不行"),
    Case("combining_mark_theme", text(ALICE, "/poem 春\u0301"), "只能用汉字：U+0301 不行"),
    Case("rtl_name_start", text(RTL_NAME, "/start"), "你好，\u2068\u202eevil\u202c\u2069！", shows="\u202eevil"),
    # HTML and Markdown injection
    Case("html_in_theme", text(ALICE, "/poem <b>春</b>"), "只能用汉字", shows="/ < > b"),
    Case("html_in_form_name", text(BOB, "/poem 七言<script>alert(1)</script>"), "Unknown form",
         shows="“七言<script>alert(1)</script>”"),
    Case("markdown_in_theme", text(ALICE, "/poem *春*_风_[点我](http://e.example)"), "只能用汉字", shows="* / [ ] _"),
    Case("html_in_user_name", text(EVE, "/start"), "Hello,", shows="<b>Eve</b> & *co* [x](http://evil.example)"),
    Case("html_in_daily_argument", text(BOB, "/daily <b>maybe</b>"), "Usage: /daily on"),
    Case("html_in_corpus_titles", text(ALICE, "/similar"), "常被传诵", shows=HOSTILE_TITLE),
    Case("html_around_pasted_poem", reply_to_own(ALICE, "<b>白日依山尽</b>，黄河入海流。\n欲穷千里目，更上一层楼。",
                                                 "/poem"), "仿作", jobs=1),
    Case("similar_to_a_non_poem", reply_to_own(ALICE, "<i>hello</i> & bye", "/similar"), "没有找到诗句"),
    # forged callback data and another user's poem
    Case("forged_path_in_callback", press(ALICE, "l:../../etc/passwd"), "按钮无效", needs_poem=True),
    Case("forged_unknown_action", press(ALICE, "zz:1"), "按钮无效", needs_poem=True),
    Case("forged_oversized_callback", press(ALICE, "l:" + "A" * 80), "按钮无效", needs_poem=True),
    Case("forged_empty_callback", press(ALICE, ""), "按钮无效", needs_poem=True),
    Case("forged_html_in_callback", press(BOB, "l:<b>xx</b>&"), "not valid", needs_poem=True),
    Case("forged_setting_value", press(ALICE, "st:form:9"), "按钮无效", needs_poem=True),
    Case("forged_unknown_poem_id", press(ALICE, callbacks.like("AAAAAAAAAAAA")), "已过期", needs_poem=True),
    Case("forged_mask_beyond_lines", press(ALICE, lambda pid: callbacks.keep_toggle(pid, 0x80)), "按钮无效",
         needs_poem=True),
    Case("others_poem_like", press(BOB, callbacks.like), "someone else's", needs_poem=True),
    Case("others_poem_keep_lines", press(BOB, lambda pid: callbacks.keep_go(pid, 0b0101)), "someone else's",
         needs_poem=True),
    # unknown commands; commands in groups with and without @mention
    Case("unknown_command_private", text(ALICE, "/foo"), "我不认识 /foo 这个命令"),
    Case("unknown_command_private_en", text(BOB, "/dance now"), "I do not know the command /dance"),
    Case("unknown_command_group_bare", text(ALICE, "/foo", chat=GROUP), IGNORED),
    Case("unknown_command_group_mention", text(ALICE, f"/foo@{BOT_NAME}", chat=GROUP), f"我不认识 /foo@{BOT_NAME}"),
    Case("command_group_bare", text(ALICE, "/poem 春风", chat=GROUP), "七绝 · 《春风》", jobs=1),
    Case("command_group_mention_any_case", text(ALICE, "/POEM@Poem_Test_Bot 明月", chat=GROUP), "七绝 · 《明月》",
         jobs=1),
    Case("command_group_other_bot", text(ALICE, "/poem@other_bot 春风", chat=GROUP), IGNORED),
    Case("group_chatter_mentioning_command", text(ALICE, "今天天气好 /poem 春风", chat=GROUP), IGNORED),
    Case("group_mention_without_command", text(ALICE, f"@{BOT_NAME} 写首诗", chat=GROUP), IGNORED),
    Case("group_sticker", sticker(ALICE, chat=GROUP), IGNORED),
    Case("anonymous_group_admin", raw(ANONYMOUS_ADMIN, GROUP, sender_chat=GROUP, text=f"/poem@{BOT_NAME} 秋月",
                                      entities=command_entities(f"/poem@{BOT_NAME}")), "七绝 · 《秋月》", jobs=1),
    Case("admin_command_by_non_admin", text(ALICE, "/daily_now"), "只有管理员能用这个命令"),
    # edited messages
    Case("edited_private_into_command", edit(ALICE, "春风", "/poem 秋月"), "我不处理修改过的消息"),
    Case("edited_group_command_mention", edit(BOB, f"/poem@{BOT_NAME} 春风", f"/poem@{BOT_NAME} 秋月", GROUP),
         "I do not act on edited messages"),
    Case("edited_group_chatter", edit(ALICE, "你好", "你好呀", GROUP, original_answered=False), IGNORED),
    Case("edited_group_into_bare_command", edit(ALICE, "你好", "/poem 你好", GROUP, original_answered=False),
         "我不处理修改过的消息"),
    # other kinds of update
    Case("private_sticker", sticker(BOB), "I only read text messages"),
    Case("photo_with_command_caption", raw(ALICE, BotApiEmulator.private_chat(ALICE), photo=PHOTO,
                                           caption="/poem 春风", caption_entities=command_entities("/poem")),
         "我只看得懂文字消息"),
    Case("channel_post_command", channel_post("/poem 春风"), IGNORED),
    Case("bot_blocked_by_user", blocked_by(ALICE), IGNORED),
]
assert len({c.name for c in CASES}) == len(CASES) >= 30


# --- checks -------------------------------------------------------------------------------------

def seen_text(call: ApiCall) -> str:
    """What the user sees: with parse_mode HTML, tags dropped and entities decoded."""
    parse_mode = call.params.get("parse_mode")
    assert parse_mode in (None, "HTML"), f"unexpected parse_mode {parse_mode}"
    if parse_mode == "HTML":
        return html.unescape(re.sub(r"<[^>]*>", "", call.text))
    return call.text


def touches(call: ApiCall, sent: Sent) -> bool:
    return call.params.get("chat_id") == sent.chat_id or (
        sent.query_id is not None and call.params.get("callback_query_id") == sent.query_id)


REPLY_METHODS = {"sendMessage", "sendPhoto", "answerCallbackQuery", "editMessageText", "editMessageReplyMarkup"}


def answer_of(call: ApiCall) -> str:
    return str(call.params.get("text") or "") if call.method == "answerCallbackQuery" else seen_text(call)


def assert_api_calls_clean(emu: BotApiEmulator) -> None:
    """No call the emulator refused (that would be a lost reply) and every HTML text valid."""
    failed = [(c.method, c.error) for c in emu.calls if not c.ok]
    assert failed == [], failed
    for call in emu.calls:
        if call.params.get("parse_mode") == "HTML":
            assert check_html(call.text) is None, call.text


async def probe_same_chat(emu: BotApiEmulator, sent: Sent) -> ApiCall:
    """A /help from the same user in the same chat, sent after the ignored update; returns its answer."""
    assert sent.user is not None
    since = emu.mark()
    body = "/help" if sent.chat is None else f"/help@{BOT_NAME}"
    await emu.send_text(sent.user, body, chat=sent.chat)
    return await emu.wait_for_call("sendMessage", since=since, chat_id=sent.chat_id,
                                   where=lambda c: HELP_MARK in c.text)


async def bystander_served(emu: BotApiEmulator, theme: str = "山水", timeout: float = 10.0) -> ApiCall:
    """Carol asks for a poem in her own chat and gets it."""
    since = emu.mark()
    await emu.send_text(CAROL, f"/poem {theme}")
    poem = await emu.wait_for_call("sendMessage", since=since, chat_id=CAROL["id"], timeout=timeout)
    assert f"七绝 · 《{theme}》" in poem.text and len(poem.buttons) == 6, poem.text   # ❤️ 🔄 🔍 ✏️ 📖 🖼
    return poem


async def ask_in_group(ctx: Ctx, user: dict[str, Any], body: str) -> ApiCall:
    since = ctx.emu.mark()
    await ctx.emu.send_text(user, body, chat=GROUP)
    return await ctx.setup_reply(since, GROUP["id"], where=lambda c: c.buttons)


@pytest.fixture
async def jobs_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def entry_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def run_case(ctx: Ctx, case: Case) -> Sent:
    """Send one hostile update, check its answer (or its absence so far), then serve the bystander."""
    emu = ctx.emu
    if case.needs_poem and ctx.poem is None:
        ctx.poem = await ask_in_group(ctx, ALICE, f"/poem@{BOT_NAME} 五绝 明月")
    sent = await case.send(ctx)
    if case.expect is IGNORED:
        if sent.probe:
            probe = await probe_same_chat(emu, sent)
            ctx.accounted.append(probe)
            early = [c for c in emu.calls[sent.since:probe.seq] if touches(c, sent)]
            assert early == [], f"{case.name}: answered on purpose-ignored update: {[c.text for c in early]}"
    else:
        if sent.query_id is not None:
            answer = await emu.wait_for_call("answerCallbackQuery", since=sent.since,
                                             callback_query_id=sent.query_id)
            assert answer.params.get("show_alert") is True, case.name
        else:
            answer = await emu.wait_for_call("sendMessage", since=sent.since, chat_id=sent.chat_id)
        ctx.accounted.append(answer)
        assert case.expect in answer_of(answer), (case.name, case.expect, answer.text or answer.params)
        if case.shows is not None:
            assert case.shows in answer_of(answer), (case.name, case.shows, answer.text)
        # A poem's buttons iff one was asked (a /similar answer carries only its 📖 reading buttons).
        poem_buttons = [b for b in answer.buttons if not b["callback_data"].startswith("gc:")]
        assert bool(poem_buttons) == (case.jobs > 0), (case.name, answer.text)
    ctx.accounted.append(await bystander_served(emu))
    return sent


BATCH = 7       # cases per bot: a bot's start and stop cost more than a case; see test_hostile_input
BATCHES = [CASES[i:i + BATCH] for i in range(0, len(CASES), BATCH)]


@pytest.mark.parametrize("batch", BATCHES, ids=[f"{b[0].name}..{b[-1].name}" for b in BATCHES])
async def test_hostile_input(batch: list[Case], emu: BotApiEmulator, redis_url: str, stand_in: StandInWorker,
                             jobs_redis: aioredis.Redis, reliability) -> None:
    """Each case in turn on one bot; once the bot has stopped (every update it took handled to the end),
    every reply it sent must be one the cases accounted for, and every job one a case asked for."""
    if batch is BATCHES[0]:
        reliability.record("Hostile input", {
            "summary": f"{len(CASES)} cases in `tests/robustness/test_hostile.py`: "
                       f"{sum(c.expect is not None for c in CASES)} get a clear answer in the sender's "
                       f"language, {sum(c.expect is None for c in CASES)} are ignored on purpose; after "
                       "each, another user's /poem is still answered.",
            "cases": {c.name: c.expect if c.expect is not None else "(ignored on purpose)" for c in CASES}})
    ctx = Ctx(emu, jobs_redis)
    sent: list[Sent] = []
    starts: list[str] = []          # last job id before each case's set-up
    async with running_bot(make_config(emu, redis_url), index=hostile_index()):
        begin, first_job = await marks(ctx)
        for case in batch:
            starts.append(await last_job_id(jobs_redis))
            sent.append(await run_case(ctx, case))
        starts.append(await last_job_id(jobs_redis))
    replies = [c for c in emu.calls[begin:] if c.method in REPLY_METHODS]
    unexpected = [(c.method, c.params.get("chat_id"), c.text or c.params.get("text")) for c in replies
                  if not any(c is a for a in ctx.accounted)]
    assert unexpected == [], f"replies no case accounts for: {unexpected}"
    assert len(replies) == len(ctx.accounted)        # and none of those twice

    entries = await jobs_redis.xrange(JOBS_STREAM, min=f"({first_job}")
    for i, case in enumerate(batch):
        low, high = entry_order(sent[i].jobs_after), entry_order(starts[i + 1])
        window = [job_from_fields(f) for e, f in entries if low < entry_order(e) <= high]
        mine = [j for j in window if job_chat(j) == sent[i].chat_id]
        assert len(mine) == case.jobs, (case.name, mine)
    assert len(entries) == sum(c.jobs for c in batch) + ctx.setup_jobs + len(batch)     # + the bystander's
    assert_api_calls_clean(emu)


# --- bursts, floods, and the real worker ---------------------------------------------------------

async def test_a_burst_of_150_updates_is_answered_once_each(emu: BotApiEmulator, redis_url: str,
                                                           stand_in: StandInWorker) -> None:
    users = [BotApiEmulator.user(20_000 + i, f"U{i}", language_code="en" if i % 2 else "zh") for i in range(50)]
    async with running_bot(make_config(emu, redis_url)):
        since = emu.mark()
        for user in users:          # all injected before the bot answered any
            await emu.send_text(user, "/poem 明月")
            await emu.send_text(user, "hello")
            await emu.send_sticker(user)
        await emu.wait_for_calls("sendMessage", 150, since=since, timeout=60)
        await bystander_served(emu, timeout=30)
    sent = emu.find_calls("sendMessage", since)
    for user in users:
        mine = [c for c in sent if c.params["chat_id"] == user["id"]]
        poems = [c for c in mine if c.buttons]
        assert len(mine) == 3 and len(poems) == 1 and "明月" in poems[0].text, [c.text for c in mine]
    assert len(sent) == 151
    assert_api_calls_clean(emu)


async def test_a_flood_from_one_user_hits_the_rate_limit_and_others_are_served(
        emu: BotApiEmulator, redis_url: str, stand_in: StandInWorker) -> None:
    async with running_bot(make_config(emu, redis_url, rate_per_min=10)):
        since = emu.mark()
        for i in range(30):
            await emu.send_text(MALLORY, "/poem 春风")
            if i == 15:
                carol = await emu.send_text(CAROL, "/poem 秋月")   # in the middle of the flood
        answers = await emu.wait_for_calls("sendMessage", 30, since=since, timeout=60, chat_id=MALLORY["id"])
        poem = await emu.wait_for_call("sendMessage", since=since, chat_id=CAROL["id"], timeout=30)
        assert "秋月" in poem.text and poem.params["reply_parameters"]["message_id"] == carol["message_id"]
        poems = [c for c in answers if c.buttons]
        limited = [c for c in answers if not c.buttons]
        assert len(poems) == 10 and len(limited) == 20
        for call in limited:
            seconds = re.fullmatch(r"写得太快啦，请 (\d+) 秒后再试。", call.text)
            # Up to 61: concurrent requests read the clock before the limiter orders them.
            assert seconds and 1 <= int(seconds[1]) <= 61, call.text

        # Pressing 🔄 over and over is the same flood: every press answered, none starts a poem.
        n_jobs = len(stand_in.jobs)
        for _ in range(10):
            alert = await emu.press_and_answer(MALLORY, poems[0], poems[0].button("再来")["callback_data"])
            assert "写得太快啦" in alert.params["text"] and alert.params["show_alert"] is True
        await bystander_served(emu)
    assert sum(1 for j in stand_in.jobs if getattr(j, "user_id", None) == MALLORY["id"]) == 10
    assert len(stand_in.jobs) == n_jobs + 1          # only Carol's second poem
    assert len(emu.find_calls("sendMessage", since, chat_id=MALLORY["id"])) == 30
    assert_api_calls_clean(emu)


POEM_TIMEOUT = 90.0      # the first decode of each form traces a tf.function on a busy 2-core CPU


async def test_hostile_themes_through_the_real_worker(emu: BotApiEmulator, redis_url: str,
                                                      start_worker: Callable[[], Any]) -> None:
    def verse(call: ApiCall) -> str:
        return "".join(line[:-1] for line in call.text.splitlines() if line.endswith(("，", "。")))

    async def ask(user: dict[str, Any], body: str) -> ApiCall:
        since = emu.mark()
        await emu.send_text(user, body)
        return await emu.wait_for_call("sendMessage", since=since, chat_id=user["id"], timeout=POEM_TIMEOUT)

    start_worker()
    # No vocabulary for the bot: the worker itself must refuse what the model cannot write.
    async with running_bot(make_config(emu, redis_url)):
        refused = await ask(BOB, "/poem 龘")
        assert "cannot write these characters: 龘" in refused.text and not refused.buttons
        poem = await ask(ALICE, "/poem 春\u200b风")          # a zero-width space pasted into the theme
        assert "春风" in verse(poem) and "七绝 · 《春风》" in poem.text and check_html(poem.text) is None
        acrostic = await ask(ALICE, "/acrostic \u202e春夏秋冬")
        assert [line[0] for line in acrostic.text.splitlines() if line.endswith(("，", "。"))] == list("春夏秋冬")
        carol = await ask(CAROL, "/poem 明月")
        assert "明月" in verse(carol)
    assert_api_calls_clean(emu)
