"""Lifecycle corners: scheduled instances, in-flight work at terminate, payload shapes, aio."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dapr.ext.workflow import (
    DaprWorkflowClient,
    DaprWorkflowContext,
    TaskFailedError,
    WorkflowActivityContext,
    WorkflowStatus,
)
from dapr.ext.workflow.aio import DaprWorkflowClient as AsyncWorkflowClient

from tests.compat.conftest import WAIT, history, kinds, run, wait_status
from tests.fixtures.tether import TetherProcess, wait_until

pytestmark = pytest.mark.usefixtures("wf_runtime")

gate = threading.Event()
finished: list[str] = []


def blocked(ctx: WorkflowActivityContext, tag: str) -> str:
    assert gate.wait(WAIT), "the test never opened the gate"
    finished.append(tag)
    return tag


def echo(ctx: WorkflowActivityContext, value: Any) -> Any:
    return value


def identity(ctx: DaprWorkflowContext, value: Any) -> Any:
    return value


def via_activity(ctx: DaprWorkflowContext, value: Any) -> Any:
    return (yield ctx.call_activity(echo, input=value))


def waits_on_activity(ctx: DaprWorkflowContext, tag: str) -> Any:
    return (yield ctx.call_activity(blocked, input=tag))


def waits(ctx: DaprWorkflowContext, _: Any) -> Any:
    return (yield ctx.wait_for_external_event("go"))


def calls_waiter(ctx: DaprWorkflowContext, _: Any) -> Any:
    try:
        yield ctx.call_child_workflow(waits, instance_id=f"{ctx.instance_id}-kid")
    except TaskFailedError as exc:
        return {"child failed": exc.details.error_type, "message": exc.details.message}
    return "child finished"


def counts_down(ctx: DaprWorkflowContext, n: int) -> Any:
    if n > 0:
        yield ctx.create_timer(timedelta(milliseconds=1))
        ctx.continue_as_new(n - 1)
        return None
    return "liftoff"


def calls_counter(ctx: DaprWorkflowContext, n: int) -> Any:
    return (yield ctx.call_child_workflow(counts_down, input=n))


def past_timer(ctx: DaprWorkflowContext, _: Any) -> Any:
    yield ctx.create_timer(ctx.current_utc_datetime - timedelta(hours=1))
    return "fired"


WORKFLOWS = [
    identity, via_activity, waits_on_activity, waits, calls_waiter, counts_down, calls_counter,
    past_timer,
]  # fmt: skip
ACTIVITIES = [blocked, echo]


# --- scheduled instances ------------------------------------------------------------------------


def test_scheduled_instance_terminated_before_it_starts_never_runs(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    start_at = datetime.now(UTC) + timedelta(seconds=0.5)
    iid = wf_client.schedule_new_workflow(identity, input=1, start_at=start_at)
    # A twin due at the same time: once it has run, the first one's start time has passed.
    twin = wf_client.schedule_new_workflow(identity, input=2, start_at=start_at)
    wf_client.terminate_workflow(iid, output="cancelled")
    done = wf_client.wait_for_workflow_completion(twin, timeout_in_seconds=WAIT)
    assert done is not None and done.serialized_output == "2"
    state = wf_client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == WorkflowStatus.TERMINATED
    assert state.serialized_output == '"cancelled"'
    assert "taskScheduled" not in kinds(history(sidecar, iid))
    assert "executionCompleted" in kinds(history(sidecar, iid))


def test_scheduled_instance_takes_events_raised_before_it_starts(
    wf_client: DaprWorkflowClient,
) -> None:
    start_at = datetime.now(UTC) + timedelta(seconds=0.3)
    iid = wf_client.schedule_new_workflow(waits, start_at=start_at)
    wf_client.raise_workflow_event(iid, "go", data="early bird")
    pending = wf_client.get_workflow_state(iid)
    assert pending is not None and pending.runtime_status == WorkflowStatus.PENDING
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.serialized_output == '"early bird"'


def test_scheduled_instance_suspended_before_it_starts(wf_client: DaprWorkflowClient) -> None:
    start_at = datetime.now(UTC) + timedelta(seconds=0.3)
    iid = wf_client.schedule_new_workflow(identity, input="later", start_at=start_at)
    wf_client.pause_workflow(iid)
    wait_status(wf_client, iid, WorkflowStatus.SUSPENDED)
    twin = wf_client.schedule_new_workflow(identity, input=0, start_at=start_at)
    assert wf_client.wait_for_workflow_completion(twin, timeout_in_seconds=WAIT) is not None
    state = wf_client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == WorkflowStatus.SUSPENDED
    wf_client.resume_workflow(iid)
    done = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert done is not None and done.serialized_output == '"later"'


# --- in-flight work -----------------------------------------------------------------------------


def test_terminate_drops_the_result_of_an_in_flight_activity(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    gate.clear()
    iid = wf_client.schedule_new_workflow(waits_on_activity, input="late")
    wait_until(lambda: "taskScheduled" in kinds(history(sidecar, iid)), WAIT, what="activity")
    wf_client.terminate_workflow(iid)
    wait_status(wf_client, iid, WorkflowStatus.TERMINATED)
    gate.set()  # the activity finishes after its workflow is gone
    wait_until(lambda: "late" in finished, WAIT, what="the activity to finish")
    # A later instance's activity result is a barrier: the late result was handled before it.
    assert run(wf_client, via_activity, "barrier").serialized_output == '"barrier"'
    assert "taskCompleted" not in kinds(history(sidecar, iid))
    state = wf_client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == WorkflowStatus.TERMINATED


def test_terminating_a_child_fails_its_parents_task(wf_client: DaprWorkflowClient) -> None:
    iid = wf_client.schedule_new_workflow(calls_waiter)
    wait_status(wf_client, f"{iid}-kid", WorkflowStatus.RUNNING)
    wf_client.terminate_workflow(f"{iid}-kid")
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    out = json.loads(state.serialized_output or "")
    assert "child failed" in out and f"{iid}-kid" in out["message"]


def test_suspended_parent_gets_child_result_after_resume(wf_client: DaprWorkflowClient) -> None:
    iid = wf_client.schedule_new_workflow(calls_waiter)
    kid = f"{iid}-kid"
    wait_status(wf_client, kid, WorkflowStatus.RUNNING)
    wf_client.pause_workflow(iid)
    wait_status(wf_client, iid, WorkflowStatus.SUSPENDED)
    wf_client.raise_workflow_event(kid, "go")
    assert wf_client.wait_for_workflow_completion(kid, timeout_in_seconds=WAIT) is not None
    state = wf_client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == WorkflowStatus.SUSPENDED
    wf_client.resume_workflow(iid)
    done = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert done is not None and done.serialized_output == '"child finished"'


def test_child_that_continues_as_new_still_answers_its_parent(
    wf_client: DaprWorkflowClient,
) -> None:
    state = run(wf_client, calls_counter, 4)
    assert state.runtime_status == WorkflowStatus.COMPLETED
    assert state.serialized_output == '"liftoff"'


def test_timer_in_the_past_fires_at_once(wf_client: DaprWorkflowClient) -> None:
    assert run(wf_client, past_timer).serialized_output == '"fired"'


# --- payloads -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [0, "", [], {}, False, None, "ünï©ødé 🙂 \u0000", {"nested": [1, 2.5, None, True]}],
    ids=["zero", "empty-str", "empty-list", "empty-dict", "false", "none", "unicode", "nested"],
)
def test_payloads_survive_the_round_trip(wf_client: DaprWorkflowClient, value: Any) -> None:
    direct = run(wf_client, identity, value)
    through = run(wf_client, via_activity, value)
    for state in (direct, through):
        assert state.runtime_status == WorkflowStatus.COMPLETED
        out = state.serialized_output
        assert (None if out is None else json.loads(out)) == value


def test_payload_over_the_grpc_default_limit(
    wf_client: DaprWorkflowClient, tether_server: TetherProcess
) -> None:
    # 4.5 MiB: past gRPC's 4 MiB default, within the server's 16 MiB; the worker and a client
    # configured for it carry it through.
    blob = "p" * (9 * 512 * 1024)
    iid = wf_client.schedule_new_workflow(via_activity, input=blob)
    big = DaprWorkflowClient(
        host="127.0.0.1", port=str(tether_server.grpc_port), max_grpc_message_length=32 << 20
    )
    try:
        state = big.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    finally:
        big.close()
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or '""') == blob


# --- the asyncio client -------------------------------------------------------------------------


async def test_async_client(tether_server: TetherProcess) -> None:
    client = AsyncWorkflowClient(host="127.0.0.1", port=str(tether_server.grpc_port))
    try:
        iid = await client.schedule_new_workflow(waits)
        started = await client.wait_for_workflow_start(iid, timeout_in_seconds=WAIT)
        assert started is not None and started.runtime_status == WorkflowStatus.RUNNING
        await client.raise_workflow_event(iid, "go", data={"from": "asyncio"})
        state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
        assert state is not None and json.loads(state.serialized_output or "") == {
            "from": "asyncio"
        }
        ids = [i async for i in client.iter_workflow_instance_ids(page_size=3)]
        assert iid in ids
        assert await client.get_workflow_state("ghost") is None
    finally:
        # The public async client has no close(); its transport does.
        await client._DaprWorkflowClient__obj.aclose()  # type: ignore[attr-defined]


# --- last: the server goes down under a connected worker ----------------------------------------


def test_worker_and_client_heal_after_a_server_crash(
    wf_client: DaprWorkflowClient, sidecar: Any, tether_server: TetherProcess
) -> None:
    gate.set()
    iid = wf_client.schedule_new_workflow(waits)
    wait_until(lambda: "timerCreated" in kinds(history(sidecar, iid)), WAIT, what="the wait")
    tether_server.restart()  # SIGKILL, then a new process on the same ports and data
    wf_client.raise_workflow_event(iid, "go", data="after the crash")
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.serialized_output == '"after the crash"'
    # New work flows through the reconnected worker as well.
    assert run(wf_client, via_activity, [1, 2]).serialized_output == "[1, 2]"
