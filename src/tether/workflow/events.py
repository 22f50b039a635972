"""Constructors and readers for history events, so the engine speaks in domain terms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2, wrappers_pb2

from tether.workflow.protos import pb

Event = Any  # pb.HistoryEvent; the generated classes carry no static types


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def sv(value: str | None) -> wrappers_pb2.StringValue | None:
    return None if value is None else wrappers_pb2.StringValue(value=value)


def opt(msg: Any, field: str) -> str | None:
    """Read an optional StringValue field as `str | None`."""
    return msg.__getattribute__(field).value if msg.HasField(field) else None


def kind(event: Event) -> str:
    return str(event.WhichOneof("eventType"))


def new(event_id: int, at: datetime, **payload: Any) -> Event:
    event = pb.HistoryEvent(eventId=event_id, **payload)
    event.timestamp.FromDatetime(at)
    return event


def workflow_started(at: datetime) -> Event:
    return new(-1, at, workflowStarted=pb.WorkflowStartedEvent())


def execution_started(
    at: datetime,
    name: str,
    instance_id: str,
    execution_id: str,
    input: str | None,
    *,
    parent: Any | None = None,
    scheduled: datetime | None = None,
) -> Event:
    started = pb.ExecutionStartedEvent(
        name=name,
        input=sv(input),
        workflowInstance=pb.WorkflowInstance(instanceId=instance_id, executionId=sv(execution_id)),
        parentInstance=parent,
    )
    if scheduled is not None:
        started.scheduledStartTimestamp.CopyFrom(ts(scheduled))
    return new(-1, at, executionStarted=started)


def event_raised(at: datetime, name: str, input: str | None) -> Event:
    return new(-1, at, eventRaised=pb.EventRaisedEvent(name=name, input=sv(input)))


def suspended(at: datetime, reason: str | None) -> Event:
    return new(-1, at, executionSuspended=pb.ExecutionSuspendedEvent(input=sv(reason)))


def resumed(at: datetime, reason: str | None) -> Event:
    return new(-1, at, executionResumed=pb.ExecutionResumedEvent(input=sv(reason)))


def terminated(at: datetime, output: str | None, recurse: bool) -> Event:
    return new(
        -1, at, executionTerminated=pb.ExecutionTerminatedEvent(input=sv(output), recurse=recurse)
    )


def completed(at: datetime, status: int, result: str | None, failure: Any | None) -> Event:
    return new(
        -1,
        at,
        executionCompleted=pb.ExecutionCompletedEvent(
            workflowStatus=status, result=sv(result), failureDetails=failure
        ),
    )


def timer_fired(at: datetime, timer_id: int, fire_at: Any) -> Event:
    return new(-1, at, timerFired=pb.TimerFiredEvent(fireAt=fire_at, timerId=timer_id))


def task_completed(at: datetime, task_id: int, result: str | None, execution_id: str) -> Event:
    return new(
        -1,
        at,
        taskCompleted=pb.TaskCompletedEvent(
            taskScheduledId=task_id, result=sv(result), taskExecutionId=execution_id
        ),
    )


def task_failed(at: datetime, task_id: int, failure: Any, execution_id: str) -> Event:
    return new(
        -1,
        at,
        taskFailed=pb.TaskFailedEvent(
            taskScheduledId=task_id, failureDetails=failure, taskExecutionId=execution_id
        ),
    )


def child_completed(at: datetime, task_id: int, result: str | None) -> Event:
    return new(
        -1,
        at,
        childWorkflowInstanceCompleted=pb.ChildWorkflowInstanceCompletedEvent(
            taskScheduledId=task_id, result=sv(result)
        ),
    )


def child_failed(at: datetime, task_id: int, failure: Any) -> Event:
    return new(
        -1,
        at,
        childWorkflowInstanceFailed=pb.ChildWorkflowInstanceFailedEvent(
            taskScheduledId=task_id, failureDetails=failure
        ),
    )


def failure(error_type: str, message: str, non_retriable: bool = False) -> Any:
    return pb.TaskFailureDetails(
        errorType=error_type, errorMessage=message, isNonRetriable=non_retriable
    )


def parse(raw: bytes) -> Event:
    event = pb.HistoryEvent()
    event.ParseFromString(raw)
    return event


# Events whose eventId confirms an action the worker asked for (dedupe key).
ACTION_EVENTS = frozenset(
    {"taskScheduled", "timerCreated", "childWorkflowInstanceCreated", "eventSent"}
)
# Events that answer an action of the current generation; dropped at continue-as-new.
RESULT_EVENTS = frozenset(
    {
        "taskCompleted",
        "taskFailed",
        "timerFired",
        "childWorkflowInstanceCompleted",
        "childWorkflowInstanceFailed",
    }
)
