"""`pubsub.rabbitmq`: RabbitMQ (AMQP 0-9-1) through `aio-pika`, laid out as Dapr's component.

A topic is an exchange (fanout by default) and a group is a queue named `<group>-<topic>` bound
to it: members of a group consume the same queue and compete, each group's queue gets a copy of
every message. Messages are persistent and every publish waits for the publisher confirm.

Settling: SUCCESS and DROP `ack`; RETRY `nack`s with requeue after `retryDelay` (a nack requeues
at once, so the delay keeps a failing handler from spinning). Unacknowledged messages of a closed
channel or a dead connection are requeued by the broker immediately. RabbitMQ counts deliveries
only on quorum queues (`queueType: quorum`); elsewhere `attempt` is 1 or unknown.

Unlike Dapr's defaults, queues are durable and not deleted when unused: an at-least-once group
must keep its messages while all its members are restarting. Messages published before a group's
first subscribe are not delivered to it (the queue does not exist yet).

Metadata: `connectionString` (or `host`; `amqp://user:pass@host:5672/vhost`), `durable` (true),
`deletedWhenUnused` (false), `requeueInFailure` (true; false makes RETRY drop the message),
`prefetchCount` (10), `retryDelay` (1s), `exchangeKind` (fanout|topic|direct), `queueType`
(classic|quorum), `publisherConfirm` (true). Publish metadata `routingKey` routes on topic and
direct exchanges; subscribe metadata `routingKey` is the binding key (`#` by default).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tether import errors
from tether.components.pubsub._consumer import Runner, close_all
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
    ttl_seconds,
)
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel,
        AbstractExchange,
        AbstractIncomingMessage,
        AbstractQueue,
        AbstractRobustConnection,
    )


class RabbitMQPubSub(PubSub):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        url = opts.optional("connectionString") or opts.text("host", "amqp://localhost:5672/")
        self._url = url if "://" in url else f"amqp://{url}"
        self.durable = opts.flag("durable", True)
        self.auto_delete = opts.flag("deletedWhenUnused", False)
        self.requeue = opts.flag("requeueInFailure", True)
        self.prefetch = opts.integer("prefetchCount", 10, minimum=1)
        self.retry_delay = opts.duration("retryDelay", 1.0)
        self.kind = opts.choice("exchangeKind", "fanout", ("fanout", "topic", "direct"))
        self.queue_type = opts.choice("queueType", "classic", ("classic", "quorum"))
        self._confirm = opts.flag("publisherConfirm", True)
        self._conn: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declare_lock = asyncio.Lock()
        self._subs: set[_RabbitSubscription] = set()

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.MESSAGE_TTL})

    async def init(self) -> None:
        if self._conn is not None:
            return
        import aio_pika

        try:
            self._conn = await aio_pika.connect_robust(self._url, timeout=10)
            self._channel = await self._conn.channel(publisher_confirms=self._confirm)
        except Exception as exc:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            raise errors.PubSubUnavailable(f"cannot reach RabbitMQ: {exc!r}") from exc

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._conn is None:
            raise errors.PubSubUnavailable("the rabbitmq pub/sub component is not initialised")
        return self._conn

    async def close(self) -> None:
        await close_all(self._subs)
        if self._conn is not None:
            await self._conn.close()
            self._conn = self._channel = None
            self._exchanges.clear()

    def forget(self, sub: _RabbitSubscription) -> None:
        self._subs.discard(sub)

    async def exchange(self, channel: AbstractChannel, topic: str) -> AbstractExchange:
        from aio_pika import ExchangeType

        return await channel.declare_exchange(
            topic, ExchangeType(self.kind), durable=self.durable, auto_delete=self.auto_delete
        )

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        from aio_pika import DeliveryMode
        from aio_pika import Message as AmqpMessage

        md = expiry_metadata(metadata)
        ttl = ttl_seconds(metadata)
        message = AmqpMessage(
            bytes(data),
            headers={k: v for k, v in md.items() if k != "routingKey"},
            content_type=md.get("contentType") or md.get("content-type"),
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=uuid.uuid4().hex,
            expiration=ttl,
        )
        try:
            if self._channel is None:
                raise errors.PubSubUnavailable("the rabbitmq pub/sub component is closed")
            exchange = self._exchanges.get(topic)
            if exchange is None:
                async with self._declare_lock:  # one declare per topic, not one per publish
                    exchange = self._exchanges.get(topic)
                    if exchange is None:
                        exchange = await self.exchange(self._channel, topic)
                        self._exchanges[topic] = exchange
            # Not mandatory: a topic nobody subscribes to swallows messages, as in Dapr.
            await exchange.publish(message, md.get("routingKey", ""), mandatory=False)
        except Exception as exc:
            self._exchanges.pop(topic, None)
            raise errors.PubSubPublishFailed(f"publish to '{topic}' failed: {exc!r}") from exc

    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription:
        binding = (metadata or {}).get("routingKey", "#" if self.kind == "topic" else "")
        arguments: dict[str, Any] = {}
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
        try:
            channel = await self.connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            exchange = await self.exchange(channel, topic)
            queue = await channel.declare_queue(
                f"{group}-{topic}",
                durable=self.durable,
                auto_delete=self.auto_delete,
                arguments=arguments or None,
            )
            await queue.bind(exchange, binding)
        except Exception as exc:
            raise errors.PubSubUnavailable(f"subscribe to '{topic}' failed: {exc!r}") from exc
        sub = _RabbitSubscription(self, topic, group, handler, channel, queue)
        await sub.start()
        self._subs.add(sub)
        return sub


class _RabbitSubscription(Subscription):
    def __init__(
        self,
        broker: RabbitMQPubSub,
        topic: str,
        group: str,
        handler: Handler,
        channel: AbstractChannel,
        queue: AbstractQueue,
    ) -> None:
        self.topic = topic
        self.group = group
        self._b = broker
        self._channel = channel
        self._queue = queue
        # No abandon hook: closing the channel requeues whatever was not acknowledged.
        self._runner: Runner[AbstractIncomingMessage] = Runner(
            handler, self._settle, limit=broker.prefetch
        )
        self._tag: str | None = None
        self._closed = False

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        headers = {
            k: v.decode() if isinstance(v, bytes) else str(v) for k, v in incoming.headers.items()
        }
        count = headers.pop("x-delivery-count", None)
        attempt = int(count) + 1 if count is not None else (None if incoming.redelivered else 1)
        message = Message(
            id=incoming.message_id or str(incoming.delivery_tag),
            topic=self.topic,
            data=incoming.body,
            metadata=headers,
            attempt=attempt,
        )
        self._runner.submit(message, incoming)

    async def _settle(
        self, incoming: AbstractIncomingMessage, message: Message, outcome: Outcome
    ) -> None:
        if outcome is Outcome.RETRY:
            await asyncio.sleep(self._b.retry_delay)
            await incoming.nack(requeue=self._b.requeue)
        else:
            await incoming.ack()

    async def close(self, drain: float = DEFAULT_DRAIN) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._tag is not None:
                await self._queue.cancel(self._tag)
        except Exception:
            pass  # the channel is already gone, and with it the consumer
        await self._runner.stop(drain)
        await self._channel.close()
        self._b.forget(self)
