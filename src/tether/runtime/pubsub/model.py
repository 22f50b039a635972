"""One shape for the three kinds of subscription an App ID can have.

Declarative ones come from `Subscription` resources, programmatic ones from the app's
`GET /dapr/subscribe`, streaming ones from a `SubscribeTopicEventsAlpha1` call. Past this module
the delivery code does not care which kind it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tether.resources.subscription import BulkSubscribe, RouteRule, Subscription

log = logging.getLogger("tether.pubsub")


class Kind(StrEnum):
    """Values as daprd's metadata API spells them (the protobuf enum names)."""

    DECLARATIVE = "DECLARATIVE"
    PROGRAMMATIC = "PROGRAMMATIC"
    STREAMING = "STREAMING"


@dataclass(frozen=True, slots=True)
class TopicSubscription:
    """What one App ID wants delivered from one topic, and how."""

    app_id: str
    kind: Kind
    pubsubname: str
    topic: str
    rules: tuple[RouteRule, ...] = ()
    default_route: str | None = None
    dead_letter_topic: str | None = None
    bulk: BulkSubscribe = field(default_factory=BulkSubscribe)
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: For messages: the resource name and file, or where the subscription came from.
    where: str = ""

    def describe(self) -> dict[str, Any]:
        """The entry of `GET /v1.0/metadata` `subscriptions` (daprd's shape)."""
        rules = [{"match": r.match, "path": r.path} for r in self.rules]
        if self.default_route:
            rules.append({"match": "", "path": self.default_route})
        entry: dict[str, Any] = {
            "pubsubname": self.pubsubname,
            "topic": self.topic,
            "deadLetterTopic": self.dead_letter_topic or "",
            "type": self.kind.value,
        }
        if self.metadata:
            entry["metadata"] = dict(self.metadata)
        if rules:
            entry["rules"] = [{k: v for k, v in r.items() if v} for r in rules]
        return entry


def from_resource(sub: Subscription, app_id: str) -> TopicSubscription:
    return TopicSubscription(
        app_id=app_id,
        kind=Kind.DECLARATIVE,
        pubsubname=sub.pubsubname,
        topic=sub.topic,
        rules=sub.rules,
        default_route=sub.default_route,
        dead_letter_topic=sub.dead_letter_topic,
        bulk=sub.bulk_subscribe,
        metadata=dict(sub.metadata),
        where=f"Subscription '{sub.name}'" + (f" ({sub.source})" if sub.source else ""),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def from_programmatic(
    items: Any, app_id: str, routes_optional: bool = False
) -> list[TopicSubscription]:
    """Parse the app's `/dapr/subscribe` answer; entries that make no sense are logged and
    skipped (daprd skips entries without routes the same way). With `routes_optional` (gRPC
    apps), an entry without routes gets the empty path, as daprd gives it."""
    if not isinstance(items, list):
        if items is not None:
            log.warning("app %s: /dapr/subscribe did not return a list; ignored", app_id)
        return []
    found: list[TopicSubscription] = []
    for index, item in enumerate(items):
        where = f"app '{app_id}' /dapr/subscribe[{index}]"
        if not isinstance(item, dict):
            log.warning("%s is not an object; skipped", where)
            continue
        pubsub, topic = _text(item.get("pubsubname")), _text(item.get("topic"))
        routes = _obj(item.get("routes"))
        rules = tuple(
            RouteRule(_text(r.get("match")), _text(r.get("path")))
            for r in routes.get("rules") or []
            if isinstance(r, dict) and _text(r.get("path"))
        )
        default = _text(routes.get("default")) or _text(item.get("route")) or None
        if default is None and not rules and routes_optional:
            default = ""
        if not pubsub or not topic or (not rules and default is None):
            log.warning("%s needs pubsubname, topic and a route; skipped", where)
            continue
        bulk = _obj(item.get("bulkSubscribe"))
        metadata = _obj(item.get("metadata"))
        found.append(
            TopicSubscription(
                app_id=app_id,
                kind=Kind.PROGRAMMATIC,
                pubsubname=pubsub,
                topic=topic,
                rules=rules,
                default_route=default,
                dead_letter_topic=_text(item.get("deadLetterTopic")) or None,
                bulk=_bulk(bulk),
                metadata={str(k): str(v) for k, v in metadata.items()},
                where=f"{where} ({pubsub}/{topic})",
            )
        )
    return found


def _bulk(raw: Mapping[str, Any]) -> BulkSubscribe:
    default = BulkSubscribe()
    count = raw.get("maxMessagesCount")
    wait = raw.get("maxAwaitDurationMs")
    return BulkSubscribe(
        enabled=raw.get("enabled") is True,
        max_messages_count=(
            count if isinstance(count, int) and count > 0 else default.max_messages_count
        ),
        max_await_duration_ms=(
            wait if isinstance(wait, int) and wait >= 0 else default.max_await_duration_ms
        ),
    )
