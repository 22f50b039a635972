"""The Dapr workflow API (start, get, raise, pause, resume, terminate, purge)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether import errors
from tether.workflow.model import STATUS_NAMES, Instance, validate_instance_id
from tether.workflow.service import StartRequest, WorkflowService

# Dapr's workflow engine component name; older SDKs and docs also use "dapr".
COMPONENTS = frozenset({"dapr"})


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """What Dapr's `GET /workflows/{component}/{id}` and `GetWorkflowBeta1` return."""

    instance_id: str
    name: str
    created_at: Any
    updated_at: Any
    status: str
    properties: dict[str, str]


def _existing(instance_id: str) -> str:
    """An id that names an existing instance: Dapr checks only that one was given.

    The shape rules apply to ids callers choose at start; ids the engine chose (child workflows,
    `parent:0001`) must stay reachable.
    """
    if not instance_id:
        raise errors.InstanceIdProvidedMissing("a workflow instance ID is required")
    return instance_id


def _text(raw: bytes | None, what: str) -> str | None:
    if not raw:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise errors.BadRequest(f"{what} must be UTF-8 text (JSON): {exc}") from exc


class WorkflowApi:
    def __init__(self, service: WorkflowService) -> None:
        self._svc = service

    @staticmethod
    def _component(name: str) -> None:
        if name not in COMPONENTS:
            raise errors.WorkflowComponentNotFound(
                f"workflow component '{name}' is not known: use 'dapr'"
            )

    async def start(
        self, app_id: str, component: str, name: str, instance_id: str | None, data: bytes | None
    ) -> str:
        self._component(component)
        if not name:
            raise errors.WorkflowNameMissing("the workflow name is missing")
        return await self._svc.start(
            StartRequest(
                name=name,
                instance_id=validate_instance_id(instance_id) if instance_id else None,
                input=_text(data, "the workflow input"),
                app_id=app_id,
            )
        )

    async def get(self, component: str, instance_id: str) -> WorkflowView:
        self._component(component)
        inst = await self._svc.get(_existing(instance_id))
        if inst is None:
            raise errors.InstanceNotFound(instance_id)
        return _view(inst)

    async def raise_event(
        self, component: str, instance_id: str, event: str, data: bytes | None
    ) -> None:
        self._component(component)
        await self._svc.raise_event(_existing(instance_id), event, _text(data, "the event data"))

    async def terminate(self, component: str, instance_id: str) -> None:
        self._component(component)
        await self._svc.terminate(_existing(instance_id), None, recursive=True)

    async def purge(self, component: str, instance_id: str) -> None:
        self._component(component)
        if await self._svc.get(_existing(instance_id)) is None:
            raise errors.InstanceNotFound(instance_id)
        await self._svc.purge(instance_id, recursive=True)

    async def pause(self, component: str, instance_id: str) -> None:
        self._component(component)
        await self._svc.suspend(_existing(instance_id), None)

    async def resume(self, component: str, instance_id: str) -> None:
        self._component(component)
        await self._svc.resume(_existing(instance_id), None)


def _view(inst: Instance) -> WorkflowView:
    props: dict[str, str] = {}
    if inst.input is not None:
        props["dapr.workflow.input"] = inst.input
    if inst.output is not None:
        props["dapr.workflow.output"] = inst.output
    if inst.custom_status is not None:
        props["dapr.workflow.custom_status"] = inst.custom_status
    if inst.failure is not None:
        from tether.workflow.protos import pb

        details = pb.TaskFailureDetails()
        details.ParseFromString(inst.failure)
        props["dapr.workflow.failure.error_type"] = details.errorType
        props["dapr.workflow.failure.error_message"] = details.errorMessage
        if details.HasField("stackTrace"):
            props["dapr.workflow.failure.stack_trace"] = details.stackTrace.value
    return WorkflowView(
        inst.instance_id,
        inst.name,
        inst.created_at,
        inst.updated_at,
        STATUS_NAMES.get(inst.status, str(inst.status)),
        props,
    )
