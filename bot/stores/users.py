"""Per-user keys: history, likes, poems shown by /similar, settings. Each expires USER_TTL_S after its
last write or read."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from bot.styles import valid_style_id
from protocol.keys import LIKES_CAP, SHOWN_CAP, USER_TTL_S, user_key
# 稳 中 奇: protocol/sampling.py's, whose middle one is the default that `poembot generate` and
# `poembot evaluate` use too.
from protocol.sampling import CREATIVITY_TEMPERATURES, DEFAULT_CREATIVITY
from verse.forms import FORM_NAMES


@dataclass
class UserSettings:
    script: str = "s"                  # "s" simplified | "t" traditional
    form: str | None = None            # None: the bot's default form
    creativity: int = DEFAULT_CREATIVITY   # index into CREATIVITY_TEMPERATURES
    style: str = ""                    # default style id for a /poem that names none; "" the base model

    @property
    def traditional(self) -> bool:
        return self.script == "t"

    @property
    def temperature(self) -> float:
        return CREATIVITY_TEMPERATURES[self.creativity]

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> "UserSettings":
        """A user's settings hash as stored; a value this version did not write is its default."""
        s = cls()
        if raw.get("script") in ("s", "t"):
            s.script = raw["script"]
        if raw.get("form") in FORM_NAMES:
            s.form = raw["form"]
        # Compared as text: str.isdigit() passes "²", which int() refuses.
        if raw.get("cr") in {str(i) for i in range(len(CREATIVITY_TEMPERATURES))}:
            s.creativity = int(raw["cr"])
        if valid_style_id(raw.get("style")):
            s.style = raw["style"]
        return s


class Users:
    def __init__(self, redis: Any, history_cap: int = 50) -> None:
        self.redis = redis
        self.history_cap = history_cap

    async def _user_read(self, key: str, read: Callable[[Any], Any]) -> Any:
        """read(pipe) queues one command on key; run it and renew the key's TTL in one round trip
        (a read for the user's own request is use: an active user's keys never expire)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            read(pipe)
            pipe.expire(key, USER_TTL_S)
            value, _ = await pipe.execute()
        return value

    async def add_history(self, user_id: int, poem_id: str, mu: list[float] | None) -> None:
        key = user_key(user_id, "history")
        entry = json.dumps({"pid": poem_id, "mu": mu}, separators=(",", ":"))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, entry)
            pipe.ltrim(key, 0, self.history_cap - 1)
            pipe.expire(key, USER_TTL_S)
            await pipe.execute()

    async def history(self, user_id: int) -> list[dict[str, Any]]:
        key = user_key(user_id, "history")
        return [json.loads(e) for e in await self._user_read(key, lambda pipe: pipe.lrange(key, 0, -1))]

    async def add_like(self, user_id: int, poem_id: str, mu: list[float] | None) -> bool:
        """True when newly liked; the oldest likes go once there are LIKES_CAP of them."""
        key = user_key(user_id, "likes")
        entry = json.dumps({"mu": mu, "at": time.time()}, separators=(",", ":"))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, poem_id, entry)
            pipe.expire(key, USER_TTL_S)
            pipe.hlen(key)
            added, _, count = await pipe.execute()
        added = bool(added)
        if added and count > LIKES_CAP:
            likes = await self.redis.hgetall(key)
            oldest = sorted(likes, key=lambda pid: json.loads(likes[pid]).get("at", 0))
            await self.redis.hdel(key, *oldest[: len(likes) - LIKES_CAP])
        return added

    async def likes(self, user_id: int) -> dict[str, dict[str, Any]]:
        key = user_key(user_id, "likes")
        raw = await self._user_read(key, lambda pipe: pipe.hgetall(key))
        return {pid: json.loads(v) for pid, v in raw.items()}

    async def mark_shown(self, user_id: int, corpus_ids: list[str]) -> None:
        if not corpus_ids:
            return
        key = user_key(user_id, "shown")
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {cid: now for cid in corpus_ids})
            pipe.zremrangebyrank(key, 0, -SHOWN_CAP - 1)
            pipe.expire(key, USER_TTL_S)
            await pipe.execute()

    async def shown(self, user_id: int) -> set[str]:
        key = user_key(user_id, "shown")
        return set(await self._user_read(key, lambda pipe: pipe.zrange(key, 0, -1)))

    async def settings(self, user_id: int) -> UserSettings:
        key = user_key(user_id, "settings")
        raw = await self._user_read(key, lambda pipe: pipe.hgetall(key))
        return UserSettings.from_hash(raw)

    async def set_setting(self, user_id: int, key: str, value: str) -> None:
        name = user_key(user_id, "settings")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, key, value)
            pipe.expire(name, USER_TTL_S)
            await pipe.execute()
