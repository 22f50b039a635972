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


@dataclass(slots=True)
class AppResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class AppChannel(Protocol):
    """Calls from the runtime into one app (HTTP or gRPC, per the App ID's settings)."""

    app_id: str

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
    ) -> AppResponse:
        """Service invocation and any other request into the app's own routes."""

    async def subscriptions(self) -> list[dict[str, Any]]:
        """The app's programmatic subscriptions (`GET /dapr/subscribe`, or gRPC
        `ListTopicSubscriptions`), as Dapr's JSON shape."""

    async def deliver_event(
        self, route: str, envelope: Mapping[str, Any], raw: bytes, headers: Mapping[str, str]
    ) -> str:
        """Deliver one pub/sub message; returns SUCCESS, RETRY or DROP."""

    async def deliver_binding(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        """Deliver an input binding event; True when the app accepted it."""

    async def deliver_job(self, name: str, data: Any) -> bool:
        """Fire a scheduled job at the app; True when the app accepted it."""


class AppRegistry(Protocol):
    """The App IDs this runtime serves: tokens, app endpoints, channels."""

    def channel(self, app_id: str) -> AppChannel | None:
        """The channel into the app, or None when the App ID has no app endpoint."""

    def app_ids(self) -> list[str]: ...
