"""What one workflow turn means: a worker's response turned into history and effects.

A pure function of the instance, the events the worker was shown and its response: no I/O, so
the rules of the protocol live in one place and are unit-testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tether import errors
from tether.workflow import events as ev
from tether.workflow import protos as p
from tether.workflow.model import FOREVER, Instance
from tether.workflow.protos import pb

_TERMINAL_ACTION_STATUSES = frozenset(
    {p.STATUS_COMPLETED, p.STATUS_FAILED, p.STATUS_TERMINATED, p.STATUS_CONTINUED_AS_NEW}
)


@dataclass(slots=True)
class ChildStart:
    instance_id: str
    name: str
    input: str | None
    task_id: int
    version: str | None


@dataclass(slots=True)
class Outcome:
    """Everything a turn changes. `appended` is empty when the turn stalled."""

    appended: list[ev.Event] = field(default_factory=list)
    status: int = p.STATUS_RUNNING
    output: str | None = None
    failure: Any | None = None
    custom_status: str | None = None
    version: str | None = None
    activities: list[tuple[int, Any]] = field(default_factory=list)  # (task id, ActivityRequest)
    timers: list[tuple[datetime, ev.Event]] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    terminates: list[tuple[str, str | None, bool]] = field(default_factory=list)
    sends: list[tuple[str, ev.Event]] = field(default_factory=list)
    continue_as_new: tuple[str | None, list[ev.Event]] | None = None
    stalled: bool = False

    @property
    def finished(self) -> bool:
        return self.status in (p.STATUS_COMPLETED, p.STATUS_FAILED, p.STATUS_TERMINATED)


def apply(
    inst: Instance,
    confirmed: set[int],
    sent: list[ev.Event],
    res: Any,
    now: datetime,
) -> Outcome:
    """Turn `res` (a WorkflowResponse) into an `Outcome`.

    `confirmed` holds the ids of actions already recorded in history: the worker re-sends every
    pending action on every turn, so those are skipped. Raises `WorkerResponseInvalid` for
    responses no correct worker sends; nothing is then recorded.
    """
    out = Outcome(status=p.STATUS_RUNNING if inst.status == p.STATUS_PENDING else inst.status)
    out.custom_status = ev.opt(res, "customStatus")
    out.version = inst.version
    out.appended = [ev.parse(e.SerializeToString()) for e in sent]
    if res.HasField("version") and out.appended and out.appended[0].HasField("workflowStarted"):
        out.appended[0].workflowStarted.version.CopyFrom(res.version)
        if res.version.name:
            out.version = res.version.name

    completion: Any | None = None
    for action in res.actions:
        kind = action.WhichOneof("workflowActionType")
        if kind is None:
            raise errors.WorkerResponseInvalid(
                f"action {action.id} of instance '{inst.instance_id}' has no known type"
            )
        if kind == "completeWorkflow":
            completion = action.completeWorkflow
            continue
        if kind == "workflowVersionNotAvailable":
            out.stalled = True
            out.status = p.STATUS_STALLED
            out.appended = []
            return out
        if action.id in confirmed and kind != "terminateWorkflow":
            continue
        _apply_action(inst, action, kind, now, out)

    if completion is not None:
        _complete(inst, completion, now, out)
    return out


def _apply_action(inst: Instance, action: Any, kind: str, now: datetime, out: Outcome) -> None:
    aid = action.id
    if kind == "scheduleTask":
        task = action.scheduleTask
        if not task.name:
            raise errors.WorkerResponseInvalid(f"scheduleTask action {aid} has no activity name")
        out.appended.append(
            ev.new(
                aid,
                now,
                taskScheduled=pb.TaskScheduledEvent(
                    name=task.name,
                    version=task.version if task.HasField("version") else None,
                    input=task.input if task.HasField("input") else None,
                    taskExecutionId=task.taskExecutionId,
                ),
            )
        )
        request = pb.ActivityRequest(
            name=task.name,
            version=task.version if task.HasField("version") else None,
            input=task.input if task.HasField("input") else None,
            workflowInstance=pb.WorkflowInstance(
                instanceId=inst.instance_id, executionId=ev.sv(inst.execution_id)
            ),
            taskId=aid,
            taskExecutionId=task.taskExecutionId,
        )
        out.activities.append((aid, request))
    elif kind == "createTimer":
        timer = action.createTimer
        if not timer.HasField("fireAt"):
            raise errors.WorkerResponseInvalid(f"createTimer action {aid} has no fireAt")
        created = pb.TimerCreatedEvent(fireAt=timer.fireAt)
        if timer.HasField("name"):
            created.name = timer.name
        origin = timer.WhichOneof("origin")
        if origin is not None:
            getattr(created, origin).CopyFrom(getattr(timer, origin))
        out.appended.append(ev.new(aid, now, timerCreated=created))
        fire_at = timer.fireAt.ToDatetime(tzinfo=now.tzinfo)
        if fire_at < FOREVER:
            out.timers.append((fire_at, ev.timer_fired(fire_at, aid, timer.fireAt)))
    elif kind == "createChildWorkflow":
        child = action.createChildWorkflow
        if not child.name:
            raise errors.WorkerResponseInvalid(f"createChildWorkflow action {aid} has no name")
        child_id = child.instanceId or f"{inst.instance_id}:{aid:04x}"
        out.appended.append(
            ev.new(
                aid,
                now,
                childWorkflowInstanceCreated=pb.ChildWorkflowInstanceCreatedEvent(
                    instanceId=child_id,
                    name=child.name,
                    version=child.version if child.HasField("version") else None,
                    input=child.input if child.HasField("input") else None,
                ),
            )
        )
        out.children.append(
            ChildStart(
                child_id,
                child.name,
                ev.opt(child, "input"),
                aid,
                ev.opt(child, "version"),
            )
        )
    elif kind == "sendEvent":
        send = action.sendEvent
        target = send.instance.instanceId
        if not target or not send.name:
            raise errors.WorkerResponseInvalid(f"sendEvent action {aid} has no target or name")
        out.appended.append(
            ev.new(
                aid,
                now,
                eventSent=pb.EventSentEvent(
                    instanceId=target, name=send.name, input=ev.sv(ev.opt(send, "data"))
                ),
            )
        )
        out.sends.append((target, ev.event_raised(now, send.name, ev.opt(send, "data"))))
    elif kind == "terminateWorkflow":
        term = action.terminateWorkflow
        if term.instanceId and term.instanceId != inst.instance_id:
            out.terminates.append((term.instanceId, ev.opt(term, "reason"), term.recurse))
    else:
        raise errors.WorkerResponseInvalid(f"action {aid} of kind '{kind}' is not supported")


def _complete(inst: Instance, action: Any, now: datetime, out: Outcome) -> None:
    status = action.workflowStatus
    if status not in _TERMINAL_ACTION_STATUSES:
        raise errors.WorkerResponseInvalid(
            f"completeWorkflow for '{inst.instance_id}' has non-final status {status}"
        )
    result = ev.opt(action, "result")
    if status == p.STATUS_CONTINUED_AS_NEW:
        # A new generation replaces this one; its other actions die with it.
        carry = [ev.parse(e.SerializeToString()) for e in action.carryoverEvents]
        for carried in carry:
            carried.timestamp.FromDatetime(now)
        out.continue_as_new = (result, carry)
        out.activities, out.timers, out.children = [], [], []
        return
    # A finished workflow starts nothing new; messages to others still go out.
    out.activities, out.timers, out.children = [], [], []
    out.status = status
    out.output = result
    if action.HasField("failureDetails"):
        out.failure = action.failureDetails
    elif status == p.STATUS_FAILED:
        out.failure = ev.failure("WorkflowFailed", "the workflow failed without details")
    out.appended.append(ev.completed(now, status, result, out.failure))
