"""The declarative `Subscription` resource (`dapr.io/v2alpha1`, and v1alpha1's single `route`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.resources._fields import Node


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Deliver events for which the CEL expression `match` holds to `path`."""

    match: str
    path: str


@dataclass(frozen=True, slots=True)
class BulkSubscribe:
    """Deliver events in batches of up to `max_messages_count`, waiting at most the given time."""

    enabled: bool = False
    #: Dapr's default batch size.
    max_messages_count: int = 100
    #: Dapr's default wait for a batch to fill, in milliseconds.
    max_await_duration_ms: int = 1000


@dataclass(frozen=True, slots=True)
class Subscription:
    """Deliver `topic` of pub/sub `pubsubname` to the scoped apps' routes."""

    name: str
    pubsubname: str
    topic: str
    #: Tried in order; the first whose `match` holds wins.
    rules: tuple[RouteRule, ...] = ()
    #: Where events that match no rule go; None drops them.
    default_route: str | None = None
    dead_letter_topic: str | None = None
    bulk_subscribe: BulkSubscribe = field(default_factory=BulkSubscribe)
    #: Subscription metadata passed to the broker (e.g. `rawPayload`).
    metadata: dict[str, str] = field(default_factory=dict)
    #: App IDs that subscribe; empty means every App ID.
    scopes: tuple[str, ...] = ()
    source: str = ""

    def route_paths(self) -> tuple[str, ...]:
        """Every path events may be delivered to."""
        paths = tuple(rule.path for rule in self.rules)
        return (*paths, self.default_route) if self.default_route else paths


def parse_subscription(doc: Node, name: str) -> Subscription:
    spec = doc.require("spec")
    rules: list[RouteRule] = []
    default: str | None = None
    routes = spec.get("routes")
    if routes is not None:
        rule_nodes = routes.get("rules")
        for rule in rule_nodes.elements() if rule_nodes is not None else []:
            match = rule.get("match")
            rules.append(
                RouteRule(match.text() if match is not None else "", rule.require("path").string())
            )
        default_node = routes.get("default")
        default = default_node.string() if default_node is not None else None
    route = spec.get("route")
    if route is not None:
        if default is not None:
            route.fail("give either 'route' or 'routes.default', not both")
        default = route.string()
    if not rules and default is None:
        (routes or spec).fail(
            "no route: set 'routes.default' or 'routes.rules' ('route' in v1alpha1)"
        )
    dead_letter = spec.get("deadLetterTopic")
    metadata = spec.get("metadata")
    scopes = doc.get("scopes")
    return Subscription(
        name=name,
        pubsubname=spec.require("pubsubname").string(),
        topic=spec.require("topic").string(),
        rules=tuple(rules),
        default_route=default,
        dead_letter_topic=dead_letter.string() if dead_letter is not None else None,
        bulk_subscribe=_bulk(spec.get("bulkSubscribe")),
        metadata={k: v.text() for k, v in metadata.items()} if metadata is not None else {},
        scopes=scopes.strings() if scopes is not None else (),
        source=doc.source,
    )


def _bulk(node: Node | None) -> BulkSubscribe:
    if node is None:
        return BulkSubscribe()
    default = BulkSubscribe()
    enabled = node.get("enabled")
    count = node.get("maxMessagesCount")
    wait = node.get("maxAwaitDurationMs")
    return BulkSubscribe(
        enabled=enabled.boolean() if enabled is not None else False,
        max_messages_count=count.integer(1) if count is not None else default.max_messages_count,
        max_await_duration_ms=(
            wait.integer(0) if wait is not None else default.max_await_duration_ms
        ),
    )
