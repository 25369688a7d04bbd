"""How messages look: poems, prosody notes, lists of similar poems, and the inline keyboards.

Everything goes out as Telegram HTML; every value from users, the model or the corpus is escaped here.
"""
from __future__ import annotations

import re
from html import escape, unescape
from typing import Any, Mapping

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import callbacks
from bot.stores.users import UserSettings
from protocol.sampling import CREATIVITY_TEMPERATURES
from bot.styles import StyleBook
from bot.texts import EN, t
from protocol.spec import PoemSpec
from verse import tunes
from verse.forms import FORM_NAMES, poem_text
from verse.script import for_script

DYNASTIES = {"zh": {"tang": "唐", "song": "宋"}, "en": {"tang": "Tang", "song": "Song"}}
MAX_ITEM_CHARS = 400     # one corpus poem in a /similar list; keeps the message far below 4096
MAX_CAPTION = 1024       # Telegram's limit on a photo's caption
MAX_MESSAGE = 4096       # Telegram's limit on a message's text (UTF-16 units)
STYLE_BUTTONS_PER_ROW = 4
MAX_STYLE_BUTTONS = 19   # with "none", five rows of four at most in /settings
# English names of the canon collections search.index marks (the Chinese name is the key).
CANON_EN = {"唐诗三百首": "Three Hundred Tang Poems", "千家诗": "Poems of a Thousand Masters"}
LISTED_TUNES = 30        # /ci alone: the most common tunes of verse.tunes, with their patterns


def h(value: object) -> str:
    return escape(str(value), quote=False)


def prosody_note(poem: dict[str, Any], lang: str) -> str:
    """One line on form, rhyme and tones from the worker's verdict, e.g. 平起 · 押平水韵（一東） · 平仄合律 92%;
    a 词 rhymes by the ci rhyme groups (押词韵), not by 平水韵."""
    parts = []
    ci = bool(poem.get("tune"))
    if poem.get("form_ok") is False:
        parts.append(t(lang, "form_bad"))
    if poem.get("pattern") in ("平起", "仄起"):
        parts.append(poem["pattern"])
    if poem.get("rhyme_ok") and poem.get("rhyme_group") and not ci:
        parts.append(t(lang, "rhyme_ok_group", group=poem["rhyme_group"]))
    elif poem.get("rhyme_ok") is not None:
        parts.append(t(lang, ("ci_rhyme_ok" if ci else "rhyme_ok") if poem["rhyme_ok"] else "rhyme_bad"))
    rate = poem.get("tone_rate")
    if isinstance(rate, (int, float)):
        parts.append(t(lang, "tone_rate", pct=round(100 * float(rate))))
    return " · ".join(parts)


def request_label(spec: PoemSpec | None, lang: str) -> str:
    """What was asked for, shown after the form: the title (《秋夜》), the acrostic, the theme
    words, or 仿作."""
    if spec is None:
        return ""
    title = "《" + spec.title + "》" if spec.title else ""
    if spec.acrostic:
        acrostic = ("藏头「" if lang != EN else "acrostic “") + spec.acrostic + ("」" if lang != EN else "”")
        return " ".join(x for x in (title, acrostic) if x)
    if title:
        return title
    if spec.keywords:
        return " ".join(spec.keywords)
    if spec.like_texts:
        return t(lang, "imitate_note")
    return ""


def style_label(spec: PoemSpec | None, lang: str) -> str:
    """The line under a poem written in a style: — 仿李白 / — in the manner of 李白; "" for the base model."""
    if spec is None or not spec.style:
        return ""
    return t(lang, "style_label", title=spec.style_title or spec.style)


def ci_layout(lines: list[str], tune: str, found: Mapping[str, Any] | None = None) -> tuple[list[str], int | None]:
    """A 词's mark after each 句 and the number of 句 in its 上片 (None: a 单调): what the worker wrote
    (found: its poem dict), else its tune's main form's, else ， with a closing 。."""
    found = found or {}
    known = tunes.get(tune)
    main = known.main if known is not None else None
    marks = [str(m) for m in found.get("marks") or ()]
    if len(marks) != len(lines):
        marks = ([ln.mark for ln in main.lines] if main is not None and len(main.lines) == len(lines)
                 else ["，"] * (len(lines) - 1) + ["。"] if lines else [])
    brk = found["stanza_break"] if "stanza_break" in found else main.stanza_break if main is not None else None
    return marks, brk if isinstance(brk, int) and 0 < brk < len(lines) else None


def ci_text(lines: list[str], marks: list[str], stanza_break: int | None) -> str:
    """A 词 as the bot shows it: one 句 a row with its mark, a blank row between 上片 and 下片."""
    rows = [line + mark for line, mark in zip(lines, marks)]
    if stanza_break:
        rows.insert(stanza_break, "")
    return "\n".join(rows)


def format_poem(lines: list[str], form: str, lang: str, traditional: bool = False,
                spec: PoemSpec | None = None, poem: dict[str, Any] | None = None,
                heading: str | None = None) -> str:
    """A poem's message: its form (a 词: its tune) and what was asked for, the poem a line a row, the
    style it was written in, and the worker's prosody note."""
    tune = (spec.tune if spec is not None else "") or str((poem or {}).get("tune") or "")
    title = h(for_script(tune, traditional) if tune else form)
    label = request_label(spec, lang)
    if label:
        title += " · " + h(for_script(label, traditional))
    body = ci_text(lines, *ci_layout(lines, tune, poem)) if tune else poem_text(lines, "\n", "\n", close=False)
    parts = [f"<b>{h(heading)}</b>"] if heading else []
    parts += [f"<b>{title}</b>", h(for_script(body, traditional))]
    manner = style_label(spec, lang)
    if manner:
        parts.append(h(for_script(manner, traditional)))
    text = "\n".join(parts)
    note = prosody_note(poem or {}, lang)
    return f"{text}\n\n<i>{h(note)}</i>" if note else text


def poem_keyboard(poem_id: str, lang: str, ci: bool = False) -> InlineKeyboardMarkup:
    """The buttons under a poem. A 词 (ci) has no ❤️ nor 🔍: both read the 诗 model's latent, which a 词
    has none of."""
    if ci:
        return InlineKeyboardMarkup([[
            InlineKeyboardButton(t(lang, "btn_another"), callback_data=callbacks.another(poem_id)),
            InlineKeyboardButton(t(lang, "btn_keep"), callback_data=callbacks.keep(poem_id)),
        ], [
            InlineKeyboardButton(t(lang, "btn_gloss"), callback_data=callbacks.gloss(poem_id)),
            InlineKeyboardButton(t(lang, "btn_card"), callback_data=callbacks.card(poem_id)),
        ]])
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(t(lang, "btn_like"), callback_data=callbacks.like(poem_id)),
        InlineKeyboardButton(t(lang, "btn_another"), callback_data=callbacks.another(poem_id)),
        InlineKeyboardButton(t(lang, "btn_similar"), callback_data=callbacks.similar(poem_id)),
        InlineKeyboardButton(t(lang, "btn_keep"), callback_data=callbacks.keep(poem_id)),
    ], [
        InlineKeyboardButton(t(lang, "btn_gloss"), callback_data=callbacks.gloss(poem_id)),
        InlineKeyboardButton(t(lang, "btn_card"), callback_data=callbacks.card(poem_id)),
    ]])


def plain_length(html_text: str) -> int:
    """What Telegram counts against a caption's limit: the text without tags, in UTF-16 units."""
    return len(unescape(re.sub(r"<[^>]+>", "", html_text)).encode("utf-16-le")) // 2


def fits_caption(html_text: str) -> bool:
    return plain_length(html_text) <= MAX_CAPTION


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Plain text in messages of at most limit UTF-16 units, cut between paragraphs: the reading aid of a
    long 词 (a 沁园春's 25 句) runs near Telegram's limit, and over it the whole message would be refused."""
    def units(s: str) -> int:
        return len(s.encode("utf-16-le")) // 2

    parts: list[str] = []
    for block in text.split("\n\n"):
        while units(block) > limit:              # one paragraph over the limit (never in practice): cut it
            cut = limit
            while units(block[:cut]) > limit:
                cut -= 1
            parts.append(block[:cut])
            block = block[cut:]
        if parts and units(parts[-1] + "\n\n" + block) <= limit:
            parts[-1] += "\n\n" + block
        else:
            parts.append(block)
    return parts


def keep_keyboard(poem_id: str, lines: list[str], mask: int, lang: str,
                  traditional: bool = False) -> InlineKeyboardMarkup:
    """One toggle per line (its callback carries the mask after the toggle), then go / cancel."""
    rows = []
    for i, line in enumerate(lines):
        mark = "✅" if mask >> i & 1 else "▫️"
        rows.append([InlineKeyboardButton(f"{mark} {i + 1}. {for_script(line, traditional)}",
                                          callback_data=callbacks.keep_toggle(poem_id, mask ^ (1 << i)))])
    rows.append([InlineKeyboardButton(t(lang, "btn_rewrite"), callback_data=callbacks.keep_go(poem_id, mask)),
                 InlineKeyboardButton(t(lang, "btn_cancel"), callback_data=callbacks.keep_cancel(poem_id))])
    return InlineKeyboardMarkup(rows)


def format_corpus_poem(n: int, item: dict[str, Any], lang: str, traditional: bool) -> str:
    dynasty = DYNASTIES.get(lang, DYNASTIES["zh"]).get(str(item.get("dynasty", "")), item.get("dynasty", ""))
    title = item.get("title") or t(lang, "untitled")
    author = item.get("author") or ""
    head = f"{n}. <b>{h(for_script(str(title), traditional))}</b>"
    if author:
        byline = f"{author}（{dynasty}）" if dynasty and lang != EN else (f"{author} ({dynasty})" if dynasty else author)
        head += " — " + h(for_script(byline, traditional))
    text = str(item.get("text") or "")[:MAX_ITEM_CHARS]
    out = head + "\n" + h(for_script(text, traditional))
    why = why_line(item.get("why"), lang)
    return out + "\n<i>" + h(for_script(why, traditional)) + "</i>" if why else out


def why_line(why: Any, lang: str) -> str:
    """One short line saying why a /similar answer was chosen (search.reasons.reason's dict)."""
    if not isinstance(why, dict):
        return ""
    parts = []
    if why.get("near"):
        parts.append(t(lang, "why_near_liked" if why.get("liked") else "why_near", line=why["near"]))
    if why.get("words"):
        parts.append(t(lang, "why_words", words=t(lang, "why_words_sep").join(map(str, why["words"]))))
    if not parts:
        parts.append(t(lang, "why_mood"))
    if why.get("canon"):
        name = str(why["canon"])
        parts.append(t(lang, "why_canon", name=CANON_EN.get(name, name) if lang == EN else name))
    return " · ".join(parts)


def similar_keyboard(items: list[dict[str, Any]], lang: str) -> InlineKeyboardMarkup:
    """📖 1 … 📖 5: the reading aid of each poem of a /similar answer."""
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(f"📖 {i + 1}", callback_data=callbacks.gloss_corpus(str(item["id"])))
        for i, item in enumerate(items)]])


def format_similar(items: list[dict[str, Any]], lang: str, traditional: bool, header_key: str) -> str:
    blocks = [h(t(lang, header_key))]
    blocks += [format_corpus_poem(i + 1, item, lang, traditional) for i, item in enumerate(items)]
    return "\n\n".join(blocks)


def style_setting_name(settings: UserSettings, styles: StyleBook, lang: str) -> str:
    """The user's default style as /settings names it."""
    if not settings.style:
        return t(lang, "style_base")
    style = styles.get(settings.style)
    return style.title if style else t(lang, "style_unavailable", name=settings.style)


def settings_text(settings: UserSettings, default_form: str, lang: str, styles: StyleBook | None = None) -> str:
    return h(t(lang, "settings", script=t(lang, f"script_{settings.script}"),
               form=settings.form or default_form,
               style=style_setting_name(settings, styles or StyleBook(), lang),
               creativity=t(lang, f"creativity_{settings.creativity}")))


def settings_keyboard(settings: UserSettings, default_form: str, lang: str,
                      styles: StyleBook | None = None) -> InlineKeyboardMarkup:
    def mark(on: bool, label: str) -> str:
        return f"• {label} •" if on else label

    form = settings.form or default_form
    rows = [
        [InlineKeyboardButton(mark(settings.script == s, t(lang, f"script_{s}")),
                              callback_data=callbacks.setting("script", s)) for s in ("s", "t")],
        [InlineKeyboardButton(mark(form == name, name), callback_data=callbacks.setting("form", str(i)))
         for i, name in enumerate(FORM_NAMES)],
    ]
    # The default style: "none" and one button per style served now (only when there are any, or the
    # user still has one set that is gone, so it can be cleared).
    choices = [("", t(lang, "style_base"))] + [(s.id, s.title) for s in list(styles or ())[:MAX_STYLE_BUTTONS]]
    buttons = [InlineKeyboardButton(mark(settings.style == sid, label), callback_data=data)
               for sid, label in choices if (data := callbacks.style_setting(sid)) is not None]
    if len(buttons) > 1 or settings.style:
        rows += [buttons[i:i + STYLE_BUTTONS_PER_ROW] for i in range(0, len(buttons), STYLE_BUTTONS_PER_ROW)]
    rows.append([InlineKeyboardButton(mark(settings.creativity == c, t(lang, f"creativity_{c}")),
                                      callback_data=callbacks.setting("cr", str(c)))
                 for c in range(len(CREATIVITY_TEMPERATURES))])
    return InlineKeyboardMarkup(rows)


def format_styles(styles: StyleBook, lang: str, traditional: bool, default_style: str = "") -> str:
    """/styles: one line per style (its title and what it is like), then how to use one."""
    if not styles:
        return h(t(lang, "styles_none"))
    rows = [h(t(lang, "styles_title"))]
    for style in styles:
        line = (style.line_en or style.line) if lang == EN else (style.line or style.line_en)
        name = f"<b>{h(for_script(style.title, traditional))}</b>"
        if lang == EN and style.id != style.title:
            name += f" ({h(style.id)})"
        rows.append(f"{name} — {h(for_script(line, traditional))}" if line else name)
    example = next(iter(styles)).title
    blocks = ["\n".join(rows), h(for_script(t(lang, "styles_hint", example=example), traditional))]
    if default_style and default_style in styles:
        blocks.append(h(for_script(t(lang, "styles_default", title=styles.title_of(default_style)), traditional)))
    return "\n\n".join(blocks)


def format_tunes(lang: str, traditional: bool, n: int = LISTED_TUNES) -> str:
    """/ci alone: the n most common tunes with their patterns (浣溪沙 7·7·7 / 7·7·7), then how to ask."""
    rows = [h(t(lang, "ci_list_title"))]
    rows += [f"<b>{h(for_script(tune.name, traditional))}</b> {h(tune.main.pattern())}"
             for tune in tunes.load().tunes[:n]]
    return "\n".join(rows) + "\n\n" + h(for_script(t(lang, "ci_list_hint"), traditional))


def daily_keyboard(subscribed: bool, lang: str) -> InlineKeyboardMarkup:
    key = "daily_unsubscribe" if subscribed else "daily_subscribe"
    return InlineKeyboardMarkup([[InlineKeyboardButton(t(lang, key),
                                                       callback_data=callbacks.daily(not subscribed))]])
