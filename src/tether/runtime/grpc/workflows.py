"""The workflow RPCs of the Dapr gRPC API (`StartWorkflowBeta1`, ... and their Alpha1 twins)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from dapr.proto.runtime.v1 import workflow_pb2
from google.protobuf import empty_pb2

from tether import errors
from tether.runtime.api.workflows import WorkflowApi
from tether.runtime.context import Runtime
from tether.workflow import events as ev

R = TypeVar("R")


def mapped(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except errors.TetherError as exc:
            await context.abort(exc.grpc_code, exc.message)
            raise

    return wrapper


class WorkflowRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    @property
    def _wf(self) -> WorkflowApi:
        return WorkflowApi(self.rt.workflows)

    @mapped
    async def StartWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        iid = await self._wf.start(
            app_id,
            request.workflow_component,
            request.workflow_name,
            request.instance_id or None,
            request.input or None,
        )
        return workflow_pb2.StartWorkflowResponse(instance_id=iid)

    @mapped
    async def GetWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.rt.callers.for_grpc(context)
        view = await self._wf.get(request.workflow_component, request.instance_id)
        return workflow_pb2.GetWorkflowResponse(
            instance_id=view.instance_id,
            workflow_name=view.name,
            created_at=ev.ts(view.created_at),
            last_updated_at=ev.ts(view.updated_at),
            runtime_status=view.status,
            properties=view.properties,
        )

    @mapped
    async def RaiseEventWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.rt.callers.for_grpc(context)
        await self._wf.raise_event(
            request.workflow_component,
            request.instance_id,
            request.event_name,
            request.event_data or None,
        )
        return empty_pb2.Empty()

    async def _simple(self, op: str, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.rt.callers.for_grpc(context)
        await getattr(self._wf, op)(request.workflow_component, request.instance_id)
        return empty_pb2.Empty()

    @mapped
    async def TerminateWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._simple("terminate", request, context)

    @mapped
    async def PurgeWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._simple("purge", request, context)

    @mapped
    async def PauseWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._simple("pause", request, context)

    @mapped
    async def ResumeWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._simple("resume", request, context)

    StartWorkflowAlpha1 = StartWorkflowBeta1
    GetWorkflowAlpha1 = GetWorkflowBeta1
    RaiseEventWorkflowAlpha1 = RaiseEventWorkflowBeta1
    TerminateWorkflowAlpha1 = TerminateWorkflowBeta1
    PurgeWorkflowAlpha1 = PurgeWorkflowBeta1
    PauseWorkflowAlpha1 = PauseWorkflowBeta1
    ResumeWorkflowAlpha1 = ResumeWorkflowBeta1
