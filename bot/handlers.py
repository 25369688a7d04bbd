"""Telegram update handlers: commands, inline buttons, and polite answers to input we cannot use.

Each handler is wrapped by @guarded, which turns expected failures into a message in the user's
language and unexpected ones into a logged error plus a short apology.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Awaitable, Callable

from redis.exceptions import RedisError
from telegram import Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot import callbacks
from bot.callbacks import CallbackError
from bot.daily import fire_daily
from bot.card import poem_card
from bot.couplet import (COUPLET_FORM, CoupletRequest, couplet_job, parse_couplet_args, request_of_record,
                         spring_card_of)
from bot.delivery import card_png, reply_params, send_similar
from bot.ingest import current_attempt
from bot.parsing import PoemRequest, extract_poem_lines, parse_poem_args
from bot.render import (daily_keyboard, format_styles, format_tunes, keep_keyboard, poem_keyboard,
                        settings_keyboard, settings_text, split_message)
from bot.runtime import Outcome, Runtime
from bot.similar import taste_poems, taste_vector
from bot.spring_card import spring_png
from bot.stores.poems import PoemRecord
from bot.stores.users import UserSettings
from bot.texts import ZH, error_text, t, user_lang
from verse.forms import FORM_NAMES, FORMS, classify, poem_text
from protocol.jobs import EncodeJob, ValidationError, validate_encode
from protocol.sampling import couplet_temperature
from protocol.spec import SpecError
from search.reasons import QueryPoem
from verse.script import to_simplified
from reading.gloss import gloss, render

log = logging.getLogger(__name__)

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]
SUBSCRIBE_WORDS = {"on", "1", "subscribe", "订阅", "訂閱", "开", "開"}
UNSUBSCRIBE_WORDS = {"off", "0", "unsubscribe", "退订", "退訂", "关", "關"}


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    return context.application.bot_data["rt"]


async def tell(update: Update, text: str) -> None:
    """Answer where the update came from: an alert for a button, a reply for a message."""
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text[:200], show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_text(text)
    except TelegramError as exc:
        log.warning("could not answer the user: %s", exc)


RTL_OR_CONTROL = {"R", "AL", "RLE", "LRE", "RLO", "LRO", "PDF", "RLI", "LRI", "FSI", "PDI"}


def isolate(name: str) -> str:
    """A user-chosen name wrapped in a first-strong isolate when it holds right-to-left text or direction
    controls, so it cannot reorder the sentence around it (names are the user's, greetings are ours)."""
    if any(unicodedata.bidirectional(c) in RTL_OR_CONTROL for c in name):
        return f"\u2068{name}\u2069"
    return name


def guarded(func: Handler) -> Handler:
    @functools.wraps(func)
    async def wrapper(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        lang = user_lang(update)
        try:
            await func(update, context)
        except SpecError as exc:            # bot.parsing's ParseError is one too
            await tell(update, t(lang, exc.key, **exc.values))
        except ValidationError as exc:
            await tell(update, error_text(lang, exc.code, exc.message))
        except RedisError as exc:
            attempt = current_attempt()
            if attempt is not None:
                # The update stays in the stream and runs again once Redis answers: no apology needed.
                log.warning("redis failed in %s; the update will run again: %s", func.__name__, exc)
                attempt.redis_failed = True
                return
            log.exception("redis failed in %s", func.__name__)
            await tell(update, t(lang, "redis_down"))
        except Exception:
            log.exception("handler %s failed", func.__name__)
            await tell(update, t(lang, "error"))
    return wrapper


async def answer_outcome(message: Message | None, outcome: Outcome, lang: str) -> None:
    if message is None or outcome.status == "queued":
        return      # the typing indicator is the answer until the poem arrives
    if outcome.status == "loading":
        await message.reply_text(t(lang, "model_loading"))
    elif outcome.status == "no_worker":
        await message.reply_text(t(lang, "queued_no_worker"))
    elif outcome.status == "rate_limited":
        await message.reply_text(t(lang, "rate_limited", seconds=outcome.retry_after))
    else:
        await message.reply_text(t(lang, "busy", seconds=outcome.retry_after))


def outcome_alert(outcome: Outcome, lang: str, ok_key: str) -> str:
    if outcome.status == "rate_limited":
        return t(lang, "rate_limited", seconds=outcome.retry_after)
    if outcome.status == "busy":
        return t(lang, "busy", seconds=outcome.retry_after)
    if outcome.status == "loading":
        return t(lang, "model_loading")
    if outcome.status == "no_worker":
        return t(lang, "queued_no_worker")
    return t(lang, ok_key)


def command_args(message: Message) -> str:
    parts = (message.text or "").split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


# --- commands ------------------------------------------------------------------------------------

@guarded
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    lang = user_lang(update)
    name = update.effective_user.first_name if update.effective_user else ""
    await update.effective_message.reply_text(t(lang, "start", name=isolate(name), help=t(lang, "help")))


@guarded
async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(t(user_lang(update), "help"))


async def _generate(update: Update, context: ContextTypes.DEFAULT_TYPE, request: PoemRequest) -> None:
    rt, lang = runtime(context), user_lang(update)
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    settings = await rt.state.users.settings(user.id)
    await rt.resolve_style(request, settings)
    job = rt.make_generate_job(rt.poem_spec(request, settings), chat_id=chat.id, user_id=user.id, lang=lang,
                               reply_to=message.message_id)
    outcome = await rt.submit(job, context.bot, user_id=user.id, chat_id=chat.id)
    await answer_outcome(message, outcome, lang)


@guarded
async def poem(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    request = parse_poem_args(command_args(message), styles=await runtime(context).state.style_cache.styles())
    replied = message.reply_to_message
    if replied is not None and not request.acrostic and not request.tune:     # a 词 imitates no poem
        lines = extract_poem_lines(replied.text or replied.caption)
        if lines:
            request.like_texts = [poem_text(lines, "", "", close=False)]
            if request.form is None and classify(lines) in FORMS:
                request.form = classify(lines)
    await _generate(update, context, request)


@guarded
async def ci(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ci 浣溪沙 春愁: a 词 of that tune, the rest read as /poem reads it; /ci alone: the common tunes."""
    args = command_args(update.effective_message)
    if not args.strip():
        settings = await runtime(context).state.users.settings(update.effective_user.id)
        await update.effective_message.reply_text(format_tunes(user_lang(update), settings.traditional),
                                                  parse_mode=ParseMode.HTML)
        return
    request = parse_poem_args(args, ci_command=True, styles=await runtime(context).state.style_cache.styles())
    await _generate(update, context, request)


@guarded
async def acrostic(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    request = parse_poem_args(command_args(update.effective_message), acrostic_command=True,
                              styles=await runtime(context).state.style_cache.styles())
    await _generate(update, context, request)


@guarded
async def styles_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/styles: the styles served now, one line each, and how to ask for one."""
    rt, lang = runtime(context), user_lang(update)
    settings = await rt.state.users.settings(update.effective_user.id)
    await update.effective_message.reply_text(
        format_styles(await rt.state.style_cache.styles(), lang, settings.traditional, settings.style),
        parse_mode=ParseMode.HTML)


@guarded
async def similar(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, lang = runtime(context), user_lang(update)
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    settings = await rt.state.users.settings(user.id)
    replied = message.reply_to_message
    if replied is None:
        history, likes = await rt.state.users.history(user.id), await rt.state.users.likes(user.id)
        await send_similar(rt, context.bot, chat_id=chat.id, user_id=user.id, lang=lang,
                           traditional=settings.traditional, vector=taste_vector(history, likes),
                           reply_to=message.message_id, header_key="similar_title",
                           query=await taste_poems(rt.state.poems.load_poem, history, likes))
        return
    record = await rt.state.poems.poem_for_message(chat.id, replied.message_id)
    lines = record.lines if record else extract_poem_lines(replied.text or replied.caption)
    if not lines:
        await message.reply_text(t(lang, "similar_not_poem"))
        return
    await _similar_to(update, context, record, lines, message.message_id, message)


async def _similar_to(update: Update, context: ContextTypes.DEFAULT_TYPE, record: PoemRecord | None,
                      lines: list[str], reply_to: int, answer_to: Message | None) -> str | None:
    """Neighbours of one poem: straight from its stored μ, or via an EncodeJob through a worker.

    Returns the text for a button's alert when the request was refused, else None.
    """
    rt, lang = runtime(context), user_lang(update)
    user, chat = update.effective_user, update.effective_chat
    settings = await rt.state.users.settings(user.id)
    if await rt.current_index() is None:
        text = t(lang, rt.similar_off_key())
        if answer_to is not None:
            await answer_to.reply_text(text)
        return text
    if record is not None and record.mu:
        await send_similar(rt, context.bot, chat_id=chat.id, user_id=user.id, lang=lang,
                           traditional=settings.traditional, vector=record.mu, reply_to=reply_to,
                           header_key="similar_poem_title", query=[QueryPoem(list(record.lines))])
        return None
    job = validate_encode(EncodeJob(
        texts=[to_simplified(poem_text(lines, "", "", close=False))],
        reply={"purpose": "similar", "chat_id": chat.id, "user_id": user.id, "lang": lang,
               "reply_to": reply_to, "trad": settings.traditional}))
    outcome = await rt.submit(job, context.bot, user_id=user.id, chat_id=chat.id)
    if answer_to is not None:
        await answer_outcome(answer_to, outcome, lang)
        return None
    return None if outcome.status == "queued" else outcome_alert(outcome, lang, "similar_started")


@guarded
async def couplet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/couplet 上联 (or /对联), /couplet 春 [theme words], or /couplet as a reply to a one-line message."""
    message = update.effective_message
    replied = message.reply_to_message
    request = parse_couplet_args(command_args(message),
                                 (replied.text or replied.caption) if replied is not None else None)
    outcome = await _submit_couplet(update, context, request, message.message_id)
    await answer_outcome(message, outcome, user_lang(update))


async def _submit_couplet(update: Update, context: ContextTypes.DEFAULT_TYPE, request: CoupletRequest,
                          reply_to: int | None) -> Outcome:
    rt, lang = runtime(context), user_lang(update)
    user, chat = update.effective_user, update.effective_chat
    settings = await rt.state.users.settings(user.id)
    job = couplet_job(request, chat_id=chat.id, user_id=user.id, lang=lang, traditional=settings.traditional,
                      reply_to=reply_to, temperature=couplet_temperature(settings.temperature))
    return await rt.submit(job, context.bot, user_id=user.id, chat_id=chat.id)


async def _couplet_button(update: Update, context: ContextTypes.DEFAULT_TYPE, action: str, record: PoemRecord,
                          traditional: bool, message_id: int | None) -> None:
    """🔄 more 下联 (or a new 春联), 📖 the reading aid of both lines, 🖼 the 春联 card."""
    rt, lang, query = runtime(context), user_lang(update), update.callback_query
    if action == callbacks.ANOTHER:
        outcome = await _submit_couplet(update, context, request_of_record(record), message_id)
        await query.answer(outcome_alert(outcome, lang, "couplet_another_started"), show_alert=not outcome.accepted)
    elif action == callbacks.GLOSS:
        await _send_gloss(update, context, record.lines, message_id)
        await query.answer()
    elif action == callbacks.CARD:
        day = datetime.fromtimestamp(record.created_at, rt.config.zone).date()
        png = await spring_png(spring_card_of(record, traditional, day))
        if png is None:
            await query.answer(t(lang, "card_unavailable"), show_alert=True)
            return
        await context.bot.send_photo(update.effective_chat.id, png, reply_parameters=reply_params(message_id))
        await query.answer()
    else:                                    # ❤️ 🔍 ✏️ are not offered under a couplet
        await query.answer(t(lang, "cb_invalid"), show_alert=True)


@guarded
async def daily(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, lang = runtime(context), user_lang(update)
    message, chat = update.effective_message, update.effective_chat
    arg = command_args(message).strip().lower()
    when = {"time": rt.config.daily_time.strftime("%H:%M"), "tz": rt.config.tz}
    if arg in SUBSCRIBE_WORDS:
        await rt.state.subscribers.subscribe(chat.id, lang)
        await message.reply_text(t(lang, "daily_on", **when))
    elif arg in UNSUBSCRIBE_WORDS:
        await rt.state.subscribers.unsubscribe(chat.id)
        await message.reply_text(t(lang, "daily_off"))
    elif arg:
        await message.reply_text(t(lang, "daily_bad_arg"))
    else:
        subscribed = await rt.state.subscribers.is_subscribed(chat.id)
        await message.reply_text(t(lang, "daily_status_on" if subscribed else "daily_status_off", **when),
                                 reply_markup=daily_keyboard(subscribed, lang))


@guarded
async def daily_now(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, lang = runtime(context), user_lang(update)
    if update.effective_user is None or update.effective_user.id not in rt.config.admin_ids:
        await update.effective_message.reply_text(t(lang, "admin_only"))
        return
    await fire_daily(rt, force=True)
    await update.effective_message.reply_text(t(lang, "daily_now_started"))


@guarded
async def settings_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, lang = runtime(context), user_lang(update)
    settings, styles = await rt.state.users.settings(update.effective_user.id), await rt.state.style_cache.styles()
    await update.effective_message.reply_text(
        settings_text(settings, rt.config.default_form, lang, styles), parse_mode=ParseMode.HTML,
        reply_markup=settings_keyboard(settings, rt.config.default_form, lang, styles))


# --- buttons -------------------------------------------------------------------------------------

async def _edit_markup(update: Update, markup: Any) -> None:
    try:
        await update.callback_query.edit_message_reply_markup(reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


@dataclass(frozen=True)
class Press:
    """One press of an inline button: the update, its decoded data, and the poem it is under (if any)."""
    update: Update
    context: ContextTypes.DEFAULT_TYPE
    cb: callbacks.Callback
    record: PoemRecord | None = None
    settings: UserSettings | None = None

    @property
    def rt(self) -> Runtime:
        return runtime(self.context)

    @property
    def lang(self) -> str:
        return user_lang(self.update)

    @property
    def query(self) -> Any:
        return self.update.callback_query

    @property
    def message_id(self) -> int | None:
        return self.query.message.message_id if self.query.message is not None else None

    async def answer(self, key: str | None = None, alert: bool = False, **values: object) -> None:
        """Answer the press: silently, or with the text key in the user's language (an alert if asked)."""
        if key is None:
            await self.query.answer()
        elif alert:
            await self.query.answer(t(self.lang, key, **values), show_alert=True)
        else:
            await self.query.answer(t(self.lang, key, **values))


async def _on_setting(press: Press) -> None:
    """A /settings button: store the choice and redraw the settings message."""
    rt, lang, cb, query = press.rt, press.lang, press.cb, press.query
    user_id = press.update.effective_user.id
    styles = await rt.state.style_cache.styles()
    if cb.key == callbacks.STYLE_SETTING:
        if cb.value != callbacks.BASE_STYLE and cb.value not in styles:
            await press.answer("style_gone", alert=True)
            return
        value = "" if cb.value == callbacks.BASE_STYLE else cb.value
    else:
        value = FORM_NAMES[int(cb.value)] if cb.key == "form" else cb.value
    await rt.state.users.set_setting(user_id, cb.key, value)
    settings = await rt.state.users.settings(user_id)
    if isinstance(query.message, Message):
        try:
            await query.edit_message_text(settings_text(settings, rt.config.default_form, lang, styles),
                                          parse_mode=ParseMode.HTML,
                                          reply_markup=settings_keyboard(settings, rt.config.default_form, lang,
                                                                         styles))
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise
    await press.answer("settings_saved")


async def _on_gloss_corpus(press: Press) -> None:
    """📖 under a /similar answer: the reading aid of that corpus poem."""
    index = press.rt.index
    entry = index.get(press.cb.key) if index is not None else None
    if entry is None:
        await press.answer("gloss_gone", alert=True)
        return
    await _send_gloss(press.update, press.context, extract_poem_lines(entry["text"]), press.message_id)
    await press.answer()


async def _on_daily(press: Press) -> None:
    """The /daily subscribe or unsubscribe button."""
    rt, lang, chat_id = press.rt, press.lang, press.update.effective_chat.id
    subscribe = press.cb.key == "1"
    if subscribe:
        await rt.state.subscribers.subscribe(chat_id, lang)
    else:
        await rt.state.subscribers.unsubscribe(chat_id)
    when = {"time": rt.config.daily_time.strftime("%H:%M"), "tz": rt.config.tz}
    await _edit_markup(press.update, daily_keyboard(subscribe, lang))
    await press.answer("daily_on" if subscribe else "daily_off", **(when if subscribe else {}))


async def _on_like(press: Press) -> None:
    """❤️: the poem joins the user's likes (their taste for /similar)."""
    record = press.record
    added = await press.rt.state.users.add_like(press.update.effective_user.id, record.poem_id, record.mu)
    await press.answer("liked" if added else "already_liked")


async def _on_another(press: Press) -> None:
    """🔄: the same request again, in the user's settings of today, with a new seed (a new poem)."""
    rt, lang, user_id, chat_id = press.rt, press.lang, press.update.effective_user.id, press.update.effective_chat.id
    spec = await rt.again_spec(press.record.spec, press.settings, seed=None)
    job = rt.make_generate_job(spec, chat_id=chat_id, user_id=user_id, lang=lang, reply_to=press.message_id)
    outcome = await rt.submit(job, press.context.bot, user_id=user_id, chat_id=chat_id)
    await press.query.answer(outcome_alert(outcome, lang, "another_started"), show_alert=not outcome.accepted)


async def _on_similar(press: Press) -> None:
    """🔍: corpus poems near this one."""
    record = press.record
    refused = await _similar_to(press.update, press.context, record, record.lines, press.message_id, None)
    await press.query.answer(refused or t(press.lang, "similar_started"), show_alert=refused is not None)


async def _on_keep(press: Press) -> None:
    """✏️: offer the poem's lines to keep, none chosen yet."""
    record = press.record
    await _edit_markup(press.update, keep_keyboard(record.poem_id, record.lines, 0, press.lang,
                                                   press.settings.traditional))
    await press.answer("keep_prompt")


async def _on_keep_toggle(press: Press) -> None:
    """✏️ a line pressed: kept or not, the keyboard redrawn."""
    record = press.record
    await _edit_markup(press.update, keep_keyboard(record.poem_id, record.lines, press.cb.mask, press.lang,
                                                   press.settings.traditional))
    await press.answer()


async def _on_keep_cancel(press: Press) -> None:
    """✏️ given up: the poem's own buttons back."""
    await _edit_markup(press.update, poem_keyboard(press.record.poem_id, press.lang, bool(press.record.tune)))
    await press.answer()


async def _on_keep_go(press: Press) -> None:
    """✏️ done: the poem again with the chosen lines kept."""
    await _keep_go(press.update, press.context, press.record, press.cb.mask, press.message_id)


async def _on_gloss(press: Press) -> None:
    """📖: the poem's reading aid."""
    await _send_gloss(press.update, press.context, press.record.lines, press.message_id)
    await press.answer()


async def _on_card(press: Press) -> None:
    """🖼: the poem's card."""
    await _send_card(press.update, press.context, press.record, press.settings.traditional, press.message_id)


Action = Callable[[Press], Awaitable[None]]
# Buttons that act on no poem of ours.
GENERAL_ACTIONS: dict[str, Action] = {
    callbacks.SETTING: _on_setting, callbacks.GLOSS_CORPUS: _on_gloss_corpus, callbacks.DAILY: _on_daily}
# Buttons under one of our poems (a couplet's are bot.couplet's: _couplet_button).
POEM_ACTIONS: dict[str, Action] = {
    callbacks.LIKE: _on_like, callbacks.ANOTHER: _on_another, callbacks.SIMILAR: _on_similar,
    callbacks.KEEP: _on_keep, callbacks.KEEP_TOGGLE: _on_keep_toggle, callbacks.KEEP_CANCEL: _on_keep_cancel,
    callbacks.KEEP_GO: _on_keep_go,
    callbacks.GLOSS: _on_gloss, callbacks.CARD: _on_card}
# Only the poem's owner may press these (anyone may under the daily poem, which has none).
OWNER_ONLY = {callbacks.LIKE, callbacks.KEEP, callbacks.KEEP_TOGGLE, callbacks.KEEP_GO, callbacks.KEEP_CANCEL}


@guarded
async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An inline button: its data decoded, checked, and handed to its action (GENERAL_ACTIONS, POEM_ACTIONS)."""
    try:
        press = Press(update, context, callbacks.decode(update.callback_query.data))
    except CallbackError:
        await update.callback_query.answer(t(user_lang(update), "cb_invalid"), show_alert=True)
        return
    general = GENERAL_ACTIONS.get(press.cb.action)
    if general is not None:
        await general(press)
        return
    rt, cb, user = press.rt, press.cb, update.effective_user
    record = await rt.state.poems.load_poem(cb.poem_id)
    if record is None or (record.spec is None and record.form != COUPLET_FORM):
        await press.answer("cb_stale", alert=True)
        return
    if cb.action in OWNER_ONLY and record.owner_id is not None and record.owner_id != user.id:
        await press.answer("not_yours", alert=True)
        return
    if cb.action in callbacks.MASK_ACTIONS and cb.mask >= 1 << len(record.lines):
        await press.answer("cb_invalid", alert=True)
        return
    press = replace(press, record=record, settings=await rt.state.users.settings(user.id))
    if record.form == COUPLET_FORM:
        await _couplet_button(update, context, cb.action, record, press.settings.traditional, press.message_id)
        return
    await POEM_ACTIONS[cb.action](press)


async def _send_gloss(update: Update, context: ContextTypes.DEFAULT_TYPE, lines: list[str],
                      reply_to: int | None) -> None:
    """The reading aid of a poem (simplified lines), as plain text under it."""
    english = user_lang(update) == "en"
    text = await asyncio.to_thread(lambda: render(gloss(lines), english=english))
    for part in split_message(text):
        await context.bot.send_message(update.effective_chat.id, part, reply_parameters=reply_params(reply_to))


async def _send_card(update: Update, context: ContextTypes.DEFAULT_TYPE, record: PoemRecord,
                     traditional: bool, reply_to: int | None) -> None:
    """The poem's card as a photo under it, in the reader's script; an alert when none can be drawn."""
    rt, lang = runtime(context), user_lang(update)
    day = datetime.fromtimestamp(record.created_at, rt.config.zone).date()
    # The daily poem (nobody's own) keeps its heading as the card's title.
    title = t(ZH, "daily_ci_card_title" if record.tune else "daily_card_title") if record.owner_id is None else ""
    png = await card_png(poem_card(record.lines, record.form, record.spec, traditional, day, title,
                                   record.stanza_break))
    if png is None:
        await update.callback_query.answer(t(lang, "card_unavailable"), show_alert=True)
        return
    await context.bot.send_photo(update.effective_chat.id, png, reply_parameters=reply_params(reply_to))
    await update.callback_query.answer()


async def _keep_go(update: Update, context: ContextTypes.DEFAULT_TYPE, record: PoemRecord, mask: int,
                   message_id: int | None) -> None:
    """✏️ done: the same request again with the chosen lines kept."""
    rt, lang = runtime(context), user_lang(update)
    query, user, chat = update.callback_query, update.effective_user, update.effective_chat
    n_lines = len(record.lines)
    if mask == 0:
        await query.answer(t(lang, "keep_none"), show_alert=True)
        return
    if mask == (1 << n_lines) - 1:
        await query.answer(t(lang, "keep_all"), show_alert=True)
        return
    kept = {i: record.lines[i] for i in range(n_lines) if mask >> i & 1}
    kept_text = "".join(kept.values())
    # A theme word already in a kept line is satisfied; asking for it again only wastes room.
    keywords = [k for k in record.spec.keywords if k not in kept_text]
    settings = await rt.state.users.settings(user.id)
    spec = await rt.again_spec(record.spec, settings, kept_lines=kept, keywords=keywords)
    job = rt.make_generate_job(spec, chat_id=chat.id, user_id=user.id, lang=lang, reply_to=message_id)
    outcome = await rt.submit(job, context.bot, user_id=user.id, chat_id=chat.id)
    if outcome.accepted:
        await _edit_markup(update, poem_keyboard(record.poem_id, lang, bool(record.tune)))
    await query.answer(outcome_alert(outcome, lang, "keep_started"), show_alert=not outcome.accepted)


# --- everything else -----------------------------------------------------------------------------

def _addressed_to_me(message: Message, username: str | None) -> bool:
    """A command in a group counts only without @suffix or with this bot's @username."""
    text = message.text or ""
    if not text.startswith("/"):
        return False
    head = text.split()[0]
    return "@" not in head or (username is not None and head.lower().endswith("@" + username.lower()))


@guarded
async def edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.edited_message
    if message is None:
        return
    if message.chat.type != ChatType.PRIVATE and not _addressed_to_me(message, context.bot.username):
        return      # group chatter, edited or not, is none of our business
    await message.reply_text(t(user_lang(update), "edited"))


MAX_SHOWN_COMMAND = 40     # a typed "/command" echoed back in unknown_command; Telegram's own cap is 32


@guarded
async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command we do not have: named back in private chats, and in groups when sent as /x@thisbot.

    A bare /x in a group is left alone: it is most likely meant for another bot there.
    """
    message = update.effective_message
    if message is None or not message.text:
        return
    head = message.text.split()[0]
    username = (context.bot.username or "").lower()
    if message.chat.type != ChatType.PRIVATE and not (username and head.lower().endswith("@" + username)):
        return
    shown = head if len(head) <= MAX_SHOWN_COMMAND else head[:MAX_SHOWN_COMMAND] + "…"
    await message.reply_text(t(user_lang(update), "unknown_command", command=shown))


@guarded
async def private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(t(user_lang(update), "chatter_hint"))


@guarded
async def private_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(t(user_lang(update), "not_text"))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Last resort for errors outside the guarded handlers (e.g. in the JobQueue)."""
    attempt = current_attempt()
    if isinstance(context.error, RedisError) and attempt is not None:
        log.warning("redis failed; the update will run again: %s", context.error)
        attempt.redis_failed = True
        return
    log.error("unhandled error", exc_info=context.error)
    if isinstance(update, Update):
        await tell(update, t(user_lang(update), "error"))
