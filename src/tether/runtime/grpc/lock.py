"""The distributed lock RPCs of the Dapr gRPC API (alpha)."""

from __future__ import annotations

from typing import Any

import grpc
from dapr.proto.runtime.v1 import lock_pb2

from tether.runtime.api.lock import LockApi
from tether.runtime.context import Runtime
from tether.runtime.grpc.workflows import mapped


class LockRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    @mapped
    async def TryLockAlpha1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        success = await LockApi(self.rt.components).try_lock(
            app_id,
            request.store_name,
            request.resource_id,
            request.lock_owner,
            request.expiry_in_seconds,
        )
        return lock_pb2.TryLockResponse(success=success)

    @mapped
    async def UnlockAlpha1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        status = await LockApi(self.rt.components).unlock(
            app_id, request.store_name, request.resource_id, request.lock_owner
        )
        return lock_pb2.UnlockResponse(status=lock_pb2.UnlockResponse.Status.ValueType(status))
