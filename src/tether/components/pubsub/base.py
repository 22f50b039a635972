"""The pub/sub broker contract.

A broker moves opaque bytes plus string metadata between publishers and consumer groups. It knows
nothing about HTTP, CloudEvents or apps: the runtime builds the envelope, decides routes and dead
letters, and hands the broker bytes.

Delivery semantics every backend keeps:

- **Durable publish.** `publish` returns only once the broker acknowledged the message (stream
  append, publisher confirm, PUBACK, committed row). If it raises, the message may or may not have
  been stored: callers retry and consumers tolerate duplicates.
- **Consumer groups.** `group` is the App ID. Subscriptions with the same group on the same topic
  compete: each message goes to one of them. Different groups each get every message (fan-out).
  A group exists from its first `subscribe`; whether it also sees messages published before that
  depends on the broker, so callers subscribe before they rely on delivery.
- **At-least-once.** A message is settled only by its handler's `Outcome`: SUCCESS and DROP
  acknowledge it (DROP means "never deliver again", the runtime dead-letters or logs it first);
  RETRY, a handler exception, a cancelled handler or a dead process leave it unacknowledged and
  the broker delivers it again later, possibly to another member of the group. Handlers must be
  idempotent. Ordering is not promised unless a backend's docstring says so.
- **TTL.** Publish metadata `ttlInSeconds` bounds how long a message may wait. Backends use the
  broker's native expiry where it has one and, in every case, stamp an absolute deadline
  (`EXPIRES_AT`) that consumers check: an expired message is acknowledged without calling the
  handler.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tether import errors

#: Publish metadata: seconds a message may wait before it is dropped unseen.
TTL_IN_SECONDS = "ttlInSeconds"
#: Metadata stamped on publish: the absolute deadline, in Unix epoch milliseconds.
EXPIRES_AT = "tether-expires-at"
#: How long `Subscription.close` waits for running handlers by default, in seconds.
DEFAULT_DRAIN = 5.0


class Outcome(StrEnum):
    """What a handler decided about a message; the values are Dapr's app response statuses."""

    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    DROP = "DROP"


class Feature(StrEnum):
    """Optional capabilities a runtime may ask a broker about (Dapr's pub/sub features)."""

    #: `bulk_publish` is done in one broker round trip (otherwise it is emulated and slower).
    BULK_PUBLISH = "BULK_PUBLISH"
    #: Topic filters with the broker's wildcards (MQTT `+`/`#`) can be subscribed to.
    SUBSCRIBE_WILDCARDS = "SUBSCRIBE_WILDCARDS"
    #: `ttlInSeconds` is honoured (natively or by dropping expired messages on delivery).
    MESSAGE_TTL = "MESSAGE_TTL"


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery of a message to a handler."""

    #: Broker-assigned id, stable across redeliveries where the broker allows it.
    id: str
    #: The topic it was published to (the concrete one when subscribed with a wildcard).
    topic: str
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: 1 on first delivery, counting up on redeliveries; None when the broker can't tell.
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class BulkEntry:
    """One message of a `bulk_publish`; `entry_id` is the caller's, echoed back on failure."""

    entry_id: str
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)


#: Called once per delivery. Raising counts as RETRY; being cancelled (on close) settles nothing.
Handler = Callable[[Message], Awaitable[Outcome]]


class Subscription(ABC):
    """A running consumer: one member of `group` on `topic`."""

    topic: str
    group: str

    @abstractmethod
    async def close(self, drain: float = DEFAULT_DRAIN) -> None:
        """Stop receiving, then wait up to `drain` seconds for running handlers to finish.

        Handlers still running after that are cancelled and their messages left unacknowledged,
        so the broker redelivers them. Closing twice is a no-op.
        """


class PubSub(ABC):
    """A pub/sub broker as one component instance sees it."""

    @abstractmethod
    def features(self) -> frozenset[Feature]:
        """Capabilities beyond the contract; the set does not change after `init`."""

    @abstractmethod
    async def init(self) -> None:
        """Connect to the broker; a no-op when already connected.

        Metadata is validated earlier, when the component is built from its spec (raising
        `PubSubComponentInvalid`). Raises `PubSubUnavailable` when the broker can't be reached.
        """

    @abstractmethod
    async def close(self) -> None:
        """Close every open subscription (with the default drain), then the connections.

        Idempotent. Publishing after close raises `PubSubPublishFailed`.
        """

    @abstractmethod
    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        """Store one message durably; returns once the broker acknowledged it.

        Raises `PubSubMetadataInvalid` for unusable metadata (a non-numeric `ttlInSeconds`) and
        `PubSubPublishFailed` when the broker refused it or could not be reached.
        """

    async def bulk_publish(self, topic: str, entries: Sequence[BulkEntry]) -> list[str]:
        """Publish many messages; returns the `entry_id`s that failed (empty when all stored).

        Entries are independent: one failing does not stop the others. Invalid metadata on any
        entry raises `PubSubMetadataInvalid` before anything is published. This default runs the
        publishes concurrently; backends with a batch primitive override it.
        """
        for entry in entries:
            expiry_metadata(entry.metadata)

        async def one(entry: BulkEntry) -> str | None:
            try:
                await self.publish(topic, entry.data, entry.metadata)
            except errors.PubSubPublishFailed:
                return entry.entry_id
            return None

        results = await asyncio.gather(*(one(e) for e in entries))
        return [r for r in results if r is not None]

    @abstractmethod
    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription:
        """Join `group` on `topic` and start calling `handler` for its messages.

        Returns once the broker registered the subscription: a message published after that is
        delivered to the group. `metadata` carries per-subscription options of the backend.
        Raises `PubSubUnavailable` when the broker can't be reached.
        """


# --- helpers shared by backends -------------------------------------------------------------


def expiry_metadata(metadata: Mapping[str, str], now: float | None = None) -> dict[str, str]:
    """`metadata` plus an absolute `EXPIRES_AT` when it asks for a TTL.

    The deadline is fixed at publish time so every consumer, whatever its clock reads when the
    message arrives, judges expiry against the same instant.
    """
    out = dict(metadata)
    raw = _lookup(metadata, TTL_IN_SECONDS)
    if raw is None or raw == "":
        return out
    try:
        ttl = float(raw)
    except ValueError:
        raise errors.PubSubMetadataInvalid(
            f"metadata {TTL_IN_SECONDS}={raw!r} is not a number of seconds"
        ) from None
    if ttl <= 0:
        raise errors.PubSubMetadataInvalid(f"metadata {TTL_IN_SECONDS} must be positive: {raw}")
    out[EXPIRES_AT] = str(int(((time.time() if now is None else now) + ttl) * 1000))
    return out


def ttl_seconds(metadata: Mapping[str, str]) -> float | None:
    """The validated `ttlInSeconds` of publish metadata, for backends with native expiry."""
    raw = _lookup(metadata, TTL_IN_SECONDS)
    return float(raw) if raw else None


def is_expired(metadata: Mapping[str, str], now: float | None = None) -> bool:
    raw = metadata.get(EXPIRES_AT)
    if not raw:
        return False
    try:
        deadline_ms = int(raw)
    except ValueError:
        return False
    return (time.time() if now is None else now) * 1000 >= deadline_ms


def _lookup(metadata: Mapping[str, str], key: str) -> str | None:
    # Dapr metadata keys are case-insensitive (`ttlinseconds` works too).
    if key in metadata:
        return metadata[key]
    lowered = key.lower()
    return next((v for k, v in metadata.items() if k.lower() == lowered), None)
