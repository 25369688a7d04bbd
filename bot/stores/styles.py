"""The style registry the workers publish (protocol.keys.STYLES_KEY), cached for a few seconds."""
from __future__ import annotations

import time
from typing import Any

from bot.styles import StyleBook
from protocol.keys import STYLES_KEY

# The style registry changes when a worker starts with other adapters; every /poem reads it, so each
# process keeps its copy this long (a new style shows up within seconds, Redis sees one HGETALL).
STYLES_CACHE_S = 5.0


class StyleCache:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._styles: StyleBook | None = None
        self._styles_at = float("-inf")
        # The shipped styles (BotSettings.styles_dir), named while no worker has published its own.
        self.shipped_styles = StyleBook()

    async def styles(self, max_age_s: float = STYLES_CACHE_S) -> StyleBook:
        """The styles the workers serve, read at most every max_age_s; the shipped ones while no
        worker has published any (its model still loading): a first `/poem 李白 明月` then waits for
        the worker like any poem instead of being refused."""
        now = time.monotonic()
        if self._styles is None or now - self._styles_at >= max_age_s:
            self._styles = StyleBook.from_hash(await self.redis.hgetall(STYLES_KEY)) or self.shipped_styles
            self._styles_at = now
        return self._styles
