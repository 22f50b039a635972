"""What happens to one broker message of one subscription: route, deliver, retry, dead-letter.

The broker settles a message by the `Outcome` returned here. The order of decisions follows
daprd (`pkg/runtime/subscription`):

1. wait until the subscriber can take deliveries (the app channel is healthy);
2. expired events (`expiration`) are acknowledged unseen, dead-lettered if configured;
3. the route is chosen; no matching route acknowledges (dead-lettered if configured);
4. the event is delivered, retried per the component's inbound Resiliency policy when there is
   one; SUCCESS acknowledges, DROP acknowledges after dead-lettering when configured;
5. when the attempts are used up (RETRY, an error, a failing route expression) the message is
   published to the dead-letter topic and acknowledged, or, without one, left to the broker,
   which redelivers it.

A subscriber that went away mid-delivery (a closed stream, an app that deregistered) is not a
failure of the message: it goes back to the broker without touching the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tether import errors
from tether.components.pubsub.base import EXPIRES_AT, Message, Outcome, PubSub
from tether.runtime.metrics import DeliveryMeter
from tether.runtime.pubsub import envelope as ce
from tether.runtime.pubsub.model import TopicSubscription
from tether.runtime.pubsub.routing import RouteFailed, Router

log = logging.getLogger("tether.pubsub")

T = TypeVar("T")
#: The fate of a message published to its subscription's dead-letter topic.
DEAD_LETTER = "dead_letter"


class InboundPolicy(Protocol):
    """A Resiliency policy: runs `fn`, retrying it while it raises, until its budget is spent
    (then the last error propagates)."""

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T: ...


class RetryRequested(Exception):
    """The subscriber answered RETRY: counts as a failed attempt for the policy."""


class SubscriberGone(Exception):
    """The subscriber cannot take deliveries any more (stream closed, app deregistered)."""


#: Delivers one event to `path`; returns the subscriber's verdict.
Deliver = Callable[[str, Mapping[str, Any]], Awaitable[Outcome]]
#: Returns once the subscriber can take deliveries.
Ready = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Pipeline:
    """The broker handler of one running subscription."""

    sub: TopicSubscription
    router: Router
    broker: PubSub
    deliver: Deliver
    ready: Ready
    #: The component's inbound Resiliency policy, looked up per message so reloads apply.
    policy: Callable[[], InboundPolicy] | None = None
    raw: bool = False
    #: Records each message's fate and delivery time (metrics).
    meter: DeliveryMeter | None = None

    async def handle(self, msg: Message) -> Outcome:
        await self.ready()
        start = time.perf_counter()
        outcome, fate = await self._settle(msg)
        if self.meter is not None:
            self.meter.record(fate, time.perf_counter() - start)
        return outcome

    async def _settle(self, msg: Message) -> tuple[Outcome, str]:
        """The broker's outcome for `msg`, and its fate as the deliveries metric names it."""
        sub = self.sub
        event = ce.read_event(
            msg.data, msg.metadata, topic=msg.topic, pubsub=sub.pubsubname, raw=self.raw
        )
        event_id = event.get("id")
        if ce.has_expired(event):
            log.warning("dropping expired event %s of %s", event_id, sub.where)
            dead = await self._dead_letter(msg)
            return Outcome.DROP, DEAD_LETTER if dead else "expired"
        try:
            path = self.router.route(event)
        except RouteFailed as exc:
            log.error("event %s: %s", event_id, exc)
            return await self._failed(msg)
        if path is None:
            log.debug("event %s matches no route of %s; skipped", event_id, sub.where)
            dead = await self._dead_letter(msg)
            return Outcome.SUCCESS, DEAD_LETTER if dead else "unrouted"

        async def attempt() -> Outcome:
            outcome = await self.deliver(path, event)
            if outcome is Outcome.RETRY:
                raise RetryRequested(f"subscriber asked to retry event {event_id}")
            return outcome

        policy = self.policy() if self.policy is not None else None
        try:
            outcome = await (policy.call(attempt) if policy is not None else attempt())
        except SubscriberGone:
            return Outcome.RETRY, "retry"
        except Exception as exc:  # RETRY, app errors, policy exhausted or circuit open
            log.warning("event %s for %s%s not delivered: %s", event_id, sub.where, path, exc)
            return await self._failed(msg)
        if outcome is Outcome.DROP:
            log.warning("subscriber of %s dropped event %s", sub.where, event_id)
            dead = await self._dead_letter(msg)
            if dead is None:
                return Outcome.RETRY, "retry"
            return outcome, DEAD_LETTER if dead else "drop"
        return outcome, "success"

    async def _failed(self, msg: Message) -> tuple[Outcome, str]:
        if self.sub.dead_letter_topic and await self._dead_letter(msg):
            return Outcome.SUCCESS, DEAD_LETTER
        return Outcome.RETRY, "retry"

    async def _dead_letter(self, msg: Message) -> bool | None:
        """Publish the message, as it came, to the dead-letter topic: True when it was, False
        when there is none, None when publishing failed."""
        topic = self.sub.dead_letter_topic
        if not topic:
            return False
        metadata = {k: v for k, v in msg.metadata.items() if k != EXPIRES_AT}
        try:
            await self.broker.publish(topic, msg.data, metadata)
        except (errors.TetherError, OSError) as exc:
            log.error("dead-letter publish to %s failed for %s: %s", topic, self.sub.where, exc)
            return None
        log.info("message %s of %s sent to dead-letter topic %s", msg.id, self.sub.where, topic)
        return True


async def wait_healthy(healthy: Callable[[], bool], interval: float = 0.1) -> None:
    """Return once `healthy()` holds; while the app is down, messages wait unacknowledged."""
    while not healthy():
        await asyncio.sleep(interval)
