"""Tether's management API for App IDs, under /v1.0-tether/apps.

`POST` registers (or replaces) an App ID: `{appID, appPort?, appProtocol?, appChannelAddress?,
appToken?, apiToken?, appHealthCheck?, maxBodySize?}` -> `{appID, apiToken}`; a token is generated
when none is given (or the App ID keeps the one it had). `GET` lists them (never their tokens);
`DELETE /v1.0-tether/apps/{id}` removes one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether.config import AppConfig
from tether.runtime.apps import from_doc, to_doc
from tether.runtime.context import Runtime
from tether.runtime.http.app import json_body, read_body

PREFIX = "/v1.0-tether/apps"


def app_routes(rt: Runtime) -> list[BaseRoute]:
    def view(cfg: AppConfig) -> dict[str, Any]:
        doc = to_doc(cfg)
        channel = rt.apps.channel(cfg.app_id)
        doc["healthy"] = channel.healthy if channel is not None else None
        doc["source"] = "flags" if rt.apps.from_flags(cfg.app_id) else "api"
        return doc

    async def register(request: Request) -> Response:
        doc = json_body(await read_body(request, 1024 * 1024))
        cfg = await rt.apps.register(from_doc(doc))
        return JSONResponse({"appID": cfg.app_id, "apiToken": cfg.api_token}, status_code=201)

    async def listing(request: Request) -> Response:
        return JSONResponse({"apps": [view(cfg) for cfg in rt.apps.registrations()]})

    async def remove(request: Request) -> Response:
        await rt.apps.unregister(request.path_params["app_id"])
        return Response(status_code=204)

    return [
        Route(PREFIX, register, methods=["POST"]),
        Route(PREFIX, listing, methods=["GET"]),
        Route(PREFIX + "/{app_id}", remove, methods=["DELETE"]),
    ]
