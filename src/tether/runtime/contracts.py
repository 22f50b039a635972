"""The seams between runtime parts that are built separately: the component host and the apps.

Transports and building blocks depend on these protocols, not on each other's classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tether.resources.component import ComponentSpec
from tether.resources.subscription import Subscription


class ComponentHost(Protocol):
    """Holds the live components built from Component resources, per name, with their scopes."""

    def find(self, kind: str, name: str, app_id: str) -> Any | None:
        """The component of building block `kind` (`state`, `pubsub`, ...) called `name` that
        `app_id` may use, or None if there is none or its scopes exclude the App ID."""

    def specs(self, app_id: str | None = None) -> list[ComponentSpec]:
        """Loaded component specs (only those visible to `app_id` when given)."""

    def subscriptions(self, app_id: str) -> list[Subscription]:
        """Loaded `Subscription` resources whose scopes include `app_id` (declarative
        pub/sub subscriptions); the list changes when resources are reloaded."""


#: What daprd calls data that is a packed protobuf message (it has a type URL) over HTTP.
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"


@dataclass(slots=True)
class AppResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    #: The type URL of the `Any` a gRPC app answered with ("" for raw bytes and HTTP apps).
    type_url: str = ""

    @property
    def http_content_type(self) -> str:
        """The content type an HTTP caller sees: daprd reports a packed protobuf message as
        `application/x-protobuf`, whatever content type the app gave with it."""
        return PROTOBUF_CONTENT_TYPE if self.type_url else self.content_type


@dataclass(frozen=True, slots=True)
class BulkEntry:
    """One event of a bulk delivery."""

    entry_id: str
    #: The CloudEvent as a one-by-one delivery would carry it.
    event: Mapping[str, Any]
    #: The headers a one-by-one delivery of this event would send.
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class BulkBatch:
    """Events of one bulk subscription for one route, delivered in one call."""

    id: str
    #: The CloudEvent type of the batch (`com.dapr.event.sent.bulk`).
    type: str
    pubsub: str
    topic: str
    path: str
    entries: tuple[BulkEntry, ...]
    #: The subscription takes raw payloads: entries carry the bytes, not the CloudEvent.
    raw: bool = False


class AppChannel(Protocol):
    """Calls from the runtime into one app (HTTP or gRPC, per the App ID's settings)."""

    app_id: str
    #: Whether a programmatic subscription may name no route: gRPC events carry their topic,
    #: so a gRPC app dispatches on it (the SDK's `@app.subscribe` sends no route at all).
    routes_optional: bool

    @property
    def healthy(self) -> bool:
        """False while the app's health checks fail: deliveries pause until it recovers."""

    async def invoke(
        self,
        method: str,
        verb: str,
        body: bytes,
        headers: Mapping[str, str],
        query: str = "",
        timeout: float | None = None,
        type_url: str = "",
    ) -> AppResponse:
        """Service invocation and any other request into the app's own routes. `type_url` is
        that of a caller's packed protobuf body (gRPC callers), kept for gRPC apps."""

    async def subscriptions(self) -> list[dict[str, Any]]:
        """The app's programmatic subscriptions (`GET /dapr/subscribe`, or gRPC
        `ListTopicSubscriptions`), as Dapr's JSON shape."""

    async def deliver_event(
        self, route: str, envelope: Mapping[str, Any], raw: bytes, headers: Mapping[str, str]
    ) -> str:
        """Deliver one pub/sub message; returns SUCCESS, RETRY or DROP."""

    async def deliver_bulk(self, batch: BulkBatch, headers: Mapping[str, str]) -> dict[str, str]:
        """Deliver a bulk batch; returns SUCCESS, RETRY or DROP per entry id (an entry the app
        did not answer for is RETRY). Raises a `TetherError` when the app cannot be reached."""

    async def deliver_binding(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        """Deliver an input binding event; True when the app accepted it."""

    async def deliver_job(self, name: str, data: Any) -> bool:
        """Fire a scheduled job at the app; True when the app accepted it."""


class AppRegistry(Protocol):
    """The App IDs this runtime serves: tokens, app endpoints, channels."""

    def channel(self, app_id: str) -> AppChannel | None:
        """The channel into the app, or None when the App ID has no app endpoint."""

    def app_ids(self) -> list[str]: ...
