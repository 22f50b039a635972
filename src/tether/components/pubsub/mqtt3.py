"""`pubsub.mqtt3`: MQTT 3.1.1 through `aiomqtt` (paho-mqtt underneath).

A topic is an MQTT topic filter, so `+` and `#` wildcards work. A group is a shared subscription,
`$share/<group>/<topic>`: the broker hands each message to one member of the group and a copy to
every group.

Redelivery comes from the MQTT session. Each subscription is its own connection with a client id
derived from (`consumerID`, group, topic) and `cleanSession: false`; messages are QoS 1 and are
acknowledged (PUBACK) only once settled. A member that crashes or closes mid-handler gets its
unacknowledged messages again when it reconnects with the same client id, so `consumerID` must
be stable per replica (a pod name, not a random value) for at-least-once to hold. MQTT 3 has no
negative acknowledgement, so RETRY re-runs the handler in process after `retryDelay`. While a
member is offline or busy the broker queues its share of messages in its session, but only up to
its limit (Mosquitto's `max_queued_messages`, 1000 by default) and silently drops the rest:
raise it on brokers that carry bursts.

MQTT 3 messages carry no properties. A publish with metadata is framed (`_MAGIC`, a JSON header
with an id and the metadata, then the bytes); one without metadata is sent as plain bytes so
other MQTT clients and Dapr sidecars can read it, and delivered payloads that are not framed pass
through with empty metadata.

Metadata: `url` (`tcp://user:pass@host:1883`, `ssl://` for TLS), `qos` (1), `retain` (false;
per publish too), `consumerID` (default: random per instance), `cleanSession` (false),
`retryDelay` (1s).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from tether import errors
from tether.components.pubsub._consumer import Runner, cancel, close_all, deliver, forever
from tether.components.pubsub._options import Options
from tether.components.pubsub.base import (
    DEFAULT_DRAIN,
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
    import aiomqtt

log = logging.getLogger("tether.pubsub")

_MAGIC = b"\x00tether-mqtt\x01"


def client_id(consumer_id: str, group: str, topic: str) -> str:
    """The session id of one subscription: stable for a replica, distinct per group and topic."""
    digest = hashlib.sha1(f"{group}\x00{topic}".encode()).hexdigest()[:12]
    return f"{consumer_id}-{digest}"


def _frame(message_id: str, metadata: Mapping[str, str], data: bytes) -> bytes:
    header = json.dumps({"id": message_id, "metadata": dict(metadata)}).encode()
    return _MAGIC + len(header).to_bytes(4, "big") + header + data


def _unframe(payload: bytes) -> tuple[str | None, dict[str, str], bytes]:
    if not payload.startswith(_MAGIC):
        return None, {}, payload
    start = len(_MAGIC) + 4
    size = int.from_bytes(payload[len(_MAGIC) : start], "big")
    header = json.loads(payload[start : start + size])
    return header.get("id"), dict(header.get("metadata") or {}), payload[start + size :]


class _Endpoint:
    """Where and how to connect, parsed once from `url`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"tcp://{url}")
        self.tls = parts.scheme in ("ssl", "tls", "mqtts")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None

    def client(self, identifier: str, clean_session: bool) -> aiomqtt.Client:
        import ssl

        import aiomqtt

        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            clean_session=clean_session,
            tls_context=ssl.create_default_context() if self.tls else None,
            timeout=10,
        )


class Mqtt3PubSub(PubSub):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        self._endpoint = _Endpoint(opts.text("url", "tcp://localhost:1883"))
        self.qos = int(opts.choice("qos", "1", ("0", "1", "2")))
        self._retain = opts.flag("retain", False)
        self.consumer_id = opts.text("consumerID", f"tether-{uuid.uuid4().hex[:12]}")
        self.clean_session = opts.flag("cleanSession", False)
        self.retry_delay = opts.duration("retryDelay", 1.0)
        self._publisher: aiomqtt.Client | None = None
        self._publish_lock = asyncio.Lock()
        self._subs: set[_MqttSubscription] = set()
        self._open = False

    @property
    def endpoint(self) -> _Endpoint:
        return self._endpoint

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.SUBSCRIBE_WILDCARDS, Feature.MESSAGE_TTL})

    async def init(self) -> None:
        self._open = True
        await self._connect_publisher()

    async def _connect_publisher(self) -> aiomqtt.Client:
        import aiomqtt

        if self._publisher is not None:
            return self._publisher
        client = self._endpoint.client(f"{self.consumer_id}-pub-{uuid.uuid4().hex[:8]}", True)
        # Many concurrent publishes are normal for a runtime, not a sign of trouble to warn about.
        client.pending_calls_threshold = 1 << 16
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise errors.PubSubUnavailable(
                f"cannot reach MQTT broker {self._endpoint.host}:{self._endpoint.port}: {exc}"
            ) from exc
        self._publisher = client
        return client

    async def close(self) -> None:
        self._open = False
        await close_all(self._subs)
        if self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            with contextlib.suppress(Exception):
                await publisher.__aexit__(None, None, None)

    def forget(self, sub: _MqttSubscription) -> None:
        self._subs.discard(sub)

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        import aiomqtt

        md = expiry_metadata(metadata)
        retain = md.pop("retain", str(self._retain)).lower() == "true"
        payload = _frame(uuid.uuid4().hex, md, bytes(data)) if md else bytes(data)
        if not self._open:
            raise errors.PubSubPublishFailed("the mqtt3 pub/sub component is closed")
        async with self._publish_lock:
            try:
                client = await self._connect_publisher()
            except errors.PubSubUnavailable as exc:
                raise errors.PubSubPublishFailed(str(exc)) from exc
        try:
            await client.publish(topic, payload, qos=self.qos, retain=retain)
        except aiomqtt.MqttError as exc:
            # Reconnect on the next publish; this one may or may not have reached the broker.
            if self._publisher is client:
                self._publisher = None
            raise errors.PubSubPublishFailed(f"publish to '{topic}' failed: {exc}") from exc

    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription:
        safe_group = "".join("_" if c in "/+#" else c for c in group)
        sub = _MqttSubscription(self, topic, safe_group, handler)
        await sub.connect()
        sub.start()
        self._subs.add(sub)
        return sub


class _MqttSubscription(Subscription):
    def __init__(self, broker: Mqtt3PubSub, topic: str, group: str, handler: Handler) -> None:
        self.topic = topic
        self.group = group
        self._b = broker
        self._handler = handler
        self._id = client_id(broker.consumer_id, group, topic)
        # Token: (connection generation, mid, qos). A mid means something only on the connection
        # that received it; acks for an older connection are skipped (the broker resends those).
        self._runner: Runner[tuple[int, int, int]] = Runner(handler, self._settle, limit=1 << 16)
        self._client: aiomqtt.Client | None = None
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def connect(self) -> None:
        import aiomqtt

        client = self._b.endpoint.client(self._id, self._b.clean_session)
        # aiomqtt has no manual-ack switch; paho's is the only way to delay the PUBACK until the
        # handler settled, which is what makes a crash redeliver.
        client._client.manual_ack_set(True)
        try:
            await client.__aenter__()
            await client.subscribe(f"$share/{self.group}/{self.topic}", qos=self._b.qos)
        except aiomqtt.MqttError as exc:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            raise errors.PubSubUnavailable(f"subscribe to '{self.topic}' failed: {exc}") from exc
        self._generation += 1
        self._client = client

    def start(self) -> None:
        self._task = asyncio.create_task(
            forever(self._consume, f"pub/sub mqtt consumer '{self.topic}'")
        )

    async def _consume(self) -> None:
        if self._client is None:
            await self.connect()
        client = self._client
        assert client is not None
        try:
            async for incoming in client.messages:
                self._on_message(incoming, self._generation)
        except asyncio.CancelledError:
            raise
        except Exception:
            await self._disconnect()
            raise

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    def _on_message(self, incoming: aiomqtt.Message, generation: int) -> None:
        raw = incoming.payload
        payload = raw if isinstance(raw, bytes) else str(raw or "").encode()
        message_id, metadata, data = _unframe(payload)
        message = Message(
            id=message_id or uuid.uuid4().hex,
            topic=incoming.topic.value,
            data=data,
            metadata=metadata,
            attempt=None,
        )
        self._runner.submit(message, (generation, incoming.mid, incoming.qos))

    async def _settle(
        self, token: tuple[int, int, int], message: Message, outcome: Outcome
    ) -> None:
        attempt = 1
        while outcome is Outcome.RETRY:
            # No nack in MQTT 3: keep the message (unacknowledged) and run the handler again.
            await asyncio.sleep(self._b.retry_delay)
            attempt += 1
            retry = Message(message.id, message.topic, message.data, message.metadata, attempt)
            outcome = await deliver(self._handler, retry)
        generation, mid, qos = token
        client = self._client
        if qos > 0 and client is not None and generation == self._generation:
            client._client.ack(mid, qos)

    async def close(self, drain: float = DEFAULT_DRAIN) -> None:
        if self._closed:
            return
        self._closed = True
        await self._runner.stop(drain)
        # Unsettled messages stay unacknowledged in the session: the next connection with this
        # client id gets them again.
        await cancel(self._task)
        await self._disconnect()
        self._b.forget(self)


async def forget_sessions(url: str, client_ids: Iterable[str]) -> None:
    """Delete the broker-side sessions of these client ids (queued messages included).

    For replicas that are gone for good, and for tests: connecting with a clean session is the
    only way MQTT 3 offers to drop a persistent one.
    """
    import aiomqtt

    endpoint = _Endpoint(url)
    for identifier in client_ids:
        client = endpoint.client(identifier, clean_session=True)
        try:
            async with client:
                pass
        except aiomqtt.MqttError:
            log.debug("could not clear MQTT session %s", identifier, exc_info=True)
