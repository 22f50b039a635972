"""A misbehaving worker: garbage answers get clear errors and change nothing.

The tests in this module run in order. A raw client (the SDK's generated stub) plays the worker
first, with no real worker connected, so every work item goes to it; the last test connects the
official SDK worker, which must finish the very instance the raw client was abusing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from dapr.ext.workflow import (
    DaprWorkflowClient,
    DaprWorkflowContext,
    WorkflowActivityContext,
    WorkflowStatus,
    when_all,
)
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc
from dapr.ext.workflow._durabletask.internal import protos as pb
from google.protobuf import empty_pb2
from google.protobuf.wrappers_pb2 import StringValue

from tests.compat.conftest import WAIT, history, rpc_error
from tests.fixtures.tether import TetherProcess

IID = "victim"
# The workflow work item the raw worker holds and has not answered yet, if any.
held: dict[str, Any] = {}


def double(ctx: WorkflowActivityContext, x: int) -> int:
    return x * 2


def victim(ctx: DaprWorkflowContext, x: int) -> int:
    a, b = yield when_all(
        [ctx.call_activity(double, input=x), ctx.call_activity(double, input=x + 1)]
    )
    return a + b + 1


WORKFLOWS = [victim]
ACTIVITIES = [double]


class RawWorker:
    """Hello + GetWorkItems by hand, reading work items with a bound."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.TaskHubSidecarServiceStub(self.channel)
        self.stub.Hello(empty_pb2.Empty(), timeout=WAIT)
        self.stream = self.stub.GetWorkItems(pb.GetWorkItemsRequest(), timeout=120)
        self._reader = ThreadPoolExecutor(1)
        self.closed = False

    def next(self) -> Any:
        item = self._reader.submit(next, self.stream).result(timeout=WAIT)
        assert item.WhichOneof("request") in ("workflowRequest", "activityRequest"), item
        return item

    def complete_turn(self, **fields: Any) -> Any:
        return self.stub.CompleteOrchestratorTask(pb.WorkflowResponse(**fields), timeout=WAIT)

    def complete_activity(self, **fields: Any) -> Any:
        return self.stub.CompleteActivityTask(pb.ActivityResponse(**fields), timeout=WAIT)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.stream.cancel()
        self._reader.shutdown(wait=True)
        self.channel.close()


@pytest.fixture(scope="module")
def raw(tether_server: TetherProcess) -> Iterator[RawWorker]:
    worker = RawWorker(tether_server.grpc_address)
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def turn(raw: RawWorker, wf_client: DaprWorkflowClient) -> Any:
    """The first work item of the victim instance, handed to the raw worker."""
    wf_client.schedule_new_workflow(victim, input=21, instance_id=IID)
    item = raw.next()
    assert item.workflowRequest.instanceId == IID
    held["item"] = item
    return item


def _snapshot(client: DaprWorkflowClient, sidecar: Any) -> tuple[Any, ...]:
    state = client.get_workflow_state(IID)
    assert state is not None
    events = [e.SerializeToString() for e in history(sidecar, IID)]
    return state.runtime_status, state.serialized_output, state.serialized_custom_status, events


def _refused(
    call: Any, code: grpc.StatusCode, client: DaprWorkflowClient, sidecar: Any, *words: str
) -> None:
    before = _snapshot(client, sidecar)
    err = rpc_error(call)
    assert err.code() == code, err
    for word in words:
        assert word in (err.details() or ""), err.details()
    assert _snapshot(client, sidecar) == before


def test_unissued_completion_token(
    raw: RawWorker, wf_client: DaprWorkflowClient, sidecar: Any, turn: Any
) -> None:
    _refused(
        lambda: raw.complete_turn(instanceId=IID, completionToken="never-issued"),
        grpc.StatusCode.NOT_FOUND, wf_client, sidecar, "never-issued",
    )  # fmt: skip
    _refused(
        lambda: raw.complete_activity(instanceId=IID, taskId=1, completionToken="never-issued"),
        grpc.StatusCode.NOT_FOUND, wf_client, sidecar, "never-issued",
    )  # fmt: skip


def test_instance_id_not_matching_the_token(
    raw: RawWorker, wf_client: DaprWorkflowClient, sidecar: Any, turn: Any
) -> None:
    _refused(
        lambda: raw.complete_turn(instanceId="someone-else", completionToken=turn.completionToken),
        grpc.StatusCode.INVALID_ARGUMENT, wf_client, sidecar, "someone-else", IID,
    )  # fmt: skip


def test_activity_completion_with_a_workflow_token(
    raw: RawWorker, wf_client: DaprWorkflowClient, sidecar: Any, turn: Any
) -> None:
    _refused(
        lambda: raw.complete_activity(
            instanceId=IID, taskId=7, result=None, completionToken=turn.completionToken
        ),
        grpc.StatusCode.NOT_FOUND, wf_client, sidecar, turn.completionToken,
    )  # fmt: skip


@pytest.mark.parametrize(
    "action",
    [
        pb.WorkflowAction(id=1),  # no type at all
        pb.WorkflowAction(id=1, scheduleTask=pb.ScheduleTaskAction()),  # no activity name
        pb.WorkflowAction(id=1, createTimer=pb.CreateTimerAction()),  # no fire time
        pb.WorkflowAction(
            id=1,
            completeWorkflow=pb.CompleteWorkflowAction(
                workflowStatus=pb.ORCHESTRATION_STATUS_RUNNING
            ),
        ),  # "completed" but not finished
    ],
    ids=["untyped", "unnamed-activity", "timer-without-time", "non-final-completion"],
)
def test_garbage_actions(
    raw: RawWorker, wf_client: DaprWorkflowClient, sidecar: Any, turn: Any, action: Any
) -> None:
    # A refused turn is handed out again a little later: wait for it.
    item = held.pop("item", None) or raw.next()
    assert item.workflowRequest.instanceId == IID
    _refused(
        lambda: raw.complete_turn(
            instanceId=IID, completionToken=item.completionToken, actions=[action]
        ),
        grpc.StatusCode.INVALID_ARGUMENT, wf_client, sidecar,
    )  # fmt: skip


def test_activity_completion_for_an_unknown_task(
    raw: RawWorker, wf_client: DaprWorkflowClient, sidecar: Any, turn: Any
) -> None:
    # A correct turn this time, just what the real workflow would ask for.
    item = held.pop("item", None) or raw.next()
    actions = []
    for task_id, arg in ((1, "21"), (2, "22")):
        schedule = pb.ScheduleTaskAction(name="double")
        schedule.input.value = arg
        actions.append(pb.WorkflowAction(id=task_id, scheduleTask=schedule))
    raw.complete_turn(instanceId=IID, completionToken=item.completionToken, actions=actions)
    again = rpc_error(
        lambda: raw.complete_turn(instanceId=IID, completionToken=item.completionToken)
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND  # a token is good for one completion
    work = {w.activityRequest.taskId: w for w in (raw.next(), raw.next())}
    assert sorted(work) == [1, 2]
    first = work[1]
    _refused(
        lambda: raw.complete_activity(
            instanceId=IID, taskId=99, completionToken=first.completionToken
        ),
        grpc.StatusCode.INVALID_ARGUMENT, wf_client, sidecar, "99",
    )  # fmt: skip
    _refused(
        lambda: raw.complete_activity(
            instanceId="someone-else", taskId=1, completionToken=first.completionToken
        ),
        grpc.StatusCode.INVALID_ARGUMENT, wf_client, sidecar, "someone-else",
    )  # fmt: skip
    state = wf_client.get_workflow_state(IID)
    assert state is not None and state.runtime_status == WorkflowStatus.RUNNING
    events = history(sidecar, IID)
    assert [e.WhichOneof("eventType") for e in events] == [
        "workflowStarted", "executionStarted", "taskScheduled", "taskScheduled",
    ]  # fmt: skip
    # One activity answered properly; its result brings the next workflow turn.
    raw.complete_activity(
        instanceId=IID,
        taskId=1,
        result=StringValue(value="42"),
        completionToken=first.completionToken,
    )
    assert raw.next().workflowRequest.instanceId == IID
    # The raw worker walks away holding that turn and the other activity: both must be handed
    # out again.
    raw.close()


def test_real_worker_finishes_the_abused_instance(
    request: pytest.FixtureRequest,
    raw: RawWorker,
    turn: Any,
    wf_client: DaprWorkflowClient,
    sidecar: Any,
) -> None:
    raw.close()  # already gone when the tests run in order; nothing may reach it any more
    request.getfixturevalue("wf_runtime")
    state = wf_client.wait_for_workflow_completion(IID, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "") == 42 + 44 + 1
    events = history(sidecar, IID)
    results = {
        e.taskCompleted.taskScheduledId: e.taskCompleted.result.value
        for e in events
        if e.HasField("taskCompleted")
    }
    assert results == {1: "42", 2: "44"}
    assert sum(e.HasField("taskScheduled") for e in events) == 2
    # And the real worker is not bothered by anything left over.
    iid = wf_client.schedule_new_workflow(victim, input=1)
    again = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert again is not None and again.serialized_output == "7"
