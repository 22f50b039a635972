"""gRPC proxying end to end: a plain gRPC client calls its own service's methods on a real
`tether dev`'s gRPC port with `dapr-app-id` metadata, as Dapr's docs show, and a real gRPC app
(`proxy_grpc_app`, no Dapr SDK) answers them through the runtime.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2
from google.protobuf.wrappers_pb2 import StringValue
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.compat.proxy_grpc_app import SERVICE
from tests.fixtures.apps import AppProcess, register, sdk
from tests.fixtures.prometheus import Exposition, parse
from tests.fixtures.tether import TetherProcess, free_port, wait_until
from tether.workflow.protos import pb, pb_grpc

APP_TOKEN = "proxy-app-secret"
RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: proxy-policies
spec:
  policies:
    timeouts:
      short: 500ms
    retries:
      three:
        policy: constant
        duration: 20ms
        maxRetries: 3
    circuitBreakers:
      trips:
        maxRequests: 1
        timeout: 30s
        trip: consecutiveFailures >= 3
  targets:
    apps:
      slow:
        timeout: short
      flaky:
        retry: three
      breaker:
        circuitBreaker: trips
"""
_C = grpc.StatusCode


@pytest.fixture(scope="module")
def grpc_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    app = AppProcess("tests.compat.proxy_grpc_app")
    app.start(tmp_path_factory.mktemp("proxy-app"))
    yield app
    app.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, grpc_app: AppProcess
) -> Iterator[TetherProcess]:
    resources = tmp_path_factory.mktemp("resources")
    (resources / "resiliency.yaml").write_text(RESILIENCY)
    tether = TetherProcess(
        tmp_path_factory.mktemp("tether"), extra_args=["--resources", str(resources)]
    )
    tether.start()
    app = {"appPort": grpc_app.port, "appProtocol": "grpc"}
    register(tether, appID="echo", **app)
    register(tether, appID="secured", appToken=APP_TOKEN, **app)
    register(tether, appID="caller", apiToken="caller-token")
    for app_id in ("slow", "flaky", "breaker"):
        register(tether, appID=app_id, **app)
    register(tether, appID="tiny", maxBodySize=64, **app)
    register(tether, appID="http-app", appPort=grpc_app.port)
    register(tether, appID="no-endpoint")
    register(tether, appID="nobody-home", appPort=free_port(), appProtocol="grpc")
    health = {"probeIntervalSeconds": 0.1, "threshold": 1}
    register(tether, appID="sick", appHealthCheck=health, **app)  # no health RPC: never healthy
    yield tether
    assert tether.stop() == 0, tether.log()


@pytest.fixture(scope="module")
def channel(server: TetherProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_address) as ch:
        yield ch


def _md(app_id: str | None, *extra: tuple[str, str | bytes]) -> list[tuple[str, Any]]:
    return [*([("dapr-app-id", app_id)] if app_id else []), *extra]


def unary(channel: grpc.Channel, method: str) -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/{method}",
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )


def value(text: str) -> StringValue:
    return StringValue(value=text)


def values(*texts: str) -> Iterator[StringValue]:
    return iter([value(t) for t in texts])


def events(channel: grpc.Channel) -> list[str]:
    answer = unary(channel, "Events")(value(""), metadata=_md("echo"), timeout=10)
    found: list[str] = json.loads(answer.value)
    return found


def fails(fn: Any, *args: Any, **kw: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kw)
    return info.value


# --- the four kinds of call --------------------------------------------------------------------


def test_unary_call_reaches_the_app_with_daprs_metadata(channel: grpc.Channel) -> None:
    answer, call = unary(channel, "Unary").with_call(
        value("hi"),
        metadata=_md("echo", ("x-custom", "c"), ("x-blob-bin", b"\x01\x02"),
                     ("traceparent", "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")),
        timeout=10,
    )  # fmt: skip
    report = json.loads(answer.value)
    assert report["got"] == "hi"
    md = report["metadata"]
    assert md["x-custom"] == ["c"]
    assert md["x-blob-bin"] == ["bin:0102"]
    assert md["dapr-caller-app-id"] == ["tether-dev"]  # token-less: the server's default App ID
    assert md["dapr-callee-app-id"] == ["echo"]
    assert "dapr-app-id" not in md
    assert "dapr-api-token" not in md
    trace = md["traceparent"][0].split("-")
    assert trace[1] == "ab" * 16 and trace[2] != "cd" * 8  # same trace, a new span
    # The caller's deadline reached the app (gRPC rounds a deadline up as it encodes it).
    assert report["deadline"] is not None and 0 < report["deadline"] <= 10.5
    # The app's headers and trailers come back as it sent them.
    initial = dict(call.initial_metadata())
    assert initial["x-app-header"] == "h"
    assert initial["x-app-bin"] == b"\x00\xff"
    assert dict(call.trailing_metadata())["x-app-trailer"] == "t"


def test_server_streaming(channel: grpc.Channel) -> None:
    method = channel.unary_stream(
        f"/{SERVICE}/ServerStream",
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )
    got = [m.value for m in method(value("5"), metadata=_md("echo"), timeout=10)]
    assert got == ["0", "1", "2", "3", "4"]


def test_client_streaming(channel: grpc.Channel) -> None:
    method = channel.stream_unary(
        f"/{SERVICE}/ClientStream",
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )
    answer = method(values("a", "b", "c"), metadata=_md("echo"), timeout=10)
    assert answer.value == "a,b,c"


def test_bidi_streaming_answers_each_message_as_it_arrives(channel: grpc.Channel) -> None:
    method = channel.stream_stream(
        f"/{SERVICE}/Bidi",
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )
    outbox: queue.Queue[StringValue | None] = queue.Queue()

    def requests() -> Iterator[StringValue]:
        while (item := outbox.get()) is not None:
            yield item

    responses = method(requests(), metadata=_md("echo"), timeout=10)
    for word in ("one", "two", "three"):
        outbox.put(value(word))  # the next is sent only once the answer to this one came back
        assert next(responses).value == word.upper()
    outbox.put(None)
    assert list(responses) == []
    assert responses.code() == _C.OK


# --- errors ------------------------------------------------------------------------------------


def test_the_apps_error_status_and_details_come_back_unchanged(channel: grpc.Channel) -> None:
    error = fails(unary(channel, "Fail"), value("widget"), metadata=_md("echo"), timeout=10)
    assert error.code() == _C.NOT_FOUND
    assert error.details() == "no widget"
    status = rpc_status.from_call(error)
    assert status is not None and len(status.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("NO_SUCH_THING", "tether.test")
    assert dict(error.initial_metadata())["x-app-header"] == "before-abort"
    assert dict(error.trailing_metadata())["x-app-trailer"] == "t"


def test_without_dapr_app_id_an_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    assert fails(unary(channel, "Unary"), value("x"), timeout=10).code() == _C.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("app_id", "code"),
    [
        ("no-such-app", _C.UNKNOWN),  # daprd: its name resolver's error
        ("http-app", _C.UNAVAILABLE),
        ("no-endpoint", _C.UNAVAILABLE),
        ("nobody-home", _C.UNAVAILABLE),
        ("sick", _C.UNAVAILABLE),
    ],
)
def test_targets_that_cannot_answer(channel: grpc.Channel, app_id: str, code: Any) -> None:
    error = fails(unary(channel, "Unary"), value("x"), metadata=_md(app_id), timeout=10)
    assert error.code() == code, error.details()


def test_a_message_past_the_targets_body_limit_is_refused(channel: grpc.Channel) -> None:
    ok = unary(channel, "ClientStream")(value("small"), metadata=_md("tiny"), timeout=10)
    assert ok.value == "small"
    error = fails(unary(channel, "Unary"), value("x" * 100), metadata=_md("tiny"), timeout=10)
    assert error.code() == _C.RESOURCE_EXHAUSTED


# --- callers and tokens ------------------------------------------------------------------------


def test_the_caller_is_who_its_token_says_and_its_token_stays_home(
    channel: grpc.Channel,
) -> None:
    answer = unary(channel, "Unary")(
        value("x"), metadata=_md("echo", ("dapr-api-token", "caller-token")), timeout=10
    )
    md = json.loads(answer.value)["metadata"]
    assert md["dapr-caller-app-id"] == ["caller"]
    assert "dapr-api-token" not in md


def test_the_target_gets_its_app_token(channel: grpc.Channel) -> None:
    answer = unary(channel, "Unary")(
        value("x"), metadata=_md("secured", ("dapr-api-token", "caller-token")), timeout=10
    )
    assert json.loads(answer.value)["metadata"]["dapr-api-token"] == [APP_TOKEN]


def test_a_caller_id_cannot_be_claimed_in_metadata(channel: grpc.Channel) -> None:
    spoofed = _md("echo", ("dapr-caller-app-id", "someone-else"))
    md = json.loads(unary(channel, "Unary")(value("x"), metadata=spoofed, timeout=10).value)
    assert md["metadata"]["dapr-caller-app-id"] == ["tether-dev"]


def test_an_invalid_api_token_is_unauthenticated(channel: grpc.Channel) -> None:
    metadata = _md("echo", ("dapr-api-token", "not-a-token"))
    error = fails(unary(channel, "Unary"), value("x"), metadata=metadata, timeout=10)
    assert error.code() == _C.UNAUTHENTICATED


# --- deadlines and cancellation ----------------------------------------------------------------


def test_the_callers_deadline_cancels_the_apps_call(channel: grpc.Channel) -> None:
    error = fails(unary(channel, "Hang"), value("deadline"), metadata=_md("echo"), timeout=0.5)
    assert error.code() == _C.DEADLINE_EXCEEDED
    wait_until(lambda: "cancelled:deadline" in events(channel), what="the app's call to end")


def test_a_callers_cancel_cancels_the_apps_call(channel: grpc.Channel) -> None:
    future = unary(channel, "Hang").future(value("cancel"), metadata=_md("echo"), timeout=30)
    wait_until(lambda: "started:cancel" in events(channel), what="the app's call to start")
    assert future.cancel()
    wait_until(lambda: "cancelled:cancel" in events(channel), what="the app's call to end")


# --- resiliency --------------------------------------------------------------------------------


def test_a_timeout_policy_bounds_unary_calls_but_not_marked_streams(
    channel: grpc.Channel,
) -> None:
    error = fails(unary(channel, "Hang"), value("policy"), metadata=_md("slow"), timeout=10)
    assert error.code() == _C.DEADLINE_EXCEEDED
    wait_until(lambda: "cancelled:policy" in events(channel), what="the app's call to end")
    method = channel.unary_stream(
        f"/{SERVICE}/ServerStream",
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )
    stream = _md("slow", ("dapr-stream", "true"))
    assert [m.value for m in method(value("3:0.4"), metadata=stream, timeout=10)] == ["0", "1", "2"]


def test_unary_calls_are_retried_streams_are_not(channel: grpc.Channel) -> None:
    count = unary(channel, "Count")
    assert count(value("u:2"), metadata=_md("flaky"), timeout=10).value == "count=3"
    error = fails(count, value("always"), metadata=_md("flaky"), timeout=10)
    assert error.details() == "count=4"  # the first attempt and three retries
    client_stream = channel.stream_unary(
        f"/{SERVICE}/Count",
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )
    error = fails(client_stream, values("s", "more"), metadata=_md("flaky"), timeout=10)
    assert error.details() == "count=1"
    marked = _md("flaky", ("dapr-stream", "true"))
    assert fails(count, value("m"), metadata=marked, timeout=10).details() == "count=1"


def test_a_circuit_breaker_stops_calls_to_a_failing_method(channel: grpc.Channel) -> None:
    count = unary(channel, "Count")
    for n in (1, 2, 3):
        assert (
            fails(count, value("b"), metadata=_md("breaker"), timeout=10).details() == f"count={n}"
        )
    error = fails(count, value("b"), metadata=_md("breaker"), timeout=10)
    assert error.code() == _C.UNAVAILABLE and "circuit breaker" in (error.details() or "")
    # Breakers are per method: the app's other methods still answer.
    assert json.loads(unary(channel, "Unary")(value("x"), metadata=_md("breaker")).value)


# --- the port's own services -------------------------------------------------------------------


def test_dapr_api_and_workflow_rpcs_are_not_proxied(
    server: TetherProcess, channel: grpc.Channel
) -> None:
    with sdk(server) as client:
        assert client.get_metadata().application_id == "tether-dev"
    md = _md("echo")
    dapr = dapr_pb2_grpc.DaprStub(channel)
    assert dapr.GetMetadata(metadata_pb2.GetMetadataRequest(), metadata=md).id == "tether-dev"
    sidecar = pb_grpc.TaskHubSidecarServiceStub(channel)
    started = sidecar.StartInstance(
        pb.CreateInstanceRequest(instanceId="proxy-wf", name="never-runs"), metadata=md
    )
    assert started.instanceId == "proxy-wf"
    got = sidecar.GetInstance(pb.GetInstanceRequest(instanceId="proxy-wf"), metadata=md)
    assert got.exists


def test_proxied_calls_are_counted_by_target_and_status_never_by_method(
    server: TetherProcess, channel: grpc.Channel
) -> None:
    def scrape() -> Exposition:
        return parse(httpx.get(f"{server.http_url}/metrics", timeout=10).text)

    before = scrape()
    for _ in range(2):
        unary(channel, "Unary")(value("x"), metadata=_md("echo"), timeout=10)
    fails(unary(channel, "Fail"), value("widget"), metadata=_md("echo"), timeout=10)
    fails(unary(channel, "Unary"), value("x"), metadata=_md("no-such-app"), timeout=10)
    sidecar = pb_grpc.TaskHubSidecarServiceStub(channel)
    sidecar.StartInstance(pb.CreateInstanceRequest(instanceId="metrics-wf", name="never-runs"))
    after = scrape()

    def moved(name: str, **labels: str) -> float:
        return after.get(name, **labels) - before.get(name, **labels)

    calls = "tether_invocations_total"
    assert moved(calls, app_id="echo", kind="proxy", outcome="success") == 2
    assert moved(calls, app_id="echo", kind="proxy", outcome="app_error") == 1
    assert moved(calls, app_id="_unknown", kind="proxy", outcome="unavailable") == 1
    requests = "tether_api_requests_total"
    proxied = {"transport": "grpc", "api": "invoke", "route": "(proxied)"}
    assert moved(requests, **proxied, status="OK") == 2
    assert moved(requests, **proxied, status="NOT_FOUND") == 1
    assert moved(requests, **proxied, status="UNKNOWN") == 1
    service = pb.DESCRIPTOR.services_by_name["TaskHubSidecarService"].full_name
    workflow = {"transport": "grpc", "api": "workflows", "route": f"/{service}/StartInstance"}
    assert moved(requests, **workflow, status="OK") == 1
    assert not [s for s in after.series(requests) if SERVICE in s["route"]]
