"""Dapr's HTTP state API.

Values written over HTTP are JSON: each is stored as its compact JSON text, so a string `"v"`
is stored with its quotes, as daprd stores it. Reads answer the stored bytes as they are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import errors
from tether.runtime.api.state import (
    DeleteRequest,
    Got,
    SaveRequest,
    StateApi,
    TransactionOperation,
)
from tether.runtime.context import Runtime
from tether.runtime.http.app import json_body, read_body

METADATA_PREFIX = "metadata."


def request_metadata(request: Request) -> dict[str, str]:
    """`?metadata.<key>=<value>` query parameters (daprd's `getMetadataFromRequest`)."""
    return {
        k[len(METADATA_PREFIX) :]: v
        for k, v in request.query_params.items()
        if k.startswith(METADATA_PREFIX)
    }


def encode_value(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def embedded(value: bytes) -> Any:
    """A stored value inside a JSON answer: as JSON when it is JSON, else as text or base64."""
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode()


def _object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise errors.BadRequest(f"{what} must be a JSON object")
    return raw


def _strings(raw: Any, what: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise errors.BadRequest(f"{what} must be an object of strings")
    return raw


def _etag(raw: Any) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    raise errors.BadRequest("etag must be a string")


def _concurrency(item: Mapping[str, Any]) -> str:
    options = item.get("options") or {}
    value = _object(options, "options").get("concurrency") or ""
    if not isinstance(value, str):
        raise errors.BadRequest("options.concurrency must be a string")
    return value


def _key(item: Mapping[str, Any]) -> str:
    key = item.get("key")
    if not isinstance(key, str) or not key:
        raise errors.BadRequest('"key" is a required field')
    return key


def save_request(raw: Any, extra: Mapping[str, str]) -> SaveRequest:
    item = _object(raw, "each state item")
    return SaveRequest(
        key=_key(item),
        value=encode_value(item.get("value")),
        etag=_etag(item.get("etag")),
        concurrency=_concurrency(item),
        metadata={**_strings(item.get("metadata"), "metadata"), **extra},
    )


def delete_request(raw: Any, extra: Mapping[str, str]) -> DeleteRequest:
    item = _object(raw, "each delete request")
    return DeleteRequest(
        key=_key(item),
        etag=_etag(item.get("etag")),
        concurrency=_concurrency(item),
        metadata={**_strings(item.get("metadata"), "metadata"), **extra},
    )


def _item_json(got: Got) -> dict[str, Any]:
    out: dict[str, Any] = {"key": got.key}
    if got.value is not None:
        out["data"] = embedded(got.value)
        if got.etag:
            out["etag"] = got.etag
        if got.metadata:
            out["metadata"] = got.metadata
    if got.error:
        out["error"] = got.error
    return out


def state_routes(rt: Runtime) -> list[BaseRoute]:
    api = StateApi(rt.components)
    limit = rt.config.max_request_bytes

    def caller(request: Request) -> str:
        return rt.callers.app_for_token(request.headers.get("dapr-api-token"))

    async def body(request: Request) -> Any:
        return json_body(await read_body(request, limit))

    async def save(request: Request) -> Response:
        app_id = caller(request)
        items = await body(request)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise errors.BadRequest("the body must be a JSON array of state items")
        extra = request_metadata(request)
        reqs = [save_request(i, extra) for i in items]
        await api.save(app_id, request.path_params["store"], reqs)
        return Response(status_code=204)

    async def get(request: Request) -> Response:
        app_id = caller(request)
        got = await api.get(app_id, request.path_params["store"], request.path_params["key"])
        if got.value is None:
            return Response(status_code=204)
        headers = {"ETag": got.etag} if got.etag else {}
        headers.update({f"metadata.{k}": v for k, v in got.metadata.items()})
        return Response(got.value, 200, headers, media_type="application/json")

    async def delete(request: Request) -> Response:
        app_id = caller(request)
        q = request.query_params
        req = DeleteRequest(
            key=request.path_params["key"],
            etag=request.headers.get("if-match"),
            concurrency=q.get("concurrency", ""),
            metadata=request_metadata(request),
        )
        await api.delete(app_id, request.path_params["store"], req)
        return Response(status_code=204)

    async def bulk(request: Request) -> Response:
        app_id = caller(request)
        doc = _object(await body(request) or {}, "the body")
        keys = doc.get("keys") or []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise errors.BadRequest("keys must be an array of strings")
        items = await api.bulk_get(app_id, request.path_params["store"], keys)
        return JSONResponse([_item_json(i) for i in items])

    async def transaction(request: Request) -> Response:
        app_id = caller(request)
        doc = _object(await body(request) or {}, "the body")
        metadata = {**_strings(doc.get("metadata"), "metadata"), **request_metadata(request)}
        raw_ops = doc.get("operations") or []
        if not isinstance(raw_ops, list):
            raise errors.BadRequest("operations must be an array")
        ops: list[TransactionOperation] = []
        for raw in raw_ops:
            op = _object(raw, "each operation")
            kind = op.get("operation")
            req = op.get("request") or {}
            if kind == "upsert":
                ops.append(TransactionOperation("upsert", save_request(req, {})))
            elif kind == "delete":
                ops.append(TransactionOperation("delete", delete_request(req, {})))
            else:
                raise errors.StateOperationUnsupported(f"operation type {kind} not supported")
        await api.transact(app_id, request.path_params["store"], ops, metadata)
        return Response(status_code=204)

    async def query(request: Request) -> Response:
        app_id = caller(request)
        raw = await read_body(request, limit)
        page = await api.query(app_id, request.path_params["store"], raw, request_metadata(request))
        if not page.results:
            return Response(status_code=204)
        out: dict[str, Any] = {"results": [_item_json(g) for g in page.results]}
        if page.token:
            out["token"] = page.token
        return JSONResponse(out)

    base = "/v1.0/state/{store}"
    return [
        Route(base, save, methods=["POST", "PUT"]),
        Route(f"{base}/bulk", bulk, methods=["POST", "PUT"]),
        Route(f"{base}/transaction", transaction, methods=["POST", "PUT"]),
        Route(f"{base}/{{key:path}}", get, methods=["GET"]),
        Route(f"{base}/{{key:path}}", delete, methods=["DELETE"]),
        Route("/v1.0-alpha1/state/{store}/query", query, methods=["POST", "PUT"]),
        Route("/v1.0-beta1/state/{store}/query", query, methods=["POST", "PUT"]),
    ]
