"""Dapr's HTTP output bindings API.

The body is `{data, metadata, operation}`; `data` is any JSON and reaches the binding as its
JSON text (a string keeps its quotes), as daprd sends it. The binding's answer is the response
body, and its metadata comes back as `metadata.<key>` headers, on failures too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import errors
from tether.runtime.api.bindings import BindingInvokeFailed, BindingsApi
from tether.runtime.context import Runtime
from tether.runtime.http.app import json_body, read_body


def _headers(metadata: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in metadata.items():
        name = f"metadata.{key}"
        # Header values cannot carry line breaks; such metadata is left out rather than fail.
        if "\n" not in value and "\r" not in value and name.isascii() and value.isascii():
            out[name] = value
    return out


def binding_routes(rt: Runtime) -> list[BaseRoute]:
    api = BindingsApi(rt.components)
    limit = rt.config.max_request_bytes

    async def invoke(request: Request) -> Response:
        app_id = rt.callers.app_for_token(request.headers.get("dapr-api-token"))
        doc = json_body(await read_body(request, limit)) or {}
        if not isinstance(doc, dict):
            raise errors.BadRequest("the body must be a JSON object")
        operation = doc.get("operation") or ""
        metadata = doc.get("metadata") or {}
        if not isinstance(operation, str):
            raise errors.BadRequest("operation must be a string")
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise errors.BadRequest("metadata must be an object of strings")
        data = json.dumps(doc.get("data"), separators=(",", ":"), ensure_ascii=False).encode()
        try:
            result = await api.invoke(
                app_id, request.path_params["name"], operation, data, metadata
            )
        except BindingInvokeFailed as exc:
            return JSONResponse(exc.to_json(), exc.http_status, _headers(exc.metadata))
        if not result.data and not result.metadata:
            return Response(status_code=204, headers=_headers(result.metadata))
        return Response(result.data, 200, _headers(result.metadata), media_type="application/json")

    return [
        Route("/v1.0/bindings/{name}", invoke, methods=["POST", "PUT"]),
    ]
