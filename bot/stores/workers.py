"""The workers' presence as the bot sees it: alive (a fresh heartbeat) or loading a model."""
from __future__ import annotations

import time
from typing import Any

from protocol.keys import WORKERS_ALIVE_KEY, WORKERS_LOADING_KEY, WORKERS_READY_KEY, alive_since


class Workers:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def workers_alive(self) -> int:
        """Workers whose last heartbeat is fresh (one ZCOUNT of WORKERS_ALIVE_KEY)."""
        return int(await self.redis.zcount(WORKERS_ALIVE_KEY, alive_since(time.time()), "+inf"))

    async def workers_loading(self) -> bool:
        """No worker was ever ready (a first start), or one is loading its model right now."""
        if not await self.redis.exists(WORKERS_READY_KEY):
            return True
        return bool(await self.redis.zcount(WORKERS_LOADING_KEY, time.time(), "+inf"))
