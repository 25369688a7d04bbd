"""A lease in one key: taken when free, extended when its holder asks again, released only by it."""
from __future__ import annotations

from typing import Any

# Take the lease when free, extend it when ours.
HOLD_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
"""

RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leases:
    def __init__(self, redis: Any) -> None:
        self._hold = redis.register_script(HOLD_LUA)
        self._release = redis.register_script(RELEASE_LUA)

    async def hold(self, key: str, owner: str, lease_ms: int) -> bool:
        """Take key's lease for owner, or extend it while owner holds it; False when another does."""
        return bool(await self._hold(keys=[key], args=[owner, lease_ms]))

    async def release(self, key: str, owner: str) -> None:
        await self._release(keys=[key], args=[owner])
