"""The runtime's shared parts, handed to every transport adapter."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tether import __version__
from tether.config import ServerConfig
from tether.runtime.callers import Callers
from tether.workflow.service import WorkflowService


@dataclass(slots=True)
class Runtime:
    config: ServerConfig
    callers: Callers
    workflows: WorkflowService
    ready: bool = False
    started: float = field(default_factory=time.time)

    def metadata(self, app_id: str) -> dict[str, Any]:
        """The Dapr metadata document for the calling App ID."""
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
                }
            ],
            "extended": {
                "workflowStore": self.workflows.store.kind,
                "connectedWorkers": str(len(streams)),
            },
            "subscriptions": [],
            "httpEndpoints": [],
            "appConnectionProperties": {},
        }

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
