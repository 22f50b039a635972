"""Dapr's HTTP service invocation API: `* /v1.0/invoke/{appId}/method/{method}`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tether.runtime.api.invoke import Invocation, InvokeApi
from tether.runtime.context import Runtime
from tether.runtime.http.app import read_body

VERBS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]


def invoke_routes(rt: Runtime) -> list[BaseRoute]:
    api = InvokeApi(rt.apps, rt.resiliency)

    async def invoke(request: Request) -> Response:
        caller = rt.callers.app_for_token(request.headers.get("dapr-api-token"))
        target = request.path_params["app_id"]
        body = await read_body(request, api.body_limit(caller, target))
        answer = await api.invoke(
            caller,
            Invocation(
                target=target,
                method=request.path_params["method"],
                verb=request.method,
                body=body,
                headers=dict(request.headers),
                query=request.url.query,
            ),
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        if answer.content_type and not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = answer.content_type
        return Response(answer.body, status_code=answer.status, headers=headers)

    return [Route("/v1.0/invoke/{app_id}/method/{method:path}", invoke, methods=VERBS)]
