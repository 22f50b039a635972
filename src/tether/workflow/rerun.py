"""Rerun a finished workflow from one of its actions, as a new instance.

The new instance gets the source's history up to (not including) the chosen action; results that
the source recorded later for actions before that point are handed to it as fresh inbox events,
so only the chosen action and what follows it run again.
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
    input: str | None = None
    overwrite_input: bool = False


@dataclass(slots=True)
class RerunPlan:
    instance: Instance
    history: list[bytes]
    inbox: list[InboxItem] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)


def plan(source: Instance, history: list[ev.Event], req: RerunRequest, now: datetime) -> RerunPlan:
    if not source.terminal:
        raise errors.RerunInvalid(
            f"workflow '{source.instance_id}' is still running; only finished workflows can be "
            "rerun: terminate it first"
        )
    new_id = req.new_id or uuid.uuid4().hex
    if new_id == source.instance_id:
        raise errors.RerunInvalid("the rerun needs a new instance ID, different from the source")
    cut = next(
        (
            i
            for i, e in enumerate(history)
            if e.eventId == req.event_id and ev.kind(e) in _RERUNNABLE
        ),
        None,
    )
    if cut is None:
        raise errors.RerunInvalid(
            f"event {req.event_id} of '{source.instance_id}' is not an activity, timer or child "
            "workflow start; pick one from `tether workflow history`"
        )
    kept = [ev.parse(e.SerializeToString()) for e in history[:cut]]
    exec_id = uuid.uuid4().hex
    new_input = req.input if req.overwrite_input else source.input
    for event in kept:
        if event.HasField("executionStarted"):
            started = event.executionStarted
            started.workflowInstance.instanceId = new_id
            started.workflowInstance.executionId.value = exec_id
            started.ClearField("parentInstance")
            if req.overwrite_input:
                started.ClearField("input")
                if new_input is not None:
                    started.input.value = new_input
    inst = Instance(
        new_id, source.name, p.STATUS_RUNNING, exec_id, now, now, input=new_input,
        version=source.version, app_id=source.app_id,
    )  # fmt: skip
    out = RerunPlan(inst, [e.SerializeToString() for e in kept])
    answered = {
        getattr(getattr(e, k), attr) for e in kept if (k := ev.kind(e)) in _RESULT_ID
        for attr in [_RESULT_ID[k]]
    }  # fmt: skip
    later = {
        getattr(getattr(e, k), _RESULT_ID[k]): e
        for e in history[cut:]
        if (k := ev.kind(e)) in _RESULT_ID
    }
    for event in kept:
        kind = ev.kind(event)
        if kind not in _RERUNNABLE or event.eventId in answered:
            continue
        result = later.get(event.eventId)
        if result is not None:
            out.inbox.append(InboxItem(0, result.SerializeToString()))
        elif kind == "taskScheduled":
            out.activities.append(_activity(inst, event))
        elif kind == "timerCreated":
            fire_at = event.timerCreated.fireAt.ToDatetime(tzinfo=now.tzinfo)
            if fire_at < FOREVER:
                fired = ev.timer_fired(fire_at, event.eventId, event.timerCreated.fireAt)
                out.inbox.append(InboxItem(0, fired.SerializeToString(), fire_at))
    # A nudge: the first turn must happen even when no result is due, so that the worker
    # re-issues the chosen action. The engine consumes it without showing it.
    out.inbox.append(InboxItem(0, ev.workflow_started(now).SerializeToString()))
    return out


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
