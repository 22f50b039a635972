"""Streaming subscriptions (`SubscribeTopicEventsAlpha1`): deliveries over the app's own stream.

The app needs no endpoint. Each stream is one member of the App ID's consumer group; an event
goes out as a `TopicEventRequest` and the broker message stays unacknowledged until the app
answers with the event's id and a status. When the stream ends, events still waiting for an
answer go back to the broker (`SubscriberGone`), never to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Mapping
from typing import Any

from dapr.proto.runtime.v1 import appcallback_pb2, pubsub_pb2
from google.protobuf import struct_pb2

from tether.components.pubsub.base import Outcome
from tether.runtime.pubsub import envelope as ce
from tether.runtime.pubsub.delivery import SubscriberGone

_STATUSES: dict[int, Outcome] = {
    appcallback_pb2.TopicEventResponse.SUCCESS: Outcome.SUCCESS,
    appcallback_pb2.TopicEventResponse.RETRY: Outcome.RETRY,
    appcallback_pb2.TopicEventResponse.DROP: Outcome.DROP,
}
_ids = itertools.count(1)


def topic_event(event: Mapping[str, Any], topic: str, pubsub: str, path: str = "") -> Any:
    """The gRPC form of an event (daprd `GRPCEnvelopeFromSubscriptionMessage`)."""
    data, content_type = ce.event_data(event)
    extensions = struct_pb2.Struct()
    extensions.update(_jsonable(ce.extensions(event)))
    return appcallback_pb2.TopicEventRequest(
        id=str(event.get("id") or ""),
        source=str(event.get("source") or ""),
        type=str(event.get("type") or ""),
        spec_version=str(event.get("specversion") or ""),
        data_content_type=content_type,
        data=data,
        topic=topic,
        pubsub_name=pubsub,
        path=path,
        extensions=extensions,
    )


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    # Struct holds JSON values only; anything else travels as its string form.
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or isinstance(value, str | bool | int | float | dict | list):
            out[key] = value
        else:
            out[key] = str(value)
    return out


class StreamSession:
    """One open `SubscribeTopicEventsAlpha1` call."""

    def __init__(self, app_id: str, pubsub: str, topic: str) -> None:
        self.app_id = app_id
        self.pubsub = pubsub
        self.topic = topic
        self.number = next(_ids)
        #: Responses for the transport to send, in order; None ends the stream.
        self.outgoing: asyncio.Queue[Any] = asyncio.Queue()
        self._waiting: dict[str, collections.deque[asyncio.Future[Outcome]]] = {}
        self.closed = False

    async def ready(self) -> None:
        """A stream takes deliveries as soon as it is open."""

    async def deliver(self, path: str, event: Mapping[str, Any]) -> Outcome:
        if self.closed:
            raise SubscriberGone("the subscription stream is closed")
        message = topic_event(event, str(event.get("topic") or self.topic), self.pubsub)
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(message.id, collections.deque()).append(done)
        try:
            self.outgoing.put_nowait(
                pubsub_pb2.SubscribeTopicEventsResponseAlpha1(event_message=message)
            )
            return await done
        finally:
            queue = self._waiting.get(message.id)
            if queue is not None and done in queue:
                queue.remove(done)
                if not queue:
                    del self._waiting[message.id]

    def answered(self, event_id: str, status: int) -> None:
        """The app's verdict on an event; duplicates of one id are answered oldest first."""
        queue = self._waiting.get(event_id)
        while queue:
            done = queue.popleft()
            if not done.done():
                done.set_result(_STATUSES.get(status, Outcome.RETRY))
                return

    def close(self) -> None:
        """End the stream; deliveries still waiting go back to the broker."""
        if self.closed:
            return
        self.closed = True
        for queue in self._waiting.values():
            for done in queue:
                if not done.done():
                    done.set_exception(SubscriberGone("the subscription stream closed"))
        self._waiting.clear()
        self.outgoing.put_nowait(None)
