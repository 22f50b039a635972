"""The Dapr state API, transport-neutral: HTTP and gRPC both adapt `StateApi`.

Keys reach the store prefixed as daprd prefixes them (component metadata `keyPrefix`): `appid`
(the default: `<appid>||<key>`), `name` (`<store>||<key>`), `none`, or any other string (used as
the prefix, lower-cased as daprd does). Keys containing `||` are refused. Values are opaque bytes
here; the transports decide their encoding (HTTP writes JSON values as their JSON text, gRPC
stores the bytes it is given), exactly as daprd does, so the two interoperate the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether import errors
from tether.components.state.base import (
    DeleteOp,
    Feature,
    Op,
    SetOp,
    StateItem,
    StateStore,
    concurrency_of,
    ttl_from_metadata,
)
from tether.components.state.query import parse_query
from tether.resources.component import ComponentSpec
from tether.runtime.contracts import ComponentHost

SEPARATOR = "||"
#: Request metadata that marks a gRPC value as JSON (daprd re-encodes such values).
CONTENT_TYPE = "contentType"


@dataclass(frozen=True, slots=True)
class SaveRequest:
    key: str
    value: bytes
    etag: str | None = None
    concurrency: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    key: str
    etag: str | None = None
    concurrency: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TransactionOperation:
    #: `upsert` or `delete`.
    operation: str
    request: SaveRequest | DeleteRequest


@dataclass(frozen=True, slots=True)
class Got:
    """One item read: the caller's key (unprefixed), the value and etag, or the miss."""

    key: str
    value: bytes | None = None
    etag: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class QueryPage:
    results: list[Got]
    token: str = ""


def original_key(stored: str) -> str:
    """The key as the app wrote it (daprd's `GetOriginalStateKey`)."""
    parts = stored.split(SEPARATOR, 2)
    return parts[1] if len(parts) > 1 else stored


def _prefix(spec: ComponentSpec, app_id: str) -> str:
    strategy = (spec.get("keyPrefix") or "appid").lower()
    if strategy == "none":
        return ""
    if strategy == "name":
        return spec.name + SEPARATOR
    if strategy in ("appid", "namespace"):
        return app_id + SEPARATOR if app_id else ""
    return strategy + SEPARATOR


def _got(key: str, item: StateItem | None) -> Got:
    if item is None:
        return Got(key)
    meta = {}
    if item.expires_at is not None:
        moment = dt.datetime.fromtimestamp(item.expires_at, dt.UTC)
        meta["ttlExpireTime"] = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    return Got(key, item.value, item.etag, meta)


class StateApi:
    def __init__(self, components: ComponentHost) -> None:
        self._components = components

    def _store(self, app_id: str, name: str) -> tuple[StateStore, ComponentSpec]:
        specs = [s for s in self._components.specs(app_id) if s.kind == "state"]
        if not specs:
            raise errors.StateStoresNotConfigured(f"state store {name} is not configured")
        spec = next((s for s in specs if s.name == name), None)
        store = self._components.find("state", name, app_id) if spec is not None else None
        if spec is None or store is None:
            raise errors.StateStoreNotFound(f"state store {name} is not found")
        return store, spec

    @staticmethod
    def _key(spec: ComponentSpec, app_id: str, key: str) -> str:
        if SEPARATOR in key:
            raise errors.BadRequest(f"input key/keyPrefix '{key}' can't contain '{SEPARATOR}'")
        return _prefix(spec, app_id) + key

    # --- reads ------------------------------------------------------------------------------

    async def get(self, app_id: str, store_name: str, key: str) -> Got:
        store, spec = self._store(app_id, store_name)
        stored = self._key(spec, app_id, key)
        try:
            item = await store.get(stored)
        except errors.StateStoreFailed as exc:
            raise errors.StateGetFailed(
                f"fail to get {key} from state store {store_name}: {exc.message}"
            ) from exc
        return _got(key, item)

    async def bulk_get(self, app_id: str, store_name: str, keys: Sequence[str]) -> list[Got]:
        store, spec = self._store(app_id, store_name)
        stored = [self._key(spec, app_id, k) for k in keys]
        if not stored:
            return []
        try:
            items = await store.bulk_get(stored)
        except errors.StateStoreFailed as exc:
            raise errors.StateBulkGetFailed(exc.message) from exc
        return [_got(key, item) for key, item in zip(keys, items, strict=True)]

    async def query(
        self, app_id: str, store_name: str, query: str | bytes, metadata: Mapping[str, str]
    ) -> QueryPage:
        store, spec = self._store(app_id, store_name)
        if Feature.QUERY_API not in store.features():
            raise errors.QueryUnsupported("state store does not support querying")
        try:
            doc = json.loads(query) if query else {}
        except ValueError as exc:
            raise errors.QueryInvalid(f"the query is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise errors.QueryInvalid("the query must be a JSON object")
        parsed = parse_query(doc)
        try:
            result = await store.query(parsed, key_prefix=_prefix(spec, app_id))
        except errors.StateStoreFailed as exc:
            raise errors.StateQueryFailed(
                f"state store {store_name} query failed: {exc.message}"
            ) from exc
        return QueryPage([_got(original_key(i.key), i) for i in result.items], result.token or "")

    # --- writes -----------------------------------------------------------------------------

    async def save(self, app_id: str, store_name: str, requests: Sequence[SaveRequest]) -> None:
        store, spec = self._store(app_id, store_name)
        ops = [self._set_op(spec, app_id, r) for r in requests]
        if not ops:
            return
        try:
            if len(ops) == 1:
                op = ops[0]
                await store.set(op.key, op.value, op.etag, op.concurrency, op.ttl_seconds)
            elif Feature.TRANSACTIONAL in store.features():
                await store.transact(ops)  # all or nothing, where the store can
            else:
                for op in ops:
                    await store.set(op.key, op.value, op.etag, op.concurrency, op.ttl_seconds)
        except errors.StateStoreFailed as exc:
            raise errors.StateSaveFailed(
                f"failed saving state in state store {store_name}: {exc.message}"
            ) from exc

    async def delete(self, app_id: str, store_name: str, request: DeleteRequest) -> None:
        store, spec = self._store(app_id, store_name)
        op = self._delete_op(spec, app_id, request)
        try:
            await store.delete(op.key, op.etag, op.concurrency)
        except errors.StateStoreFailed as exc:
            raise errors.StateDeleteFailed(
                f"failed deleting state with key {request.key}: {exc.message}"
            ) from exc

    async def delete_bulk(
        self, app_id: str, store_name: str, requests: Sequence[DeleteRequest]
    ) -> None:
        store, spec = self._store(app_id, store_name)
        ops = [self._delete_op(spec, app_id, r) for r in requests]
        try:
            for op in ops:
                await store.delete(op.key, op.etag, op.concurrency)
        except errors.StateStoreFailed as exc:
            raise errors.StateBulkDeleteFailed(
                f"failed deleting state in state store {store_name}: {exc.message}"
            ) from exc

    async def transact(
        self,
        app_id: str,
        store_name: str,
        operations: Sequence[TransactionOperation],
        metadata: Mapping[str, str],
    ) -> None:
        store, spec = self._store(app_id, store_name)
        if Feature.TRANSACTIONAL not in store.features():
            raise errors.StateTransactionsUnsupported(
                f"state store {store_name} doesn't support transactions"
            )
        ops: list[Op] = []
        for item in operations:
            req = item.request
            if metadata:
                req = type(req)(**{**_fields(req), "metadata": {**metadata, **req.metadata}})
            if item.operation == "upsert" and isinstance(req, SaveRequest):
                ops.append(self._set_op(spec, app_id, req))
            elif item.operation == "delete":
                ops.append(self._delete_op(spec, app_id, DeleteRequest(
                    req.key, req.etag, req.concurrency, req.metadata
                )))  # fmt: skip
            else:
                raise errors.StateOperationUnsupported(
                    f"operation type {item.operation} not supported"
                )
        if not ops:
            return
        try:
            await store.transact(ops)
        except (errors.ETagMismatch, errors.ETagInvalid, errors.StateStoreFailed) as exc:
            # daprd reports every failed transaction alike, etag conflicts included.
            raise errors.StateTransactionFailed(
                f"error while executing state transaction: {exc.message}"
            ) from exc

    def _set_op(self, spec: ComponentSpec, app_id: str, request: SaveRequest) -> SetOp:
        if not request.key:
            raise errors.BadRequest('"key" is a required field')
        if request.metadata.get(CONTENT_TYPE) == "application/json" and request.value:
            try:
                json.loads(request.value)
            except ValueError as exc:
                raise errors.BadRequest(f"value of key '{request.key}' is not JSON: {exc}") from exc
        return SetOp(
            self._key(spec, app_id, request.key),
            request.value,
            request.etag,
            concurrency_of(request.concurrency),
            ttl_from_metadata(request.metadata),
        )

    def _delete_op(self, spec: ComponentSpec, app_id: str, request: DeleteRequest) -> DeleteOp:
        if not request.key:
            raise errors.BadRequest('"key" is a required field')
        return DeleteOp(
            self._key(spec, app_id, request.key),
            request.etag,
            concurrency_of(request.concurrency),
        )


def _fields(request: SaveRequest | DeleteRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__dataclass_fields__}
