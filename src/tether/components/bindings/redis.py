"""`bindings.redis`: an output binding over Redis strings (`create`, `get`, `delete`, `increment`).

Metadata: the usual Redis connection keys (see `tether.components._redis`).

Request metadata `key` names the Redis key (required). `create` sets it to the data, `increment`
adds one; both take `ttlInSeconds`. `get` answers the value (empty data for a missing key), and
with `delete: "true"` removes it in the same step. `delete` removes the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tether.components._options import Options
from tether.components._redis import RedisSettings
from tether.components.bindings.base import (
    BindingFailed,
    BindingResponse,
    OutputBinding,
    unsupported,
)
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

_OPERATIONS = frozenset({"create", "get", "delete", "increment"})


class RedisBinding(OutputBinding):
    def __init__(self, spec: ComponentSpec) -> None:
        self._settings = RedisSettings.from_options(Options(spec))
        self._name = spec.name
        self._client: Redis | None = None

    def operations(self) -> frozenset[str]:
        return _OPERATIONS

    async def init(self) -> None:
        if self._client is None:
            self._client = await self._settings.connect(f"binding '{self._name}'")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def invoke(
        self, operation: str, data: bytes, metadata: Mapping[str, str]
    ) -> BindingResponse:
        from redis.exceptions import RedisError

        if operation not in _OPERATIONS:
            raise unsupported(self._name, operation, _OPERATIONS)
        key = metadata.get("key")
        if not key:
            raise BindingFailed("redis binding: missing key in request metadata")
        if self._client is None:
            raise BindingFailed(f"binding {self._name} is not initialised")
        ttl = _ttl(metadata)
        try:
            if operation == "get":
                if metadata.get("delete", "").lower() == "true":
                    value = await self._client.getdel(key)
                else:
                    value = await self._client.get(key)
                if isinstance(value, str):
                    value = value.encode()
                return BindingResponse(value or b"")
            if operation == "delete":
                await self._client.delete(key)
            elif operation == "create":
                await self._client.set(key, data, ex=ttl)
            else:
                await self._client.incr(key)
                if ttl:
                    await self._client.expire(key, ttl)
        except RedisError as exc:
            raise BindingFailed(f"redis binding: {exc}") from exc
        return BindingResponse()


def _ttl(metadata: Mapping[str, str]) -> int | None:
    raw = metadata.get("ttlInSeconds")
    if not raw:
        return None
    try:
        ttl = int(raw)
    except ValueError:
        raise BindingFailed(f"ttlInSeconds must be an integer, got {raw!r}") from None
    return ttl if ttl > 0 else None
