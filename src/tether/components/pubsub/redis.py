"""`pubsub.redis`: Redis Streams, laid out as Dapr's component does.

A topic is a stream (`XADD topic * data <bytes> metadata <json>`) and a group is a consumer group
created at the stream's start (`XGROUP CREATE ... 0 MKSTREAM`), so a new group also receives what
the stream still holds. Members read with `XREADGROUP` and settle with `XACK`.

Redis has no negative acknowledgement. An unacknowledged entry stays in the group's pending list
and any member takes it over with `XAUTOCLAIM` once it has been idle for `processingTimeout`
(checked every `redeliverInterval`): that is how a crashed member's messages come back. RETRY
(and an abandoned handler on close) rewinds the entry's idle clock with `XCLAIM ... IDLE` so it
comes back after `retryDelay` instead. Running handlers keep resetting their entries' idle time,
so a handler slower than `processingTimeout` is not delivered twice. A member restarted under the
same `consumerID` first re-reads its own pending entries.

Metadata: `redisHost` (host:port), `redisUsername`, `redisPassword`, `redisDB`, `enableTLS`,
`consumerID` (this member's name; default random per instance), `processingTimeout` (60s),
`redeliverInterval` (15s), `retryDelay` (1s), `maxLenApprox` (trim streams to about this many
entries; default unbounded), `concurrency` (10), `queueDepth` (entries read per call, 100),
`poolSize` (20 connections for publishing and settling; each subscription reads on its own).
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tether import errors
from tether.components.pubsub._consumer import Runner, cancel, close_all, forever
from tether.components.pubsub._options import Options
from tether.components.pubsub.base import (
    DEFAULT_DRAIN,
    BulkEntry,
    Feature,
    Handler,
    Message,
    Outcome,
    PubSub,
    Subscription,
    expiry_metadata,
)
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

_BLOCK_MS = 2000


class RedisPubSub(PubSub):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        host, _, port = opts.text("redisHost", "localhost:6379").rpartition(":")
        self._host = host or "localhost"
        self._port = int(port) if port.isdigit() else 6379
        self._username = opts.optional("redisUsername")
        self._password = opts.optional("redisPassword")
        self._db = opts.integer("redisDB", 0)
        self._tls = opts.flag("enableTLS", False)
        self.consumer_id = opts.text("consumerID", f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
        self.processing_timeout = opts.duration("processingTimeout", 60.0)
        self.redeliver_interval = opts.duration("redeliverInterval", 15.0) or 15.0
        self.retry_delay = min(opts.duration("retryDelay", 1.0), self.processing_timeout)
        self._max_len = opts.integer("maxLenApprox", 0)
        self.concurrency = opts.integer("concurrency", 10, minimum=1)
        self.queue_depth = opts.integer("queueDepth", 100, minimum=1)
        self._pool_size = opts.integer("poolSize", 20, minimum=1)
        self._redis: Redis | None = None
        self._subs: set[_RedisSubscription] = set()

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.BULK_PUBLISH, Feature.MESSAGE_TTL})

    def connect(self, pool_size: int) -> Redis:
        """A client whose pool waits for a free connection rather than failing when busy."""
        from redis.asyncio import BlockingConnectionPool, Redis, SSLConnection
        from redis.asyncio.connection import Connection

        pool = BlockingConnectionPool(
            max_connections=pool_size,
            timeout=10,
            connection_class=SSLConnection if self._tls else Connection,
            host=self._host,
            port=self._port,
            db=self._db,
            username=self._username,
            password=self._password,
            socket_connect_timeout=5,
        )
        return Redis(connection_pool=pool)

    async def init(self) -> None:
        if self._redis is not None:
            return
        from redis.exceptions import RedisError

        client = self.connect(self._pool_size)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise errors.PubSubUnavailable(
                f"cannot reach Redis at {self._host}:{self._port}: {exc}"
            ) from exc
        self._redis = client

    @property
    def client(self) -> Redis:
        if self._redis is None:
            raise errors.PubSubUnavailable("the redis pub/sub component is not initialised")
        return self._redis

    async def close(self) -> None:
        await close_all(self._subs)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def forget(self, sub: _RedisSubscription) -> None:
        self._subs.discard(sub)

    def _fields(self, data: bytes, metadata: Mapping[str, str]) -> dict[Any, Any]:
        md = expiry_metadata(metadata)
        fields: dict[Any, Any] = {"data": bytes(data)}
        if md:
            fields["metadata"] = json.dumps(md)
        return fields

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        from redis.exceptions import RedisError

        fields = self._fields(data, metadata)
        try:
            await self.client.xadd(
                topic, fields, maxlen=self._max_len or None, approximate=bool(self._max_len)
            )
        except (RedisError, OSError, errors.PubSubUnavailable) as exc:
            raise errors.PubSubPublishFailed(f"XADD to '{topic}' failed: {exc}") from exc

    async def bulk_publish(self, topic: str, entries: Sequence[BulkEntry]) -> list[str]:
        from redis.exceptions import RedisError

        rows = [self._fields(e.data, e.metadata) for e in entries]
        pipe = self.client.pipeline(transaction=False)
        for fields in rows:
            pipe.xadd(topic, fields, maxlen=self._max_len or None, approximate=bool(self._max_len))
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError):
            return [e.entry_id for e in entries]
        return [
            e.entry_id for e, r in zip(entries, results, strict=True) if isinstance(r, Exception)
        ]

    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription:
        from redis.exceptions import RedisError

        try:
            await self.create_group(topic, group)
        except (RedisError, OSError) as exc:
            raise errors.PubSubUnavailable(f"XGROUP CREATE '{topic}': {exc}") from exc
        sub = _RedisSubscription(self, topic, group, handler)
        self._subs.add(sub)
        sub.start()
        return sub

    async def create_group(self, topic: str, group: str) -> None:
        from redis.exceptions import ResponseError

        try:
            await self.client.xgroup_create(topic, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class _RedisSubscription(Subscription):
    def __init__(self, broker: RedisPubSub, topic: str, group: str, handler: Handler) -> None:
        self.topic = topic
        self.group = group
        self._b = broker
        # Blocking XREADGROUP holds its connection for seconds; it gets its own so publishes and
        # acks never queue behind it.
        self._reader_client = broker.connect(1)
        self._runner: Runner[str] = Runner(
            handler, self._settle, limit=broker.concurrency, abandon=self._abandon
        )
        # Own pending entries are re-read from here until caught up (a restart with the same
        # consumerID); None once they are all handled.
        self._backlog: str | None = "0"
        self._reader: asyncio.Task[None] | None = None
        self._reclaimer: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        what = f"pub/sub redis consumer '{self.topic}'"
        self._reader = asyncio.create_task(forever(self._read, what))
        self._reclaimer = asyncio.create_task(forever(self._reclaim, what + " reclaim"))
        self._heartbeat = asyncio.create_task(forever(self._beat, what + " heartbeat"))

    def _message(self, entry_id: bytes | str, fields: Mapping[bytes, bytes] | None) -> Message:
        fields = fields or {}
        raw_md = fields.get(b"metadata")
        md: dict[str, str] = json.loads(raw_md) if raw_md else {}
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return Message(eid, self.topic, bytes(fields.get(b"data", b"")), md)

    async def _read(self) -> None:
        from redis.exceptions import ResponseError

        free = min(await self._runner.capacity(), self._b.queue_depth)
        client, c = self._reader_client, self._b.consumer_id
        resp: Any  # a list under RESP2, which is what this client speaks
        try:
            if self._backlog is not None:
                resp = await client.xreadgroup(
                    self.group, c, {self.topic: self._backlog}, count=free
                )
            else:
                resp = await client.xreadgroup(
                    self.group, c, {self.topic: ">"}, count=free, block=_BLOCK_MS
                )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                # The stream or group vanished (a Redis restarted without persistence, a DEL):
                # recreate it rather than fail forever.
                await self._b.create_group(self.topic, self.group)
                return
            raise
        entries = resp[0][1] if resp else []
        if self._backlog is not None:
            if not entries:
                self._backlog = None
                return
            last = entries[-1][0]
            self._backlog = last.decode() if isinstance(last, bytes) else str(last)
        running = set(self._runner.tokens())
        for entry_id, fields in entries:
            msg = self._message(entry_id, fields)
            if msg.id in running:
                continue
            if self._backlog is not None and not fields:  # trimmed away while pending
                await self._b.client.xack(self.topic, self.group, msg.id)
                continue
            self._runner.submit(msg, msg.id)

    async def _reclaim(self) -> None:
        await asyncio.sleep(self._b.redeliver_interval)
        free = min(self._runner.free(), self._b.queue_depth)
        if free == 0:
            return
        client = self._b.client
        resp: Any = await client.xautoclaim(
            self.topic,
            self.group,
            self._b.consumer_id,
            min_idle_time=int(self._b.processing_timeout * 1000),
            start_id="0-0",
            count=free,
        )
        entries = resp[1] if len(resp) > 1 else []
        running = set(self._runner.tokens())
        for entry_id, fields in entries:
            msg = self._message(entry_id, fields)
            if msg.id in running or self._runner.stopped:
                continue
            pending = await client.xpending_range(self.topic, self.group, msg.id, msg.id, 1)
            attempt = int(pending[0]["times_delivered"]) if pending else None
            self._runner.submit(Message(msg.id, msg.topic, msg.data, msg.metadata, attempt), msg.id)

    async def _beat(self) -> None:
        await asyncio.sleep(max(self._b.processing_timeout / 3, 0.05))
        ids: list[Any] = self._runner.tokens()
        if ids:
            await self._b.client.xclaim(
                self.topic, self.group, self._b.consumer_id, 0, ids, idle=0, justid=True
            )

    async def _rewind(self, entry_id: str, after: float) -> None:
        """Make a pending entry claimable by any member `after` seconds from now."""
        idle = max(0, int((self._b.processing_timeout - after) * 1000))
        ids: list[Any] = [entry_id]
        await self._b.client.xclaim(
            self.topic, self.group, self._b.consumer_id, 0, ids, idle=idle, justid=True
        )

    async def _settle(self, entry_id: str, message: Message, outcome: Outcome) -> None:
        if outcome is Outcome.RETRY:
            await self._rewind(entry_id, self._b.retry_delay)
        else:
            await self._b.client.xack(self.topic, self.group, entry_id)

    async def _abandon(self, entry_id: str) -> None:
        await self._rewind(entry_id, 0.0)

    async def close(self, drain: float = DEFAULT_DRAIN) -> None:
        if self._closed:
            return
        self._closed = True
        await cancel(self._reader)
        await cancel(self._reclaimer)
        await self._runner.stop(drain)
        await cancel(self._heartbeat)
        await self._reader_client.aclose()
        self._b.forget(self)
