"""Child workflows, retry policies, terminate and purge, driven by the official SDK."""

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
    RetryPolicy,
    TaskFailedError,
    WorkflowActivityContext,
    WorkflowStatus,
    when_all,
)

from tests.compat.conftest import WAIT, history, kinds, rpc_error, run, wait_status
from tests.fixtures.tether import wait_until

pytestmark = pytest.mark.usefixtures("wf_runtime")

# Attempts per key, counted in this process (the SDK worker runs activities here).
attempts: Counter[str] = Counter()
_lock = threading.Lock()

FAST_RETRY = RetryPolicy(first_retry_interval=timedelta(milliseconds=50), max_number_of_attempts=3)


class Flaky(RuntimeError):
    pass


def attempt(ctx: WorkflowActivityContext, spec: dict[str, Any]) -> int:
    """Count one attempt under `key`; fail until the `succeed_on`-th attempt."""
    with _lock:
        attempts[spec["key"]] += 1
        n = attempts[spec["key"]]
    if n < spec["succeed_on"]:
        raise Flaky(f"attempt {n} of {spec['key']} failed")
    return n


def greet(ctx: WorkflowActivityContext, name: str) -> str:
    return f"hello {name}"


# --- workflows ----------------------------------------------------------------------------------


def child_greeter(ctx: DaprWorkflowContext, name: str) -> str:
    greeting = yield ctx.call_activity(greet, input=name)
    return f"{greeting} from {ctx.instance_id}"


def child_fails(ctx: DaprWorkflowContext, message: str) -> None:
    yield ctx.call_activity(greet, input="x")
    raise KeyError(message)


def parent_of_greeters(ctx: DaprWorkflowContext, names: list[str]) -> list[str]:
    tasks = [ctx.call_child_workflow(child_greeter, input=n) for n in names]
    return (yield when_all(tasks))


def parent_catches(ctx: DaprWorkflowContext, message: str) -> dict[str, Any]:
    try:
        yield ctx.call_child_workflow(child_fails, input=message)
    except TaskFailedError as exc:
        return {"type": exc.details.error_type, "message": exc.details.message}
    return {}


def parent_does_not_catch(ctx: DaprWorkflowContext, message: str) -> None:
    yield ctx.call_child_workflow(child_fails, input=message)


def activity_with_retries(ctx: DaprWorkflowContext, spec: dict[str, Any]) -> Any:
    try:
        n = yield ctx.call_activity(attempt, input=spec, retry_policy=FAST_RETRY)
    except TaskFailedError as exc:
        return {"failed": exc.details.error_type, "message": exc.details.message}
    return {"succeeded_on": n}


def child_flaky(ctx: DaprWorkflowContext, spec: dict[str, Any]) -> int:
    # No activity retry here: each child attempt makes exactly one attempt.
    n = yield ctx.call_activity(attempt, input=spec)
    return n


def child_with_retries(ctx: DaprWorkflowContext, spec: dict[str, Any]) -> Any:
    try:
        n = yield ctx.call_child_workflow(
            child_flaky, input=spec, instance_id=spec["key"], retry_policy=FAST_RETRY
        )
    except TaskFailedError as exc:
        return {"failed": exc.details.message}
    return {"succeeded_on": n}


def sleeper(ctx: DaprWorkflowContext, depth: int) -> Any:
    if depth > 0:
        yield ctx.call_child_workflow(sleeper, input=depth - 1, instance_id=f"{ctx.instance_id}-c")
    yield ctx.wait_for_external_event("wake")
    return depth


WORKFLOWS = [
    child_greeter, child_fails, parent_of_greeters, parent_catches, parent_does_not_catch,
    activity_with_retries, child_flaky, child_with_retries, sleeper,
]  # fmt: skip
ACTIVITIES = [attempt, greet]


# --- child workflows ----------------------------------------------------------------------------


def test_child_workflows_return_their_results(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    state = run(wf_client, parent_of_greeters, ["ann", "bob"], instance_id="kids")
    assert state.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "") == [
        "hello ann from kids:0001",
        "hello bob from kids:0002",
    ]
    events = history(sidecar, "kids")
    created = [
        e.childWorkflowInstanceCreated for e in events if e.HasField("childWorkflowInstanceCreated")
    ]
    assert [(c.name, c.instanceId) for c in created] == [
        ("child_greeter", "kids:0001"),
        ("child_greeter", "kids:0002"),
    ]
    assert kinds(events).count("childWorkflowInstanceCompleted") == 2
    child = wf_client.get_workflow_state("kids:0001")
    assert child is not None and child.runtime_status == WorkflowStatus.COMPLETED
    assert child.serialized_input == '"ann"'


def test_child_failure_reaches_the_parent_as_task_failed(wf_client: DaprWorkflowClient) -> None:
    state = run(wf_client, parent_catches, "missing key 7")
    assert state.runtime_status == WorkflowStatus.COMPLETED
    out = json.loads(state.serialized_output or "")
    assert out["type"] == "KeyError"
    assert "missing key 7" in out["message"]


def test_uncaught_child_failure_fails_the_parent(wf_client: DaprWorkflowClient) -> None:
    state = run(wf_client, parent_does_not_catch, "deep trouble")
    assert state.runtime_status == WorkflowStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "TaskFailedError"
    assert "deep trouble" in state.failure_details.message


# --- retries ------------------------------------------------------------------------------------


def test_activity_retry_policy_retries_until_success(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    state = run(wf_client, activity_with_retries, {"key": "act-ok", "succeed_on": 3})
    assert json.loads(state.serialized_output or "") == {"succeeded_on": 3}
    assert attempts["act-ok"] == 3
    events = history(sidecar, state.instance_id)
    assert kinds(events).count("taskScheduled") == 3
    assert kinds(events).count("taskFailed") == 2
    retry_timers = [
        e for e in events if e.HasField("timerCreated") and e.timerCreated.HasField("activityRetry")
    ]
    assert len(retry_timers) == 2
    failed = next(e.taskFailed for e in events if e.HasField("taskFailed"))
    assert failed.failureDetails.errorType == "Flaky"


def test_activity_retry_policy_gives_up(wf_client: DaprWorkflowClient) -> None:
    state = run(wf_client, activity_with_retries, {"key": "act-never", "succeed_on": 99})
    out = json.loads(state.serialized_output or "")
    assert out["failed"] == "Flaky"
    assert "attempt 3 of act-never failed" in out["message"]
    assert attempts["act-never"] == 3


def test_child_workflow_retry_policy(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    state = run(wf_client, child_with_retries, {"key": "kid-ok", "succeed_on": 3})
    assert json.loads(state.serialized_output or "") == {"succeeded_on": 3}
    assert attempts["kid-ok"] == 3
    events = history(sidecar, state.instance_id)
    assert kinds(events).count("childWorkflowInstanceCreated") == 3
    assert kinds(events).count("childWorkflowInstanceFailed") == 2
    child = wf_client.get_workflow_state("kid-ok")
    assert child is not None and child.runtime_status == WorkflowStatus.COMPLETED


def test_child_workflow_retry_policy_gives_up(wf_client: DaprWorkflowClient) -> None:
    state = run(wf_client, child_with_retries, {"key": "kid-never", "succeed_on": 99})
    out = json.loads(state.serialized_output or "")
    assert "attempt 3 of kid-never failed" in out["failed"]
    assert attempts["kid-never"] == 3


# --- terminate ----------------------------------------------------------------------------------


def _start_tree(client: DaprWorkflowClient, root: str) -> list[str]:
    """A root with a child and a grandchild, all waiting; returns the three ids."""
    client.schedule_new_workflow(sleeper, input=2, instance_id=root)
    ids = [root, f"{root}-c", f"{root}-c-c"]
    for iid in ids:
        wait_status(client, iid, WorkflowStatus.RUNNING)
    return ids


def test_recursive_terminate_stops_the_whole_tree(wf_client: DaprWorkflowClient) -> None:
    ids = _start_tree(wf_client, "tree-a")
    wf_client.terminate_workflow("tree-a", output="stopped by test")
    for iid in ids:
        state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
        assert state is not None and state.runtime_status == WorkflowStatus.TERMINATED, iid
    root = wf_client.get_workflow_state("tree-a")
    assert root is not None and root.serialized_output == '"stopped by test"'
    wf_client.terminate_workflow("tree-a")  # terminating a finished workflow is a no-op
    again = wf_client.get_workflow_state("tree-a")
    assert again is not None and again.runtime_status == WorkflowStatus.TERMINATED


def test_non_recursive_terminate_leaves_children_running(wf_client: DaprWorkflowClient) -> None:
    root, child, grandchild = _start_tree(wf_client, "tree-b")
    wf_client.terminate_workflow(root, recursive=False)
    state = wf_client.wait_for_workflow_completion(root, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.TERMINATED
    for iid in (child, grandchild):
        kid = wf_client.get_workflow_state(iid)
        assert kid is not None and kid.runtime_status == WorkflowStatus.RUNNING
    # The orphans still work, and finishing does not disturb the terminated parent.
    wf_client.raise_workflow_event(grandchild, "wake")
    wf_client.raise_workflow_event(child, "wake")
    done = wf_client.wait_for_workflow_completion(child, timeout_in_seconds=WAIT)
    assert done is not None and done.runtime_status == WorkflowStatus.COMPLETED
    assert done.serialized_output == "1"
    after = wf_client.get_workflow_state(root)
    assert after is not None and after.runtime_status == WorkflowStatus.TERMINATED


def test_terminate_unknown_instance_fails(wf_client: DaprWorkflowClient) -> None:
    err = rpc_error(lambda: wf_client.terminate_workflow("never-started"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "no such instance exists" in (err.details() or "")


# --- purge --------------------------------------------------------------------------------------


def test_recursive_purge_deletes_children(wf_client: DaprWorkflowClient, sidecar: Any) -> None:
    run(wf_client, parent_of_greeters, ["cy"], instance_id="purge-a")
    assert wf_client.get_workflow_state("purge-a:0001") is not None
    wf_client.purge_workflow("purge-a")
    assert wf_client.get_workflow_state("purge-a") is None
    assert wf_client.get_workflow_state("purge-a:0001") is None
    err = rpc_error(lambda: history(sidecar, "purge-a"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_non_recursive_purge_keeps_children(wf_client: DaprWorkflowClient) -> None:
    run(wf_client, parent_of_greeters, ["di"], instance_id="purge-b")
    wf_client.purge_workflow("purge-b", recursive=False)
    assert wf_client.get_workflow_state("purge-b") is None
    child = wf_client.get_workflow_state("purge-b:0001")
    assert child is not None and child.runtime_status == WorkflowStatus.COMPLETED


def test_purge_of_running_instance_is_refused(wf_client: DaprWorkflowClient) -> None:
    ids = _start_tree(wf_client, "purge-c")
    err = rpc_error(lambda: wf_client.purge_workflow("purge-c"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "terminate it first" in (err.details() or "")
    for iid in ids:
        state = wf_client.get_workflow_state(iid)
        assert state is not None and state.runtime_status == WorkflowStatus.RUNNING
    # A finished parent with a running child (non-recursive terminate) cannot be purged
    # recursively either: the child would be deleted while it runs.
    wf_client.terminate_workflow("purge-c", recursive=False)
    wait_status(wf_client, "purge-c", WorkflowStatus.TERMINATED)
    err = rpc_error(lambda: wf_client.purge_workflow("purge-c"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "purge-c-c" in (err.details() or "")
    wf_client.terminate_workflow("purge-c-c")
    wf_client.terminate_workflow("purge-c-c-c")
    wait_until(
        lambda: all(
            (s := wf_client.get_workflow_state(i)) is not None
            and s.runtime_status == WorkflowStatus.TERMINATED
            for i in ids
        ),
        WAIT,
        what="the whole tree to be terminated",
    )
    wf_client.purge_workflow("purge-c")
    assert all(wf_client.get_workflow_state(i) is None for i in ids)


def test_purge_of_unknown_instance_is_harmless(wf_client: DaprWorkflowClient) -> None:
    wf_client.purge_workflow("never-existed")
    assert wf_client.get_workflow_state("never-existed") is None
