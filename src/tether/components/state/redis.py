"""`state.redis`: one hash per key, laid out as Dapr's Redis state store does.

Metadata: `redisHost` (host:port, default localhost:6379), `redisUsername`, `redisPassword`,
`redisDB` (0), `enableTLS` (false), `ttlInSeconds` (default TTL).

Each key is a hash `{data: <value bytes>, version: <etag>}`; the etag is `version`. Versions
come from the server clock in microseconds, bumped past the previous one, so a key deleted and
written again never gets an etag it had before. Every write (one operation or a transaction)
is one Lua script that first checks all etags against the keys as the earlier operations would
leave them, then applies everything: atomic without WATCH/MULTI round trips. A TTL is the key's
native expiry (PEXPIRE); Redis hides expired keys by itself. Needs a single Redis node (or all
keys of a transaction in one cluster slot). No Query API.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether import errors
from tether.components.state._options import Options
from tether.components.state.base import (
    Concurrency,
    DeleteOp,
    Feature,
    Op,
    StateItem,
    StateStore,
    component_ttl,
    mismatch,
)
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

# ARGV holds 5 entries per key: kind (s|d), etag ("" for none), first-write (1|0), ttl in
# seconds ("" for none), value.
_WRITE = """
local pending = {}
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local kind, etag, first = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local cur = pending[KEYS[i]]
  if cur == nil then cur = redis.call("HGET", KEYS[i], "version") end
  if etag ~= "" then
    if cur == false or cur ~= etag then return {"mismatch", i} end
  elseif kind == "s" and first == "1" and cur ~= false then
    return {"mismatch", i}
  end
  if kind == "d" then pending[KEYS[i]] = false else pending[KEYS[i]] = "pending" end
end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {"ok"}
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local key = KEYS[i]
  if ARGV[b + 1] == "d" then
    redis.call("DEL", key)
    out[#out + 1] = ""
  else
    local old = tonumber(redis.call("HGET", key, "version") or "0") or 0
    local version = now
    if version <= old then version = old + 1 end
    version = string.format("%d", version)
    redis.call("DEL", key)
    redis.call("HSET", key, "data", ARGV[b + 5], "version", version)
    if ARGV[b + 4] ~= "" then redis.call("EXPIRE", key, ARGV[b + 4]) end
    out[#out + 1] = version
  end
end
return out
"""

# Per key: data, version, milliseconds to live (-1 none, -2 missing).
_READ = """
local out = {}
for i = 1, #KEYS do
  local v = redis.call("HMGET", KEYS[i], "data", "version")
  out[#out + 1] = v[1]
  out[#out + 1] = v[2]
  out[#out + 1] = redis.call("PTTL", KEYS[i])
end
return out
"""


class RedisStateStore(StateStore):
    def __init__(self, spec: ComponentSpec) -> None:
        super().__init__(component_ttl(spec))
        opts = Options(spec)
        hostport = opts.text("redisHost", "localhost:6379")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise opts.invalid("redisHost", hostport, "host:port")
        self._host, self._port = host, int(port)
        self._username = opts.optional("redisUsername")
        self._password = opts.optional("redisPassword")
        self._db = opts.integer("redisDB", 0)
        self._tls = opts.flag("enableTLS", False)
        self._client: Redis | None = None
        self._write_script: AsyncScript | None = None
        self._read_script: AsyncScript | None = None

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL})

    async def init(self) -> None:
        if self._client is not None:
            return
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        client = Redis(
            host=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            db=self._db,
            ssl=self._tls,
        )
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise errors.StateStoreFailed(
                f"cannot reach Redis at {self._host}:{self._port}: {exc}"
            ) from exc
        self._client = client
        self._write_script = client.register_script(_WRITE)
        self._read_script = client.register_script(_READ)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _call(self, script: AsyncScript | None, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import RedisError

        if script is None:
            raise errors.StateStoreFailed("the Redis state store is not initialised")
        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise errors.StateStoreFailed(f"Redis state store error: {exc}") from exc

    async def get(self, key: str) -> StateItem | None:
        return (await self.bulk_get([key]))[0]

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        if not keys:
            return []
        reply = await self._call(self._read_script, list(keys), [])
        now = time.time()
        items: list[StateItem | None] = []
        for i, key in enumerate(keys):
            data, version, pttl = reply[3 * i : 3 * i + 3]
            if data is None or version is None:
                items.append(None)
                continue
            expires = now + int(pttl) / 1000 if int(pttl) > 0 else None
            items.append(StateItem(key, bytes(data), version.decode(), expires))
        return items

    async def _write(self, ops: Sequence[Op]) -> list[str | None]:
        args: list[Any] = []
        for op in ops:
            if isinstance(op, DeleteOp):
                args += ["d", op.etag or "", "0", "", b""]
            else:
                first = "1" if op.concurrency is Concurrency.FIRST_WRITE else "0"
                ttl = "" if op.ttl_seconds is None else str(op.ttl_seconds)
                args += ["s", op.etag or "", first, ttl, op.value]
        reply = await self._call(self._write_script, [op.key for op in ops], args)
        if reply[0] == b"mismatch":
            raise mismatch(ops[int(reply[1]) - 1])
        return [v.decode() or None for v in reply[1:]]
