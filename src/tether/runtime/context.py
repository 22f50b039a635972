"""The runtime's shared parts, handed to every transport adapter."""

from __future__ import annotations

import time
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
        """Prometheus exposition of the engine's counters and gauges."""
        engine = self.workflows.engine
        lines = []
        for key, value in sorted(engine.stats.items()):
            name = f"tether_workflow_{key}_total"
            lines += [f"# TYPE {name} counter", f"{name} {value}"]
        gauges = {
            "tether_workflow_cached_instances": len(engine._live),
            "tether_workflow_outstanding_work_items": len(engine.dispatcher.leases()),
            "tether_workflow_pending_timers": len(engine.timers),
            "tether_uptime_seconds": round(time.time() - self.started, 3),
        }
        for name, gauge in gauges.items():
            lines += [f"# TYPE {name} gauge", f"{name} {gauge}"]
        return "\n".join(lines) + "\n"
