"""The Jobs API end to end: the official SDK schedules, a real FastAPI app and a real
`dapr.ext.grpc.App` receive, a real `tether dev` fires (and is killed and restarted)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from dapr.clients import DaprClient
from dapr.clients.grpc._jobs import ConstantFailurePolicy, Job
from dapr.proto import api_v1
from dapr.proto.runtime.v1 import jobs_pb2
from google.protobuf.any_pb2 import Any as GrpcAny

from tests.fixtures.apps import AppProcess, register, sdk
from tests.fixtures.tether import TetherProcess, wait_until

GRPC_JOB = "grpc-job"


@pytest.fixture(scope="module")
def http_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    app = AppProcess("tests.compat.invoke_http_app")
    app.start(tmp_path_factory.mktemp("http-app"))
    yield app
    app.stop()


@pytest.fixture(scope="module")
def grpc_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    app = AppProcess("tests.compat.invoke_grpc_app", GRPC_JOB)
    app.start(tmp_path_factory.mktemp("grpc-app"))
    yield app
    app.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, http_app: AppProcess
) -> Iterator[TetherProcess]:
    tether = TetherProcess(
        tmp_path_factory.mktemp("tether"),
        extra_args=["--app-id", "jobs-http", "--app-port", str(http_app.port)],
    )
    tether.start()
    yield tether
    assert tether.stop() == 0, tether.log()


@pytest.fixture
def client(server: TetherProcess) -> Iterator[DaprClient]:
    """The SDK as the HTTP app (`jobs-http`, the server's token-less default App ID)."""
    with sdk(server) as c:
        yield c


def received(app: AppProcess, name: str) -> list[str]:
    jobs = httpx.get(f"http://127.0.0.1:{app.port}/jobs-received", timeout=10).json()
    return [j["body"] for j in jobs if j["name"] == name]


def payload(value: bytes) -> GrpcAny:
    return GrpcAny(value=value)


def test_due_time_job_reaches_the_http_app(client: DaprClient, http_app: AppProcess) -> None:
    client.schedule_job(Job(name="once", due_time="1s", data=payload(b'{"k": "v"}')))
    assert wait_until(lambda: received(http_app, "once"), 10, what="job once") == ['{"k": "v"}']
    time.sleep(1.5)
    assert len(received(http_app, "once")) == 1
    with pytest.raises(grpc.RpcError) as info:  # a one-shot job is gone once it fired
        client.get_job("once")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_every_second_with_three_repeats_fires_three_times(
    client: DaprClient, http_app: AppProcess
) -> None:
    started = time.monotonic()
    client.schedule_job(Job(name="thrice", schedule="@every 1s", repeats=3, data=payload(b"x")))
    wait_until(lambda: len(received(http_app, "thrice")) >= 3, 10, what="three firings")
    assert 2.5 < time.monotonic() - started < 6
    time.sleep(2.0)
    assert received(http_app, "thrice") == ["x", "x", "x"]


def test_job_reaches_the_grpc_app(
    server: TetherProcess, grpc_app: AppProcess, http_app: AppProcess
) -> None:
    token = register(server, appID="jobs-grpc", appPort=grpc_app.port, appProtocol="grpc")
    with sdk(server, token=token) as c:
        c.schedule_job(Job(name=GRPC_JOB, due_time="500ms", data=payload(b"for grpc")))

    def grpc_jobs() -> list[Any]:
        url = f"{server.http_url}/v1.0/invoke/jobs-grpc/method/jobs"
        got: list[Any] = httpx.post(url, timeout=10).json()
        return got

    assert wait_until(grpc_jobs, 10, what="the gRPC app's job") == [
        {"name": GRPC_JOB, "data": "for grpc"}
    ]
    assert received(http_app, GRPC_JOB) == []  # jobs belong to the App ID that scheduled them


def test_get_returns_the_job_and_delete_removes_it(
    client: DaprClient, server: TetherProcess
) -> None:
    job = Job(
        name="kept", schedule="0 30 * * * *", repeats=5, ttl="2h", data=payload(b"d"),
        failure_policy=ConstantFailurePolicy(max_retries=2, interval_seconds=5),
    )  # fmt: skip
    client.schedule_job(job)
    got = client.get_job("kept")
    assert (got.name, got.schedule, got.repeats, got.ttl) == ("kept", "0 30 * * * *", 5, "2h")
    assert got.data is not None and got.data.value == b"d"
    assert isinstance(got.failure_policy, ConstantFailurePolicy)
    assert got.failure_policy.max_retries == 2
    as_json = httpx.get(f"{server.http_url}/v1.0-alpha1/jobs/kept").json()
    assert as_json["schedule"] == "0 30 * * * *" and as_json["repeats"] == 5
    client.delete_job("kept")
    with pytest.raises(grpc.RpcError) as info:
        client.get_job("kept")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    missing = httpx.get(f"{server.http_url}/v1.0/jobs/kept")
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "DAPR_SCHEDULER_GET_JOB"


def test_delete_stops_a_recurring_job(client: DaprClient, http_app: AppProcess) -> None:
    client.schedule_job(Job(name="stopper", schedule="@every 1s", data=payload(b"s")))
    wait_until(lambda: received(http_app, "stopper"), 10, what="the first firing")
    client.delete_job("stopper")
    fired = len(received(http_app, "stopper"))
    time.sleep(2.5)
    assert len(received(http_app, "stopper")) == fired


def test_list_and_delete_by_prefix(client: DaprClient, server: TetherProcess) -> None:
    for name in ("batch-1", "batch-2", "keep"):
        client.schedule_job(Job(name=name, schedule="@every 1h", data=payload(b"p")))
    # The SDK has no helpers for these two RPCs yet: call them through its generated stub.
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = api_v1.DaprStub(channel)
        listed = stub.ListJobsAlpha1(jobs_pb2.ListJobsRequestAlpha1())
        assert {j.name for j in listed.jobs} >= {"batch-1", "batch-2", "keep"}
        stub.DeleteJobsByPrefix(jobs_pb2.DeleteJobsByPrefixRequest(name_prefix="batch-"))
        names = {j.name for j in stub.ListJobs(jobs_pb2.ListJobsRequest()).jobs}
    assert "keep" in names and not names & {"batch-1", "batch-2"}
    over_http = httpx.get(f"{server.http_url}/v1.0-alpha1/jobs").json()["jobs"]
    assert {"name": "keep", "schedule": "@every 1h"}.items() <= next(
        j for j in over_http if j["name"] == "keep"
    ).items()
    client.delete_job("keep")


def test_http_jobs_api(server: TetherProcess, http_app: AppProcess) -> None:
    url = f"{server.http_url}/v1.0-alpha1/jobs/from-http"
    body = {"dueTime": "500ms", "data": {"order": 7, "items": ["a"]}}
    assert httpx.post(url, json=body).status_code == 204
    got = wait_until(lambda: received(http_app, "from-http"), 10, what="the HTTP-scheduled job")
    assert json.loads(got[0]) == {"order": 7, "items": ["a"]}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"schedule": "every minute"}, "DAPR_SCHEDULER_SCHEDULE_JOB"),
        ({"schedule": "0 61 * * * *"}, "DAPR_SCHEDULER_SCHEDULE_JOB"),
        ({"dueTime": "tomorrow-ish"}, "DAPR_SCHEDULER_SCHEDULE_JOB"),
        ({"schedule": "@every 1m", "repeats": -1}, "DAPR_SCHEDULER_SCHEDULE_JOB"),
        ({"schedule": "@every 1m", "dueTime": "1h", "ttl": "1m"}, "DAPR_SCHEDULER_SCHEDULE_JOB"),
        ({"data": 1}, "DAPR_SCHEDULER_SCHEDULE_EMPTY"),
        ({"name": "other", "schedule": "@daily"}, "DAPR_SCHEDULER_JOB_NAME"),
    ],
)
def test_bad_jobs_are_refused(server: TetherProcess, body: dict[str, Any], code: str) -> None:
    resp = httpx.post(f"{server.http_url}/v1.0-alpha1/jobs/bad", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["errorCode"] == code


def test_bad_schedule_over_grpc_and_overwrite(client: DaprClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.schedule_job(Job(name="bad", schedule="* * *"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    client.schedule_job(Job(name="dup", schedule="@every 1h"))
    with pytest.raises(grpc.RpcError) as info:
        client.schedule_job(Job(name="dup", schedule="@every 2h"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    client.schedule_job(Job(name="dup", schedule="@every 2h"), overwrite=True)
    assert client.get_job("dup").schedule == "@every 2h"
    client.delete_job("dup")


# --- durability --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture
def crashing(
    tmp_path_factory: pytest.TempPathFactory, http_app: AppProcess, store_url: str | None
) -> Iterator[TetherProcess]:
    tether = TetherProcess(
        tmp_path_factory.mktemp("crash"),
        store=store_url,
        extra_args=["--app-id", "durable", "--app-port", str(http_app.port)],
    )
    tether.start()
    yield tether
    tether.stop()


def test_jobs_survive_kill_9(crashing: TetherProcess, http_app: AppProcess) -> None:
    tag = "pg" if crashing.store else "sqlite"
    once, every = f"due-{tag}", f"every-{tag}"
    with sdk(crashing) as c:
        c.schedule_job(Job(name=once, due_time="2s", data=payload(b"1")))
        c.schedule_job(Job(name=every, schedule="@every 1s", repeats=4, data=payload(b"e")))
    # Down across the one-shot's due time: it fires once after the restart, not zero times.
    wait_until(lambda: received(http_app, every), 10, what="the first recurring firing")
    crashing.kill()
    time.sleep(2.5)
    crashing.start()
    wait_until(lambda: received(http_app, once), 10, what="the overdue job after restart")
    wait_until(lambda: len(received(http_app, every)) >= 4, 15, what="all four repeats")
    time.sleep(2.0)
    assert received(http_app, once) == ["1"]  # not twice
    assert received(http_app, every) == ["e"] * 4  # occurrences fire once each, none repeated


def test_an_occurrence_cut_off_mid_delivery_is_delivered_again(
    crashing: TetherProcess, http_app: AppProcess
) -> None:
    name = f"stall-{'pg' if crashing.store else 'sqlite'}"
    with sdk(crashing) as c:
        c.schedule_job(Job(name=name, due_time="500ms", data=payload(b"s")))
    # The app holds the first delivery open; the runtime dies before it is acknowledged.
    wait_until(lambda: received(http_app, name), 10, what="the first delivery")
    crashing.kill()
    crashing.start()
    # SQLite takes the occurrence back at once; PostgreSQL once the dead runtime's lease ran out.
    got = wait_until(lambda: len(received(http_app, name)) >= 2 or None, 30, what="redelivery")
    assert got and received(http_app, name) == ["s", "s"]
    time.sleep(1.5)
    assert len(received(http_app, name)) == 2  # delivered, then forgotten
