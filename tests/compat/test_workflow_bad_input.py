"""Bad requests through the official SDK client: each fails clearly and changes nothing."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from dapr.ext.workflow import DaprWorkflowClient, DaprWorkflowContext, WorkflowStatus

from tests.compat.conftest import WAIT, pb, rpc_error, run, wait_status

pytestmark = pytest.mark.usefixtures("wf_runtime")


def waits(ctx: DaprWorkflowContext, _: Any) -> Any:
    return (yield ctx.wait_for_external_event("go"))


def quick(ctx: DaprWorkflowContext, x: Any) -> Any:
    return x


WORKFLOWS = [waits, quick]


@pytest.mark.parametrize(
    "instance_id",
    ["z" * 65, "has space", "slash/ed", "colon:ed", "émoji-🙂", "new\nline"],
    ids=["too-long", "space", "slash", "colon", "non-ascii", "newline"],
)
def test_bad_instance_ids_are_refused(wf_client: DaprWorkflowClient, instance_id: str) -> None:
    err = rpc_error(lambda: wf_client.schedule_new_workflow(quick, instance_id=instance_id))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "instance ID" in (err.details() or "")
    assert wf_client.get_workflow_state(instance_id) is None


def test_longest_valid_instance_id(wf_client: DaprWorkflowClient) -> None:
    iid = "A-b_9" * 12 + "abcd"
    assert len(iid) == 64
    assert run(wf_client, quick, "ok", instance_id=iid).serialized_output == '"ok"'


@pytest.mark.parametrize(
    "operation",
    [
        lambda c: c.raise_workflow_event("ghost", "go", data=1),
        lambda c: c.terminate_workflow("ghost"),
        lambda c: c.pause_workflow("ghost"),
        lambda c: c.resume_workflow("ghost"),
    ],
    ids=["raise", "terminate", "suspend", "resume"],
)
def test_operations_on_unknown_instances_fail(
    wf_client: DaprWorkflowClient, operation: Any
) -> None:
    err = rpc_error(lambda: operation(wf_client))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "no such instance exists" in (err.details() or "")
    assert wf_client.get_workflow_state("ghost") is None


def test_reads_of_unknown_instances_say_none(wf_client: DaprWorkflowClient) -> None:
    assert wf_client.get_workflow_state("ghost") is None
    assert wf_client.wait_for_workflow_start("ghost", timeout_in_seconds=WAIT) is None
    assert wf_client.wait_for_workflow_completion("ghost", timeout_in_seconds=WAIT) is None


def test_event_without_a_name_is_refused(wf_client: DaprWorkflowClient) -> None:
    iid = wf_client.schedule_new_workflow(waits)
    wait_status(wf_client, iid, WorkflowStatus.RUNNING)
    err = rpc_error(lambda: wf_client.raise_workflow_event(iid, "", data=1))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    wf_client.raise_workflow_event(iid, "go", data="after")
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.serialized_output == '"after"'


def test_event_for_a_finished_instance_is_dropped(wf_client: DaprWorkflowClient) -> None:
    state = run(wf_client, quick, 5)
    wf_client.raise_workflow_event(state.instance_id, "go", data=1)
    after = wf_client.get_workflow_state(state.instance_id)
    assert after is not None and after.runtime_status == WorkflowStatus.COMPLETED
    assert after.serialized_output == "5"


def test_start_without_a_name_is_refused(sidecar: Any) -> None:
    err = rpc_error(lambda: sidecar.StartInstance(pb.CreateInstanceRequest(instanceId="nameless")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    res = sidecar.GetInstance(pb.GetInstanceRequest(instanceId="nameless"))
    assert not res.exists


def test_wait_times_out_on_a_running_instance(wf_client: DaprWorkflowClient) -> None:
    iid = wf_client.schedule_new_workflow(waits)
    with pytest.raises(TimeoutError):
        wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=1)
    state = wf_client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == WorkflowStatus.RUNNING
    wf_client.terminate_workflow(iid)
