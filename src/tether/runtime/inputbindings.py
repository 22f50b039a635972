"""Input bindings: start each one the component host loads and deliver its events to the apps.

As daprd does per sidecar, an event goes to every App ID the component's scopes allow whose app
has a route for the binding (`OPTIONS /<route>` answered with anything but 404, or the binding
listed by gRPC `ListInputBindings`) and is healthy. The route is the component's `route` metadata
or its name. Deliveries run under the component's inbound resiliency policy; the handler tells
the binding whether any app accepted the event, and the binding decides what a refusal means.
"""

from __future__ import annotations

import logging

from tether.components.bindings.base import BindingEvent, InputBinding, InputHandler
from tether.resources.component import ComponentSpec
from tether.runtime.apps import Apps
from tether.runtime.components import Change, ComponentHost
from tether.runtime.resiliency import Resiliencies

log = logging.getLogger("tether.bindings")


class _Refused(Exception):
    pass


class InputBindings:
    def __init__(self, apps: Apps, resiliency: Resiliencies) -> None:
        self._apps = apps
        self._resiliency = resiliency

    def attach(self, host: ComponentHost) -> None:
        """Follow `host`; call before `host.start()` so that the first load is seen too."""
        host.on_change(self._changed)

    async def _changed(self, change: Change) -> None:
        for loaded in (*change.added, *change.updated):
            if isinstance(loaded.instance, InputBinding):
                await loaded.instance.start(self.handler(loaded.spec))
                log.info("input binding %s started", loaded.spec.name)

    def handler(self, spec: ComponentSpec) -> InputHandler:
        route = (spec.get("route") or spec.name).lstrip("/")

        async def deliver(event: BindingEvent) -> bool:
            accepted = False
            for app_id in self._apps.app_ids():
                if spec.allows(app_id) and await self._deliver_to(app_id, spec, route, event):
                    accepted = True
            return accepted

        return deliver

    async def _deliver_to(
        self, app_id: str, spec: ComponentSpec, route: str, event: BindingEvent
    ) -> bool:
        channel = self._apps.channel(app_id)
        if channel is None or not channel.healthy:
            return False
        subscribed = getattr(channel, "binding_subscribed", None)
        if subscribed is not None and not await subscribed(route):
            return False

        async def once() -> None:
            if not await channel.deliver_binding(route, event.data, event.metadata):
                raise _Refused(f"app {app_id} refused the event")

        try:
            await self._resiliency.policy_for_component(spec.name, "inbound").call(once)
        except Exception as exc:
            log.warning("input binding %s: delivery to %s failed: %s", spec.name, app_id, exc)
            return False
        return True
