"""The workflow RPCs of Dapr's gRPC API (Beta1 and Alpha1), through the SDK's generated stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from dapr.ext.workflow import DaprWorkflowClient, DaprWorkflowContext, WorkflowStatus
from dapr.proto.runtime.v1 import dapr_pb2_grpc
from dapr.proto.runtime.v1 import workflow_pb2 as wpb

from tests.compat.conftest import WAIT, rpc_error
from tests.fixtures.tether import TetherProcess, wait_until

pytestmark = pytest.mark.usefixtures("wf_runtime")

SUFFIXES = ["Beta1", "Alpha1"]
OVER_LIMIT = 16 * 1024 * 1024 + 1024


def approval(ctx: DaprWorkflowContext, order: Any) -> Any:
    ctx.set_custom_status("waiting")
    answer = yield ctx.wait_for_external_event("approve")
    return {"order": order, "answer": answer}


def crash(ctx: DaprWorkflowContext, _: Any) -> None:
    raise LookupError("nothing to find")


WORKFLOWS = [approval, crash]


@pytest.fixture(scope="module")
def dapr(tether_server: TetherProcess) -> Iterator[Any]:
    # No send limit on our side: the oversize tests must reach the server's limit.
    channel = grpc.insecure_channel(
        tether_server.grpc_address, options=[("grpc.max_send_message_length", -1)]
    )
    yield dapr_pb2_grpc.DaprStub(channel)
    channel.close()


class Api:
    """One generation (Beta1 or Alpha1) of the workflow RPCs."""

    def __init__(self, stub: Any, suffix: str) -> None:
        self.stub, self.suffix = stub, suffix

    def call(self, rpc: str, request: Any) -> Any:
        return getattr(self.stub, f"{rpc}Workflow{self.suffix}")(request, timeout=WAIT)

    def get(self, iid: str) -> Any:
        return self.call("Get", wpb.GetWorkflowRequest(instance_id=iid, workflow_component="dapr"))

    def op(self, rpc: str, iid: str, component: str = "dapr") -> Any:
        request = getattr(wpb, f"{rpc}WorkflowRequest")(
            instance_id=iid, workflow_component=component
        )
        return self.call(rpc, request)

    def wait_status(self, iid: str, status: str) -> Any:
        def probe() -> Any:
            res = self.get(iid)
            return res if res.runtime_status == status else None

        return wait_until(probe, WAIT, what=f"{iid} to be {status}")


@pytest.fixture(params=SUFFIXES)
def api(request: pytest.FixtureRequest, dapr: Any) -> Api:
    return Api(dapr, request.param)


def test_lifecycle(api: Api, wf_client: DaprWorkflowClient) -> None:
    iid = f"grpc-{api.suffix}"
    res = api.call(
        "Start",
        wpb.StartWorkflowRequest(
            instance_id=iid, workflow_component="dapr", workflow_name="approval", input=b'{"n": 1}'
        ),
    )
    assert res.instance_id == iid
    got = api.wait_status(iid, "RUNNING")
    assert got.instance_id == iid and got.workflow_name == "approval"
    assert json.loads(got.properties["dapr.workflow.input"]) == {"n": 1}
    assert got.created_at.seconds > 0 and got.last_updated_at.seconds > 0

    api.op("Pause", iid)
    api.wait_status(iid, "SUSPENDED")
    api.call(
        "RaiseEvent",
        wpb.RaiseEventWorkflowRequest(
            instance_id=iid, workflow_component="dapr", event_name="approve", event_data=b'"ok"'
        ),
    )
    assert api.get(iid).runtime_status == "SUSPENDED"
    api.op("Resume", iid)
    done = api.wait_status(iid, "COMPLETED")
    assert json.loads(done.properties["dapr.workflow.output"]) == {
        "order": {"n": 1},
        "answer": "ok",
    }
    assert done.properties["dapr.workflow.custom_status"] == "waiting"
    state = wf_client.get_workflow_state(iid)  # the SDK sees what the Dapr API did
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED

    api.op("Purge", iid)
    err = rpc_error(lambda: api.get(iid))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_generated_id_and_terminate(api: Api) -> None:
    res = api.call(
        "Start", wpb.StartWorkflowRequest(workflow_component="dapr", workflow_name="approval")
    )
    assert res.instance_id
    api.wait_status(res.instance_id, "RUNNING")
    assert "dapr.workflow.input" not in api.get(res.instance_id).properties
    api.op("Terminate", res.instance_id)
    api.wait_status(res.instance_id, "TERMINATED")


def test_failure_properties(api: Api) -> None:
    iid = f"crash-{api.suffix}"
    api.call(
        "Start",
        wpb.StartWorkflowRequest(instance_id=iid, workflow_component="dapr", workflow_name="crash"),
    )
    failed = api.wait_status(iid, "FAILED")
    assert failed.properties["dapr.workflow.failure.error_type"] == "LookupError"
    assert failed.properties["dapr.workflow.failure.error_message"] == "nothing to find"


@pytest.mark.parametrize("rpc", ["Get", "Terminate", "Pause", "Resume", "Purge", "RaiseEvent"])
def test_unknown_instance_is_not_found(api: Api, rpc: str) -> None:
    if rpc == "Get":
        call = lambda: api.get("ghost")  # noqa: E731
    elif rpc == "RaiseEvent":
        request = wpb.RaiseEventWorkflowRequest(
            instance_id="ghost", workflow_component="dapr", event_name="approve"
        )
        call = lambda: api.call("RaiseEvent", request)  # noqa: E731
    else:
        call = lambda: api.op(rpc, "ghost")  # noqa: E731
    err = rpc_error(call)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "ghost" in (err.details() or "")


def test_bad_requests_are_invalid_argument(api: Api) -> None:
    def start(**kwargs: Any) -> grpc.RpcError:
        fields = {"workflow_component": "dapr", "workflow_name": "approval", **kwargs}
        return rpc_error(lambda: api.call("Start", wpb.StartWorkflowRequest(**fields)))

    cases = {
        "unknown component": start(workflow_component="nope"),
        "no workflow name": start(workflow_name=""),
        "id too long": start(instance_id="z" * 65),
        "bad characters": start(instance_id="a/b"),
        "non-UTF-8 input": start(instance_id="binary", input=b"\xff\xfe"),
        "get without id": rpc_error(lambda: api.get("")),
        "terminate, unknown component": rpc_error(lambda: api.op("Terminate", "x", "nope")),
    }
    for what, err in cases.items():
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert err.details(), what
    assert not _exists(api, "binary")


def _exists(api: Api, iid: str) -> bool:
    try:
        api.get(iid)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


def test_oversize_start_is_resource_exhausted(api: Api) -> None:
    big = b'"' + b"x" * OVER_LIMIT + b'"'
    request = wpb.StartWorkflowRequest(
        instance_id=f"big-{api.suffix}",
        workflow_component="dapr",
        workflow_name="approval",
        input=big,
    )
    err = rpc_error(lambda: api.call("Start", request))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not _exists(api, f"big-{api.suffix}")


def test_oversize_sdk_start_is_resource_exhausted(wf_client: DaprWorkflowClient) -> None:
    err = rpc_error(
        lambda: wf_client.schedule_new_workflow(approval, input="x" * OVER_LIMIT, instance_id="big")
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert wf_client.get_workflow_state("big") is None
    # The connection is still good for the next, normal-sized call.
    iid = wf_client.schedule_new_workflow(approval, input="small")
    wf_client.raise_workflow_event(iid, "approve", data="fine")
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
