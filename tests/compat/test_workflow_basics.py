"""Core patterns through the official SDK: chaining, fan-out, timers, clock, status, failures."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from dapr.ext.workflow import (
    DaprWorkflowClient,
    DaprWorkflowContext,
    TaskFailedError,
    WorkflowActivityContext,
    WorkflowStatus,
    when_all,
    when_any,
)

from tests.compat.conftest import WAIT, history, kinds, rpc_error, run, wait_status
from tests.fixtures.tether import wait_until

pytestmark = pytest.mark.usefixtures("wf_runtime")


# --- activities ---------------------------------------------------------------------------------


def double(ctx: WorkflowActivityContext, x: int) -> int:
    return x * 2


def square(ctx: WorkflowActivityContext, x: int) -> int:
    return x * x


def echo(ctx: WorkflowActivityContext, value: Any) -> Any:
    return value


# --- workflows ----------------------------------------------------------------------------------


def chain(ctx: DaprWorkflowContext, x: int) -> list[int]:
    a = yield ctx.call_activity(double, input=x)
    b = yield ctx.call_activity(square, input=a)
    c = yield ctx.call_activity(double, input=b)
    return [a, b, c]


def fan_out(ctx: DaprWorkflowContext, n: int) -> dict[str, Any]:
    results = yield when_all([ctx.call_activity(square, input=i) for i in range(n)])
    return {"count": len(results), "sum": sum(results), "first": results[:3]}


def race_timers(ctx: DaprWorkflowContext, _: Any) -> str:
    slow = ctx.create_timer(timedelta(seconds=30))
    fast = ctx.create_timer(timedelta(milliseconds=200))
    winner = yield when_any([slow, fast])
    return "fast" if winner is fast else "slow"


def race_timer_vs_event(ctx: DaprWorkflowContext, _: Any) -> str:
    event = ctx.wait_for_external_event("never")
    timer = ctx.create_timer(timedelta(milliseconds=200))
    winner = yield when_any([event, timer])
    return "timer" if winner is timer else "event"


def clock(ctx: DaprWorkflowContext, _: Any) -> dict[str, Any]:
    before = ctx.current_utc_datetime.isoformat()
    # The activity sees the value of the first (live) execution; the return value is the one
    # computed by the final replay. Determinism means they are equal.
    live_before = yield ctx.call_activity(echo, input=before)
    yield ctx.create_timer(timedelta(milliseconds=300))
    after = ctx.current_utc_datetime.isoformat()
    return {"before": before, "live_before": live_before, "after": after}


def status_then_wait(ctx: DaprWorkflowContext, _: Any) -> str:
    ctx.set_custom_status("step-1")
    yield ctx.wait_for_external_event("go")
    ctx.set_custom_status("step-2")
    return "done"


def explode(ctx: DaprWorkflowContext, message: str) -> None:
    yield ctx.call_activity(double, input=1)
    raise ValueError(message)


def call_missing_activity(ctx: DaprWorkflowContext, _: Any) -> dict[str, str]:
    try:
        yield ctx.call_activity("no_such_activity", input=1)
    except TaskFailedError as exc:
        details = exc.details
        return {"type": details.error_type, "message": details.message}
    return {"type": "", "message": "the unregistered activity succeeded"}


def wait_for_go(ctx: DaprWorkflowContext, tag: Any) -> Any:
    yield ctx.wait_for_external_event("go")
    return tag


WORKFLOWS = [
    chain, fan_out, race_timers, race_timer_vs_event, clock, status_then_wait, explode,
    call_missing_activity, wait_for_go,
]  # fmt: skip
ACTIVITIES = [double, square, echo]


# --- tests --------------------------------------------------------------------------------------


def test_chaining_passes_each_result_on(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    state = run(wf_client, chain, 3)
    assert state.runtime_status == WorkflowStatus.COMPLETED
    assert state.serialized_output == "[6, 36, 72]"
    assert state.serialized_input == "3"
    events = history(sidecar, state.instance_id)
    scheduled = [e.taskScheduled for e in events if e.HasField("taskScheduled")]
    assert [t.name for t in scheduled] == ["double", "square", "double"]
    assert [t.input.value for t in scheduled] == ["3", "6", "36"]
    done = [e.taskCompleted for e in events if e.HasField("taskCompleted")]
    assert [d.result.value for d in done] == ["6", "36", "72"]
    assert kinds(events)[:2] == ["workflowStarted", "executionStarted"]


def test_fan_out_fan_in_of_fifty(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    state = run(wf_client, fan_out, 50)
    assert state.runtime_status == WorkflowStatus.COMPLETED
    assert state.serialized_output == '{"count": 50, "sum": 40425, "first": [0, 1, 4]}'
    events = history(sidecar, state.instance_id)
    scheduled = {e.eventId for e in events if e.HasField("taskScheduled")}
    answered = {e.taskCompleted.taskScheduledId for e in events if e.HasField("taskCompleted")}
    assert len(scheduled) == 50
    assert answered == scheduled


def test_when_any_of_two_timers_takes_the_first_to_fire(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    started = time.monotonic()
    state = run(wf_client, race_timers)
    assert state.serialized_output == '"fast"'
    assert time.monotonic() - started < 10
    events = history(sidecar, state.instance_id)
    assert kinds(events).count("timerCreated") == 2
    fired = [e.timerFired for e in events if e.HasField("timerFired")]
    assert len(fired) == 1  # the 30 s timer never fired; the workflow did not wait for it


def test_when_any_of_timer_and_event(wf_client: DaprWorkflowClient) -> None:
    assert run(wf_client, race_timer_vs_event).serialized_output == '"timer"'


def test_current_utc_datetime_is_recorded_not_wall_clock(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    state = run(wf_client, clock)
    result = json.loads(state.serialized_output or "{}")
    assert result["before"] == result["live_before"]
    before = datetime.fromisoformat(result["before"])
    after = datetime.fromisoformat(result["after"])
    assert after - before >= timedelta(milliseconds=300)
    # The value is the first turn's recorded start time, whatever the wall clock said later.
    first = next(e for e in history(sidecar, state.instance_id) if e.HasField("workflowStarted"))
    assert first.timestamp.ToDatetime() == before


def test_custom_status_is_visible(wf_client: DaprWorkflowClient) -> None:
    iid = wf_client.schedule_new_workflow(status_then_wait)

    def has_status() -> bool:
        state = wf_client.get_workflow_state(iid)
        return state is not None and state.serialized_custom_status == "step-1"

    wait_until(has_status, WAIT, what="custom status step-1")
    state = wf_client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == WorkflowStatus.RUNNING
    wf_client.raise_workflow_event(iid, "go", data=1)
    done = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert done is not None
    assert done.serialized_custom_status == "step-2"
    assert done.serialized_output == '"done"'


def test_failed_workflow_reports_error_type_and_message(wf_client: DaprWorkflowClient) -> None:
    state = run(wf_client, explode, "kaboom 42")
    assert state.runtime_status == WorkflowStatus.FAILED
    details = state.failure_details
    assert details is not None
    assert details.error_type == "ValueError"
    assert details.message == "kaboom 42"
    assert details.stack_trace and "explode" in details.stack_trace
    assert state.serialized_output is None


def test_unregistered_workflow_fails_clearly(wf_client: DaprWorkflowClient) -> None:
    state = run(wf_client, "no_such_workflow")
    assert state.runtime_status == WorkflowStatus.FAILED
    assert state.failure_details is not None
    assert "no_such_workflow" in state.failure_details.message
    assert "not registered" in state.failure_details.message


def test_unregistered_activity_is_a_task_failure(wf_client: DaprWorkflowClient) -> None:
    state = run(wf_client, call_missing_activity)
    assert state.runtime_status == WorkflowStatus.COMPLETED
    out = state.serialized_output or ""
    assert "no_such_activity" in out and "not registered" in out


def test_scheduled_start_waits_until_start_at(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    start_at = datetime.now(UTC) + timedelta(seconds=1.0)
    iid = wf_client.schedule_new_workflow(chain, input=1, start_at=start_at)
    pending = wf_client.get_workflow_state(iid)
    assert pending is not None and pending.runtime_status == WorkflowStatus.PENDING
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    assert state.serialized_output == "[2, 4, 8]"
    first = next(e for e in history(sidecar, iid) if e.HasField("workflowStarted"))
    assert first.timestamp.ToDatetime(tzinfo=UTC) >= start_at


def test_duplicate_instance_id_of_running_instance_is_refused(
    wf_client: DaprWorkflowClient,
) -> None:
    iid = wf_client.schedule_new_workflow(wait_for_go, input="first", instance_id="dup-running")
    wait_status(wf_client, iid, WorkflowStatus.RUNNING)
    err = rpc_error(
        lambda: wf_client.schedule_new_workflow(wait_for_go, input="second", instance_id=iid)
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert iid in (err.details() or "")
    state = wf_client.get_workflow_state(iid)
    assert state is not None and state.serialized_input == '"first"'
    wf_client.raise_workflow_event(iid, "go", data=True)
    done = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert done is not None and done.serialized_output == '"first"'


def test_duplicate_instance_id_of_finished_instance_replaces_it(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    first = run(wf_client, chain, 1, instance_id="dup-done")
    assert first.serialized_output == "[2, 4, 8]"
    second = run(wf_client, chain, 2, instance_id="dup-done")
    assert second.runtime_status == WorkflowStatus.COMPLETED
    assert second.serialized_output == "[4, 16, 32]"
    assert second.created_at >= first.created_at
    # The old run's history is gone, not appended to.
    events = history(sidecar, "dup-done")
    assert kinds(events).count("executionStarted") == 1
    assert [e.taskScheduled.input.value for e in events if e.HasField("taskScheduled")] == [
        "2",
        "4",
        "16",
    ]
