"""Counting and timing every HTTP request by building block, route template and status.

An ASGI middleware outside the admin gate, so that refused management calls count too; it reads
the route the router matched (`scope["route"]`) once the request is answered, so the `route`
label is the template (`GET /v1.0/state/{store}/{key}`), never the raw path. A request no route
took (404, a refusal by the admin gate) counts as route `(unrouted)`, under the building block
its path prefix names.
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.metrics import CounterSeries, HistogramSeries
from tether.runtime.metrics import ApiMetrics

UNROUTED = "(unrouted)"
_VERBS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
#: Path segment after the API version -> building block.
_BLOCKS = {
    "state": "state",
    "publish": "pubsub",
    "subscribe": "pubsub",
    "invoke": "invoke",
    "jobs": "jobs",
    "workflows": "workflows",
    "secrets": "secrets",
    "configuration": "configuration",
    "lock": "lock",
    "unlock": "lock",
    "bindings": "bindings",
    "metadata": "metadata",
    "healthz": "health",
    "actors": "actors",
    "conversation": "conversation",
    "crypto": "crypto",
    "shutdown": "lifecycle",
}
_CONVERTER = re.compile(r"\{(\w+):\w+\}")
_clock = time.perf_counter


def building_block(path: str) -> str:
    """The building block a path (or route template) belongs to: a value from a fixed set."""
    parts = path.split("/", 3)
    first = parts[1] if len(parts) > 1 else ""
    if first == "v1.0-tether":
        return "management"
    if first == "metrics":
        return "metrics"
    if first.startswith("v1.0") and len(parts) > 2:
        return _BLOCKS.get(parts[2], "other")
    return "other"


def route_label(route: Any, verb: str) -> tuple[str, str]:
    """(api, route) for a matched route: its template with the method, converters left out.
    A route without a path (invocation by `dapr-app-id` header) names what it is instead."""
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "invoke", f"{verb} /{{method}} (dapr-app-id)"
    template = _CONVERTER.sub(r"{\1}", path)
    return building_block(path), f"{verb} {template}"


class RequestMetrics:
    """ASGI middleware recording each HTTP request in `ApiMetrics` once it is answered."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # By (id of the route or its path's block, method, status): a dict lookup per request.
        self._series: dict[tuple[Any, str, int], tuple[CounterSeries, HistogramSeries]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # What the client gets when the app raises before answering (ServerErrorMiddleware).
        status = 500

        async def answering(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = _clock()
        try:
            await self.app(scope, receive, answering)
        finally:
            elapsed = _clock() - start
            route = scope.get("route")
            verb = scope["method"]
            if verb not in _VERBS:
                verb = "OTHER"
            # Routes live as long as the app: their ids are stable keys.
            key = (id(route) if route is not None else building_block(scope["path"]), verb, status)
            series = self._series.get(key)
            if series is None:
                series = self._add(key, route, verb, status)
            series[0].inc()
            series[1].observe(elapsed)

    def _add(
        self, key: tuple[Any, str, int], route: Any, verb: str, status: int
    ) -> tuple[CounterSeries, HistogramSeries]:
        if route is None:
            api, label = str(key[0]), UNROUTED
        else:
            api, label = route_label(route, verb)
        series = self.metrics.series("http", api, label, str(status))
        self._series[key] = series
        return series
