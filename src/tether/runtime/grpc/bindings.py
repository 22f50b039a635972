"""The output binding RPC of the Dapr gRPC API."""

from __future__ import annotations

from typing import Any

import grpc
from dapr.proto.runtime.v1 import binding_pb2

from tether import errors
from tether.runtime.api.bindings import BindingInvokeFailed, BindingsApi
from tether.runtime.context import Runtime


def _headers(metadata: dict[str, str]) -> list[tuple[str, str]]:
    """Binding response metadata as `metadata.<key>` gRPC headers (lower case, ASCII only)."""
    return [
        (f"metadata.{k}".lower(), v)
        for k, v in metadata.items()
        if k.isascii() and v.isascii() and "\n" not in v
    ]


class BindingRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    async def InvokeBinding(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            app_id = self.rt.callers.for_grpc(context)
            result = await BindingsApi(self.rt.components).invoke(
                app_id, request.name, request.operation, request.data, dict(request.metadata)
            )
        except BindingInvokeFailed as exc:
            if exc.metadata:
                await context.send_initial_metadata(_headers(exc.metadata))
            await context.abort(exc.grpc_code, exc.message)
            raise
        except errors.TetherError as exc:
            await context.abort(exc.grpc_code, exc.message)
            raise
        if result.metadata:
            await context.send_initial_metadata(_headers(dict(result.metadata)))
        return binding_pb2.InvokeBindingResponse(data=result.data, metadata=result.metadata)
