"""Tether's workflow management API (/v1.0-tether/workflows) against a real `tether dev`.

Most tests need no worker: instances started without one stay PENDING, which is enough to list,
page, terminate, read histories and purge. The worker tests run the official SDK's runtime for
instances that really complete, fail and rerun.
"""

from __future__ import annotations

import logging
import time
import types
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dapr.ext.workflow import DaprWorkflowContext, WorkflowActivityContext, WorkflowRuntime

from tests.fixtures.tether import TetherProcess, wait_until

PREFIX = "/v1.0-tether/workflows"
FINISHED = {"COMPLETED", "FAILED", "TERMINATED", "CANCELED"}


# --- a tiny worker, for instances that must really run ---------------------------------------


def shout(ctx: WorkflowActivityContext, text: str) -> str:
    return text.upper() + "!"


def hello(ctx: DaprWorkflowContext, name: str) -> Any:
    greeting = yield ctx.call_activity(shout, input=f"hello {name}")
    return {"greeting": greeting}


def explode(ctx: WorkflowActivityContext, _: Any) -> None:
    raise ValueError("the reactor is on fire")


def broken(ctx: DaprWorkflowContext, _: Any) -> Any:
    yield ctx.call_activity(explode, input=None)


def _fresh(fn: Any) -> Any:
    """A copy of `fn`: the SDK marks functions it registers and refuses them a second time,
    and each test that needs a worker starts its own runtime."""
    return types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__)


@contextmanager
def worker(server: TetherProcess) -> Iterator[WorkflowRuntime]:
    """The SDK's worker with `hello` and `broken`; its start is bounded, it stops on exit."""
    for name in ("durabletask-worker", "durabletask-client", "WorkflowRuntime"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # expected failures log at ERROR
    rt = WorkflowRuntime(host="127.0.0.1", port=str(server.grpc_port), worker_ready_timeout=15)
    for wf in (hello, broken):
        rt.register_workflow(_fresh(wf))
    for act in (shout, explode):
        rt.register_activity(_fresh(act))
    rt.start()  # type: ignore[no-untyped-call]  # bounded by worker_ready_timeout
    try:
        yield rt
    finally:
        rt.shutdown()  # type: ignore[no-untyped-call]


def wait_finished(api: httpx.Client, iid: str, timeout: float = 20) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        inst: dict[str, Any] = api.get(f"/{iid}").json()
        return inst if inst.get("status") in FINISHED else None

    return wait_until(probe, timeout, interval=0.05, what=f"workflow {iid} to finish")


# --- helpers ---------------------------------------------------------------------------------


class Api(httpx.Client):
    """Paths relative to the management prefix ("" is the collection itself)."""

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:
        return super().request(method, PREFIX + str(url), **kwargs)


@pytest.fixture
def api(tether_server: TetherProcess) -> Iterator[httpx.Client]:
    with Api(base_url=tether_server.http_url, timeout=10) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start(api: httpx.Client, name: str, iid: str | None = None, **body: Any) -> str:
    resp = api.post("", json={"name": name, **({"instanceID": iid} if iid else {}), **body})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["instanceID"])


def assert_error(resp: httpx.Response, status: int, code: str, *phrases: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["errorCode"] == code, body
    for phrase in phrases:
        assert phrase in body["message"], body


def list_all(api: httpx.Client, **params: Any) -> tuple[list[str], int]:
    """Every instance ID matching the filter, following cursors; also how many pages it took."""
    ids: list[str] = []
    cursor, pages = None, 0
    while True:
        page = api.get("", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        data = page.json()
        ids += [i["instanceID"] for i in data["instances"]]
        pages += 1
        cursor = data["cursor"]
        if cursor is None:
            return ids, pages


# --- listing ---------------------------------------------------------------------------------


def test_list_filters_and_pages_without_a_worker(api: httpx.Client) -> None:
    name = unique("pager")
    ids = [start(api, name, f"{name}-{i}", input={"n": i}) for i in range(7)]
    for iid in ids[:3]:
        assert api.post(f"/{iid}/terminate").json()["status"] == "TERMINATED"

    # Paging: pages of 3 cover all 7 exactly once, newest first.
    seen, pages = list_all(api, name=name, limit=3)
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    listed = api.get("", params={"name": name, "limit": 100}).json()["instances"]
    created = [i["createdAt"] for i in listed]
    assert created == sorted(created, reverse=True)

    # Status filters, repeated or comma-separated, case-insensitive.
    terminated = api.get("", params={"name": name, "status": "TERMINATED"}).json()["instances"]
    assert {i["instanceID"] for i in terminated} == set(ids[:3])
    assert all(i["completedAt"] for i in terminated)
    pending = api.get("", params={"name": name, "status": "pending"}).json()["instances"]
    assert {i["instanceID"] for i in pending} == set(ids[3:])
    both, _ = list_all(api, name=name, status=["PENDING", "TERMINATED"], limit=2)
    assert sorted(both) == sorted(ids)
    both, _ = list_all(api, name=name, status="PENDING,TERMINATED")
    assert sorted(both) == sorted(ids)
    assert api.get("", params={"name": name, "status": "FAILED"}).json() == {
        "instances": [],
        "cursor": None,
    }

    # Time window: [createdFrom, createdTo) around the middle instance.
    by_id = {i["instanceID"]: i for i in listed}
    middle = by_id[ids[3]]["createdAt"]
    after, _ = list_all(api, name=name, createdFrom=middle)
    assert sorted(after) == sorted(ids[3:])
    before, _ = list_all(api, name=name, createdTo=middle)
    assert sorted(before) == sorted(ids[:3])

    # Payloads only on request; failures and custom status keys always present.
    row = by_id[ids[4]]
    assert "input" not in row and row["status"] == "PENDING" and row["customStatus"] is None
    with_payloads = api.get("", params={"name": name, "payloads": "true"}).json()["instances"]
    assert {i["instanceID"]: i["input"] for i in with_payloads}[ids[4]] == {"n": 4}


def test_list_rejects_bad_parameters_saying_what_is_allowed(api: httpx.Client) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"status": "DONE"}, "use one of RUNNING, COMPLETED"),
        ({"createdFrom": "yesterday"}, "ISO 8601"),
        ({"createdTo": "2024-13-45"}, "ISO 8601"),
        ({"limit": "0"}, "from 1 to 1000"),
        ({"limit": "1001"}, "from 1 to 1000"),
        ({"limit": "ten"}, "from 1 to 1000"),
        ({"payloads": "maybe"}, "true or false"),
        ({"cursor": "not-a-cursor"}, "continuation token"),
    ]
    for params, phrase in cases:
        assert_error(api.get("", params=params), 400, "ERR_MALFORMED_REQUEST", phrase)


# --- one instance ----------------------------------------------------------------------------


def test_lifecycle_and_history_without_a_worker(api: httpx.Client) -> None:
    iid = start(api, unique("life"), unique("life"), input=["a", 1])
    detail = api.get(f"/{iid}").json()
    assert detail["status"] == "PENDING" and detail["input"] == ["a", 1]
    assert detail["output"] is None and detail["completedAt"] is None

    assert api.post(f"/{iid}/suspend").json()["status"] == "SUSPENDED"
    assert api.get("", params={"status": "SUSPENDED"}).json()["instances"][0]["instanceID"] == iid
    assert api.post(f"/{iid}/resume").json()["status"] == "PENDING"
    raised = api.post(f"/{iid}/events/approval", json={"ok": True})
    assert raised.status_code == 200 and raised.json()["status"] == "PENDING"
    # No worker ran it, so nothing is in its history yet.
    assert api.get(f"/{iid}/history").json() == {"events": []}

    done = api.post(f"/{iid}/terminate", json={"output": {"why": "test"}, "recursive": False})
    assert done.status_code == 200 and done.json()["status"] == "TERMINATED"
    detail = api.get(f"/{iid}").json()
    assert detail["output"] == {"why": "test"} and detail["completedAt"]

    events = api.get(f"/{iid}/history").json()["events"]
    # The start is kept though it never ran, so the history still shows the input.
    assert [(e["index"], e["type"]) for e in events] == [
        (0, "executionStarted"),
        (1, "executionTerminated"),
        (2, "executionCompleted"),
    ]
    assert events[0]["details"]["input"] == ["a", 1]
    assert events[1]["details"] == {"output": {"why": "test"}, "recurse": False}
    assert events[2]["details"] == {"status": "TERMINATED", "result": {"why": "test"}}
    stamp = datetime.fromisoformat(events[1]["timestamp"])
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)

    # Operations on a finished instance are accepted and change nothing.
    assert api.post(f"/{iid}/suspend").json()["status"] == "TERMINATED"
    assert api.post(f"/{iid}/events/late", json=1).json()["status"] == "TERMINATED"


def test_scheduled_start_is_reported(api: httpx.Client) -> None:
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    iid = start(api, unique("later"), startAt=at.isoformat().replace("+00:00", "Z"))
    detail = api.get(f"/{iid}").json()
    assert datetime.fromisoformat(detail["scheduledStartAt"]) == at


def test_unknown_instances_are_404(api: httpx.Client) -> None:
    missing = unique("missing")
    for resp in (
        api.get(f"/{missing}"),
        api.get(f"/{missing}/history"),
        api.delete(f"/{missing}"),
        api.post(f"/{missing}/terminate"),
        api.post(f"/{missing}/suspend"),
        api.post(f"/{missing}/events/x", json=1),
        api.post(f"/{missing}/rerun", json={"fromEvent": 0}),
    ):
        assert_error(resp, 404, "ERR_INSTANCE_ID_NOT_FOUND", missing)


def test_bad_requests(api: httpx.Client) -> None:
    assert_error(api.post("", json={}), 400, "ERR_WORKFLOW_NAME_MISSING", "'name'")
    assert_error(api.post("", content=b"{nope"), 400, "ERR_MALFORMED_REQUEST", "not valid JSON")
    assert_error(api.post("", json=["x"]), 400, "ERR_MALFORMED_REQUEST", "JSON object")
    assert_error(
        api.post("", json={"name": "x", "instanceID": "no spaces"}),
        400,
        "ERR_INSTANCE_ID_INVALID",
        "letters, digits",
    )
    assert_error(
        api.post("", json={"name": "x", "startAt": "soon"}), 400, "ERR_MALFORMED_REQUEST", "ISO"
    )
    iid = start(api, unique("bad"))
    assert_error(
        api.post(f"/{iid}/terminate", json={"recursive": "yes"}),
        400,
        "ERR_MALFORMED_REQUEST",
        "'recursive'",
    )
    assert_error(api.delete(f"/{iid}", params={"force": "perhaps"}), 400, "ERR_MALFORMED_REQUEST")


# --- purging ---------------------------------------------------------------------------------


def test_purge_one(api: httpx.Client) -> None:
    iid = start(api, unique("purge1"))
    assert_error(api.delete(f"/{iid}"), 400, "ERR_PURGE_WORKFLOW", "terminate it first")
    api.post(f"/{iid}/terminate")
    assert api.delete(f"/{iid}").json() == {"deleted": 1}
    assert api.get(f"/{iid}").status_code == 404

    forced = start(api, unique("purge1"))
    assert api.delete(f"/{forced}", params={"force": "true"}).json() == {"deleted": 1}
    assert api.get(f"/{forced}").status_code == 404


def test_bulk_purge_only_touches_finished_matches(api: httpx.Client) -> None:
    since = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    name = unique("bulk")
    ids = [start(api, name) for _ in range(5)]
    for iid in ids[:3]:
        api.post(f"/{iid}/terminate")

    assert_error(
        api.post("/purge", json={"status": ["RUNNING"]}),
        400,
        "ERR_MALFORMED_REQUEST",
        "only finished workflows can be purged",
        "RUNNING",
    )
    assert_error(api.post("/purge", json={}), 400, "ERR_MALFORMED_REQUEST", "at least one filter")
    assert_error(
        api.post("/purge", json={"olderThan": "a while"}), 400, "ERR_MALFORMED_REQUEST", "7d"
    )
    # Nothing of ours is older than an hour.
    hour = api.post("/purge", json={"status": ["TERMINATED"], "olderThan": "1h"})
    assert hour.json() == {"deleted": 0}
    assert len(list_all(api, name=name)[0]) == 5

    resp = api.post("/purge", json={"status": ["terminated"], "createdFrom": since})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"deleted": 3}
    left, _ = list_all(api, name=name)
    assert sorted(left) == sorted(ids[3:])  # the PENDING ones were not touched
    for iid in ids[:3]:
        assert api.get(f"/{iid}").status_code == 404


# --- with a worker ---------------------------------------------------------------------------


def test_completed_failed_and_rerun_instances(
    api: httpx.Client, tether_server: TetherProcess
) -> None:
    with worker(tether_server):
        ok = start(api, "hello", unique("hello"), input="tether")
        bad = start(api, "broken", unique("broken"))
        done = wait_finished(api, ok)
        failed = wait_finished(api, bad)

        assert done["status"] == "COMPLETED"
        assert done["input"] == "tether" and done["output"] == {"greeting": "HELLO TETHER!"}
        assert failed["status"] == "FAILED"
        assert failed["failure"]["type"] == "TaskFailedError"
        assert "the reactor is on fire" in failed["failure"]["message"]

        events = api.get(f"/{ok}/history").json()["events"]
        kinds = [e["type"] for e in events]
        for kind in ("executionStarted", "taskScheduled", "taskCompleted", "executionCompleted"):
            assert kind in kinds
        assert [e["index"] for e in events] == list(range(len(events)))
        started = events[kinds.index("executionStarted")]["details"]
        assert started["name"] == "hello" and started["input"] == "tether"
        assert started["instanceId"] == ok
        scheduled = events[kinds.index("taskScheduled")]
        assert scheduled["details"]["name"] == "shout"
        assert scheduled["details"]["input"] == "hello tether"
        completed = events[kinds.index("taskCompleted")]["details"]
        assert completed == {"taskScheduledId": scheduled["eventId"], "result": "HELLO TETHER!"}
        assert events[-1]["details"]["status"] == "COMPLETED"

        bad_events = api.get(f"/{bad}/history").json()["events"]
        task_failed = next(e for e in bad_events if e["type"] == "taskFailed")["details"]
        assert task_failed["failure"]["type"] == "ValueError"
        assert task_failed["failure"]["message"] == "the reactor is on fire"
        assert task_failed["failure"].get("stackTrace")

        # A rerun from the activity runs it again, with a replacement input, as a new instance.
        missing = api.post(f"/{ok}/rerun", json={"fromEvent": 999})
        assert missing.status_code in (400, 404) and "999" in missing.json()["message"]
        assert_error(api.post(f"/{ok}/rerun", json={}), 400, "ERR_MALFORMED_REQUEST", "fromEvent")
        copy = unique("copy")
        resp = api.post(
            f"/{ok}/rerun",
            json={"fromEvent": scheduled["eventId"], "newInstanceID": copy, "input": "again"},
        )
        assert resp.status_code == 202 and resp.json() == {"instanceID": copy}
        rerun = wait_finished(api, copy)
        assert rerun["status"] == "COMPLETED" and rerun["input"] == "tether"
        assert rerun["output"] == {"greeting": "AGAIN!"}
        assert api.get(f"/{ok}").json()["output"] == {"greeting": "HELLO TETHER!"}

        pending = start(api, "hello", unique("running"), startAt="2999-01-01T00:00:00Z")
        assert_error(
            api.post(f"/{pending}/rerun", json={"fromEvent": 0}),
            400,
            "ERR_RERUN_WORKFLOW",
            "terminate it first",
        )
        api.post(f"/{pending}/terminate")


def test_a_started_instance_belongs_to_the_app_named_else_the_default(api: httpx.Client) -> None:
    named = start(api, unique("owned"), appID="billing")
    assert api.get(f"/{named}").json()["appID"] == "billing"
    default = start(api, unique("unowned"))
    assert api.get(f"/{default}").json()["appID"] == "tether-dev"
    bad = api.post("", json={"name": "x", "appID": 5})
    assert_error(bad, 400, "ERR_MALFORMED_REQUEST", "appID")
