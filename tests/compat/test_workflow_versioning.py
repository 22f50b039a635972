"""Workflow versioning through the official SDK: patches and named workflow versions.

Both rely on the server persisting `WorkflowResponse.version` onto the turn's `workflowStarted`
event; without it, a replay silently takes a different branch than the live run did.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any

import pytest
from dapr.ext.workflow import (
    DaprWorkflowClient,
    DaprWorkflowContext,
    WorkflowActivityContext,
    WorkflowRuntime,
    WorkflowStatus,
)

from tests.compat.conftest import WAIT, history, kinds, wait_status
from tests.fixtures.tether import TetherProcess, wait_until

pytestmark = pytest.mark.usefixtures("wf_runtime")

# Flipped by a test to "deploy" code that calls is_patched where the old code did not.
deployed = {"patch": False}


def old_step(ctx: WorkflowActivityContext, _: Any) -> str:
    return "old"


def new_step(ctx: WorkflowActivityContext, _: Any) -> str:
    return "new"


def patched(ctx: DaprWorkflowContext, _: Any) -> Any:
    if ctx.is_patched("use-new-step"):
        first = yield ctx.call_activity(new_step)
    else:
        first = yield ctx.call_activity(old_step)
    yield ctx.wait_for_external_event("go")
    # Asked again after the wait: on the final replay both answers come from history.
    again = ctx.is_patched("use-new-step")
    second = yield ctx.call_activity(new_step if again else old_step)
    return [first, second]


def late_patched(ctx: DaprWorkflowContext, _: Any) -> Any:
    if deployed["patch"] and ctx.is_patched("late"):
        first = yield ctx.call_activity(new_step)
    else:
        first = yield ctx.call_activity(old_step)
    yield ctx.wait_for_external_event("go")
    return first


def versioned(tag: str) -> Callable[[DaprWorkflowContext, Any], Generator[Any, Any, Any]]:
    """A fresh function per registration: the SDK marks each function it registers."""

    def wf(ctx: DaprWorkflowContext, _: Any) -> Generator[Any, Any, Any]:
        yield ctx.wait_for_external_event("go")
        return tag

    wf.__name__ = f"versioned_{tag}"
    return wf


def parent_of_versioned(ctx: DaprWorkflowContext, _: Any) -> Any:
    return (yield ctx.call_child_workflow("kid_versions", instance_id=f"{ctx.instance_id}-kid"))


WORKFLOWS = [patched, late_patched, parent_of_versioned]
ACTIVITIES = [old_step, new_step]


def setup_runtime(rt: WorkflowRuntime) -> None:
    rt.register_versioned_workflow(
        versioned("v1"), name="shipping", version_name="v1", is_latest=True
    )
    rt.register_versioned_workflow(
        versioned("a"), name="stallable", version_name="a", is_latest=True
    )
    rt.register_versioned_workflow(
        versioned("k1"), name="kid_versions", version_name="k1", is_latest=True
    )


def _waiting(sidecar: Any, iid: str) -> Callable[[], bool]:
    return lambda: "timerCreated" in kinds(history(sidecar, iid))


def _versions(sidecar: Any, iid: str) -> list[tuple[str, list[str]]]:
    return [
        (e.workflowStarted.version.name, list(e.workflowStarted.version.patches))
        for e in history(sidecar, iid)
        if e.HasField("workflowStarted") and e.workflowStarted.HasField("version")
    ]


# --- patches ------------------------------------------------------------------------------------


def test_patch_taken_live_is_taken_on_every_replay(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    iid = wf_client.schedule_new_workflow(patched)
    wait_until(_waiting(sidecar, iid), WAIT, what="the workflow to wait")
    assert ("", ["use-new-step"]) in _versions(sidecar, iid)
    wf_client.raise_workflow_event(iid, "go")
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "") == ["new", "new"]
    names = [e.taskScheduled.name for e in history(sidecar, iid) if e.HasField("taskScheduled")]
    assert names == ["new_step", "new_step"]


def test_instance_started_before_a_patch_keeps_the_old_branch(
    wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    deployed["patch"] = False
    before = wf_client.schedule_new_workflow(late_patched)
    wait_until(_waiting(sidecar, before), WAIT, what="the old instance to wait")
    deployed["patch"] = True  # the new code is live from here on
    try:
        after = wf_client.schedule_new_workflow(late_patched)
        wait_until(_waiting(sidecar, after), WAIT, what="the new instance to wait")
        for iid in (before, after):
            wf_client.raise_workflow_event(iid, "go")
        old = wf_client.wait_for_workflow_completion(before, timeout_in_seconds=WAIT)
        new = wf_client.wait_for_workflow_completion(after, timeout_in_seconds=WAIT)
    finally:
        deployed["patch"] = False
    assert old is not None and old.runtime_status == WorkflowStatus.COMPLETED
    assert old.serialized_output == '"old"'
    assert new is not None and new.serialized_output == '"new"'


# --- named versions -----------------------------------------------------------------------------


def test_running_instance_keeps_its_version_after_a_new_one_ships(
    wf_runtime: WorkflowRuntime, wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    first = wf_client.schedule_new_workflow("shipping")
    wait_until(_waiting(sidecar, first), WAIT, what="the v1 instance to wait")
    assert ("v1", []) in _versions(sidecar, first)
    wf_runtime.register_versioned_workflow(
        versioned("v2"), name="shipping", version_name="v2", is_latest=True
    )
    second = wf_client.schedule_new_workflow("shipping")
    wait_until(_waiting(sidecar, second), WAIT, what="the v2 instance to wait")
    for iid in (first, second):
        wf_client.raise_workflow_event(iid, "go")
    one = wf_client.wait_for_workflow_completion(first, timeout_in_seconds=WAIT)
    two = wf_client.wait_for_workflow_completion(second, timeout_in_seconds=WAIT)
    assert one is not None and one.serialized_output == '"v1"'
    assert two is not None and two.serialized_output == '"v2"'


def test_missing_version_stalls_until_a_worker_has_it(
    wf_runtime: WorkflowRuntime,
    wf_client: DaprWorkflowClient,
    sidecar: Any,
    tether_server: TetherProcess,
) -> None:
    iid = wf_client.schedule_new_workflow("stallable")
    wait_until(_waiting(sidecar, iid), WAIT, what="the instance to wait")
    # A deploy that dropped version "a" while an instance of it is in flight.
    registry = wf_runtime._WorkflowRuntime__worker._registry  # type: ignore[attr-defined]
    dropped = registry.versioned_orchestrators["stallable"].pop("a")
    wf_runtime.register_versioned_workflow(
        versioned("b"), name="stallable", version_name="b", is_latest=True
    )
    wf_client.raise_workflow_event(iid, "go")
    wait_status(wf_client, iid, WorkflowStatus.STALLED)
    # The version comes back, and a worker that has it connects: the instance carries on.
    registry.versioned_orchestrators["stallable"]["a"] = dropped
    extra = WorkflowRuntime(
        host="127.0.0.1", port=str(tether_server.grpc_port), worker_ready_timeout=WAIT
    )
    extra.register_versioned_workflow(
        versioned("a"), name="stallable", version_name="a", is_latest=False
    )
    extra.register_versioned_workflow(
        versioned("b"), name="stallable", version_name="b", is_latest=True
    )
    extra.start()
    try:
        state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    finally:
        extra.shutdown()
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    assert state.serialized_output == '"a"'


def test_stalled_child_is_terminated_with_its_parent(
    wf_runtime: WorkflowRuntime, wf_client: DaprWorkflowClient, sidecar: Any
) -> None:
    iid = wf_client.schedule_new_workflow(parent_of_versioned)
    kid = f"{iid}-kid"
    wait_status(wf_client, kid, WorkflowStatus.RUNNING)
    wait_until(_waiting(sidecar, kid), WAIT, what="the child to wait")
    registry = wf_runtime._WorkflowRuntime__worker._registry  # type: ignore[attr-defined]
    registry.versioned_orchestrators["kid_versions"].pop("k1")
    wf_runtime.register_versioned_workflow(
        versioned("k2"), name="kid_versions", version_name="k2", is_latest=True
    )
    wf_client.raise_workflow_event(kid, "go")
    wait_status(wf_client, kid, WorkflowStatus.STALLED)
    wf_client.terminate_workflow(iid)
    for target in (iid, kid):
        state = wf_client.wait_for_workflow_completion(target, timeout_in_seconds=WAIT)
        assert state is not None and state.runtime_status == WorkflowStatus.TERMINATED, target
