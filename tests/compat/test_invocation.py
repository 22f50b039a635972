"""Service invocation end to end: the official SDK's `DaprClient` calls a FastAPI app
(`dapr.ext.fastapi`) and a gRPC app (`dapr.ext.grpc.App`), both real processes, through a real
`tether dev` with resiliency policies loaded from --resources; plain HTTP clients call by
`dapr-app-id` header, as apps pointed at `DAPR_HTTP_ENDPOINT` do.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from dapr.clients.exceptions import DaprHttpError
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import dapr_pb2_grpc, invoke_pb2
from google.protobuf import any_pb2
from google.protobuf.wrappers_pb2 import StringValue

from tests.compat.invoke_grpc_app import PROTO_CONTENT_TYPE
from tests.fixtures.apps import AppProcess, app_healthy, register, sdk
from tests.fixtures.tether import TetherProcess, wait_until

APP_TOKEN = "app-secret"
RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: policies
spec:
  policies:
    timeouts:
      short: 500ms
    retries:
      three:
        policy: constant
        duration: 50ms
        maxRetries: 3
    circuitBreakers:
      trips:
        maxRequests: 1
        timeout: 1s
        trip: consecutiveFailures >= 3
  targets:
    apps:
      flaky:
        retry: three
      slow:
        timeout: short
      breaker:
        circuitBreaker: trips
"""
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"


@pytest.fixture(scope="module")
def http_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    app = AppProcess("tests.compat.invoke_http_app", env={"APP_TOKEN": APP_TOKEN})
    app.start(tmp_path_factory.mktemp("http-app"))
    yield app
    app.stop()


@pytest.fixture(scope="module")
def sick_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("health") / "sick"


@pytest.fixture(scope="module")
def grpc_app(tmp_path_factory: pytest.TempPathFactory, sick_file: Path) -> Iterator[AppProcess]:
    app = AppProcess("tests.compat.invoke_grpc_app", env={"SICK_FILE": str(sick_file)})
    app.start(tmp_path_factory.mktemp("grpc-app"))
    yield app
    app.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, http_app: AppProcess, grpc_app: AppProcess
) -> Iterator[TetherProcess]:
    resources = tmp_path_factory.mktemp("resources")
    (resources / "resiliency.yaml").write_text(RESILIENCY)
    tether = TetherProcess(
        tmp_path_factory.mktemp("tether"),
        extra_args=[
            "--app-id", "caller", "--app-port", str(http_app.port),
            "--resources", str(resources),
        ],
    )  # fmt: skip
    tether.start()
    http = {"appPort": http_app.port}
    register(tether, appID="http-app", appToken=APP_TOKEN, **http)
    register(tether, appID="grpc-app", appPort=grpc_app.port, appProtocol="grpc")
    for app_id in ("flaky", "slow", "breaker", "plain"):
        register(tether, appID=app_id, **http)
    register(tether, appID="no-endpoint")
    register(tether, appID="tiny", maxBodySize=16, **http)
    register(tether, appID="tokened", apiToken="tokened-token", **http)
    yield tether
    assert tether.stop() == 0, tether.log()


def invoke_http(server: TetherProcess, app_id: str, method: str, **kw: Any) -> httpx.Response:
    url = f"{server.http_url}/v1.0/invoke/{app_id}/method/{method}"
    return httpx.request(kw.pop("verb", "POST"), url, timeout=30, **kw)


# --- HTTP callers ------------------------------------------------------------------------------


def test_http_invocation_reaches_the_app_with_daprs_headers(server: TetherProcess) -> None:
    with sdk(server) as client:
        resp = client.invoke_method(
            "http-app", "echo/some/path", data=b"hello", http_verb="PUT",
            http_querystring=(("a", "1"), ("b", "two")), content_type="text/plain",
        )  # fmt: skip
    got = resp.json()
    assert got["method"] == "PUT"
    assert got["path"] == "some/path"
    assert got["query"] == "a=1&b=two"
    assert got["body"] == "hello"
    headers = got["headers"]
    assert headers["dapr-caller-app-id"] == "caller"  # token-less: the server's default App ID
    assert headers["dapr-callee-app-id"] == "http-app"
    assert headers["content-type"] == "text/plain"
    assert TRACEPARENT.match(headers["traceparent"])
    assert headers["dapr-api-token"] == APP_TOKEN  # the callee's app token, never the caller's
    assert resp.headers.get("x-echo") == ["yes"]


def test_traceparent_is_continued_and_caller_comes_from_the_token(server: TetherProcess) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    resp = invoke_http(
        server, "plain", "echo/x",
        headers={"traceparent": parent, "dapr-api-token": "tokened-token"},
    )  # fmt: skip
    headers = resp.json()["headers"]
    trace = headers["traceparent"].split("-")
    assert trace[1] == "0af7651916cd43dd8448eb211c80319c" and trace[2] != "b7ad6b7169203331"
    assert headers["dapr-caller-app-id"] == "tokened"
    assert "dapr-api-token" not in headers  # "plain" has no app token; the caller's stays home


def test_app_status_and_body_pass_through(server: TetherProcess) -> None:
    resp = invoke_http(server, "plain", "status/418", content=b"teapot")
    assert resp.status_code == 418
    assert resp.content == b"teapot"
    assert resp.headers["content-type"].startswith("text/plain")
    with sdk(server) as client, pytest.raises(DaprHttpError) as info:
        client.invoke_method("plain", "status/409", data=b"taken", http_verb="POST")
    assert info.value.status_code == 409


def test_http_caller_to_grpc_app(server: TetherProcess) -> None:
    with sdk(server) as client:
        resp = client.invoke_method(
            "grpc-app", "echo", data=b"ping", content_type="text/plain", http_verb="POST"
        )
    got = resp.json()
    assert got["data"] == "ping"
    assert got["contentType"] == "text/plain"
    assert got["metadata"]["dapr-caller-app-id"] == "caller"
    assert got["metadata"]["dapr-callee-app-id"] == "grpc-app"
    failed = invoke_http(server, "grpc-app", "fail")
    assert failed.status_code == 500
    assert "failed on purpose" in failed.json()["message"]
    assert invoke_http(server, "grpc-app", "missing").status_code == 501  # UNIMPLEMENTED


def test_unknown_app_and_app_without_endpoint(server: TetherProcess) -> None:
    for app_id, reason in (("nobody", "couldn't find service"), ("no-endpoint", "app channel")):
        resp = invoke_http(server, app_id, "echo/x")
        assert resp.status_code == 500
        assert resp.json()["errorCode"] == "ERR_DIRECT_INVOKE"
        assert reason in resp.json()["message"]
    with sdk(server, "grpc") as client, pytest.raises(grpc.RpcError) as info:
        client.invoke_method("nobody", "echo", data=b"")
    assert info.value.code() == grpc.StatusCode.INTERNAL


def test_body_limit_per_app_id(server: TetherProcess) -> None:
    resp = invoke_http(server, "tiny", "echo/x", content=b"x" * 64)
    assert resp.status_code == 413
    assert resp.json()["errorCode"] == "ERR_BODY_TOO_LARGE"
    assert invoke_http(server, "tiny", "echo/x", content=b"small").status_code == 200


def test_app_token_is_what_the_app_checks(server: TetherProcess) -> None:
    assert invoke_http(server, "http-app", "secure", verb="GET").json() == {"token": APP_TOKEN}
    # Same app process, registered without an app token: it refuses the call.
    assert invoke_http(server, "plain", "secure", verb="GET").status_code == 401


# --- gRPC callers ------------------------------------------------------------------------------


def test_grpc_caller_to_grpc_and_http_apps(server: TetherProcess) -> None:
    with sdk(server, "grpc") as client:
        resp = client.invoke_method("grpc-app", "echo", data="hi", content_type="text/plain")
        got = json.loads(resp.data)
        assert got["data"] == "hi" and got["metadata"]["dapr-callee-app-id"] == "grpc-app"
        resp = client.invoke_method(
            "http-app", "echo/from-grpc", data=b"{}", http_verb="PATCH",
            http_querystring=(("q", "1"),),
        )  # fmt: skip
        got = json.loads(resp.data)
        assert (got["method"], got["path"], got["query"]) == ("PATCH", "from-grpc", "q=1")
        with pytest.raises(grpc.RpcError) as info:
            client.invoke_method("http-app", "status/404", data=b"gone", http_verb="POST")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_app_answer_keeps_its_type_url_and_content_type(server: TetherProcess) -> None:
    with sdk(server, "grpc") as client:
        # A packed message both ways: the app sees the caller's type URL, the caller the app's.
        resp = client.invoke_method("grpc-app", "proto", data=StringValue(value="hi"))
        assert resp.is_proto() and resp.proto.type_url == STRING_VALUE
        assert resp.content_type == PROTO_CONTENT_TYPE
        got = StringValue()
        resp.unpack(got)
        assert got.value == f"proto:{STRING_VALUE}:hi"
        # Plain bytes in, a packed message out.
        resp = client.invoke_method("grpc-app", "proto", data=b"raw", content_type="text/plain")
        assert resp.proto.type_url == STRING_VALUE
        resp.unpack(got)
        assert got.value == "bytes:raw:text/plain"
        # Plain bytes out: no type URL, the app's content type.
        resp = client.invoke_method("grpc-app", "echo", data=b"x", content_type="text/plain")
        assert not resp.is_proto() and resp.content_type == "application/json"
        assert json.loads(resp.data)["data"] == "x"
        # An HTTP app never answers with a type URL; a packed request reaches it labelled as
        # daprd labels it.
        resp = client.invoke_method("plain", "echo/packed", data=StringValue(value="v"),
                                    http_verb="POST")  # fmt: skip
        assert not resp.is_proto()
        assert json.loads(resp.data)["headers"]["content-type"] == "application/x-protobuf"


def test_http_caller_gets_protobuf_answers_labelled(server: TetherProcess) -> None:
    with sdk(server) as client:
        resp = client.invoke_method("grpc-app", "proto", data=b"raw", content_type="text/plain",
                                    http_verb="POST")  # fmt: skip
        # daprd's label for a packed message, which the SDK knows how to unpack.
        assert resp.content_type == "application/x-protobuf"
        got = StringValue()
        resp.unpack(got)
        assert got.value == "bytes:raw:text/plain"
        resp = client.invoke_method("grpc-app", "echo", data=b"x", http_verb="POST")
        assert resp.content_type == "application/json" and resp.json()["data"] == "x"


def test_undecodable_packed_request_fails_in_the_app_not_in_tether(server: TetherProcess) -> None:
    def call(data: any_pb2.Any) -> Any:
        request = invoke_pb2.InvokeServiceRequest(
            id="grpc-app", message=common_pb2.InvokeRequest(method="proto", data=data)
        )
        return dapr_pb2_grpc.DaprStub(channel).InvokeService(request, timeout=10)

    with grpc.insecure_channel(server.grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            call(any_pb2.Any(type_url=STRING_VALUE, value=b"\xff\xff\xff"))
        assert info.value.code() == grpc.StatusCode.UNKNOWN  # the app's own status
        answer = call(any_pb2.Any(value=b"ok"))
    assert answer.data.type_url == STRING_VALUE and answer.content_type == PROTO_CONTENT_TYPE


# --- invocation by dapr-app-id header -------------------------------------------------------------


def by_header(server: TetherProcess, app_id: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"dapr-app-id": app_id, **kw.pop("headers", {})}
    return httpx.request(kw.pop("verb", "POST"), f"{server.http_url}/{path.lstrip('/')}",
                         headers=headers, timeout=30, **kw)  # fmt: skip


def test_dapr_app_id_header_invokes_like_the_invoke_api(server: TetherProcess) -> None:
    resp = by_header(
        server, "http-app", "/echo/some/path?a=1&b=two", verb="PUT", content=b"hello",
        headers={"content-type": "text/plain", "x-custom": "kept"},
    )  # fmt: skip
    assert resp.status_code == 200 and resp.headers["x-echo"] == "yes"
    got = resp.json()
    assert (got["method"], got["path"], got["query"], got["body"]) == (
        "PUT", "some/path", "a=1&b=two", "hello"
    )  # fmt: skip
    headers = got["headers"]
    assert headers["x-custom"] == "kept" and headers["content-type"] == "text/plain"
    assert headers["dapr-caller-app-id"] == "caller"
    assert headers["dapr-callee-app-id"] == "http-app"
    assert headers["dapr-api-token"] == APP_TOKEN
    assert TRACEPARENT.match(headers["traceparent"])
    assert "dapr-app-id" not in headers  # daprd's routing header stays home
    for verb in ("GET", "POST", "DELETE", "PATCH"):
        assert by_header(server, "http-app", "echo/v", verb=verb).json()["method"] == verb
    # The path is cleaned as daprd cleans it; a trailing slash is kept.
    assert by_header(server, "http-app", "echo//a/./b//").json()["path"] == "a/b/"
    # The caller is still who its token says; the app's answer comes back as it was.
    resp = by_header(server, "plain", "echo/x", headers={"dapr-api-token": "tokened-token"})
    assert resp.json()["headers"]["dapr-caller-app-id"] == "tokened"
    resp = by_header(server, "plain", "status/418", content=b"teapot")
    assert (resp.status_code, resp.content) == (418, b"teapot")


def test_dapr_app_id_header_to_grpc_app_and_by_basic_auth(server: TetherProcess) -> None:
    got = by_header(server, "grpc-app", "echo", content=b"ping").json()
    assert got["data"] == "ping" and got["metadata"]["dapr-callee-app-id"] == "grpc-app"
    # daprd's other spelling: http://dapr-app-id:<appId>@host/<method>
    resp = httpx.post(f"{server.http_url}/echo/basic", auth=("dapr-app-id", "http-app"),
                      content=b"b", timeout=30)  # fmt: skip
    assert resp.status_code == 200 and resp.json()["path"] == "basic"
    # Resiliency applies as on /v1.0/invoke: two failures, then the third attempt.
    assert by_header(server, "flaky", "flaky/by-header/2").json() == {"calls": 3}


def test_dapr_app_id_header_errors(server: TetherProcess) -> None:
    for app_id, reason in (("nobody", "couldn't find service"), ("no-endpoint", "app channel")):
        resp = by_header(server, app_id, "echo/x")
        assert resp.status_code == 500
        assert resp.json()["errorCode"] == "ERR_DIRECT_INVOKE"
        assert reason in resp.json()["message"]
    resp = by_header(server, "tiny", "echo/x", content=b"x" * 64)
    assert resp.status_code == 413 and resp.json()["errorCode"] == "ERR_BODY_TOO_LARGE"
    resp = by_header(server, "plain", "echo/x", headers={"dapr-api-token": "not-a-token"})
    assert resp.status_code == 401


def test_dapr_app_id_header_never_shadows_the_api(server: TetherProcess) -> None:
    base = server.http_url
    app = {"dapr-app-id": "http-app"}
    assert httpx.get(f"{base}/v1.0/healthz", headers=app).status_code == 204
    assert httpx.get(f"{base}/v1.0/metadata", headers=app).json()["id"] == "caller"
    assert "# TYPE" in httpx.get(f"{base}/metrics", headers=app).text
    assert "apps" in httpx.get(f"{base}/v1.0-tether/apps", headers=app).json()
    # A path an API route owns, with a verb it does not take, stays that route's 405.
    assert httpx.put(f"{base}/v1.0/healthz", headers=app).status_code == 405
    assert httpx.post(f"{base}/v1.0-tether/nothing-here", headers=app).status_code == 404
    # /v1.0/invoke routes by its path; the header is dropped, not obeyed.
    resp = httpx.post(f"{base}/v1.0/invoke/plain/method/echo/x", headers={"dapr-app-id": "nobody"})
    assert resp.json()["headers"]["dapr-callee-app-id"] == "plain"


def test_unknown_paths_without_the_header_are_still_404(server: TetherProcess) -> None:
    for headers in ({}, {"dapr-app-id": ""}, {"authorization": "Basic bm90OnRoaXM="}):
        resp = httpx.post(f"{server.http_url}/orders", headers=headers, content=b"{}")
        assert resp.status_code == 404 and resp.text == "Not Found"


# --- resiliency --------------------------------------------------------------------------------


def calls(server: TetherProcess, key: str) -> int:
    count: int = invoke_http(server, "plain", f"calls/{key}", verb="GET").json()["calls"]
    return count


def test_retries_until_the_app_succeeds(server: TetherProcess) -> None:
    resp = invoke_http(server, "flaky", "flaky/recovers/2")
    assert resp.status_code == 200
    assert resp.json() == {"calls": 3}  # two failures, then the third attempt


def test_retries_give_up_with_the_apps_last_answer(server: TetherProcess) -> None:
    resp = invoke_http(server, "flaky", "flaky/never/100")
    assert resp.status_code == 500
    assert resp.text == "failure 4"  # one attempt and maxRetries=3 retries
    assert calls(server, "never") == 4
    # Without a policy a failure is returned at once.
    assert invoke_http(server, "plain", "flaky/once/100").status_code == 500
    assert calls(server, "once") == 1


def test_timeout(server: TetherProcess) -> None:
    started = time.monotonic()
    resp = invoke_http(server, "slow", "slow/3")
    assert resp.status_code == 500
    assert resp.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    assert time.monotonic() - started < 2.5
    assert invoke_http(server, "slow", "slow/0.01").status_code == 200
    with sdk(server, "grpc") as client, pytest.raises(grpc.RpcError) as info:
        client.invoke_method("slow", "slow/3", data=b"", http_verb="POST")
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_circuit_breaker_opens_and_closes(server: TetherProcess) -> None:
    for _ in range(3):  # consecutiveFailures >= 3 opens it
        assert invoke_http(server, "breaker", "flaky/cb/3").status_code == 500
    opened = invoke_http(server, "breaker", "flaky/cb/3")
    assert opened.status_code == 500
    assert opened.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    assert "circuit breaker" in opened.json()["message"]
    assert calls(server, "cb") == 3  # the open breaker did not call the app
    time.sleep(1.2)  # its timeout: half-open lets one probe through, which succeeds
    assert invoke_http(server, "breaker", "flaky/cb/3").status_code == 200
    assert invoke_http(server, "breaker", "flaky/cb/3").status_code == 200


# --- health checks -----------------------------------------------------------------------------


def test_failing_health_checks_pause_invocation(
    server: TetherProcess, http_app: AppProcess
) -> None:
    register(
        server, appID="watched", appPort=http_app.port,
        appHealthCheck={"probeIntervalSeconds": 0.1, "probeTimeoutMilliseconds": 500,
                        "threshold": 2},
    )  # fmt: skip
    wait_until(lambda: app_healthy(server, "watched"), 10, what="watched to be healthy")
    app = f"http://127.0.0.1:{http_app.port}"
    httpx.post(f"{app}/health/0")
    try:
        wait_until(lambda: app_healthy(server, "watched") is False, 10, what="unhealthy")
        started = time.monotonic()
        resp = invoke_http(server, "watched", "echo/x")
        assert time.monotonic() - started < 1
        assert resp.status_code == 503
        assert resp.json()["errorCode"] == "ERR_DIRECT_INVOKE"
        assert "not in a healthy state" in resp.json()["message"]
        assert invoke_http(server, "plain", "echo/x").status_code == 200  # no checks: unaffected
    finally:
        httpx.post(f"{app}/health/1")
    wait_until(lambda: app_healthy(server, "watched"), 10, what="watched to recover")
    assert invoke_http(server, "watched", "echo/x").status_code == 200


def test_grpc_health_checks(server: TetherProcess, grpc_app: AppProcess, sick_file: Path) -> None:
    register(
        server, appID="grpc-watched", appPort=grpc_app.port, appProtocol="grpc",
        appHealthCheck={"probeIntervalSeconds": 0.1, "threshold": 2},
    )  # fmt: skip
    wait_until(lambda: app_healthy(server, "grpc-watched"), 10, what="grpc-watched healthy")
    sick_file.touch()
    try:
        wait_until(lambda: app_healthy(server, "grpc-watched") is False, 10, what="unhealthy")
        with sdk(server, "grpc") as client, pytest.raises(grpc.RpcError) as info:
            client.invoke_method("grpc-watched", "echo", data=b"")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        sick_file.unlink()
    wait_until(lambda: app_healthy(server, "grpc-watched"), 10, what="grpc-watched to recover")
    assert invoke_http(server, "grpc-watched", "echo").status_code == 200


# --- the registry ------------------------------------------------------------------------------


def test_registrations_are_listed_removed_and_survive_restarts(server: TetherProcess) -> None:
    register(server, appID="short-lived", appPort=1)
    listed = httpx.get(f"{server.http_url}/v1.0-tether/apps").json()["apps"]
    ids = {a["appID"]: a for a in listed}
    assert ids["caller"]["source"] == "flags" and ids["grpc-app"]["appProtocol"] == "grpc"
    assert all("apiToken" not in a for a in listed)
    assert httpx.delete(f"{server.http_url}/v1.0-tether/apps/short-lived").status_code == 204
    assert httpx.delete(f"{server.http_url}/v1.0-tether/apps/short-lived").status_code == 404
    bad = httpx.post(f"{server.http_url}/v1.0-tether/apps", json={"appID": "x", "appPort": "no"})
    assert bad.status_code == 400
    server.restart()  # kill -9, start again on the same data directory
    assert invoke_http(server, "grpc-app", "echo").status_code == 200
    resp = invoke_http(server, "plain", "echo/x", headers={"dapr-api-token": "tokened-token"})
    assert resp.json()["headers"]["dapr-caller-app-id"] == "tokened"
    assert invoke_http(server, "short-lived", "echo").status_code == 500
