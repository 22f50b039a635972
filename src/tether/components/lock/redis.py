"""`lock.redis`: one Redis string per lock, as Dapr's standalone Redis lock keeps it.

Metadata: the usual Redis connection keys (see `tether.components._redis`). A lock is
`SET key owner NX PX expiry`, so Redis expires it by itself; unlock is one script that deletes the
key only if the owner still holds it. Needs a single Redis node: a lock taken on a primary and
lost in a failover before it replicated is not held any more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tether import errors
from tether.components._options import Options
from tether.components._redis import RedisSettings
from tether.components.lock.base import LockStore, UnlockStatus
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

_UNLOCK = """
local v = redis.call("GET", KEYS[1])
if v == false then return 1 end
if v ~= ARGV[1] then return 2 end
redis.call("DEL", KEYS[1])
return 0
"""


class RedisLockStore(LockStore):
    def __init__(self, spec: ComponentSpec) -> None:
        self._settings = RedisSettings.from_options(Options(spec))
        self._name = spec.name
        self._client: Redis | None = None

    async def init(self) -> None:
        if self._client is None:
            self._client = await self._settings.connect(f"lock store '{self._name}'")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _redis(self) -> Redis:
        if self._client is None:
            raise errors.Unavailable(f"lock store '{self._name}' is not initialised")
        return self._client

    async def try_lock(self, resource_id: str, owner: str, expiry_seconds: int) -> bool:
        from redis.exceptions import RedisError

        try:
            taken = await self._redis().set(resource_id, owner, nx=True, px=expiry_seconds * 1000)
        except RedisError as exc:
            raise errors.Unavailable(f"Redis lock error: {exc}") from exc
        return bool(taken)

    async def unlock(self, resource_id: str, owner: str) -> UnlockStatus:
        from redis.exceptions import RedisError

        try:
            status = await self._redis().eval(_UNLOCK, 1, resource_id, owner)
        except RedisError as exc:
            raise errors.Unavailable(f"Redis lock error: {exc}") from exc
        return UnlockStatus(int(status))
