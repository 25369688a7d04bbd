"""Inline mode: "@bot 春风" or "@bot 藏头 春夏秋冬" in any chat offers poems to send there.

A query asks a worker for INLINE_POEMS fresh poems and waits for them at most BotSettings.inline_wait_s
(Telegram drops answers after about 10 s). Whatever does not come in time — the user is over the
inline limit, the queue is full, no worker is up, the worker is slow — is made up from recent poems
of the same theme (bot.inline_cache), so a query is never left unanswered while poems exist.
Results are articles with the poem's text; with POEMBOT_CARD_CHAT_ID set, the first poem is also
offered as a card: inline photo results need a URL or a file_id, so the card is uploaded once to that
chat and its file_id kept in Redis.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from telegram import (InlineQueryResultArticle, InlineQueryResultCachedPhoto, InlineQueryResultsButton,
                      InputTextMessageContent, Update)
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.card import poem_card
from bot.delivery import card_png
from bot.handlers import guarded, runtime
from bot.inline_cache import cached_spec, fallback_of, poem_digest, recent_poems, theme_of, wait_inline
from bot.parsing import parse_poem_args
from bot.render import ci_layout, fits_caption, format_poem
from bot.runtime import Runtime
from bot.texts import t, user_lang
from protocol.keys import CARD_FILE_TTL_S, card_file_key, inline_rate_key
from protocol.spec import PoemSpec, SpecError
from verse.script import for_script

log = logging.getLogger(__name__)

INLINE_POEMS = 3            # fresh poems asked for per query
MAX_RESULTS = 6
ANSWER_WITHIN_S = 9.0       # Telegram's limit is about 10 s from the query
CARD_TIME_S = 3.0           # a card is rendered and uploaded only with this much of that time left
MAX_BUTTON = 64             # the results button's text


@guarded
async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer one inline query with fresh poems, recent ones of its theme, or a hint when there are none."""
    rt, lang = runtime(context), user_lang(update)
    query, user = update.inline_query, update.effective_user
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + rt.config.inline_wait_s
    settings = await rt.state.users.settings(user.id)
    try:
        request = parse_poem_args(query.query.strip(), styles=await rt.state.style_cache.styles())
        await rt.resolve_style(request, settings)
        spec = rt.poem_spec(request, settings)
    except SpecError as exc:                  # bot.parsing's ParseError is one too
        await _answer_hint(update, t(lang, exc.key, **exc.values))
        return
    fresh = await fresh_poems(rt, spec, user.id, lang, deadline)
    poems = await _with_recent(rt, fresh, theme_of(spec))
    if not poems:
        await _answer_hint(update, t(lang, "inline_none" if query.query.strip() else "inline_help"))
        return
    results: list[Any] = [poem_article(p, lang, settings.traditional, i < len(fresh)) for i, p in enumerate(poems)]
    if rt.config.card_chat_id is not None and started + ANSWER_WITHIN_S - loop.time() > CARD_TIME_S:
        card = await card_result(rt, context, poems[0], lang, settings.traditional)
        if card is not None:
            results.insert(1, card)
    # Personal and uncached: every query should bring new poems, and limits are per user.
    await query.answer(results, cache_time=0, is_personal=True)


async def fresh_poems(rt: Runtime, spec: PoemSpec, user_id: int, lang: str,
                      deadline: float) -> list[dict[str, Any]]:
    """New poems for spec from a worker by deadline; [] when limits, the queue or the workers say no."""
    if await rt.state.limits.check_rate(user_id, rt.config.inline_per_min, key=inline_rate_key(user_id)) > 0:
        return []
    if not await rt.worker_alive():
        return []
    job = rt.make_generate_job(spec, chat_id=user_id, user_id=user_id, lang=lang, n=INLINE_POEMS, purpose="inline")
    # No per-user /poem limit here (inline has its own), but the global queue cap holds.
    outcome = await rt.submit(job, None, limited=True)
    if outcome.status != "queued":
        return []
    return await wait_inline(rt.state.redis, job.job_id, deadline - asyncio.get_running_loop().time())


async def _with_recent(rt: Runtime, fresh: list[dict[str, Any]], theme: str) -> list[dict[str, Any]]:
    """fresh, then recent poems of the theme, then of any theme (of its tune, for a 词), without repeats,
    MAX_RESULTS at most."""
    poems, seen = [], set()
    for source in (fresh, await recent_poems(rt.state.redis, theme, MAX_RESULTS),
                   await recent_poems(rt.state.redis, fallback_of(theme), MAX_RESULTS)):
        for poem in source:
            digest = poem_digest(poem)
            if digest not in seen and len(poems) < MAX_RESULTS:
                seen.add(digest)
                poems.append(poem)
    return poems


def poem_article(poem: dict[str, Any], lang: str, traditional: bool, fresh: bool) -> InlineQueryResultArticle:
    """One poem as an article: the first couplet as its title, the whole poem as the message sent."""
    lines = [for_script(line, traditional) for line in poem["lines"]]
    text = format_poem(poem["lines"], poem["form"], lang, traditional, cached_spec(poem), poem)
    label = t(lang, "inline_fresh" if fresh else "inline_recent")
    return InlineQueryResultArticle(
        id=("f" if fresh else "r") + poem_digest(poem) + ("t" if traditional else "s"),
        title="，".join(lines[:2]),
        description=f"{poem.get('tune') or poem['form']} · {label}\n" + "，".join(lines[2:4]),
        input_message_content=InputTextMessageContent(text, parse_mode=ParseMode.HTML))


async def card_result(rt: Runtime, context: ContextTypes.DEFAULT_TYPE, poem: dict[str, Any], lang: str,
                      traditional: bool) -> InlineQueryResultCachedPhoto | None:
    """The poem's card as a photo result: uploaded once to the card chat, then offered by file_id."""
    digest = poem_digest(poem) + ("t" if traditional else "s")
    file_id = await rt.state.redis.get(card_file_key(digest))
    if file_id is None:
        day = datetime.now(rt.config.zone).date()
        spec = cached_spec(poem)
        stanza_break = ci_layout(poem["lines"], spec.tune, poem)[1] if spec is not None and spec.tune else None
        png = await card_png(poem_card(poem["lines"], poem["form"], spec, traditional, day,
                                       stanza_break=stanza_break))
        if png is None:
            return None
        try:
            message = await context.bot.send_photo(rt.config.card_chat_id, png, disable_notification=True)
        except TelegramError as exc:
            log.warning("could not upload a card to the card chat: %s", exc)
            return None
        file_id = message.photo[-1].file_id
        await rt.state.redis.set(card_file_key(digest), file_id, ex=CARD_FILE_TTL_S)
    text = format_poem(poem["lines"], poem["form"], lang, traditional, cached_spec(poem), poem)
    return InlineQueryResultCachedPhoto(
        id="c" + digest, photo_file_id=file_id, title=t(lang, "inline_card"),
        caption=text if fits_caption(text) else None, parse_mode=ParseMode.HTML if fits_caption(text) else None)


async def _answer_hint(update: Update, text: str) -> None:
    """No poems to offer: an empty answer whose button (to the bot's chat) says why."""
    hint = text if len(text) <= MAX_BUTTON else text[:MAX_BUTTON - 1] + "…"
    await update.inline_query.answer([], cache_time=0, is_personal=True,
                                     button=InlineQueryResultsButton(text=hint, start_parameter="inline"))
