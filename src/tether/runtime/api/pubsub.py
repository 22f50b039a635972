"""The Dapr pub/sub publishing API (publish, bulk publish), shared by HTTP and gRPC.

Checks run in daprd's order, so callers see its errors: pubsub name, component, topic, request
metadata, the envelope, then topic scoping. A component whose scopes leave the caller out is
reported as forbidden (403) rather than missing: here one runtime serves many App IDs, and the
component exists.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether import errors
from tether.components.pubsub.base import BulkEntry, Feature, PubSub, expiry_metadata
from tether.resources.component import ComponentSpec
from tether.runtime.contracts import ComponentHost
from tether.runtime.metrics import PubSubMetrics
from tether.runtime.pubsub import envelope as ce
from tether.runtime.pubsub import scopes

log = logging.getLogger("tether.pubsub")


@dataclass(frozen=True, slots=True)
class Trace:
    """W3C trace context of the publishing request; a new trace is started when absent."""

    traceparent: str = ""
    tracestate: str = ""


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One entry of a bulk publish, its event already as bytes."""

    entry_id: str
    event: bytes
    content_type: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FailedEntry:
    entry_id: str
    error: str


@dataclass(frozen=True, slots=True)
class Target:
    """A validated publish destination."""

    app_id: str
    pubsub: str
    topic: str
    broker: PubSub
    spec: ComponentSpec | None


class PubSubApi:
    def __init__(self, host: ComponentHost, metrics: PubSubMetrics | None = None) -> None:
        self._host = host
        self._metrics = metrics or PubSubMetrics()

    def target(self, app_id: str, pubsub: str, topic: str) -> Target:
        """Validate the destination: raises the pubsub/topic errors daprd reports."""
        if not pubsub:
            raise errors.PubSubNameEmpty("pubsub name is empty")
        broker = self._host.find("pubsub", pubsub, app_id)
        if broker is None:
            if any(s.name == pubsub and s.kind == "pubsub" for s in self._host.specs()):
                raise errors.PubSubForbidden(f"pubsub {pubsub} is not allowed for app id {app_id}")
            raise errors.PubSubNotFound(f"pubsub {pubsub} is not found")
        if not topic:
            raise errors.PubSubTopicEmpty(f"topic is empty in pubsub {pubsub}")
        spec = next(
            (s for s in self._host.specs(app_id) if s.name == pubsub and s.kind == "pubsub"), None
        )
        return Target(app_id, pubsub, topic, broker, spec)

    def _check_scopes(self, to: Target) -> None:
        if to.spec is not None and not scopes.allowed(
            to.spec.metadata, scopes.PUBLISHING, to.app_id, to.topic
        ):
            raise errors.PubSubForbidden(f"topic {to.topic} is not allowed for app id {to.app_id}")

    @staticmethod
    def _raw(metadata: Mapping[str, str]) -> bool:
        try:
            return ce.flag(metadata, ce.RAW_PAYLOAD)
        except ValueError as exc:
            raise errors.PubSubMetadataInvalid(
                f"failed deserializing metadata. Error: {exc}"
            ) from exc

    def _message(
        self, to: Target, data: bytes, content_type: str, metadata: Mapping[str, str],
        raw: bool, trace: Trace,
    ) -> tuple[bytes, dict[str, str]]:  # fmt: skip
        """The bytes and broker metadata published for one event."""
        expiry_metadata(metadata)  # a bad ttlInSeconds is the caller's 400, before anything else
        if raw:
            out = {**metadata, ce.CONTENT_TYPE: content_type or ce.OCTET_STREAM}
            if trace.traceparent:
                out["traceparent"] = trace.traceparent
            return data, out
        traceparent = trace.traceparent or ce.new_traceparent()
        if ce.is_cloudevent(content_type):
            try:
                event = ce.from_cloud_event(
                    data, source=to.app_id, topic=to.topic, pubsub=to.pubsub,
                    traceparent=traceparent, tracestate=trace.tracestate,
                )  # fmt: skip
            except ValueError as exc:
                raise errors.PubSubCloudEventInvalid(
                    f"cannot create cloudevent for topic {to.topic} pubsub {to.pubsub}: {exc}"
                ) from exc
        else:
            event = ce.new_event(
                source=to.app_id, topic=to.topic, pubsub=to.pubsub, data=data,
                content_type=content_type, traceparent=traceparent,
                tracestate=trace.tracestate, metadata=metadata,
            )  # fmt: skip
        if Feature.MESSAGE_TTL not in to.broker.features():
            ce.set_expiration(event, metadata)
        body = json.dumps(event, separators=(",", ":")).encode()
        return body, {**metadata, ce.CONTENT_TYPE: ce.CLOUDEVENT_CONTENT_TYPE}

    async def publish(
        self,
        app_id: str,
        pubsub: str,
        topic: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        trace: Trace = Trace(),
    ) -> None:
        to = self.target(app_id, pubsub, topic)
        raw = self._raw(metadata)
        body, broker_metadata = self._message(to, data, content_type, metadata, raw, trace)
        self._check_scopes(to)
        try:
            await to.broker.publish(topic, body, broker_metadata)
        except errors.TetherError:
            self._metrics.publish(pubsub, topic, 0, 1)
            raise
        except Exception as exc:  # a driver error the backend did not translate
            self._metrics.publish(pubsub, topic, 0, 1)
            raise errors.PubSubPublishFailed(
                f"error when publishing to topic {topic} in pubsub {pubsub}: {exc}"
            ) from exc
        self._metrics.publish(pubsub, topic, 1)

    async def bulk_publish(
        self,
        to: Target,
        items: Sequence[BulkItem],
        metadata: Mapping[str, str],
        trace: Trace = Trace(),
    ) -> list[FailedEntry]:
        """Publish every entry; returns those the broker did not store (empty: all stored).

        Request metadata applies to every entry; an entry's own keys win.
        """
        raw = self._raw(metadata)
        seen: set[str] = set()
        entries: list[BulkEntry] = []
        for item in items:
            if not item.entry_id or item.entry_id in seen:
                raise errors.PubSubEventsInvalid(
                    f"error marshaling events to bytes for topic {to.topic} pubsub {to.pubsub}: "
                    "entryId is duplicated or not present for entry"
                )
            seen.add(item.entry_id)
            merged = {**metadata, **item.metadata}
            body, broker_metadata = self._message(
                to, item.event, item.content_type, merged, raw, trace
            )
            entries.append(BulkEntry(item.entry_id, body, broker_metadata))
        self._check_scopes(to)
        if not entries:
            return []
        try:
            failed = await to.broker.bulk_publish(to.topic, entries)
        except errors.PubSubMetadataInvalid:
            raise
        except Exception as exc:
            log.warning("bulk publish to %s/%s failed: %s", to.pubsub, to.topic, exc)
            self._metrics.publish(to.pubsub, to.topic, 0, len(entries))
            message = exc.message if isinstance(exc, errors.TetherError) else str(exc)
            return [FailedEntry(e.entry_id, message) for e in entries]
        self._metrics.publish(to.pubsub, to.topic, len(entries) - len(failed), len(failed))
        reason = f"error when publishing to topic {to.topic} in pubsub {to.pubsub}"
        return [FailedEntry(entry_id, reason) for entry_id in failed]


def event_bytes(event: Any, content_type: str) -> bytes:
    """A bulk HTTP entry's `event` as bytes per its content type (daprd `ConvertEventToBytes`):
    base64 text for binary types, a string for text types, JSON for the rest. An entry without
    a content type is taken as text when it is a string and JSON otherwise."""
    if not content_type:
        content_type = "text/plain" if isinstance(event, str) else ce.JSON_CONTENT_TYPE
    if ce.is_binary(content_type):
        if not isinstance(event, str):
            raise ValueError("an application/octet-stream event must be a base64 string")
        try:
            return base64.b64decode(event, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"unable to decode base64 event data: {exc}") from exc
    if ce.is_text(content_type):
        if not isinstance(event, str):
            raise ValueError(f"a {content_type} event must be a string")
        return event.encode()
    if ce.is_json(content_type) or ce.is_cloudevent(content_type):
        return json.dumps(event, separators=(",", ":")).encode()
    raise ValueError(f"content type {content_type!r} does not match the event")
