"""Rerun a finished workflow from one of its actions, as a new instance.

Semantics follow Dapr's fork of a workflow history: the new instance keeps the source's history
up to and including the chosen action (an activity, timer or child workflow start), and the
engine runs that action again, with a replacement input if one was given. What the workflow
did after it is dropped and happens again as the worker replays. Actions before the chosen one
keep the results the source recorded for them, even if those arrived later; those that never
got one run again as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from tether import errors
from tether.workflow import events as ev
from tether.workflow import protos as p
from tether.workflow.model import FOREVER, Activity, InboxItem, Instance
from tether.workflow.protos import pb
from tether.workflow.turn import ChildStart

_RERUNNABLE = ("taskScheduled", "timerCreated", "childWorkflowInstanceCreated")
_RESULT_ID = {
    "taskCompleted": "taskScheduledId",
    "taskFailed": "taskScheduledId",
    "childWorkflowInstanceCompleted": "taskScheduledId",
    "childWorkflowInstanceFailed": "taskScheduledId",
    "timerFired": "timerId",
}


@dataclass(frozen=True, slots=True)
class RerunRequest:
    source_id: str
    event_id: int
    new_id: str | None = None
    # Replaces the input of the rerun activity or child workflow (not the workflow's input).
    input: str | None = None
    overwrite_input: bool = False
    # Only for a child workflow start: the rerun child's id (default `<new id>:<event id>`).
    new_child_id: str | None = None


@dataclass(slots=True)
class RerunPlan:
    instance: Instance
    history: list[bytes]
    inbox: list[InboxItem] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)


def plan(source: Instance, history: list[ev.Event], req: RerunRequest, now: datetime) -> RerunPlan:
    if not source.terminal:
        raise errors.RerunInvalid(
            f"workflow '{source.instance_id}' is still running; only finished workflows can be "
            "rerun: terminate it first"
        )
    if source.parent_id:
        raise errors.RerunInvalid(
            f"workflow '{source.instance_id}' is a child of '{source.parent_id}'; a child cannot "
            "be rerun on its own (its parent would never hear of it): rerun the parent"
        )
    new_id = req.new_id or uuid.uuid4().hex
    if new_id == source.instance_id:
        raise errors.RerunInvalid("the rerun needs a new instance ID, different from the source")
    cut = _target(source, history, req)
    kept = [ev.parse(e.SerializeToString()) for e in history[: cut + 1]]
    target = kept[-1]
    exec_id = uuid.uuid4().hex
    for event in kept:
        if event.HasField("executionStarted"):
            started = event.executionStarted
            started.workflowInstance.instanceId = new_id
            started.workflowInstance.executionId.value = exec_id
            started.ClearField("parentInstance")
    _retarget(target, req, new_id)
    inst = Instance(
        new_id, source.name, p.STATUS_RUNNING, exec_id, now, now, input=source.input,
        version=source.version, app_id=source.app_id,
    )  # fmt: skip
    out = RerunPlan(inst, [])
    answered = {_answers(e) for e in kept if ev.kind(e) in _RESULT_ID}
    later = {_answers(e): e for e in history[cut + 1 :] if ev.kind(e) in _RESULT_ID}
    for event in kept:
        kind = ev.kind(event)
        if kind not in _RERUNNABLE or event.eventId in answered:
            continue
        result = later.get(event.eventId) if event is not target else None
        if result is not None:
            out.inbox.append(InboxItem(0, result.SerializeToString()))
        elif kind == "taskScheduled":
            out.activities.append(_activity(inst, event))
        elif kind == "timerCreated":
            fire_at = event.timerCreated.fireAt.ToDatetime(tzinfo=now.tzinfo)
            if fire_at < FOREVER:
                fired = ev.timer_fired(fire_at, event.eventId, event.timerCreated.fireAt)
                out.inbox.append(InboxItem(0, fired.SerializeToString(), fire_at))
        else:
            if event is not target:
                # A child of the new instance: the source's child keeps its own history.
                event.childWorkflowInstanceCreated.instanceId = _child_id(new_id, event.eventId)
            out.children.append(_child(event))
    out.history = [e.SerializeToString() for e in kept]
    # A nudge: actions the source started in the same turn as the chosen one, after it, were
    # cut; a turn right away lets the worker ask for them again instead of after the rerun
    # action's result. The engine consumes it without showing it.
    out.inbox.append(InboxItem(0, ev.workflow_started(now).SerializeToString()))
    return out


def _target(source: Instance, history: list[ev.Event], req: RerunRequest) -> int:
    """The index of the event to rerun from, after checking the request fits it."""
    where = f"workflow '{source.instance_id}'"
    cut = next((i for i, e in enumerate(history) if e.eventId == req.event_id >= 0), None)
    if cut is None:
        raise errors.NotFound(f"{where} has no history event with ID {req.event_id}")
    kind = ev.kind(history[cut])
    if kind not in _RERUNNABLE:
        raise errors.NotFound(
            f"event {req.event_id} of {where} is a {kind} event, which cannot be rerun; pick an "
            "activity, timer or child workflow start from its history"
        )
    if kind == "timerCreated" and req.overwrite_input:
        raise errors.RerunInvalid(f"event {req.event_id} of {where} is a timer: it takes no input")
    if req.new_child_id is not None and kind != "childWorkflowInstanceCreated":
        raise errors.RerunInvalid(
            f"event {req.event_id} of {where} is not a child workflow start: a new child "
            "workflow instance ID applies only to one"
        )
    return cut


def _retarget(target: ev.Event, req: RerunRequest, new_id: str) -> None:
    """Give the rerun action its replacement input and, for a child, its new instance id."""
    payload = getattr(target, ev.kind(target))
    if req.overwrite_input:
        payload.ClearField("input")
        if req.input is not None:
            payload.input.value = req.input
    if target.HasField("childWorkflowInstanceCreated"):
        payload.instanceId = req.new_child_id or _child_id(new_id, target.eventId)


def _child_id(parent_id: str, event_id: int) -> str:
    return f"{parent_id}:{event_id:04x}"


def _answers(result: ev.Event) -> int:
    kind = ev.kind(result)
    task_id: int = getattr(getattr(result, kind), _RESULT_ID[kind])
    return task_id


def _child(created: ev.Event) -> ChildStart:
    child = created.childWorkflowInstanceCreated
    return ChildStart(
        child.instanceId, child.name, ev.opt(child, "input"), created.eventId,
        ev.opt(child, "version"),
    )  # fmt: skip


def _activity(inst: Instance, scheduled: ev.Event) -> Activity:
    task = scheduled.taskScheduled
    request = pb.ActivityRequest(
        name=task.name,
        version=task.version if task.HasField("version") else None,
        input=task.input if task.HasField("input") else None,
        workflowInstance=pb.WorkflowInstance(
            instanceId=inst.instance_id, executionId=ev.sv(inst.execution_id)
        ),
        taskId=scheduled.eventId,
        taskExecutionId=task.taskExecutionId,
    )
    return Activity(
        inst.instance_id, inst.execution_id, scheduled.eventId, request.SerializeToString()
    )
