"""Recent poems by theme, for inline mode: what an inline query offers when no fresh poem comes in time.

Every poem the bot delivers (a /poem answer or an inline job) is pushed onto its theme's list and onto
the any-theme list, newest first, INLINE_CACHE_CAP long, forgotten after INLINE_CACHE_TTL_S unused.
An inline job's poems are also handed to the query waiting for them through a short-lived list,
because the result may be read by another bot replica than the one holding the query.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis

from protocol.spec import PoemSpec, SpecError, from_legacy, from_wire
from protocol.keys import (INLINE_ANY_THEME, INLINE_CACHE_CAP, INLINE_CACHE_TTL_S, INLINE_DONE_TTL_S,
                        inline_cache_key, inline_done_key)
from verse.script import to_simplified

# What a cached poem keeps: enough to show it again with its prosody note.
KEPT = ("lines", "form", "pattern", "rhyme_ok", "rhyme_group", "tone_rate", "form_ok", "tune", "marks",
        "stanza_break")


def theme_of(spec: PoemSpec | None) -> str:
    """A request's cache theme: its 藏头 characters or its theme words (simplified), after its style
    when it has one (s:libai:k:明月) or its tune (t:浣溪沙:k:春愁), else the any-theme."""
    if spec is None:
        return INLINE_ANY_THEME
    acrostic, keywords, style = spec.acrostic, spec.keywords, spec.style
    # A 词 asked by its tune is offered only 词 of that tune, never a 诗 of the same theme words.
    prefix = f"s:{style}:" if style else f"t:{spec.tune}:" if spec.tune else ""
    if acrostic:
        return prefix + "a:" + to_simplified(acrostic)
    if keywords:
        return prefix + "k:" + ",".join(sorted(to_simplified(k) for k in keywords))
    return prefix + "any" if prefix else INLINE_ANY_THEME


def slim(poem: dict[str, Any], spec: PoemSpec | None) -> dict[str, Any]:
    """The part of a worker's poem the cache keeps, with the spec that asked for it (less its example
    poems and kept lines: a cached poem is shown, never asked again)."""
    kept = {k: poem[k] for k in KEPT if k in poem}
    if spec is not None:
        kept["spec"] = replace(spec, like_texts=(), kept_lines=()).to_wire()
    kept["at"] = time.time()
    return kept


def cached_spec(poem: dict[str, Any]) -> PoemSpec | None:
    """The spec of a cached poem; of one cached before specs existed, what its request dict says."""
    try:
        if "spec" in poem:
            return from_wire(poem["spec"])
    except SpecError:
        return None
    return from_legacy(poem.get("request") or {}, str(poem.get("form") or ""))


def poem_digest(poem: dict[str, Any]) -> str:
    """A short stable id for a poem (inline result ids, card file ids)."""
    return hashlib.sha1("|".join(poem.get("lines") or []).encode()).hexdigest()[:20]


def fallback_of(theme: str) -> str:
    """The list a query of theme falls back to: its tune's any-theme list for a 词 (t:浣溪沙:any),
    so a query for a tune is never filled with 诗, else the any-theme list."""
    if theme.startswith("t:"):
        return theme.split(":", 2)[0] + ":" + theme.split(":", 2)[1] + ":any"
    return INLINE_ANY_THEME


async def remember_poems(redis: aioredis.Redis, theme: str, poems: list[dict[str, Any]]) -> None:
    """Put poems at the head of their theme's list, its fallback's (fallback_of) and the any-theme list."""
    if not poems:
        return
    entries = [json.dumps(p, ensure_ascii=False, separators=(",", ":")) for p in poems]
    async with redis.pipeline(transaction=False) as pipe:
        for key in {inline_cache_key(theme), inline_cache_key(fallback_of(theme)), inline_cache_key(INLINE_ANY_THEME)}:
            pipe.lpush(key, *reversed(entries))      # the list then reads in the poems' own order
            pipe.ltrim(key, 0, INLINE_CACHE_CAP - 1)
            pipe.expire(key, INLINE_CACHE_TTL_S)
        await pipe.execute()


async def recent_poems(redis: aioredis.Redis, theme: str, n: int) -> list[dict[str, Any]]:
    """Up to n recent poems of theme, newest first."""
    return [json.loads(e) for e in await redis.lrange(inline_cache_key(theme), 0, n - 1)]


async def publish_inline(redis: aioredis.Redis, job_id: str, poems: list[dict[str, Any]]) -> None:
    """Hand an inline job's poems to the query waiting for them (an empty list: the job failed)."""
    key = inline_done_key(job_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, json.dumps(poems, ensure_ascii=False, separators=(",", ":")))
        pipe.expire(key, INLINE_DONE_TTL_S)
        await pipe.execute()


async def wait_inline(redis: aioredis.Redis, job_id: str, timeout_s: float) -> list[dict[str, Any]]:
    """The poems of an inline job once a replica published them, or [] after timeout_s."""
    if timeout_s <= 0:
        return []
    reply = await redis.blpop([inline_done_key(job_id)], timeout=timeout_s)
    return json.loads(reply[1]) if reply else []
