"""Dapr's HTTP secrets API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether.runtime.api.secrets import SecretsApi
from tether.runtime.context import Runtime
from tether.runtime.http.state import request_metadata


def secret_routes(rt: Runtime) -> list[BaseRoute]:
    api = SecretsApi(rt.components)

    def caller(request: Request) -> str:
        return rt.callers.app_for_token(request.headers.get("dapr-api-token"))

    async def bulk(request: Request) -> Response:
        app_id = caller(request)
        secrets = await api.bulk_get(
            app_id, request.path_params["store"], request_metadata(request)
        )
        return JSONResponse(secrets)

    async def get(request: Request) -> Response:
        app_id = caller(request)
        p = request.path_params
        secret = await api.get(app_id, p["store"], p["name"], request_metadata(request))
        return JSONResponse(secret)

    return [
        Route("/v1.0/secrets/{store}/bulk", bulk, methods=["GET"]),
        Route("/v1.0/secrets/{store}/{name:path}", get, methods=["GET"]),
    ]
