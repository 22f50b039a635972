"""Dapr's HTTP distributed lock API (alpha)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import errors
from tether.runtime.api.lock import LockApi
from tether.runtime.context import Runtime
from tether.runtime.http.app import json_body, read_body


def _field(doc: dict[str, Any], *names: str) -> Any:
    """A field by its JSON name or its proto name (protojson accepts both)."""
    return next((doc[n] for n in names if n in doc), None)


def _text(doc: dict[str, Any], *names: str) -> str:
    value = _field(doc, *names)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.BadRequest(f"{names[0]} must be a string")
    return value


def _int(doc: dict[str, Any], *names: str) -> int:
    value = _field(doc, *names)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise errors.BadRequest(f"{names[0]} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise errors.BadRequest(f"{names[0]} must be an integer") from None


def lock_routes(rt: Runtime) -> list[BaseRoute]:
    api = LockApi(rt.components)
    limit = rt.config.max_request_bytes

    async def parse(request: Request) -> tuple[str, dict[str, Any]]:
        app_id = rt.callers.app_for_token(request.headers.get("dapr-api-token"))
        doc = json_body(await read_body(request, limit)) or {}
        if not isinstance(doc, dict):
            raise errors.BadRequest("the body must be a JSON object")
        return app_id, doc

    async def try_lock(request: Request) -> Response:
        app_id, doc = await parse(request)
        success = await api.try_lock(
            app_id,
            request.path_params["store"],
            _text(doc, "resourceId", "resource_id"),
            _text(doc, "lockOwner", "lock_owner"),
            _int(doc, "expiryInSeconds", "expiry_in_seconds"),
        )
        return JSONResponse({"success": success})

    async def unlock(request: Request) -> Response:
        app_id, doc = await parse(request)
        status = await api.unlock(
            app_id,
            request.path_params["store"],
            _text(doc, "resourceId", "resource_id"),
            _text(doc, "lockOwner", "lock_owner"),
        )
        return JSONResponse({"status": int(status)})

    return [
        Route("/v1.0-alpha1/lock/{store}", try_lock, methods=["POST", "PUT"]),
        Route("/v1.0-alpha1/unlock/{store}", unlock, methods=["POST", "PUT"]),
    ]
