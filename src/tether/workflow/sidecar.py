"""The Durable Task `TaskHubSidecarService`: a thin gRPC adapter over the workflow service."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2, wrappers_pb2

from tether import errors
from tether.workflow import events as ev
from tether.workflow.model import Instance, InstanceQuery, validate_instance_id
from tether.workflow.protos import pb, pb_grpc
from tether.workflow.rerun import RerunRequest
from tether.workflow.service import StartRequest, WorkflowService

HEALTH_PING_SECONDS = 10.0

AppResolver = Callable[[grpc.aio.ServicerContext], str]
R = TypeVar("R")


def _mapped(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]:
    """Turn Tether errors into gRPC statuses; the one place this adapter maps errors."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except errors.TetherError as exc:
            await context.abort(exc.grpc_code, exc.message)
            raise  # unreachable: abort raises

    return wrapper


def timestamp_or_none(msg: Any, field: str) -> datetime | None:
    if not msg.HasField(field):
        return None
    value: datetime = getattr(msg, field).ToDatetime(tzinfo=UTC)
    return value


def workflow_state(inst: Instance, payloads: bool) -> Any:
    state = pb.WorkflowState(
        instanceId=inst.instance_id,
        name=inst.name,
        workflowStatus=inst.status,
        createdTimestamp=ev.ts(inst.created_at),
        lastUpdatedTimestamp=ev.ts(inst.updated_at),
        executionId=ev.sv(inst.execution_id),
        customStatus=ev.sv(inst.custom_status),
        parentInstanceId=ev.sv(inst.parent_id),
    )
    if inst.version:
        state.version.value = inst.version
    if payloads:
        if inst.input is not None:
            state.input.value = inst.input
        if inst.output is not None:
            state.output.value = inst.output
    if inst.failure is not None:
        state.failureDetails.ParseFromString(inst.failure)
    if inst.scheduled_start is not None:
        state.scheduledStartTimestamp.CopyFrom(ev.ts(inst.scheduled_start))
    if inst.completed_at is not None:
        state.completedTimestamp.CopyFrom(ev.ts(inst.completed_at))
    return state


class Sidecar(pb_grpc.TaskHubSidecarServiceServicer):  # type: ignore[misc]
    def __init__(self, service: WorkflowService, resolve_app: AppResolver) -> None:
        self._svc = service
        self._engine = service.engine
        self._app = resolve_app

    @_mapped
    async def Hello(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._app(context)
        return empty_pb2.Empty()

    @_mapped
    async def StartInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        iid = await self._svc.start(
            StartRequest(
                name=request.name,
                instance_id=request.instanceId or None,
                input=ev.opt(request, "input"),
                scheduled_start=timestamp_or_none(request, "scheduledStartTimestamp"),
                app_id=self._app(context),
                unique=request.enforceUniqueInstanceId,
            )
        )
        return pb.CreateInstanceResponse(instanceId=iid)

    @_mapped
    async def GetInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        inst = await self._svc.get(request.instanceId)
        return self._instance_response(inst, request.getInputsAndOutputs)

    @_mapped
    async def WaitForInstanceStart(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._wait(request, context, self._svc.wait_started)

    @_mapped
    async def WaitForInstanceCompletion(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        return await self._wait(request, context, self._svc.wait_completed)

    async def _wait(
        self,
        request: Any,
        context: grpc.aio.ServicerContext,
        waiter: Callable[[str, float | None], Awaitable[Instance | None]],
    ) -> Any:
        remaining = context.time_remaining()
        try:
            inst = await waiter(request.instanceId, remaining)
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"workflow '{request.instanceId}' did not reach the awaited state in time",
            )
            raise
        return self._instance_response(inst, request.getInputsAndOutputs)

    @staticmethod
    def _instance_response(inst: Instance | None, payloads: bool) -> Any:
        if inst is None:
            return pb.GetInstanceResponse(exists=False)
        return pb.GetInstanceResponse(exists=True, workflowState=workflow_state(inst, payloads))

    @_mapped
    async def RaiseEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._svc.raise_event(request.instanceId, request.name, ev.opt(request, "input"))
        return pb.RaiseEventResponse()

    @_mapped
    async def TerminateInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._svc.terminate(request.instanceId, ev.opt(request, "output"), request.recursive)
        return pb.TerminateResponse()

    @_mapped
    async def SuspendInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._svc.suspend(request.instanceId, ev.opt(request, "reason"))
        return pb.SuspendResponse()

    @_mapped
    async def ResumeInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._svc.resume(request.instanceId, ev.opt(request, "reason"))
        return pb.ResumeResponse()

    @_mapped
    async def PurgeInstances(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        force = request.force if request.HasField("force") else False
        if request.WhichOneof("request") == "purgeInstanceFilter":
            flt = request.purgeInstanceFilter
            count = await self._svc.purge_where(
                tuple(flt.runtimeStatus),
                timestamp_or_none(flt, "createdTimeFrom"),
                timestamp_or_none(flt, "createdTimeTo"),
            )
        else:
            count = await self._svc.purge(request.instanceId, request.recursive, force)
        return pb.PurgeInstancesResponse(
            deletedInstanceCount=count, isComplete=wrappers_pb2.BoolValue(value=True)
        )

    async def GetWorkItems(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            app_id = self._app(context)
        except errors.TetherError as exc:
            await context.abort(exc.grpc_code, exc.message)
            return
        stream = self._engine.worker_connected(app_id, frozenset(request.capabilities))
        try:
            while True:
                if stream.pings:
                    try:
                        item = await asyncio.wait_for(stream.queue.get(), HEALTH_PING_SECONDS)
                    except TimeoutError:
                        item = pb.WorkItem(healthPing=pb.HealthPing())
                else:
                    item = await stream.queue.get()
                yield item
        finally:
            self._engine.worker_disconnected(stream)

    @_mapped
    async def CompleteActivityTask(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._engine.worker_complete_activity(request)
        return pb.CompleteTaskResponse()

    @_mapped
    async def CompleteOrchestratorTask(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        await self._engine.worker_complete_turn(request)
        return pb.CompleteTaskResponse()

    CompleteWorkflowTask = CompleteOrchestratorTask

    @_mapped
    async def RerunWorkflowFromEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        new_id = request.newInstanceID if request.HasField("newInstanceID") else None
        child_id = (
            request.newChildWorkflowInstanceID
            if request.HasField("newChildWorkflowInstanceID")
            else None
        )
        iid = await self._svc.rerun(
            RerunRequest(
                source_id=request.sourceInstanceID,
                event_id=request.eventID,
                new_id=validate_instance_id(new_id) if new_id is not None else None,
                input=ev.opt(request, "input"),
                overwrite_input=request.overwriteInput,
                new_child_id=validate_instance_id(child_id) if child_id is not None else None,
            )
        )
        return pb.RerunWorkflowFromEventResponse(newInstanceID=iid)

    @_mapped
    async def ListInstanceIDs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        size = request.pageSize if request.HasField("pageSize") and request.pageSize else 100
        token = request.continuationToken if request.HasField("continuationToken") else None
        page = await self._svc.list_instances(InstanceQuery(limit=size, cursor=token or None))
        res = pb.ListInstanceIDsResponse(instanceIds=[i.instance_id for i in page.instances])
        if page.cursor:
            res.continuationToken = page.cursor
        return res

    @_mapped
    async def GetInstanceHistory(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        # All of it, completion included: callers read results and failures from it. Workers
        # only fetch histories of instances they are running, which have no completion yet.
        return pb.GetInstanceHistoryResponse(events=await self._svc.history(request.instanceId))
