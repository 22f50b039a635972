"""CloudEvents 1.0 envelopes as daprd builds and reads them.

Publishing wraps the caller's bytes in an envelope (unless `rawPayload`); delivery turns the
broker's bytes back into the event a subscriber sees. The rules follow components-contrib
`pubsub/envelope.go`, so apps written against daprd see the same fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tether.components.pubsub.base import ttl_seconds

CLOUDEVENT_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
OCTET_STREAM = "application/octet-stream"
EVENT_TYPE = "com.dapr.event.sent"
BULK_EVENT_TYPE = "com.dapr.event.sent.bulk"
SPEC_VERSION = "1.0"
#: Source daprd gives events it wraps on the consumer side (raw payloads).
DEFAULT_SOURCE = "Dapr"
#: Broker metadata: the message's bytes are the publisher's own, not an envelope.
RAW_PAYLOAD = "rawPayload"
#: Broker metadata: what the message's bytes are.
CONTENT_TYPE = "content-type"
#: Envelope fields that are attributes, not extensions, on the gRPC `TopicEventRequest`.
_ATTRIBUTES = frozenset(
    {"id", "source", "datacontenttype", "type", "specversion", "data", "data_base64"}
)


def _base(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_cloudevent(content_type: str) -> bool:
    return _base(content_type) == CLOUDEVENT_CONTENT_TYPE


def is_json(content_type: str) -> bool:
    """JSON data: embedded as JSON in the envelope (`application/json` or any `+json` type)."""
    base = _base(content_type)
    return base == JSON_CONTENT_TYPE or (base.startswith("application/") and base.endswith("+json"))


def is_binary(content_type: str) -> bool:
    return _base(content_type) == OCTET_STREAM


def is_text(content_type: str) -> bool:
    base = _base(content_type)
    return base.startswith("text/") or base == "application/xml"


def flag(metadata: Mapping[str, str], key: str) -> bool:
    """A boolean metadata value (keys are case-insensitive, as in Dapr); ValueError if not one."""
    lowered = key.lower()
    raw = next((v for k, v in metadata.items() if k.lower() == lowered), "")
    value = raw.strip().lower()
    if value in ("", "false", "0", "f"):
        return False
    if value in ("true", "1", "t"):
        return True
    raise ValueError(f"metadata {key}={raw!r} is not true or false")


def new_traceparent() -> str:
    """A fresh W3C trace context: publishes without one still get a trace id subscribers see."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _embed(data: bytes, content_type: str) -> tuple[str, Any]:
    """The field and value that carry `data` in an envelope."""
    if is_json(content_type):
        try:
            return "data", json.loads(data)
        except ValueError:
            return "data", data.decode("utf-8", errors="replace")
    if is_binary(content_type):
        return "data_base64", base64.b64encode(data).decode("ascii")
    return "data", data.decode("utf-8", errors="replace")


def new_event(
    *,
    source: str,
    topic: str,
    pubsub: str,
    data: bytes,
    content_type: str,
    traceparent: str,
    tracestate: str = "",
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Wrap a publisher's bytes. `cloudevent.<field>` metadata overrides id, source, type,
    subject and traceparent, as daprd allows."""
    overrides = {
        k.lower()[len("cloudevent.") :]: v
        for k, v in (metadata or {}).items()
        if k.lower().startswith("cloudevent.") and v
    }
    content_type = content_type or "text/plain"
    trace = overrides.get("traceparent") or overrides.get("traceid") or traceparent
    event: dict[str, Any] = {
        "id": overrides.get("id") or str(uuid.uuid4()),
        "source": overrides.get("source") or source,
        "type": overrides.get("type") or EVENT_TYPE,
        "specversion": SPEC_VERSION,
        "datacontenttype": content_type,
        "topic": topic,
        "pubsubname": pubsub,
        "traceid": trace,
        "traceparent": trace,
        "tracestate": overrides.get("tracestate") or tracestate,
        "time": _now(),
    }
    if overrides.get("subject"):
        event["subject"] = overrides["subject"]
    field, value = _embed(data, content_type)
    event[field] = value
    return event


def from_cloud_event(
    body: bytes, *, source: str, topic: str, pubsub: str, traceparent: str, tracestate: str = ""
) -> dict[str, Any]:
    """A publisher's own CloudEvent, passed through with the required fields it lacks filled in
    and the routing fields (topic, pubsub, trace) set. ValueError if it is not a JSON object."""
    event = json.loads(body)
    if not isinstance(event, dict):
        raise ValueError("a CloudEvent must be a JSON object")
    event.setdefault("id", str(uuid.uuid4()))
    event.setdefault("source", source)
    event.setdefault("type", EVENT_TYPE)
    event.setdefault("specversion", SPEC_VERSION)
    event.setdefault("time", _now())
    event["topic"] = topic
    event["pubsubname"] = pubsub
    event["traceid"] = traceparent
    event["traceparent"] = traceparent
    event["tracestate"] = tracestate
    return event


def set_expiration(event: dict[str, Any], metadata: Mapping[str, str]) -> None:
    """Stamp `expiration` for a `ttlInSeconds` publish, so subscribers drop stale events even
    when they read them after the broker's own expiry would have applied."""
    ttl = ttl_seconds(metadata)
    if ttl:
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        event["expiration"] = expires.isoformat(timespec="seconds").replace("+00:00", "Z")


def has_expired(event: Mapping[str, Any]) -> bool:
    raw = event.get("expiration")
    if not isinstance(raw, str) or not raw:
        return False
    try:
        expires = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires < datetime.now(UTC)


def from_raw_payload(data: bytes, *, topic: str, pubsub: str) -> dict[str, Any]:
    """The event an HTTP subscriber gets for bytes that are not an envelope (daprd
    `FromRawPayload`): the id is new on every delivery and the bytes go in `data_base64`."""
    return {
        "id": str(uuid.uuid4()),
        "source": DEFAULT_SOURCE,
        "type": EVENT_TYPE,
        "specversion": SPEC_VERSION,
        "datacontenttype": OCTET_STREAM,
        "topic": topic,
        "pubsubname": pubsub,
        "data_base64": base64.b64encode(data).decode("ascii"),
    }


def read_event(
    data: bytes, metadata: Mapping[str, str], *, topic: str, pubsub: str, raw: bool
) -> dict[str, Any]:
    """The event a subscriber sees for a broker message.

    Raw subscriptions and raw publishes (`rawPayload` stamped on the message) are wrapped.
    So are bytes that are not a JSON object: daprd would retry those forever, which never helps
    a message some other producer wrote to the broker.
    """
    if not raw:
        try:
            raw = flag(metadata, RAW_PAYLOAD)
        except ValueError:
            raw = False
    if not raw:
        try:
            event = json.loads(data)
        except ValueError:
            event = None
        if isinstance(event, dict):
            return event
    return from_raw_payload(data, topic=topic, pubsub=pubsub)


def event_data(event: Mapping[str, Any]) -> tuple[bytes, str]:
    """The data bytes and content type of an event, for gRPC `TopicEventRequest.data`."""
    content_type = str(event.get("datacontenttype") or "")
    encoded = event.get("data_base64")
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded, validate=True), content_type
        except (binascii.Error, ValueError):
            return encoded.encode(), content_type
    if "data" not in event or event["data"] is None:
        return b"", content_type
    value = event["data"]
    if isinstance(value, str) and not is_json(content_type):
        return value.encode(), content_type
    return json.dumps(value, separators=(",", ":")).encode(), content_type


def extensions(event: Mapping[str, Any]) -> dict[str, Any]:
    """Every field that is not a core attribute (topic, traceparent, custom extensions)."""
    return {k: v for k, v in event.items() if k not in _ATTRIBUTES}
