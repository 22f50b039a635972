"""The runtime's shared parts, handed to every transport adapter."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tether import __version__
from tether.admin import Access
from tether.config import ServerConfig
from tether.runtime.apps import Apps
from tether.runtime.callers import Callers
from tether.runtime.components import NoComponents
from tether.runtime.contracts import ComponentHost
from tether.runtime.jobs import Scheduler
from tether.runtime.metrics import Metrics
from tether.runtime.pubsub.manager import PubSubManager
from tether.runtime.resiliency import Resiliencies
from tether.workflow.service import WorkflowService


@dataclass(slots=True)
class Runtime:
    config: ServerConfig
    callers: Callers
    workflows: WorkflowService
    #: The App IDs served and the channels into their apps.
    apps: Apps
    #: The Jobs API's scheduler.
    jobs: Scheduler
    #: What the management API (/v1.0-tether/...) requires of its callers.
    admin: Access
    ready: bool = False
    started: float = field(default_factory=time.time)
    #: Resiliency policies in force (replaced whole when resources are (re)loaded).
    resiliency: Resiliencies = field(default_factory=Resiliencies)
    #: Pub/sub subscriptions and deliveries; None until the server starts them.
    pubsub: PubSubManager | None = None
    #: The live components (state stores, secret stores, bindings, ...) by name and scope.
    components: ComponentHost = field(default_factory=NoComponents)
    #: The server's metrics (the workflow engine's share the registry); `GET /metrics`.
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        # Gauges of state the parts keep anyway, read when scraped rather than kept in step.
        # They read the attributes at scrape time: parts assigned later are seen.
        gauge = self.metrics.registry.gauge
        gauge(
            "tether_uptime_seconds",
            "Seconds since the server started.",
            collect=lambda: {(): round(time.time() - self.started, 3)},
        )
        gauge(
            "tether_app_healthy",
            "1 while an App ID's app passes its health checks, else "
            "0 (App IDs with an app endpoint).",
            ("app_id",),
            collect=self._app_health,
        )
        gauge(
            "tether_components_loaded",
            "Components serving, by type.",
            ("type",),
            collect=lambda: Counter((s.type,) for s in self.components.specs()),
        )
        gauge(
            "tether_resiliency_circuit_breakers",
            "Circuit breakers by state, per policy target.",
            ("kind", "target", "state"),
            collect=lambda: self.resiliency.breaker_states(),
        )
        gauge(
            "tether_pubsub_subscriptions",
            "Running subscriptions, by subscriber App ID, "
            "pubsub and kind (declarative, programmatic, streaming).",
            ("app_id", "pubsub", "kind"),
            collect=lambda: self.pubsub.counts() if self.pubsub is not None else {},
        )

    def _app_health(self) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for app_id in self.apps.app_ids():
            channel = self.apps.channel(app_id)
            if channel is not None:
                out[(app_id,)] = 1.0 if channel.healthy else 0.0
        return out

    def metadata(self, app_id: str) -> dict[str, Any]:
        """The Dapr metadata document for the calling App ID."""
        from tether.runtime.api.metadata import component_entries

        streams = self.workflows.engine.dispatcher.streams(app_id)
        return {
            "id": app_id,
            "runtimeVersion": f"tether-{__version__}",
            "enabledFeatures": [],
            "actors": [],
            "components": [
                {
                    "name": "dapr",
                    "type": "workflow.tether",
                    "version": "v1",
                    "capabilities": [],
                },
                *component_entries(self.components, app_id),
            ],
            "extended": {
                "workflowStore": self.workflows.store.kind,
                "connectedWorkers": str(len(streams)),
            },
            "subscriptions": self.pubsub.describe(app_id) if self.pubsub is not None else [],
            "httpEndpoints": [],
            "appConnectionProperties": self._app_connection(app_id),
        }

    def _app_connection(self, app_id: str) -> dict[str, Any]:
        cfg = self.apps.get(app_id)
        if cfg is None or cfg.port is None:
            return {}
        props: dict[str, Any] = {
            "port": cfg.port,
            "protocol": cfg.protocol,
            "channelAddress": cfg.address,
            "maxRequestBodySize": cfg.max_body_bytes or self.config.max_request_bytes,
        }
        if cfg.health is not None:
            props["health"] = {
                "healthCheckPath": cfg.health.path,
                "healthProbeInterval": f"{cfg.health.interval:g}s",
                "healthProbeTimeout": f"{cfg.health.timeout * 1000:g}ms",
                "healthThreshold": cfg.health.threshold,
            }
        return props

    def metrics_text(self) -> str:
        """Every metric in the Prometheus text exposition format."""
        return self.metrics.registry.render()
