"""The runtime's metrics, one class per part that reports them (the workflow engine's are in
`tether.workflow.metrics`). docs/operations.md lists them all with their labels.

Each class registers its families on the registry it is given (a private one when none is, so
that parts built on their own, in tests, need no registry), and hands out series for the label
values it knows, so that callers on hot paths look them up once. Label values are bounded:
App IDs and component names by what the operator registered, routes by the route table,
statuses by HTTP and gRPC; topics, which apps choose, by `TOPIC_LABELS`.
"""

from __future__ import annotations

import asyncio

from tether import errors
from tether.metrics import Bounded, Counter, CounterSeries, HistogramSeries, Registry

#: Distinct topics that get their own label value; later topics are counted as `_other`.
TOPIC_LABELS = 100
#: The `app_id` of an invocation whose target is not a registered App ID.
UNKNOWN_APP = "_unknown"


class ApiMetrics:
    """Dapr API requests, HTTP and gRPC: `transport`, `api` (building block), `route` (the
    HTTP route template with its method, or the gRPC method) and `status` (the HTTP status or
    the gRPC code's name)."""

    def __init__(self, registry: Registry | None = None) -> None:
        registry = registry or Registry()
        labels = ("transport", "api", "route", "status")
        self.requests = registry.counter(
            "tether_api_requests_total", "Dapr API requests, counted when answered.", labels
        )
        self.duration = registry.histogram(
            "tether_api_request_duration_seconds",
            "Time from a Dapr API request's arrival to its answer (a stream's: to its end).",
            labels,
        )

    def series(
        self, transport: str, api: str, route: str, status: str
    ) -> tuple[CounterSeries, HistogramSeries]:
        return (
            self.requests.labels(transport, api, route, status),
            self.duration.labels(transport, api, route, status),
        )


class DeliveryMeter:
    """The delivery series of one subscription; one per running subscription."""

    __slots__ = ("_counter", "_duration", "_labels", "_outcomes")

    def __init__(self, metrics: PubSubMetrics, app_id: str, pubsub: str, topic: str) -> None:
        self._labels = (app_id, pubsub, metrics.topic(topic))
        self._counter = metrics.deliveries
        self._duration = metrics.delivery_duration.labels(*self._labels)
        self._outcomes: dict[str, CounterSeries] = {}

    def record(self, outcome: str, seconds: float) -> None:
        series = self._outcomes.get(outcome)
        if series is None:
            series = self._outcomes[outcome] = self._counter.labels(*self._labels, outcome)
        series.inc()
        self._duration.observe(seconds)


class PubSubMetrics:
    """Messages published and delivered, by pubsub component and topic (see `TOPIC_LABELS`)."""

    def __init__(self, registry: Registry | None = None) -> None:
        registry = registry or Registry()
        self.published = registry.counter(
            "tether_pubsub_published_total",
            "Messages handed to a broker by the publish APIs: result success (the broker "
            "stored it) or failure.",
            ("pubsub", "topic", "result"),
        )
        self.deliveries = registry.counter(
            "tether_pubsub_deliveries_total",
            "Broker messages settled for a subscriber, by what became of them.",
            ("app_id", "pubsub", "topic", "outcome"),
        )
        self.delivery_duration = registry.histogram(
            "tether_pubsub_delivery_duration_seconds",
            "Time from a message reaching its subscription (with the subscriber ready) to its "
            "outcome, retries included.",
            ("app_id", "pubsub", "topic"),
        )
        #: Shared by publishing and delivery, so that a topic has one label value in both.
        self.topic = Bounded(TOPIC_LABELS)

    def publish(self, pubsub: str, topic: str, stored: int, failed: int = 0) -> None:
        topic = self.topic(topic)
        if stored:
            self.published.labels(pubsub, topic, "success").inc(stored)
        if failed:
            self.published.labels(pubsub, topic, "failure").inc(failed)

    def delivery(self, app_id: str, pubsub: str, topic: str) -> DeliveryMeter:
        return DeliveryMeter(self, app_id, pubsub, topic)


class JobMetrics:
    """Occurrences of scheduled jobs, per App ID, as this runtime handled them."""

    def __init__(self, registry: Registry | None = None) -> None:
        registry = registry or Registry()

        def counter(name: str, help: str) -> Counter:
            return registry.counter(name, help, ("app_id",))

        self.claimed = counter(
            "tether_jobs_claimed_total", "Due job occurrences this runtime claimed to deliver."
        )
        self.delivered = counter("tether_jobs_delivered_total", "Job occurrences the app accepted.")
        self.retries = counter(
            "tether_jobs_retries_total",
            "Failed job deliveries that are retried per the job's failure policy.",
        )
        self.dropped = counter(
            "tether_jobs_dropped_total",
            "Job occurrences given up after the failure policy's last attempt.",
        )
        self.redelivered = counter(
            "tether_jobs_redelivered_total",
            "Job occurrences taken over from a runtime whose lease expired before it "
            "delivered them.",
        )


class InvocationMetrics:
    """Service invocations (the invocation API and gRPC proxying), by target App ID."""

    def __init__(self, registry: Registry | None = None) -> None:
        registry = registry or Registry()
        self.calls = registry.counter(
            "tether_invocations_total",
            "Service invocations by target App ID, kind (invoke: the invocation API; proxy: "
            "gRPC proxying) and outcome.",
            ("app_id", "kind", "outcome"),
        )
        self.duration = registry.histogram(
            "tether_invocation_duration_seconds",
            "Time service invocations took, retries included, by target App ID.",
            ("app_id", "kind"),
        )

    def record(self, app_id: str, kind: str, outcome: str, seconds: float) -> None:
        self.calls.labels(app_id, kind, outcome).inc()
        self.duration.labels(app_id, kind).observe(seconds)


def invocation_outcome(exc: BaseException) -> str:
    """The `outcome` of an invocation that failed without an answer from the app."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, errors.CircuitOpen):
        return "circuit_open"
    if isinstance(exc, errors.InvokeTimedOut):
        return "timeout"
    if isinstance(exc, errors.DirectInvokeFailed):
        return "unavailable"
    if isinstance(exc, errors.TetherError):
        return "rejected"
    return "error"


class ResiliencyMetrics:
    """Retries and circuit breakers of resiliency policies, by the policy's target: `kind` app
    (`target` an App ID) or component_inbound / component_outbound (a component name)."""

    def __init__(self, registry: Registry | None = None) -> None:
        registry = registry or Registry()
        self.retries = registry.counter(
            "tether_resiliency_retries_total",
            "Attempts retried under a resiliency retry policy.",
            ("kind", "target"),
        )
        self.opened = registry.counter(
            "tether_resiliency_circuit_breaker_opened_total",
            "Circuit breakers that opened (tripped, or failed again while half-open).",
            ("kind", "target"),
        )


class ComponentMetrics:
    """The component host's loads, by component type (`state.redis`, ...)."""

    def __init__(self, registry: Registry | None = None) -> None:
        registry = registry or Registry()
        self.reloads = registry.counter(
            "tether_component_reloads_total",
            "Components replaced by a changed definition while the server ran.",
            ("type",),
        )
        self.failures = registry.counter(
            "tether_component_load_failures_total",
            "Component builds that failed (secrets, metadata, init), at start or on a reload.",
            ("type",),
        )


class Metrics:
    """All of the runtime's metrics on one registry; `Runtime.metrics`."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        self.api = ApiMetrics(self.registry)
        self.pubsub = PubSubMetrics(self.registry)
        self.jobs = JobMetrics(self.registry)
        self.invocations = InvocationMetrics(self.registry)
        self.resiliency = ResiliencyMetrics(self.registry)
        self.components = ComponentMetrics(self.registry)
