"""Shared fixtures for the workflow compatibility suite: the official SDK against `tether dev`.

A test module declares what its worker hosts with module-level lists:

    WORKFLOWS = [my_workflow, ...]       # registered under their function names
    ACTIVITIES = [my_activity, ...]
    def setup_runtime(rt): ...           # optional: anything else (versioned workflows, aliases)

and asks for `wf_runtime` (the worker, started once per module) and `wf_client`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from dapr.ext.workflow import (
    DaprWorkflowClient,
    WorkflowRuntime,
    WorkflowState,
    WorkflowStatus,
)
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc
from dapr.ext.workflow._durabletask.internal import protos as pb

from tests.fixtures.tether import TetherProcess, wait_until

WORKER_READY_SECONDS = 15.0
# The ceiling for any single wait in this suite; a healthy run needs a fraction of it.
WAIT = 15


@pytest.fixture(scope="module")
def wf_runtime(
    request: pytest.FixtureRequest, tether_server: TetherProcess
) -> Iterator[WorkflowRuntime]:
    """A real SDK worker with the test module's workflows and activities, connected explicitly."""
    rt = WorkflowRuntime(
        host="127.0.0.1",
        port=str(tether_server.grpc_port),
        worker_ready_timeout=WORKER_READY_SECONDS,
    )
    for fn in getattr(request.module, "WORKFLOWS", ()):
        rt.register_workflow(fn)
    for fn in getattr(request.module, "ACTIVITIES", ()):
        rt.register_activity(fn)
    setup = getattr(request.module, "setup_runtime", None)
    if setup is not None:
        setup(rt)
    rt.start()  # bounded by worker_ready_timeout: raises if the stream never opens
    yield rt
    rt.shutdown()


@pytest.fixture(scope="module")
def wf_client(tether_server: TetherProcess) -> Iterator[DaprWorkflowClient]:
    client = DaprWorkflowClient(host="127.0.0.1", port=str(tether_server.grpc_port))
    yield client
    client.close()


@pytest.fixture(scope="module")
def sidecar(tether_server: TetherProcess) -> Iterator[Any]:
    """The SDK's own generated `TaskHubSidecarService` stub, for RPCs the client wraps loosely."""
    channel = grpc.insecure_channel(tether_server.grpc_address)
    yield pb_grpc.TaskHubSidecarServiceStub(channel)
    channel.close()


# --- helpers the test modules import ------------------------------------------------------------


def run(
    client: DaprWorkflowClient,
    workflow: Callable[..., Any] | str,
    input: Any = None,
    *,
    instance_id: str | None = None,
    timeout: int = WAIT,
) -> WorkflowState:
    """Start a workflow and wait (bounded) for it to finish."""
    iid = client.schedule_new_workflow(workflow, input=input, instance_id=instance_id)
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=timeout)
    assert state is not None, f"workflow {iid} vanished"
    return state


def wait_status(
    client: DaprWorkflowClient,
    instance_id: str,
    status: WorkflowStatus,
    timeout: float = WAIT,
) -> WorkflowState:
    """Poll until the instance reports `status`."""

    def probe() -> WorkflowState | None:
        state = client.get_workflow_state(instance_id)
        return state if state is not None and state.runtime_status == status else None

    return wait_until(probe, timeout, what=f"{instance_id} to be {status.name}")


def history(sidecar: Any, instance_id: str) -> list[Any]:
    """The raw history events (`HistoryEvent` protos) the server returns for an instance."""
    res = sidecar.GetInstanceHistory(pb.GetInstanceHistoryRequest(instanceId=instance_id))
    return list(res.events)


def kinds(events: list[Any]) -> list[str]:
    return [str(e.WhichOneof("eventType")) for e in events]


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    """Run `call`, which must fail with a gRPC error, and return that error."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert isinstance(err, grpc.RpcError)
    return err
