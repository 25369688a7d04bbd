"""Poems the bot sent, by id, and which message shows which poem; both expire after poem_ttl_s."""
from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field, fields
from typing import Any

from protocol.keys import message_key, poem_key
from protocol.spec import PoemSpec, SpecError, from_legacy, from_wire
from verse.forms import FORMS

log = logging.getLogger(__name__)


def new_poem_id() -> str:
    return secrets.token_urlsafe(9)    # 12 characters of [A-Za-z0-9_-]


@dataclass
class PoemRecord:
    """A poem the bot sent, kept so its buttons can act on it without carrying it in callback_data."""
    poem_id: str
    owner_id: int | None               # None: public (the daily poem); anyone may like it
    chat_id: int
    form: str
    lines: list[str]                   # simplified, without punctuation
    request: dict[str, Any] = field(default_factory=dict)   # a couplet's request (bot.couplet)
    mu: list[float] | None = None
    seed: int | None = None
    rhyme_ok: bool | None = None
    tone_rate: float | None = None
    created_at: float = field(default_factory=time.time)
    spec: PoemSpec | None = None       # what a poem was asked with; None for a couplet
    # A 词 (its tune is spec.tune): the mark after each 句, and the 句 in its 上片 (None: a 单调).
    marks: list[str] = field(default_factory=list)
    stanza_break: int | None = None

    @property
    def tune(self) -> str:
        """The 词牌 of a 词; "" for a 诗 or a couplet."""
        return self.spec.tune if self.spec is not None else ""

    def to_json(self) -> str:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        body["spec"] = self.spec.to_wire() if self.spec is not None else None
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "PoemRecord":
        body = json.loads(text)
        known = {f.name for f in fields(cls)} - {"spec"}
        record = cls(**{k: v for k, v in body.items() if k in known})
        record.spec = _spec_of(body.get("spec"), record)
        return record


def _spec_of(wire: Any, record: PoemRecord) -> PoemSpec | None:
    """A stored record's spec; for a poem kept before specs existed, the one its request dict says."""
    if wire is not None:
        try:
            return from_wire(wire)
        except SpecError as exc:
            log.warning("poem %s has an unreadable spec: %s", record.poem_id, exc)
    return from_legacy(record.request or {}, record.form) if record.form in FORMS else None


class Poems:
    def __init__(self, redis: Any, poem_ttl_s: int = 7 * 24 * 3600) -> None:
        self.redis = redis
        self.poem_ttl_s = poem_ttl_s

    async def save_poem(self, record: PoemRecord) -> None:
        await self.redis.set(poem_key(record.poem_id), record.to_json(), ex=self.poem_ttl_s)

    async def load_poem(self, poem_id: str) -> PoemRecord | None:
        text = await self.redis.get(poem_key(poem_id))
        return PoemRecord.from_json(text) if text else None

    async def remember_message(self, chat_id: int, message_id: int, poem_id: str) -> None:
        """Which poem a sent message shows (for replies and buttons on it), until the poem expires."""
        await self.remember_messages([(chat_id, message_id, poem_id)])

    async def remember_messages(self, messages: list[tuple[int, int, str]]) -> None:
        """remember_message for many (chat_id, message_id, poem_id) in one round trip (a broadcast's)."""
        pipe = self.redis.pipeline(transaction=False)   # keys in many Cluster slots: no MULTI
        for chat_id, message_id, poem_id in messages:
            pipe.set(message_key(chat_id, message_id), poem_id, ex=self.poem_ttl_s)
        await pipe.execute()

    async def poem_for_message(self, chat_id: int, message_id: int) -> PoemRecord | None:
        poem_id = await self.redis.get(message_key(chat_id, message_id))
        return await self.load_poem(poem_id) if poem_id else None
