"""Dapr's HTTP configuration API.

`subscribe` delivers each change into the app (`POST /configuration/<store>/<key>`), so it
needs the App ID's app channel; without one it fails as daprd does. Apps without an endpoint
use the gRPC `SubscribeConfiguration` stream instead (what the Python SDK does).
"""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import errors
from tether.components.configuration.base import ConfigItem
from tether.runtime.api.configuration import ConfigurationApi, item_json
from tether.runtime.context import Runtime
from tether.runtime.http.state import request_metadata

log = logging.getLogger("tether.configuration")
VERSIONS = ("v1.0", "v1.0-alpha1")


def configuration_routes(rt: Runtime) -> list[BaseRoute]:
    api = ConfigurationApi(rt.components)

    def caller(request: Request) -> str:
        return rt.callers.app_for_token(request.headers.get("dapr-api-token"))

    async def get(request: Request) -> Response:
        app_id = caller(request)
        keys = request.query_params.getlist("key")
        items = await api.get(app_id, request.path_params["store"], keys, request_metadata(request))
        if not items:
            return Response(status_code=204)
        return JSONResponse({k: item_json(v) for k, v in items.items()})

    async def subscribe(request: Request) -> Response:
        app_id = caller(request)
        store_name = request.path_params["store"]
        api.store(app_id, store_name)
        channel = rt.apps.channel(app_id)
        if channel is None:
            raise errors.AppChannelMissing(
                "app channel is not initialized. cannot subscribe to configuration updates"
            )

        async def deliver(sub_id: str, items: dict[str, ConfigItem]) -> None:
            body = json.dumps({"id": sub_id, "items": {k: item_json(v) for k, v in items.items()}})
            for key in items:
                resp = await channel.invoke(
                    f"configuration/{store_name}/{key}",
                    "POST",
                    body.encode(),
                    {"content-type": "application/json"},
                )
                if resp.status != 200:
                    log.error("app answered %s to a configuration update", resp.status)

        keys = request.query_params.getlist("key")
        _, sub_id = await api.subscribe(
            app_id, store_name, keys, request_metadata(request), deliver
        )
        return JSONResponse({"id": sub_id})

    async def unsubscribe(request: Request) -> Response:
        app_id = caller(request)
        p = request.path_params
        try:
            await api.unsubscribe(app_id, p["store"], p["id"])
        except errors.ConfigurationUnsubscribeFailed as exc:
            return JSONResponse({"ok": False, "message": exc.message}, status_code=500)
        return JSONResponse({"ok": True})

    routes: list[BaseRoute] = []
    for v in VERSIONS:
        base = f"/{v}/configuration/{{store}}"
        routes += [
            Route(base, get, methods=["GET"]),
            Route(f"{base}/subscribe", subscribe, methods=["GET"]),
            Route(f"{base}/{{id}}/unsubscribe", unsubscribe, methods=["GET"]),
        ]
    return routes
