"""`pubsub.jetstream`: NATS JetStream through `nats-py`.

A topic is a subject. By default each topic gets its own stream (`stream_name(topic)`), created on
first use; with `streamName` every topic is a subject of that one stream, added to it as needed.
A group is a durable pull consumer (one per group and topic), so members of a group share its
messages and every group sees every message. Streams use interest retention by default: a
message is kept until every group has acknowledged it.

Settling maps onto JetStream acks: SUCCESS is `ack`, DROP is `term` (never redeliver), RETRY is
`nak` with `retryDelay`. An abandoned handler (close) is `nak`ed for immediate redelivery, and a
crashed member's messages come back after `ackWait`. Running handlers send `in_progress` so a
slow handler is not redelivered while it works.

Metadata: `natsURL` (`nats://user:pass@host:4222`, comma-separated for a cluster), `token`,
`streamName`, `durableName` (prefix of consumer names), `ackWait` (30s), `maxDeliver` (unlimited),
`maxAckPending` (1000), `retryDelay` (1s), `retention` (interest|limits), `storage` (file|memory),
`maxAge` (0 = unlimited), `replicas` (1), `concurrency` (10).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

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
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

log = logging.getLogger("tether.pubsub")

_FETCH_TIMEOUT = 2.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _safe(name: str) -> str:
    """A JetStream name (no dots, wildcards, spaces or slashes), unique per input."""
    safe = _UNSAFE.sub("_", name)
    if safe != name:
        safe += "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return safe


def stream_name(topic: str) -> str:
    """The stream a topic gets when no `streamName` is configured."""
    return "tether-" + _safe(topic)


class JetStreamPubSub(PubSub):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        self._servers = [
            s.strip() for s in opts.text("natsURL", "nats://localhost:4222").split(",")
        ]
        self._token = opts.optional("token")
        self._name = spec.name
        self._shared_stream = opts.optional("streamName")
        self._prefix = opts.text("durableName")
        self.ack_wait = opts.duration("ackWait", 30.0) or 30.0
        self._max_deliver = opts.integer("maxDeliver", -1, minimum=-1)
        self._max_ack_pending = opts.integer("maxAckPending", 1000, minimum=1)
        self.retry_delay = opts.duration("retryDelay", 1.0)
        self._retention = opts.choice("retention", "interest", ("interest", "limits"))
        self._storage = opts.choice("storage", "file", ("file", "memory"))
        self._max_age = opts.duration("maxAge", 0.0)
        self._replicas = opts.integer("replicas", 1, minimum=1)
        self.concurrency = opts.integer("concurrency", 10, minimum=1)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._ready: dict[str, str] = {}  # topic -> stream known to capture it
        self._stream_lock = asyncio.Lock()
        self._subs: set[_JetStreamSubscription] = set()

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.BULK_PUBLISH, Feature.MESSAGE_TTL})

    async def init(self) -> None:
        if self._nc is not None:
            return
        import nats

        async def on_error(exc: Exception) -> None:
            log.warning("nats connection error: %r", exc)

        try:
            # Two tries per server at start, so a missing broker fails `init` promptly...
            nc = await nats.connect(
                servers=self._servers,
                token=self._token,
                name=f"tether-{self._name}",
                connect_timeout=5,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.5,
                error_cb=on_error,
            )
        except Exception as exc:
            raise errors.PubSubUnavailable(
                f"cannot reach NATS at {self._servers}: {exc!r}"
            ) from exc
        # ...but once connected, ride out broker restarts for as long as they take.
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 2
        self._nc = nc
        self._js = nc.jetstream()

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise errors.PubSubUnavailable("the jetstream pub/sub component is not initialised")
        return self._js

    async def close(self) -> None:
        await close_all(self._subs)
        if self._nc is not None:
            await self._nc.drain()
            self._nc = self._js = None

    def forget(self, sub: _JetStreamSubscription) -> None:
        self._subs.discard(sub)

    async def stream_for(self, topic: str) -> str:
        """The stream that captures `topic`, created or extended on first use."""
        if topic in self._ready:
            return self._ready[topic]
        from nats.js import api
        from nats.js.errors import NotFoundError

        name = self._shared_stream or stream_name(topic)
        async with self._stream_lock:
            try:
                info = await self.js.stream_info(name)
            except NotFoundError:
                await self.js.add_stream(
                    api.StreamConfig(
                        name=name,
                        subjects=[topic],
                        retention=api.RetentionPolicy(self._retention),
                        storage=api.StorageType(self._storage),
                        max_age=self._max_age or None,
                        num_replicas=self._replicas,
                    )
                )
            else:
                subjects = list(info.config.subjects or [])
                if not any(_matches(s, topic) for s in subjects):
                    info.config.subjects = [*subjects, topic]
                    await self.js.update_stream(info.config)
        self._ready[topic] = name
        return name

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        md = expiry_metadata(metadata)
        try:
            stream = await self.stream_for(topic)
            await self.js.publish(topic, bytes(data), stream=stream, headers=md or None)
        except errors.TetherError as exc:
            raise errors.PubSubPublishFailed(f"publish to '{topic}' failed: {exc}") from exc
        except Exception as exc:
            self._ready.pop(topic, None)  # the stream may have been deleted behind our back
            raise errors.PubSubPublishFailed(f"publish to '{topic}' failed: {exc!r}") from exc

    async def bulk_publish(self, topic: str, entries: Sequence[BulkEntry]) -> list[str]:
        rows = [(e.entry_id, bytes(e.data), expiry_metadata(e.metadata)) for e in entries]
        try:
            stream = await self.stream_for(topic)
        except Exception:
            return [e.entry_id for e in entries]
        failed: list[str] = []
        pending: list[tuple[str, asyncio.Future[object]]] = []
        for entry_id, data, md in rows:
            try:
                fut = await self.js.publish_async(topic, data, stream=stream, headers=md or None)
            except Exception:
                failed.append(entry_id)
            else:
                pending.append((entry_id, fut))  # type: ignore[arg-type]
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        failed += [
            eid
            for (eid, _), r in zip(pending, results, strict=True)
            if isinstance(r, BaseException)
        ]
        return failed

    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription:
        from nats.js import api

        durable = _safe(self._prefix + group)
        if self._shared_stream:
            durable = _safe(f"{self._prefix}{group}-{topic}")
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=self._max_deliver,
            max_ack_pending=self._max_ack_pending,
            filter_subject=topic,
        )
        try:
            stream = await self.stream_for(topic)
            psub = await self.js.pull_subscribe(
                topic, durable=durable, stream=stream, config=config
            )
        except Exception as exc:
            raise errors.PubSubUnavailable(f"subscribe to '{topic}' failed: {exc!r}") from exc
        sub = _JetStreamSubscription(self, topic, group, handler, psub)
        self._subs.add(sub)
        sub.start()
        return sub


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a trailing `>` one or more."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


class _JetStreamSubscription(Subscription):
    def __init__(
        self,
        broker: JetStreamPubSub,
        topic: str,
        group: str,
        handler: Handler,
        psub: JetStreamContext.PullSubscription,
    ) -> None:
        self.topic = topic
        self.group = group
        self._b = broker
        self._psub = psub
        self._runner: Runner[Msg] = Runner(
            handler, self._settle, limit=broker.concurrency, abandon=self._abandon
        )
        self._fetcher: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        what = f"pub/sub jetstream consumer '{self.topic}'"
        self._fetcher = asyncio.create_task(forever(self._fetch, what))
        self._heartbeat = asyncio.create_task(forever(self._beat, what + " heartbeat"))

    async def _fetch(self) -> None:
        import nats.errors

        free = await self._runner.capacity()
        try:
            msgs = await self._psub.fetch(batch=free, timeout=_FETCH_TIMEOUT)
        except nats.errors.TimeoutError:
            return
        for msg in msgs:
            meta = msg.metadata
            message = Message(
                id=str(meta.sequence.stream),
                topic=msg.subject,
                data=msg.data,
                metadata=dict(msg.headers or {}),
                attempt=meta.num_delivered,
            )
            self._runner.submit(message, msg)

    async def _beat(self) -> None:
        await asyncio.sleep(max(self._b.ack_wait / 3, 0.05))
        for msg in self._runner.tokens():
            await msg.in_progress()

    async def _settle(self, msg: Msg, message: Message, outcome: Outcome) -> None:
        if outcome is Outcome.SUCCESS:
            await msg.ack()
        elif outcome is Outcome.DROP:
            await msg.term()
        else:
            await msg.nak(delay=self._b.retry_delay or None)

    async def _abandon(self, msg: Msg) -> None:
        await msg.nak()

    async def close(self, drain: float = DEFAULT_DRAIN) -> None:
        if self._closed:
            return
        self._closed = True
        await cancel(self._fetcher)
        await self._runner.stop(drain)
        await cancel(self._heartbeat)
        # If the connection is gone, the server forgets the pull request by itself.
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()
        self._b.forget(self)
