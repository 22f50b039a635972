"""Dapr's HTTP pub/sub API: publish, bulk publish, and Tether's subscription refresh."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import errors
from tether.runtime.api.pubsub import BulkItem, PubSubApi, Trace, event_bytes
from tether.runtime.context import Runtime
from tether.runtime.http.app import read_body

_PREFIX = "metadata."


def request_metadata(request: Request) -> dict[str, str]:
    """`?metadata.<key>=<value>` query parameters, as daprd reads publish metadata."""
    return {
        key[len(_PREFIX) :]: value
        for key, value in request.query_params.items()
        if key.lower().startswith(_PREFIX) and len(key) > len(_PREFIX)
    }


def _trace(request: Request) -> Trace:
    return Trace(request.headers.get("traceparent", ""), request.headers.get("tracestate", ""))


def _bulk_items(raw: bytes, pubsub: str, topic: str) -> list[BulkItem]:
    def invalid(why: str) -> errors.PubSubEventsInvalid:
        return errors.PubSubEventsInvalid(
            f"error when unmarshaling the request for topic {topic} pubsub {pubsub}: {why}"
        )

    try:
        doc: Any = json.loads(raw) if raw.strip() else []
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    if not isinstance(doc, list):
        raise invalid("expected a JSON array of entries")
    items: list[BulkItem] = []
    for index, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise invalid(f"entry {index} is not an object")
        entry_id, content_type = entry.get("entryId", ""), entry.get("contentType", "")
        metadata = entry.get("metadata") or {}
        if not isinstance(entry_id, str) or not isinstance(content_type, str):
            raise invalid(f"entry {index}: entryId and contentType must be strings")
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise invalid(f"entry {index}: metadata must map strings to strings")
        try:
            event = event_bytes(entry.get("event"), content_type)
        except ValueError as exc:
            raise errors.PubSubEventsInvalid(
                f"error when marshalling cloud event envelope for topic {topic} pubsub "
                f"{pubsub}: entry {entry_id or index}: {exc}"
            ) from exc
        items.append(BulkItem(entry_id, event, content_type, metadata))
    return items


def pubsub_routes(rt: Runtime) -> list[BaseRoute]:
    api = PubSubApi(rt.components, rt.metrics.pubsub)

    def caller(request: Request) -> str:
        return rt.callers.app_for_token(request.headers.get("dapr-api-token"))

    def limit(app_id: str) -> int:
        return rt.apps.max_body(app_id)

    async def publish(request: Request) -> Response:
        app_id = caller(request)
        p = request.path_params
        body = await read_body(request, limit(app_id))
        await api.publish(
            app_id,
            p["pubsub"],
            p.get("topic", ""),
            body,
            request.headers.get("content-type", ""),
            request_metadata(request),
            _trace(request),
        )
        return Response(status_code=204)

    async def bulk_publish(request: Request) -> Response:
        app_id = caller(request)
        p = request.path_params
        to = api.target(app_id, p["pubsub"], p.get("topic", ""))
        body = await read_body(request, limit(app_id))
        items = _bulk_items(body, to.pubsub, to.topic)
        failed = await api.bulk_publish(to, items, request_metadata(request), _trace(request))
        if not failed:
            return Response(status_code=204)
        answer = {
            "failedEntries": [{"entryId": f.entry_id, "error": f.error} for f in failed],
            "errorCode": errors.PubSubPublishFailed.code,
        }
        return JSONResponse(answer, status_code=errors.PubSubPublishFailed.http_status)

    async def refresh(request: Request) -> Response:
        # Re-reads the app's /dapr/subscribe now: for apps that change their subscriptions
        # without restarting.
        if rt.pubsub is not None:
            await rt.pubsub.refresh(request.path_params["app_id"])
        return Response(status_code=204)

    routes: list[BaseRoute] = []
    for version in ("v1.0", "v1.0-alpha1"):
        base = f"/{version}/publish"
        if version != "v1.0":
            base += "/bulk"
        handler = publish if version == "v1.0" else bulk_publish
        routes += [
            Route(f"{base}/{{pubsub}}/{{topic:path}}", handler, methods=["POST"]),
            Route(f"{base}/{{pubsub}}", handler, methods=["POST"]),  # no topic: the 404 daprd gives
        ]
    routes.append(
        Route("/v1.0-tether/apps/{app_id}/subscriptions/refresh", refresh, methods=["POST"])
    )
    return routes
