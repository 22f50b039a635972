"""Deliveries into an app through its app channel: one event per call, or bulk batches.

Bulk subscriptions (`bulkSubscribe.enabled`) collect the events the broker hands over
concurrently into one batch per route path, sent when it holds `maxMessagesCount` events or its
first event waited `maxAwaitDurationMs`, whichever comes first. The app channel puts the batch
on its wire (HTTP apps: one `POST` of Dapr's bulk JSON; gRPC apps: `OnBulkTopicEvent`) and
returns one verdict per event, which settles that event's broker message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.components.pubsub.base import Outcome
from tether.resources.subscription import BulkSubscribe
from tether.runtime.contracts import AppChannel, AppRegistry, BulkBatch, BulkEntry
from tether.runtime.pubsub import envelope as ce
from tether.runtime.pubsub.delivery import SubscriberGone, wait_healthy

log = logging.getLogger("tether.pubsub")


def _outcome(status: Any) -> Outcome:
    """An app's status word; anything unknown is a retry, as in daprd."""
    if isinstance(status, str) and status.upper() in Outcome.__members__:
        return Outcome(status.upper())
    if status is None or status == "":
        return Outcome.SUCCESS
    return Outcome.RETRY


class AppDelivery:
    """Delivers one subscription's events to one App ID's app."""

    def __init__(self, apps: AppRegistry, app_id: str, pubsub: str) -> None:
        self.apps = apps
        self.app_id = app_id
        self.pubsub = pubsub

    def channel(self) -> AppChannel:
        channel = self.apps.channel(self.app_id)
        if channel is None:
            raise SubscriberGone(f"app {self.app_id} has no app channel any more")
        return channel

    def healthy(self) -> bool:
        channel = self.apps.channel(self.app_id)
        return channel is None or channel.healthy

    async def ready(self) -> None:
        await wait_healthy(self.healthy)

    def headers(self, event: Mapping[str, Any], content_type: str) -> dict[str, str]:
        headers = {"content-type": content_type, "pubsubname": self.pubsub}
        traceparent = event.get("traceparent")
        if isinstance(traceparent, str) and traceparent:
            headers["traceparent"] = traceparent
            tracestate = event.get("tracestate")
            if isinstance(tracestate, str) and tracestate:
                headers["tracestate"] = tracestate
        return headers

    async def deliver(self, path: str, event: Mapping[str, Any]) -> Outcome:
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = self.headers(event, ce.CLOUDEVENT_CONTENT_TYPE)
        status = await self.channel().deliver_event(path, event, body, headers)
        return _outcome(status)


@dataclass(slots=True)
class _Entry:
    entry_id: str
    event: Mapping[str, Any]
    done: asyncio.Future[Outcome]


@dataclass(slots=True)
class _Batch:
    entries: list[_Entry] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class BulkDelivery:
    """Batches one bulk subscription's events per route path."""

    def __init__(self, target: AppDelivery, topic: str, options: BulkSubscribe, raw: bool) -> None:
        self.target = target
        self.topic = topic
        self.options = options
        self.raw = raw
        self._batches: dict[str, _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def deliver(self, path: str, event: Mapping[str, Any]) -> Outcome:
        loop = asyncio.get_running_loop()
        entry = _Entry(str(uuid.uuid4()), event, loop.create_future())
        batch = self._batches.setdefault(path, _Batch())
        batch.entries.append(entry)
        if len(batch.entries) >= self.options.max_messages_count:
            self._flush(path)
        elif batch.timer is None:
            wait = self.options.max_await_duration_ms / 1000
            batch.timer = loop.call_later(wait, self._flush, path)
        return await entry.done

    def _flush(self, path: str) -> None:
        batch = self._batches.pop(path, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        live = [e for e in batch.entries if not e.done.done()]  # a cancelled handler left
        if live:
            task = asyncio.get_running_loop().create_task(self._send(path, live))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, path: str, entries: list[_Entry]) -> None:
        target = self.target
        batch = BulkBatch(
            id=str(uuid.uuid4()),
            type=ce.BULK_EVENT_TYPE,
            pubsub=target.pubsub,
            topic=self.topic,
            path=path,
            entries=tuple(
                BulkEntry(e.entry_id, e.event, target.headers(e.event, ce.CLOUDEVENT_CONTENT_TYPE))
                for e in entries
            ),
            raw=self.raw,
        )
        try:
            headers = target.headers(entries[0].event, ce.JSON_CONTENT_TYPE)
            statuses = await target.channel().deliver_bulk(batch, headers)
        except Exception as exc:  # the app could not be reached: every entry failed
            for entry in entries:
                if not entry.done.done():
                    entry.done.set_exception(exc)
            return
        for entry in entries:
            if not entry.done.done():
                entry.done.set_result(_outcome(statuses.get(entry.entry_id, Outcome.RETRY)))
