"""External events, suspend/resume and continue-as-new, driven by the official SDK."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dapr.ext.workflow import (
    DaprWorkflowClient,
    DaprWorkflowContext,
    WorkflowActivityContext,
    WorkflowStatus,
)

from tests.compat.conftest import WAIT, history, kinds, run, wait_status
from tests.fixtures.tether import wait_until

pytestmark = pytest.mark.usefixtures("wf_runtime")

# Opened by the test once its event is recorded, so the workflow reaches its wait only after.
gate = threading.Event()


def hold(ctx: WorkflowActivityContext, _: Any) -> str:
    assert gate.wait(WAIT), "the test never opened the gate"
    return "released"


def step(ctx: WorkflowActivityContext, n: int) -> int:
    return n + 1


def wait_one(ctx: DaprWorkflowContext, _: Any) -> Any:
    data = yield ctx.wait_for_external_event("approval")
    return {"approval": data}


def activity_then_wait(ctx: DaprWorkflowContext, _: Any) -> Any:
    released = yield ctx.call_activity(hold)
    data = yield ctx.wait_for_external_event("approval")
    return {"activity": released, "approval": data}


def wait_with_timeout(ctx: DaprWorkflowContext, seconds: float) -> Any:
    try:
        data = yield ctx.wait_for_external_event("approval", timeout=timedelta(seconds=seconds))
    except TimeoutError:
        return "timed out"
    return {"approval": data}


def collect(ctx: DaprWorkflowContext, n: int) -> list[Any]:
    got = []
    for _ in range(n):
        got.append((yield ctx.wait_for_external_event("item")))
    return got


def loop_plain(ctx: DaprWorkflowContext, n: int) -> Any:
    n = yield ctx.call_activity(step, input=n)
    if n < 5:
        ctx.continue_as_new(n)
        return None
    return {"final": n}


def loop_events(ctx: DaprWorkflowContext, state: dict[str, Any]) -> Any:
    value = yield ctx.wait_for_external_event("tick")
    seen = [*state["seen"], value]
    if len(seen) < state["expect"]:
        ctx.continue_as_new({"seen": seen, "expect": state["expect"]}, save_events=True)
        return None
    return seen


WORKFLOWS = [wait_one, activity_then_wait, wait_with_timeout, collect, loop_plain, loop_events]
ACTIVITIES = [hold, step]


def _has(sidecar: Any, iid: str, kind: str, count: int = 1) -> bool:
    return kinds(history(sidecar, iid)).count(kind) >= count


# --- external events ----------------------------------------------------------------------------


def test_event_raised_before_the_wait_is_delivered(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    gate.clear()
    iid = wf_client.schedule_new_workflow(activity_then_wait)
    wait_until(lambda: _has(sidecar, iid, "taskScheduled"), WAIT, what="activity scheduled")
    wf_client.raise_workflow_event(iid, "approval", data={"by": "early"})
    wait_until(lambda: _has(sidecar, iid, "eventRaised"), WAIT, what="event recorded")
    assert not _has(sidecar, iid, "taskCompleted")  # the workflow has not reached its wait yet
    gate.set()
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "") == {
        "activity": "released",
        "approval": {"by": "early"},
    }


def test_event_raised_after_the_wait_is_delivered(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    iid = wf_client.schedule_new_workflow(wait_one)
    # Waiting without a timeout is recorded as a timer that never fires.
    wait_until(lambda: _has(sidecar, iid, "timerCreated"), WAIT, what="the workflow to wait")
    wf_client.raise_workflow_event(iid, "APPROVAL", data=[1, 2])  # names are case-insensitive
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and json.loads(state.serialized_output or "") == {"approval": [1, 2]}
    raised = [e.eventRaised for e in history(sidecar, iid) if e.HasField("eventRaised")]
    assert [(r.name, r.input.value) for r in raised] == [("APPROVAL", "[1, 2]")]


def test_event_wait_times_out(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    state = run(wf_client, wait_with_timeout, 0.3)
    assert state.serialized_output == '"timed out"'
    events = history(sidecar, state.instance_id)
    assert "timerFired" in kinds(events)
    assert "eventRaised" not in kinds(events)


def test_event_wait_with_timeout_gets_the_event(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    iid = wf_client.schedule_new_workflow(wait_with_timeout, input=30)
    wait_until(lambda: _has(sidecar, iid, "timerCreated"), WAIT, what="the workflow to wait")
    wf_client.raise_workflow_event(iid, "approval", data="yes")
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and json.loads(state.serialized_output or "") == {"approval": "yes"}
    assert "timerFired" not in kinds(history(sidecar, iid))  # the 30 s timer is still pending


def test_events_are_delivered_in_order(wf_client: DaprWorkflowClient) -> None:
    iid = wf_client.schedule_new_workflow(collect, input=10)
    for i in range(1, 11):
        wf_client.raise_workflow_event(iid, "item", data=i)
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and json.loads(state.serialized_output or "") == list(range(1, 11))


# --- suspend and resume -------------------------------------------------------------------------


def test_suspended_workflow_keeps_events_until_resumed(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    iid = wf_client.schedule_new_workflow(collect, input=3)
    wait_until(lambda: _has(sidecar, iid, "timerCreated"), WAIT, what="the workflow to wait")
    wf_client.pause_workflow(iid)
    suspended = wait_status(wf_client, iid, WorkflowStatus.SUSPENDED)
    assert suspended.serialized_output is None
    for i in (10, 20, 30):
        wf_client.raise_workflow_event(iid, "item", data=i)
    # Everything it needs has arrived, yet a suspended workflow does not move.
    with pytest.raises(TimeoutError):
        wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=1)
    state = wf_client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == WorkflowStatus.SUSPENDED
    wf_client.pause_workflow(iid)  # suspending twice is harmless
    wf_client.resume_workflow(iid)
    done = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert done is not None and done.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(done.serialized_output or "") == [10, 20, 30]
    order = [k for k in kinds(history(sidecar, iid)) if k.startswith("execution")]
    assert order == [
        "executionStarted", "executionSuspended", "executionResumed", "executionCompleted",
    ]  # fmt: skip


def test_resume_of_running_workflow_is_ignored(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    iid = wf_client.schedule_new_workflow(collect, input=1)
    wait_until(lambda: _has(sidecar, iid, "timerCreated"), WAIT, what="the workflow to wait")
    wf_client.resume_workflow(iid)  # the SDK would fail on a stray executionResumed
    wf_client.raise_workflow_event(iid, "item", data="x")
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    assert "executionResumed" not in kinds(history(sidecar, iid))


# --- continue-as-new ----------------------------------------------------------------------------


def test_continue_as_new_restarts_with_new_input(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    state = run(wf_client, loop_plain, 0)
    assert state.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "") == {"final": 5}
    events = history(sidecar, state.instance_id)
    # Only the last generation's history is kept.
    assert kinds(events).count("executionStarted") == 1
    started = next(e.executionStarted for e in events if e.HasField("executionStarted"))
    assert started.input.value == "4"
    assert kinds(events).count("taskScheduled") == 1


def test_continue_as_new_with_saved_events_loses_none(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    total = 50
    start_at = datetime.now(UTC) + timedelta(seconds=0.3)
    iid = wf_client.schedule_new_workflow(
        loop_events, input={"seen": [], "expect": total}, start_at=start_at
    )
    # Half arrive before the first generation runs: it takes one and must carry the rest over.
    for i in range(1, total // 2 + 1):
        wf_client.raise_workflow_event(iid, "tick", data=i)
    wait_status(wf_client, iid, WorkflowStatus.RUNNING)
    # The other half arrive while it loops, many of them between generations.
    for i in range(total // 2 + 1, total + 1):
        wf_client.raise_workflow_event(iid, "tick", data=i)
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    seen = json.loads(state.serialized_output or "")
    assert len(seen) == total
    assert seen == list(range(1, total + 1))
    # The last generation started with the events the one before it had not consumed.
    started = next(
        e.executionStarted for e in history(sidecar, iid) if e.HasField("executionStarted")
    )
    assert len(json.loads(started.input.value)["seen"]) == total - 1
