"""The pub/sub broker contract (`tether.components.pubsub.base`), run against every backend on
a real server. A backend is correct when this file passes for it unchanged.

Redelivery timeouts are shortened in the component metadata so the suite stays fast; waits are
polling helpers with deadlines, never bare sleeps, except where the test must show that
something does *not* happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.redis import host_port
from tether import errors
from tether.components import pubsub, registry
from tether.components.pubsub.base import (
    BulkEntry,
    Feature,
    Message,
    Outcome,
    PubSub,
)
from tether.resources.component import ComponentSpec

pytestmark = pytest.mark.timeout(60)

BACKENDS = ["sqlite", "redis", "jetstream", "rabbitmq", "mqtt3"]
# Only MQTT has topic wildcards; the others must not claim to (asserted below), never skipped.
WILDCARDS = ["mqtt3"]

#: Longest a backend takes to redeliver a RETRY or an abandoned message with the test settings.
REDELIVERY = 1.2


def _metadata(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Per-backend component metadata with short timeouts."""
    if backend == "sqlite":
        return {
            "connectionString": str(tmp_path / "pubsub.db"),
            "visibilityTimeout": "1s",
            "retryDelay": "200ms",
            "pollInterval": "500ms",
            "concurrency": "4",
        }
    if backend == "redis":
        return {
            "redisHost": host_port(request.getfixturevalue("redis_url")),
            "processingTimeout": "1s",
            "redeliverInterval": "100ms",
            "retryDelay": "200ms",
            "concurrency": "4",
        }
    if backend == "jetstream":
        return {
            "natsURL": request.getfixturevalue("nats_url"),
            "ackWait": "1s",
            "retryDelay": "200ms",
            "concurrency": "4",
        }
    if backend == "rabbitmq":
        return {
            "connectionString": request.getfixturevalue("rabbitmq_url"),
            "retryDelay": "200ms",
            "prefetchCount": "4",
        }
    if backend == "mqtt3":
        return {
            "url": request.getfixturevalue("mqtt_url"),
            "retryDelay": "200ms",
            "concurrency": "4",
        }
    raise AssertionError(backend)


@dataclass
class Env:
    """One backend under test: builds brokers, names topics, cleans up after itself."""

    backend: str
    metadata: dict[str, str]
    brokers: list[PubSub] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    consumers: set[str] = field(default_factory=set)
    #: Makes consumer ids unique per test, so no broker-side session outlives its test.
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def spec(self, consumer_id: str, **extra: str) -> ComponentSpec:
        md = {**self.metadata, "consumerID": consumer_id, **extra}
        return ComponentSpec(name="contract", type=f"pubsub.{self.backend}", metadata=md)

    async def broker(self, consumer_id: str = "a", **extra: str) -> PubSub:
        """A new component instance, as a runtime replica with this consumer id would hold."""
        self.consumers.add(consumer_id)
        broker: PubSub = registry.build(self.spec(f"{consumer_id}-{self.run}", **extra))
        await broker.init()
        self.brokers.append(broker)
        return broker

    def topic(self) -> str:
        name = f"contract-{uuid.uuid4().hex[:12]}"
        self.topics.append(name)
        return name


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    pubsub.register()
    backend: str = request.param
    environment = Env(backend, _metadata(backend, request, tmp_path))
    yield environment
    for broker in reversed(environment.brokers):
        await broker.close()
    await _cleanup(environment)


async def _cleanup(env: Env) -> None:
    """Delete what the test left on a shared server (streams, queues, sessions)."""
    if env.backend == "redis":
        from redis.asyncio import Redis

        host, _, port = env.metadata["redisHost"].rpartition(":")
        client = Redis(host=host, port=int(port))
        if env.topics:
            await client.delete(*env.topics)
        await client.aclose()
    elif env.backend == "jetstream":
        import nats

        from tether.components.pubsub.jetstream import stream_name

        nc = await nats.connect(env.metadata["natsURL"])
        js = nc.jetstream()
        for topic in env.topics:
            with contextlib.suppress(Exception):
                await js.delete_stream(stream_name(topic))
        await nc.close()
    elif env.backend == "rabbitmq":
        import aio_pika

        conn = await aio_pika.connect(env.metadata["connectionString"])
        channel = await conn.channel()
        for topic in env.topics:
            for group in ("g", "g1", "g2"):
                await channel.queue_delete(f"{group}-{topic}")  # deleting a missing one is fine
            await channel.exchange_delete(topic)
        await conn.close()
    elif env.backend == "mqtt3":
        from tether.components.pubsub.mqtt3 import client_id, forget_sessions

        ids = [
            client_id(f"{consumer}-{env.run}", group, topic)
            for consumer in env.consumers
            for group in ("g", "g1", "g2")
            for topic in env.topics
        ]
        await forget_sessions(env.metadata["url"], ids)


class Inbox:
    """A handler that records deliveries and answers with a scripted outcome."""

    def __init__(
        self, decide: Callable[[Message, int], Awaitable[Outcome] | Outcome] | None = None
    ):
        self.messages: list[Message] = []
        self._decide = decide

    async def __call__(self, message: Message) -> Outcome:
        self.messages.append(message)
        if self._decide is None:
            return Outcome.SUCCESS
        outcome = self._decide(message, sum(m.id == message.id for m in self.messages))
        return await outcome if not isinstance(outcome, Outcome) else outcome

    def datas(self) -> list[bytes]:
        return [m.data for m in self.messages]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        await eventually(lambda: len(self.messages) >= count, timeout, f"{count} deliveries")
        return self.messages


async def eventually(probe: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or probe}")
        await asyncio.sleep(0.02)


async def publish_all(broker: PubSub, topic: str, count: int, prefix: str = "m") -> list[bytes]:
    datas = [f"{prefix}{i}".encode() for i in range(count)]
    for data in datas:
        await broker.publish(topic, data, {})
    return datas


# --- delivery --------------------------------------------------------------------------------


async def test_publish_delivers_data_and_metadata(env: Env) -> None:
    broker = await env.broker()
    topic = env.topic()
    inbox = Inbox()
    sub = await broker.subscribe(topic, "g", inbox)
    assert (sub.topic, sub.group) == (topic, "g")

    payload = bytes(range(256))  # binary-safe, not just text
    await broker.publish(topic, payload, {"content-type": "application/octet-stream", "k": "v"})

    [msg] = await inbox.wait_for(1)
    assert msg.data == payload
    assert msg.topic == topic
    assert msg.metadata["k"] == "v"
    assert msg.metadata["content-type"] == "application/octet-stream"
    assert msg.id
    assert msg.attempt in (None, 1)


async def test_every_group_gets_every_message(env: Env) -> None:
    broker = await env.broker()
    topic = env.topic()
    first, second = Inbox(), Inbox()
    await broker.subscribe(topic, "g1", first)
    await broker.subscribe(topic, "g2", second)

    sent = await publish_all(broker, topic, 5)

    await first.wait_for(5)
    await second.wait_for(5)
    assert sorted(first.datas()) == sorted(sent)
    assert sorted(second.datas()) == sorted(sent)


async def test_members_of_a_group_compete(env: Env) -> None:
    publisher = await env.broker("pub")
    topic = env.topic()

    async def slow(message: Message, seen: int) -> Outcome:
        await asyncio.sleep(0.02)  # long enough that one member can't take everything
        return Outcome.SUCCESS

    one, two = Inbox(slow), Inbox(slow)
    await (await env.broker("a")).subscribe(topic, "g", one)
    await (await env.broker("b")).subscribe(topic, "g", two)

    sent = await publish_all(publisher, topic, 30)

    await eventually(lambda: len(one.messages) + len(two.messages) >= 30, what="30 deliveries")
    await asyncio.sleep(0.3)  # a duplicate would show up now
    received = one.datas() + two.datas()
    assert sorted(received) == sorted(sent), "each message goes to exactly one member"
    assert one.messages and two.messages, "both members took part"


async def test_bulk_publish(env: Env) -> None:
    broker = await env.broker()
    topic = env.topic()
    inbox = Inbox()
    await broker.subscribe(topic, "g", inbox)

    entries = [BulkEntry(f"e{i}", f"bulk{i}".encode(), {"n": str(i)}) for i in range(10)]
    failed = await broker.bulk_publish(topic, entries)

    assert failed == []
    await inbox.wait_for(10)
    assert sorted(inbox.datas()) == sorted(e.data for e in entries)
    assert {m.data: m.metadata["n"] for m in inbox.messages} == {
        e.data: e.metadata["n"] for e in entries
    }


async def test_only_wildcard_backends_claim_wildcards(env: Env) -> None:
    broker = await env.broker()
    claims = Feature.SUBSCRIBE_WILDCARDS in broker.features()
    assert claims == (env.backend in WILDCARDS)


@pytest.mark.parametrize("env", WILDCARDS, indirect=True)
async def test_wildcard_subscription(env: Env) -> None:
    broker = await env.broker()
    base = env.topic()
    pattern = f"{base}/+"
    env.topics.append(pattern)
    inbox = Inbox()
    await broker.subscribe(pattern, "g", inbox)

    await broker.publish(f"{base}/eu", b"eu", {})
    await broker.publish(f"{base}/us", b"us", {})

    await inbox.wait_for(2)
    assert {(m.topic, m.data) for m in inbox.messages} == {
        (f"{base}/eu", b"eu"),
        (f"{base}/us", b"us"),
    }


async def test_publish_after_close_fails(env: Env) -> None:
    broker = await env.broker()
    await broker.close()
    with pytest.raises(errors.PubSubPublishFailed):
        await broker.publish(env.topic(), b"late", {})
    await broker.close()  # idempotent


# --- settling --------------------------------------------------------------------------------


async def test_retry_redelivers_until_success(env: Env) -> None:
    broker = await env.broker()
    topic = env.topic()
    inbox = Inbox(lambda m, seen: Outcome.RETRY if seen < 3 else Outcome.SUCCESS)
    await broker.subscribe(topic, "g", inbox)

    await broker.publish(topic, b"again", {"k": "v"})

    first, second, third = await inbox.wait_for(3, timeout=3 * REDELIVERY + 5)
    assert first.data == second.data == third.data == b"again"
    assert third.metadata["k"] == "v"
    attempts = [m.attempt for m in (first, second, third)]
    if None not in attempts:
        assert attempts == sorted(attempts) and attempts[0] < attempts[2]
    await asyncio.sleep(REDELIVERY)
    assert len(inbox.messages) == 3, "SUCCESS settles it for good"


async def test_drop_is_not_redelivered(env: Env) -> None:
    broker = await env.broker()
    topic = env.topic()
    inbox = Inbox(lambda m, seen: Outcome.DROP)
    await broker.subscribe(topic, "g", inbox)

    await broker.publish(topic, b"unwanted", {})

    await inbox.wait_for(1)
    await asyncio.sleep(REDELIVERY)
    assert inbox.datas() == [b"unwanted"]


async def test_handler_exception_redelivers(env: Env) -> None:
    broker = await env.broker()
    topic = env.topic()

    def explode_once(message: Message, seen: int) -> Outcome:
        if seen == 1:
            raise RuntimeError("handler bug")
        return Outcome.SUCCESS

    inbox = Inbox(explode_once)
    await broker.subscribe(topic, "g", inbox)

    await broker.publish(topic, b"boom", {})

    first, second = await inbox.wait_for(2, timeout=REDELIVERY + 5)
    assert first.data == second.data == b"boom"


async def test_closing_mid_handler_hands_the_message_back(env: Env) -> None:
    publisher = await env.broker("pub")
    topic = env.topic()
    started = asyncio.Event()

    async def hang(message: Message) -> Outcome:
        started.set()
        await asyncio.Event().wait()  # never finishes: cancelled by close
        return Outcome.SUCCESS

    first = await env.broker("a")
    sub = await first.subscribe(topic, "g", hang)
    await publisher.publish(topic, b"in-flight", {})
    await asyncio.wait_for(started.wait(), 10)
    await sub.close(drain=0.1)

    inbox = Inbox()
    # A replica restarted under its own consumer id (MQTT needs the same session back).
    replacement = await env.broker("a")
    await replacement.subscribe(topic, "g", inbox)

    [msg] = await inbox.wait_for(1, timeout=REDELIVERY + 5)
    assert msg.data == b"in-flight"


async def test_drain_lets_running_handlers_finish(env: Env) -> None:
    broker = await env.broker()
    topic = env.topic()
    started = asyncio.Event()
    finished: list[bytes] = []

    async def slow(message: Message) -> Outcome:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(message.data)
        return Outcome.SUCCESS

    sub = await broker.subscribe(topic, "g", slow)
    await broker.publish(topic, b"finish-me", {})
    await asyncio.wait_for(started.wait(), 10)
    await sub.close(drain=5)
    assert finished == [b"finish-me"]
    await sub.close()  # closing twice is a no-op

    inbox = Inbox()
    await broker.subscribe(topic, "g", inbox)
    await broker.publish(topic, b"next", {})
    await inbox.wait_for(1)
    await asyncio.sleep(0.2)
    assert inbox.datas() == [b"next"], "a settled message is not redelivered"


# --- expiry ----------------------------------------------------------------------------------


async def test_expired_messages_are_not_delivered(env: Env) -> None:
    publisher = await env.broker("pub")
    assert Feature.MESSAGE_TTL in publisher.features()
    topic = env.topic()
    consumer = await env.broker("a")
    sub = await consumer.subscribe(topic, "g", Inbox())  # creates the group
    await sub.close()

    await publisher.publish(topic, b"stale", {"ttlInSeconds": "0.5"})
    await publisher.publish(topic, b"fresh", {"ttlInSeconds": "60"})
    await asyncio.sleep(0.7)
    await publisher.publish(topic, b"plain", {})

    inbox = Inbox()
    await (await env.broker("a")).subscribe(topic, "g", inbox)
    await eventually(lambda: b"plain" in inbox.datas() and b"fresh" in inbox.datas())
    await asyncio.sleep(0.2)
    assert b"stale" not in inbox.datas()


async def test_invalid_ttl_is_rejected(env: Env) -> None:
    broker = await env.broker()
    with pytest.raises(errors.PubSubMetadataInvalid):
        await broker.publish(env.topic(), b"x", {"ttlInSeconds": "soon"})


# --- crash -----------------------------------------------------------------------------------

_CONSUMER = """
import asyncio, sys
from tether.components import pubsub, registry
from tether.resources.component import ComponentSpec

async def main(backend, topic, metadata):
    pubsub.register()
    broker = registry.build(ComponentSpec("contract", "pubsub." + backend, metadata=metadata))
    await broker.init()
    async def hang(message):
        print("handling", message.data.decode(), flush=True)
        await asyncio.Event().wait()
    await broker.subscribe(topic, "g", hang)
    print("subscribed", flush=True)
    await asyncio.Event().wait()

md = dict(arg.split("=", 1) for arg in sys.argv[3:])
asyncio.run(main(sys.argv[1], sys.argv[2], md))
"""


async def test_killed_consumer_does_not_lose_messages(env: Env, tmp_path: Path) -> None:
    publisher = await env.broker("pub")
    topic = env.topic()
    spec = env.spec(f"a-{env.run}")
    args = [f"{k}={v}" for k, v in spec.metadata.items()]
    proc = subprocess.Popen(
        [sys.executable, "-c", _CONSUMER, env.backend, topic, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "subscribed", line
        await publisher.publish(topic, b"survivor", {})
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "handling survivor", line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    inbox = Inbox()
    # Another member of the group takes over; MQTT redelivers only to the same session.
    heir = "a" if env.backend == "mqtt3" else "b"
    await (await env.broker(heir)).subscribe(topic, "g", inbox)
    [msg] = await inbox.wait_for(1, timeout=REDELIVERY + 5)
    assert msg.data == b"survivor"
