"""The HTTP listener: Dapr's HTTP API plus Tether's health, metadata and metrics endpoints.

Routes live in one module per building block; this assembles them and maps errors once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import __version__, errors
from tether.runtime.context import Runtime
from tether.runtime.http.admin import AdminGate
from tether.runtime.http.metrics import RequestMetrics
from tether.runtime.http.router import IndexedRouter


def error_response(exc: errors.TetherError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.http_status)


async def _tether_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.TetherError)
    return error_response(exc)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.BodyTooLarge(f"request body of {declared} bytes exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise errors.BodyTooLarge(f"request body exceeds {limit} bytes")
    return bytes(body)


def json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise errors.BadRequest(f"request body is not valid JSON: {exc}") from exc


def build_app(rt: Runtime, extra: list[BaseRoute] | None = None) -> Starlette:
    async def healthz(request: Request) -> Response:
        return Response(status_code=204 if rt.ready else 500)

    async def metadata(request: Request) -> Response:
        app_id = rt.callers.app_for_token(request.headers.get("dapr-api-token"))
        return JSONResponse(rt.metadata(app_id))

    async def metrics(request: Request) -> Response:
        return Response(rt.metrics_text(), media_type="text/plain; version=0.0.4")

    routes: list[BaseRoute] = [
        Route("/v1.0/healthz", healthz, methods=["GET"]),
        Route("/v1.0/healthz/outbound", healthz, methods=["GET"]),
        Route("/v1.0/metadata", metadata, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *(extra or []),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        errors.TetherError: _tether_error
    }
    app = Starlette(
        routes=routes,
        exception_handlers=handlers,
        # Outermost: requests the admin gate refuses are counted too.
        middleware=[
            Middleware(RequestMetrics, metrics=rt.metrics.api),
            Middleware(AdminGate, access=rt.admin),
        ],
    )
    app.router = IndexedRouter(routes)
    app.state.version = __version__
    return app
