"""对联 in the bot: /couplet (or /对联) parsing, the CoupletJob, and how a couplet is shown.

`/couplet 海阔凭鱼跃` asks for 下联 of a 上联; `/couplet` as a reply to a one-line message takes
that line; `/couplet 春` or `/couplet 春 梅花` asks for a whole 春联 (the worker writes the 上联
around the theme words). The answer shows the best 下联 with the others under it, the 横批, and
🔄 📖 🖼 buttons; the 🖼 card is a 春联 (bot/spring_card.py). No TensorFlow here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import callbacks
from bot.parsing import ParseError
from bot.render import h
from bot.spring_card import SpringCard
from bot.stores.poems import PoemRecord, new_poem_id
from bot.texts import t
from protocol.jobs import (COUPLET_LENGTHS, MAX_COUPLET_THEME, CoupletJob, clean_text, split_lines,
                           validate_couplet)
from verse.forms import is_han
from verse.script import for_script, to_simplified

COUPLET_FORM = "对联"            # PoemRecord.form of a couplet: the buttons act on it as one
SPRING_WORDS = {"春", "春联", "春聯"}
COMMAND_RE = re.compile(r"^/(couplet|对联|對聯)(@\w+)?(\s|$)", re.IGNORECASE)


@dataclass
class CoupletRequest:
    first: str = ""                                      # the 上联, simplified
    theme: list[str] = field(default_factory=list)       # 春联 theme words
    spring: bool = False


def parse_couplet_args(text: str, replied: str | None = None) -> CoupletRequest:
    """What /couplet asks for; ParseError (with a text key) when it cannot be used.

    replied: the text of the message the command answers, used when the command has no words."""
    words = text.replace("，", " ").replace(",", " ").split()
    if words and words[0] in SPRING_WORDS:
        theme = [to_simplified(clean_text(w)) for w in words[1:]]
        theme = [w for w in theme if w]
        bad = "".join(c for w in theme for c in w if not is_han(c))
        if bad:
            raise ParseError("couplet_not_han", chars=bad)
        if len(theme) > MAX_COUPLET_THEME or any(len(w) > 4 for w in theme):
            raise ParseError("couplet_theme", limit=MAX_COUPLET_THEME)
        return CoupletRequest(theme=theme, spring=True)
    source = text
    if not clean_text(text) and replied:
        lines = split_lines(replied)
        if len(lines) != 1:
            raise ParseError("couplet_one_line", n=len(lines))
        source = lines[0]
    first = to_simplified(clean_text(source))
    if not first:
        raise ParseError("couplet_usage")
    bad = "".join(sorted({c for c in first if not is_han(c)}))
    if bad:
        raise ParseError("couplet_not_han", chars=bad)
    shortest, longest = COUPLET_LENGTHS
    if not shortest <= len(first) <= longest:
        raise ParseError("couplet_length", n=len(first), lo=shortest, hi=longest)
    return CoupletRequest(first=first)


def couplet_job(request: CoupletRequest, *, chat_id: int, user_id: int | None, lang: str,
                traditional: bool, reply_to: int | None, temperature: float | None = None,
                purpose: str = "couplet", extra: dict[str, Any] | None = None) -> CoupletJob:
    """A validated CoupletJob whose reply routes the result back here (purpose "couplet")."""
    job = CoupletJob(first=request.first, theme=list(request.theme), spring=request.spring,
                     traditional=traditional)
    if temperature is not None:
        job.temperature = temperature
    validate_couplet(job, to_simplified=to_simplified)
    job.reply = {"chat_id": chat_id, "user_id": user_id, "lang": lang, "reply_to": reply_to,
                 "purpose": purpose, "trad": traditional,
                 "request": {"kind": "couplet", "first": job.first, "theme": job.theme,
                             "spring": job.spring}, **(extra or {})}
    return job


def request_of_record(record: PoemRecord) -> CoupletRequest:
    """The request behind a couplet the bot sent, to ask again (🔄): the same 上联, or the same theme."""
    req = record.request or {}
    return CoupletRequest(first=str(req.get("first") or ""), theme=[str(w) for w in req.get("theme") or []],
                          spring=bool(req.get("spring")))


def couplet_record(result_poems: list[dict[str, Any]], request: dict[str, Any], owner_id: int | None,
                   chat_id: int) -> PoemRecord:
    """The record of a delivered couplet: its lines are the 上联 and the best 下联."""
    best = result_poems[0]
    req = dict(request)
    req.update({"banner": str(best.get("banner") or ""),
                "others": [str(p.get("second") or "") for p in result_poems[1:]],
                "written_first": bool(best.get("written_first")),
                "notes": [str(n) for n in best.get("notes") or []]})
    return PoemRecord(poem_id=new_poem_id(), owner_id=owner_id, chat_id=chat_id, form=COUPLET_FORM,
                      lines=[str(best["first"]), str(best["second"])], request=req, seed=best.get("seed"))


def format_couplet(record: PoemRecord, lang: str, traditional: bool = False, heading: str | None = None) -> str:
    """The couplet as HTML: heading, 上联, 下联, 横批, the other 下联 found, and a kind note."""
    def s(text: str) -> str:
        return h(for_script(text, traditional))

    req = record.request or {}
    spring = bool(req.get("spring"))
    title = t(lang, "spring_title" if spring else "couplet_title")
    if spring and req.get("theme"):
        title += " · " + "、".join(req["theme"])
    parts = [f"<b>{h(heading)}</b>"] if heading else []
    parts.append(f"<b>{s(title)}</b>")
    first, second = record.lines
    parts.append(f"{h(t(lang, 'couplet_first'))}　{s(first)}")
    parts.append(f"{h(t(lang, 'couplet_second'))}　{s(second)}")
    if req.get("banner"):
        parts.append(f"{h(t(lang, 'couplet_banner'))}　{s(str(req['banner']))}")
    others = [o for o in req.get("others") or [] if o]
    if others:
        parts.append("")
        parts.append(f"<i>{h(t(lang, 'couplet_others'))}</i> " + " · ".join(s(o) for o in others))
    if "first_ends_ping" in (req.get("notes") or []):    # the worker read the 上联's last tone
        parts.append("")
        parts.append(f"<i>{h(t(lang, 'couplet_ends_ping', char=for_script(first[-1], traditional)))}</i>")
    return "\n".join(parts)


def couplet_keyboard(poem_id: str, lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(t(lang, "btn_another"), callback_data=callbacks.another(poem_id)),
        InlineKeyboardButton(t(lang, "btn_gloss"), callback_data=callbacks.gloss(poem_id)),
        InlineKeyboardButton(t(lang, "btn_couplet_card"), callback_data=callbacks.card(poem_id)),
    ]])


def spring_card_of(record: PoemRecord, traditional: bool = False, day: date | None = None) -> SpringCard:
    """The 春联 card of a couplet record (its 横批 as written, or 对联 when it has none)."""
    req = record.request or {}
    return SpringCard(first=record.lines[0], second=record.lines[1],
                      banner=str(req.get("banner") or ""), traditional=traditional, day=day,
                      fu=bool(req.get("spring")))
