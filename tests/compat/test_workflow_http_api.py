"""Dapr's HTTP workflow API (/v1.0, /v1.0-beta1, /v1.0-alpha1) against SDK-hosted workflows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dapr.ext.workflow import DaprWorkflowClient, DaprWorkflowContext, WorkflowStatus

from tests.compat.conftest import WAIT
from tests.fixtures.tether import TetherProcess, wait_until

pytestmark = pytest.mark.usefixtures("wf_runtime")

VERSIONS = ["v1.0", "v1.0-beta1", "v1.0-alpha1"]


def greeter(ctx: DaprWorkflowContext, order: dict[str, Any]) -> Any:
    ctx.set_custom_status("waiting for approval")
    approval = yield ctx.wait_for_external_event("approve")
    ctx.set_custom_status("approved")
    return {"order": order, "approval": approval}


def broken(ctx: DaprWorkflowContext, _: Any) -> None:
    raise ZeroDivisionError("no stock left")


def parent(ctx: DaprWorkflowContext, _: Any) -> Any:
    return (yield ctx.call_child_workflow(greeter, input={"child": True}))


WORKFLOWS = [greeter, broken, parent]


@pytest.fixture(scope="module")
def http(tether_server: TetherProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tether_server.http_url, timeout=WAIT) as client:
        yield client


def _get(http: httpx.Client, version: str, iid: str) -> dict[str, Any]:
    res = http.get(f"/{version}/workflows/dapr/{iid}")
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def _wait_status(http: httpx.Client, version: str, iid: str, status: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        res = http.get(f"/{version}/workflows/dapr/{iid}")
        if res.status_code == 404:
            return None  # not created yet (a child workflow, say)
        assert res.status_code == 200, res.text
        body: dict[str, Any] = res.json()
        return body if body["runtimeStatus"] == status else None

    return wait_until(probe, WAIT, what=f"{iid} to be {status}")


def _error(res: httpx.Response, status: int, code: str) -> str:
    assert res.status_code == status, res.text
    body = res.json()
    assert body["errorCode"] == code, body
    assert body["message"]
    message: str = body["message"]
    return message


@pytest.mark.parametrize("version", VERSIONS)
def test_full_lifecycle(http: httpx.Client, version: str) -> None:
    iid = f"http-{version.replace('.', '')}"
    base = f"/{version}/workflows/dapr"
    res = http.post(f"{base}/greeter/start", params={"instanceID": iid}, json={"sku": "A-1"})
    assert res.status_code == 202, res.text
    assert res.json() == {"instanceID": iid}

    body = _wait_status(http, version, iid, "RUNNING")
    assert body["instanceID"] == iid and body["workflowName"] == "greeter"
    assert body["createdAt"].endswith("Z") and body["lastUpdatedAt"].endswith("Z")
    props = body["properties"]
    assert json.loads(props["dapr.workflow.input"]) == {"sku": "A-1"}
    wait_until(
        lambda: _get(http, version, iid)["properties"].get("dapr.workflow.custom_status"),
        WAIT,
        what="the custom status",
    )

    assert http.post(f"{base}/{iid}/pause").status_code == 202
    _wait_status(http, version, iid, "SUSPENDED")
    res = http.post(f"{base}/{iid}/raiseEvent/approve", json={"by": "http"})
    assert res.status_code == 202, res.text
    assert _get(http, version, iid)["runtimeStatus"] == "SUSPENDED"
    assert http.post(f"{base}/{iid}/resume").status_code == 202

    done = _wait_status(http, version, iid, "COMPLETED")
    assert json.loads(done["properties"]["dapr.workflow.output"]) == {
        "order": {"sku": "A-1"},
        "approval": {"by": "http"},
    }
    assert done["properties"]["dapr.workflow.custom_status"] == "approved"

    assert http.post(f"{base}/{iid}/purge").status_code == 202
    _error(http.get(f"{base}/{iid}"), 404, "ERR_INSTANCE_ID_NOT_FOUND")


def test_start_without_instance_id_generates_one(http: httpx.Client) -> None:
    res = http.post("/v1.0/workflows/dapr/greeter/start", content=b'"plain"')
    assert res.status_code == 202, res.text
    iid = res.json()["instanceID"]
    assert iid
    body = _wait_status(http, "v1.0", iid, "RUNNING")
    assert body["properties"]["dapr.workflow.input"] == '"plain"'
    assert http.post(f"/v1.0/workflows/dapr/{iid}/terminate").status_code == 202
    terminated = _wait_status(http, "v1.0", iid, "TERMINATED")
    assert "dapr.workflow.output" not in terminated["properties"]


def test_start_without_body_has_no_input(http: httpx.Client) -> None:
    res = http.post("/v1.0/workflows/dapr/greeter/start", params={"instanceID": "no-input"})
    assert res.status_code == 202, res.text
    body = _wait_status(http, "v1.0", "no-input", "RUNNING")
    assert "dapr.workflow.input" not in body["properties"]
    http.post("/v1.0/workflows/dapr/no-input/terminate")


def test_failed_workflow_properties(http: httpx.Client) -> None:
    res = http.post("/v1.0-beta1/workflows/dapr/broken/start", params={"instanceID": "broken-1"})
    assert res.status_code == 202, res.text
    body = _wait_status(http, "v1.0-beta1", "broken-1", "FAILED")
    props = body["properties"]
    assert props["dapr.workflow.failure.error_type"] == "ZeroDivisionError"
    assert props["dapr.workflow.failure.error_message"] == "no stock left"
    assert "broken" in props.get("dapr.workflow.failure.stack_trace", "")


def test_terminate_is_recursive_and_children_are_reachable(
    http: httpx.Client, wf_client: DaprWorkflowClient
) -> None:
    assert http.post("/v1.0/workflows/dapr/parent/start?instanceID=fam").status_code == 202
    # The child's id is chosen by the SDK ("fam:0001"); the API must reach it as well.
    child = _wait_status(http, "v1.0", "fam:0001", "RUNNING")
    assert child["workflowName"] == "greeter"
    assert http.post("/v1.0/workflows/dapr/fam/terminate").status_code == 202
    _wait_status(http, "v1.0", "fam", "TERMINATED")
    _wait_status(http, "v1.0", "fam:0001", "TERMINATED")
    assert http.post("/v1.0/workflows/dapr/fam/purge").status_code == 202
    assert wf_client.get_workflow_state("fam:0001") is None  # purge is recursive too


def test_purge_of_running_instance_is_refused(http: httpx.Client) -> None:
    assert http.post("/v1.0/workflows/dapr/greeter/start?instanceID=busy").status_code == 202
    _wait_status(http, "v1.0", "busy", "RUNNING")
    message = _error(http.post("/v1.0/workflows/dapr/busy/purge"), 400, "ERR_PURGE_WORKFLOW")
    assert "busy" in message
    assert _get(http, "v1.0", "busy")["runtimeStatus"] == "RUNNING"
    http.post("/v1.0/workflows/dapr/busy/terminate")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("POST", "/terminate"),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/purge"),
        ("POST", "/raiseEvent/approve"),
    ],
)
def test_unknown_instance_is_404(http: httpx.Client, version: str, method: str, path: str) -> None:
    res = http.request(method, f"/{version}/workflows/dapr/ghost-{version}{path}")
    message = _error(res, 404, "ERR_INSTANCE_ID_NOT_FOUND")
    assert f"ghost-{version}" in message


def test_unknown_component_is_400(http: httpx.Client) -> None:
    for res in (
        http.post("/v1.0/workflows/temporal/greeter/start"),
        http.get("/v1.0/workflows/temporal/some-id"),
        http.post("/v1.0/workflows/temporal/some-id/terminate"),
        http.post("/v1.0/workflows/temporal/some-id/raiseEvent/x"),
    ):
        assert "temporal" in _error(res, 400, "ERR_WORKFLOW_COMPONENT_NOT_FOUND")


@pytest.mark.parametrize(
    ("instance_id", "code"),
    [
        ("has space", "ERR_INSTANCE_ID_INVALID"),
        ("semi;colon", "ERR_INSTANCE_ID_INVALID"),
        ("dot.ted", "ERR_INSTANCE_ID_INVALID"),
        ("x" * 65, "ERR_INSTANCE_ID_TOO_LONG"),
    ],
)
def test_invalid_instance_id_on_start_is_400(
    http: httpx.Client, instance_id: str, code: str
) -> None:
    res = http.post("/v1.0/workflows/dapr/greeter/start", params={"instanceID": instance_id})
    _error(res, 400, code)
    _error(http.get(f"/v1.0/workflows/dapr/{instance_id[:60]}"), 404, "ERR_INSTANCE_ID_NOT_FOUND")


def test_longest_valid_instance_id(http: httpx.Client) -> None:
    iid = "y" * 64
    res = http.post("/v1.0/workflows/dapr/greeter/start", params={"instanceID": iid})
    assert res.status_code == 202, res.text
    _wait_status(http, "v1.0", iid, "RUNNING")
    http.post(f"/v1.0/workflows/dapr/{iid}/terminate")


def test_non_utf8_body_is_400(http: httpx.Client) -> None:
    res = http.post("/v1.0/workflows/dapr/greeter/start?instanceID=bin", content=b"\xff\xfe\x00")
    _error(res, 400, "ERR_MALFORMED_REQUEST")
    _error(http.get("/v1.0/workflows/dapr/bin"), 404, "ERR_INSTANCE_ID_NOT_FOUND")
    assert http.post("/v1.0/workflows/dapr/greeter/start?instanceID=txt").status_code == 202
    _wait_status(http, "v1.0", "txt", "RUNNING")
    res = http.post("/v1.0/workflows/dapr/txt/raiseEvent/approve", content=b"\xc3\x28")
    _error(res, 400, "ERR_MALFORMED_REQUEST")
    assert _get(http, "v1.0", "txt")["runtimeStatus"] == "RUNNING"
    http.post("/v1.0/workflows/dapr/txt/terminate")


def test_oversize_body_is_413(http: httpx.Client) -> None:
    huge = b'"' + b"x" * (16 * 1024 * 1024 + 1) + b'"'
    res = http.post("/v1.0/workflows/dapr/greeter/start?instanceID=huge", content=huge)
    _error(res, 413, "ERR_BODY_TOO_LARGE")
    _error(http.get("/v1.0/workflows/dapr/huge"), 404, "ERR_INSTANCE_ID_NOT_FOUND")


def test_resume_and_pause_are_idempotent(http: httpx.Client) -> None:
    assert http.post("/v1.0/workflows/dapr/greeter/start?instanceID=idem").status_code == 202
    _wait_status(http, "v1.0", "idem", "RUNNING")
    assert http.post("/v1.0/workflows/dapr/idem/resume").status_code == 202  # not suspended
    for _ in range(2):
        assert http.post("/v1.0/workflows/dapr/idem/pause").status_code == 202
    _wait_status(http, "v1.0", "idem", "SUSPENDED")
    for _ in range(2):
        assert http.post("/v1.0/workflows/dapr/idem/resume").status_code == 202
    _wait_status(http, "v1.0", "idem", "RUNNING")
    assert http.post("/v1.0/workflows/dapr/idem/raiseEvent/approve").status_code == 202
    done = _wait_status(http, "v1.0", "idem", "COMPLETED")
    assert json.loads(done["properties"]["dapr.workflow.output"])["approval"] is None
    # Finished: terminate, pause and resume change nothing; events are dropped.
    for op in ("terminate", "pause", "resume", "raiseEvent/approve"):
        assert http.post(f"/v1.0/workflows/dapr/idem/{op}").status_code == 202
    assert _get(http, "v1.0", "idem")["runtimeStatus"] == "COMPLETED"


def test_http_and_sdk_see_the_same_instance(
    http: httpx.Client, wf_client: DaprWorkflowClient
) -> None:
    iid = wf_client.schedule_new_workflow(greeter, input={"via": "sdk"})
    _wait_status(http, "v1.0", iid, "RUNNING")
    assert http.post(f"/v1.0/workflows/dapr/{iid}/raiseEvent/approve", json=1).status_code == 202
    state = wf_client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None and state.runtime_status == WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "")["approval"] == 1
