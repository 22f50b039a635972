"""Management operations of the 1.19 client: history, listing, rerun from an event."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import grpc
import pytest
from dapr.ext.workflow import (
    DaprWorkflowClient,
    DaprWorkflowContext,
    WorkflowActivityContext,
    WorkflowHistoryEventType,
    WorkflowStatus,
    when_all,
)
from dapr.ext.workflow._durabletask.internal import protos as pb

from tests.compat.conftest import WAIT, history, kinds, rpc_error, run, wait_status
from tests.fixtures.tether import wait_until

pytestmark = pytest.mark.usefixtures("wf_runtime")

runs: Counter[str] = Counter()
_lock = threading.Lock()


def record(ctx: WorkflowActivityContext, spec: dict[str, Any]) -> int:
    with _lock:
        runs[spec["step"]] += 1
    return int(spec["x"]) * 10


def kid(ctx: DaprWorkflowContext, x: int) -> int:
    y = yield ctx.call_activity(record, input={"step": "kid", "x": x})
    return y + 1


def steps(ctx: DaprWorkflowContext, x: int) -> list[int]:
    a = yield ctx.call_activity(record, input={"step": "a", "x": x})  # event 1
    b = yield ctx.call_activity(record, input={"step": "b", "x": a})  # event 2
    yield ctx.create_timer(timedelta(milliseconds=20))  # event 3
    c = yield ctx.call_child_workflow(kid, input=b)  # event 4
    return [a, b, c]


def fails(ctx: DaprWorkflowContext, _: Any) -> None:
    yield ctx.call_activity(record, input={"step": "f", "x": 1})
    raise RuntimeError("broken on purpose")


def idle(ctx: DaprWorkflowContext, _: Any) -> Any:
    yield ctx.wait_for_external_event("never")


def waiter(ctx: DaprWorkflowContext, _: Any) -> Any:
    return (yield ctx.wait_for_external_event("go"))


def side_by_side(ctx: DaprWorkflowContext, _: Any) -> Any:
    child = ctx.call_child_workflow(waiter)  # event 1
    step = ctx.call_activity(record, input={"step": "side", "x": 1})  # event 2
    return (yield when_all([child, step]))


WORKFLOWS = [kid, steps, fails, idle, waiter, side_by_side]
ACTIVITIES = [record]


@pytest.fixture(scope="module")
def source(wf_client: DaprWorkflowClient) -> str:
    """One finished run of `steps` that every rerun test starts from."""
    state = run(wf_client, steps, 1, instance_id="src")
    assert state.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "") == [10, 100, 1001]
    return "src"


# --- history ------------------------------------------------------------------------------------


def test_history_of_a_finished_workflow_is_complete(
    wf_client: DaprWorkflowClient, source: str
) -> None:
    events = wf_client.get_workflow_history(source)
    types = [e.event_type for e in events]
    assert types[0] == WorkflowHistoryEventType.WORKFLOW_STARTED
    assert types[1] == WorkflowHistoryEventType.EXECUTION_STARTED
    assert types[-1] == WorkflowHistoryEventType.EXECUTION_COMPLETED
    rerunnable = [(e.event_id, e.event_type) for e in events if e.is_rerunnable]
    assert rerunnable == [
        (1, WorkflowHistoryEventType.TASK_SCHEDULED),
        (2, WorkflowHistoryEventType.TASK_SCHEDULED),
        (3, WorkflowHistoryEventType.TIMER_CREATED),
        (4, WorkflowHistoryEventType.CHILD_WORKFLOW_INSTANCE_CREATED),
    ]
    stamps = [
        e.timestamp for e in events if e.event_type == WorkflowHistoryEventType.WORKFLOW_STARTED
    ]
    assert stamps == sorted(stamps)


def test_history_records_the_failure(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    state = run(wf_client, fails)
    assert state.runtime_status == WorkflowStatus.FAILED
    last = history(sidecar, state.instance_id)[-1]
    assert last.HasField("executionCompleted")
    assert last.executionCompleted.workflowStatus == pb.ORCHESTRATION_STATUS_FAILED
    assert last.executionCompleted.failureDetails.errorType == "RuntimeError"
    assert last.executionCompleted.failureDetails.errorMessage == "broken on purpose"


def test_history_of_unknown_instance_is_not_found(wf_client: DaprWorkflowClient) -> None:
    err = rpc_error(lambda: wf_client.get_workflow_history("nobody-home"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


# --- listing ------------------------------------------------------------------------------------


def test_listing_pages_through_every_instance(wf_client: DaprWorkflowClient) -> None:
    mine = {wf_client.schedule_new_workflow(idle, instance_id=f"list-{i}") for i in range(7)}
    everything = list(wf_client.iter_workflow_instance_ids(page_size=2))
    assert len(everything) == len(set(everything)), "a page repeated an instance"
    assert mine <= set(everything)
    first = wf_client.list_workflow_instance_ids(page_size=3)
    assert len(first.instance_ids) == 3 and first.continuation_token
    second = wf_client.list_workflow_instance_ids(
        page_size=3, continuation_token=first.continuation_token
    )
    assert not set(first.instance_ids) & set(second.instance_ids)
    last = wf_client.list_workflow_instance_ids(page_size=len(everything))
    assert set(last.instance_ids) == set(everything) and last.continuation_token is None
    for iid in mine:
        wf_client.terminate_workflow(iid)


def test_listing_with_a_bad_token_is_refused(sidecar: Any) -> None:
    req = pb.ListInstanceIDsRequest(pageSize=2, continuationToken="not a token")
    err = rpc_error(lambda: sidecar.ListInstanceIDs(req))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- rerun --------------------------------------------------------------------------------------


def _done(client: DaprWorkflowClient, iid: str) -> list[Any]:
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED, state
    return list(json.loads(state.serialized_output or ""))


def test_rerun_from_an_activity_repeats_only_what_follows(
    wf_client: DaprWorkflowClient, sidecar: Any, source: str
) -> None:
    before_src = history(sidecar, source)
    counts = runs.copy()
    new = wf_client.rerun_workflow_from_event(source, 2, new_instance_id="rerun-b")
    assert new == "rerun-b"
    assert _done(wf_client, new) == [10, 100, 1001]
    assert runs["a"] == counts["a"], "an activity before the rerun point ran again"
    assert runs["b"] == counts["b"] + 1
    assert runs["kid"] == counts["kid"] + 1
    state = wf_client.get_workflow_state(new)
    assert state is not None and state.serialized_input == "1"
    assert history(sidecar, source) == before_src, "the source instance changed"
    # The rerun's child is its own instance; the source's child is left alone.
    children = [
        e.childWorkflowInstanceCreated.instanceId
        for e in history(sidecar, new)
        if e.HasField("childWorkflowInstanceCreated")
    ]
    assert children and children[0] != "src:0004"
    child = wf_client.get_workflow_state(children[0])
    assert child is not None and child.runtime_status == WorkflowStatus.COMPLETED


def test_rerun_with_new_input_for_the_rerun_activity(
    wf_client: DaprWorkflowClient, source: str
) -> None:
    new = wf_client.rerun_workflow_from_event(
        source, 2, new_instance_id="rerun-input", input={"step": "b", "x": 7}
    )
    # Only the rerun activity's input changes: b = 70, and the rest follows from it.
    assert _done(wf_client, new) == [10, 70, 701]
    state = wf_client.get_workflow_state(new)
    assert state is not None and state.serialized_input == "1"


def test_rerun_from_a_timer(wf_client: DaprWorkflowClient, sidecar: Any, source: str) -> None:
    counts = runs.copy()
    new = wf_client.rerun_workflow_from_event(source, 3)
    assert new and new != source
    assert _done(wf_client, new) == [10, 100, 1001]
    assert runs["b"] == counts["b"] and runs["kid"] == counts["kid"] + 1
    assert "timerFired" in kinds(history(sidecar, new))


def test_rerun_from_a_child_workflow_with_its_own_id(
    wf_client: DaprWorkflowClient, source: str
) -> None:
    new = wf_client.rerun_workflow_from_event(
        source, 4, new_instance_id="rerun-kid", new_child_workflow_instance_id="rerun-kid-child"
    )
    assert _done(wf_client, new) == [10, 100, 1001]
    child = wf_client.get_workflow_state("rerun-kid-child")
    assert child is not None and child.runtime_status == WorkflowStatus.COMPLETED
    original = wf_client.get_workflow_state("src:0004")
    assert original is not None and original.runtime_status == WorkflowStatus.COMPLETED


def test_rerun_restarts_a_child_the_source_never_heard_back_from(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    wf_client.schedule_new_workflow(side_by_side, instance_id="fork-src")
    wait_status(wf_client, "fork-src:0001", WorkflowStatus.RUNNING)
    wait_until(
        lambda: "taskCompleted" in kinds(history(sidecar, "fork-src")), WAIT, what="the activity"
    )
    wf_client.terminate_workflow("fork-src", recursive=False)
    wait_status(wf_client, "fork-src", WorkflowStatus.TERMINATED)
    new = wf_client.rerun_workflow_from_event("fork-src", 2, new_instance_id="fork-new")
    # The child started before the rerun point never answered: it runs again, as the new
    # instance's own child, and the source's child is left alone.
    wait_status(wf_client, "fork-new:0001", WorkflowStatus.RUNNING)
    wf_client.raise_workflow_event("fork-new:0001", "go", data="again")
    assert _done(wf_client, new) == ["again", 10]
    original = wf_client.get_workflow_state("fork-src:0001")
    assert original is not None and original.runtime_status == WorkflowStatus.RUNNING
    wf_client.terminate_workflow("fork-src:0001")


def test_rerun_refusals(wf_client: DaprWorkflowClient, source: str) -> None:
    def code(**kwargs: Any) -> grpc.StatusCode:
        err = rpc_error(lambda: wf_client.rerun_workflow_from_event(**kwargs))
        assert err.details(), "an error without a message"
        return err.code()

    assert code(instance_id=source, event_id=99) == grpc.StatusCode.NOT_FOUND
    assert code(instance_id="no-such-source", event_id=1) == grpc.StatusCode.NOT_FOUND
    assert code(instance_id=source, event_id=3, input=5) == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        code(instance_id=source, event_id=1, new_child_workflow_instance_id="x")
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert code(instance_id=source, event_id=1, new_instance_id=source) in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert code(instance_id=source, event_id=1, new_instance_id="src:0004") in (
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    # A child workflow cannot be rerun on its own: its parent would never hear of it.
    assert code(instance_id="src:0004", event_id=1) == grpc.StatusCode.INVALID_ARGUMENT
    running = wf_client.schedule_new_workflow(idle)
    wait_status(wf_client, running, WorkflowStatus.RUNNING)
    assert code(instance_id=running, event_id=1) == grpc.StatusCode.INVALID_ARGUMENT
    wf_client.terminate_workflow(running)


def test_rerun_into_an_existing_instance_is_refused(
    wf_client: DaprWorkflowClient, source: str
) -> None:
    wf_client.schedule_new_workflow(idle, instance_id="taken")
    wf_client.terminate_workflow("taken")
    wait_status(wf_client, "taken", WorkflowStatus.TERMINATED)
    err = rpc_error(lambda: wf_client.rerun_workflow_from_event(source, 1, new_instance_id="taken"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    state = wf_client.get_workflow_state("taken")
    assert state is not None and state.runtime_status == WorkflowStatus.TERMINATED
