"""The state RPCs of the Dapr gRPC API. Values are stored as the bytes the caller sends."""

from __future__ import annotations

from typing import Any

import grpc
from dapr.proto.runtime.v1 import state_pb2
from google.protobuf import empty_pb2

from tether.runtime.api.state import (
    DeleteRequest,
    Got,
    SaveRequest,
    StateApi,
    TransactionOperation,
)
from tether.runtime.context import Runtime
from tether.runtime.grpc.workflows import mapped

_CONCURRENCY = {0: "", 1: "first-write", 2: "last-write"}


def _etag(item: Any) -> str | None:
    return item.etag.value if item.HasField("etag") else None


def _concurrency(item: Any) -> str:
    if not item.HasField("options"):
        return ""
    return _CONCURRENCY.get(item.options.concurrency, "")


def _save(item: Any) -> SaveRequest:
    return SaveRequest(item.key, item.value, _etag(item), _concurrency(item), dict(item.metadata))


def _delete(item: Any) -> DeleteRequest:
    return DeleteRequest(item.key, _etag(item), _concurrency(item), dict(item.metadata))


def _bulk_item(got: Got) -> Any:
    return state_pb2.BulkStateItem(
        key=got.key, data=got.value or b"", etag=got.etag, metadata=got.metadata, error=got.error
    )


class StateRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    @property
    def _state(self) -> StateApi:
        return StateApi(self.rt.components)

    @mapped
    async def GetState(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        got = await self._state.get(app_id, request.store_name, request.key)
        return state_pb2.GetStateResponse(
            data=got.value or b"", etag=got.etag, metadata=got.metadata
        )

    @mapped
    async def GetBulkState(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        items = await self._state.bulk_get(app_id, request.store_name, list(request.keys))
        return state_pb2.GetBulkStateResponse(items=[_bulk_item(g) for g in items])

    @mapped
    async def SaveState(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        await self._state.save(app_id, request.store_name, [_save(s) for s in request.states])
        return empty_pb2.Empty()

    @mapped
    async def DeleteState(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        await self._state.delete(app_id, request.store_name, _delete(request))
        return empty_pb2.Empty()

    @mapped
    async def DeleteBulkState(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        await self._state.delete_bulk(
            app_id, request.store_name, [_delete(s) for s in request.states]
        )
        return empty_pb2.Empty()

    @mapped
    async def ExecuteStateTransaction(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        ops = []
        for op in request.operations:
            kind = op.operationType
            req = _save(op.request) if kind == "upsert" else _delete(op.request)
            ops.append(TransactionOperation(kind, req))
        await self._state.transact(app_id, request.storeName, ops, dict(request.metadata))
        return empty_pb2.Empty()

    @mapped
    async def QueryStateAlpha1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        page = await self._state.query(
            app_id, request.store_name, request.query, dict(request.metadata)
        )
        results = [
            state_pb2.QueryStateItem(key=g.key, data=g.value or b"", etag=g.etag, error=g.error)
            for g in page.results
        ]
        return state_pb2.QueryStateResponse(results=results, token=page.token)
