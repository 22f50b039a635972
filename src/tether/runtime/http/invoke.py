"""Dapr's HTTP service invocation API: `* /v1.0/invoke/{appId}/method/{method}`, and the same
call addressed daprd's other way, `* /{method}` with a `dapr-app-id: <appId>` header (or basic
auth as user `dapr-app-id`, password the App ID), which is how SDKs pointed at
`DAPR_HTTP_ENDPOINT` and plain HTTP clients invoke.

The header route is tried last and only claims requests that carry the header and that no API
route matches, even by path alone: API routes are never shadowed, and a request without the
header gets the 404 (or 405) it always got.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route, request_response
from starlette.types import Receive, Scope, Send

from tether.runtime.api.invoke import Invocation, InvokeApi
from tether.runtime.context import Runtime
from tether.runtime.http.app import read_body

VERBS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]
APP_ID_HEADER = b"dapr-app-id"
#: Tether's own namespace: never an invocation, whatever the headers say.
_RESERVED = "/v1.0-tether"


def invoke_routes(rt: Runtime) -> list[BaseRoute]:
    api = InvokeApi(rt.apps, rt.resiliency, rt.metrics.invocations)

    async def invoke(request: Request) -> Response:
        return await forward(rt, api, request, request.path_params["app_id"],
                             request.path_params["method"])  # fmt: skip

    return [Route("/v1.0/invoke/{app_id}/method/{method:path}", invoke, methods=VERBS)]


async def forward(
    rt: Runtime, api: InvokeApi, request: Request, target: str, method: str
) -> Response:
    """Invoke `method` on `target` with the request's verb, query, headers and body, and answer
    with the app's status, headers and body."""
    caller = rt.callers.app_for_token(request.headers.get("dapr-api-token"))
    body = await read_body(request, api.body_limit(caller, target))
    answer = await api.invoke(
        caller,
        Invocation(
            target=target,
            method=method,
            verb=request.method,
            body=body,
            headers=dict(request.headers),
            query=request.url.query,
        ),
    )
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
    has_type = any(k.lower() == "content-type" for k in headers)
    if answer.http_content_type and (answer.type_url or not has_type):
        # A packed protobuf message is labelled as such, whatever else the app said.
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        headers["content-type"] = answer.http_content_type
    return Response(answer.body, status_code=answer.status, headers=headers)


def header_target(scope: Scope) -> str:
    """The App ID a request addresses by header: `dapr-app-id`, else basic auth with the user
    `dapr-app-id` (daprd's `http://dapr-app-id:<appId>@localhost:3500/<method>`); "" if none."""
    auth = ""
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    for key, value in headers:
        if key == APP_ID_HEADER and value:
            return value.decode("latin-1")
        if key == b"authorization":
            auth = value.decode("latin-1")
    if auth[:6].lower() == "basic ":
        try:
            user, sep, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        if sep and user.lower() == APP_ID_HEADER.decode() and ":" not in password:
            return password
    return ""


def clean_path(path: str) -> str:
    """daprd's cleaning of the path that names the method: `.`, `..` and `//` resolved, a
    trailing slash kept, no leading slash."""
    cleaned = posixpath.normpath("/" + path.lstrip("/"))
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned.lstrip("/")


class AppIdHeaderRoute(BaseRoute):
    """`* /{method}` with a `dapr-app-id` header: service invocation of `method` on that App ID.

    Put it last in the route list: it matches only what no other route of the router claims.
    """

    def __init__(self, rt: Runtime) -> None:
        api = InvokeApi(rt.apps, rt.resiliency, rt.metrics.invocations)

        async def invoke(request: Request) -> Response:
            params = request.path_params
            return await forward(rt, api, request, params["app_id"], params["method"])

        self.app = request_response(invoke)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        target = header_target(scope)
        path = scope.get("path", "")
        reserved = path == _RESERVED or path.startswith(_RESERVED + "/")
        if not target or reserved or self._claimed(scope):
            return Match.NONE, {}
        params = {"app_id": target, "method": clean_path(path)}
        return Match.FULL, {"endpoint": self.app, "path_params": params}

    def _claimed(self, scope: Scope) -> bool:
        """Whether another route of the router matches the path (with any method)."""
        router: Any = scope.get("router")
        for route in getattr(router, "routes", ()):
            if route is self:
                continue
            if route.matches(scope)[0] is not Match.NONE:
                return True
        return False

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
