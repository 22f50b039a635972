"""The workflow engine's metrics (docs/operations.md lists every metric)."""

from __future__ import annotations

from collections.abc import Callable

from tether.metrics import Collect, Registry


class WorkflowMetrics:
    """Counters the engine keeps, and gauges read from it at scrape time."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry = registry or Registry()
        self.turns = registry.counter(
            "tether_workflow_turns_total", "Workflow turns committed."
        ).labels()
        self.activities_completed = registry.counter(
            "tether_workflow_activities_completed_total", "Activity results recorded."
        ).labels()
        self.instances_started = registry.counter(
            "tether_workflow_instances_started_total", "Workflow instances started."
        ).labels()
        self.worker_errors = registry.counter(
            "tether_workflow_worker_errors_total",
            "Work item results a worker sent that could not be applied.",
        ).labels()

    def watch(
        self,
        cached: Callable[[], int],
        outstanding: Callable[[], int],
        timers: Callable[[], int],
    ) -> None:
        """Report the engine's sizes: instances cached, work items out, timers pending."""
        gauges = (
            ("tether_workflow_cached_instances", "Workflow instances held in memory.", cached),
            ("tether_workflow_outstanding_work_items",
             "Work items sent to workers and not completed yet.", outstanding),
            ("tether_workflow_pending_timers", "Durable timers waiting to fire.", timers),
        )  # fmt: skip
        for name, help, read in gauges:
            self.registry.gauge(name, help, collect=_single(read))


def _single(read: Callable[[], int]) -> Collect:
    return lambda: {(): float(read())}
