"""Dapr's HTTP workflow API, served identically under /v1.0, /v1.0-beta1 and /v1.0-alpha1."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether.runtime.api.workflows import WorkflowApi
from tether.runtime.context import Runtime
from tether.runtime.http.app import read_body

VERSIONS = ("v1.0", "v1.0-beta1", "v1.0-alpha1")


def workflow_routes(rt: Runtime) -> list[BaseRoute]:
    api = WorkflowApi(rt.workflows)
    limit = rt.config.max_request_bytes

    def caller(request: Request) -> str:
        return rt.callers.app_for_token(request.headers.get("dapr-api-token"))

    async def start(request: Request) -> Response:
        app_id = caller(request)
        p = request.path_params
        body = await read_body(request, limit)
        iid = await api.start(
            app_id, p["component"], p["name"], request.query_params.get("instanceID"), body
        )
        return JSONResponse({"instanceID": iid}, status_code=202)

    async def get(request: Request) -> Response:
        caller(request)
        p = request.path_params
        view = await api.get(p["component"], p["id"])
        return JSONResponse(
            {
                "instanceID": view.instance_id,
                "workflowName": view.name,
                "createdAt": view.created_at.isoformat().replace("+00:00", "Z"),
                "lastUpdatedAt": view.updated_at.isoformat().replace("+00:00", "Z"),
                "runtimeStatus": view.status,
                "properties": view.properties,
            }
        )

    async def raise_event(request: Request) -> Response:
        caller(request)
        p = request.path_params
        body = await read_body(request, limit)
        await api.raise_event(p["component"], p["id"], p["event"], body)
        return Response(status_code=202)

    def simple(op: str):  # type: ignore[no-untyped-def]
        async def handler(request: Request) -> Response:
            caller(request)
            p = request.path_params
            await getattr(api, op)(p["component"], p["id"])
            return Response(status_code=202)

        return handler

    routes: list[BaseRoute] = []
    for v in VERSIONS:
        base = f"/{v}/workflows/{{component}}"
        routes += [
            Route(f"{base}/{{name}}/start", start, methods=["POST"]),
            Route(f"{base}/{{id}}", get, methods=["GET"]),
            Route(f"{base}/{{id}}/raiseEvent/{{event}}", raise_event, methods=["POST"]),
            Route(f"{base}/{{id}}/terminate", simple("terminate"), methods=["POST"]),
            Route(f"{base}/{{id}}/purge", simple("purge"), methods=["POST"]),
            Route(f"{base}/{{id}}/pause", simple("pause"), methods=["POST"]),
            Route(f"{base}/{{id}}/resume", simple("resume"), methods=["POST"]),
        ]
    return routes
