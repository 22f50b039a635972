"""Every HTTP route, fed malformed input: each answer is a clear error (a 4xx, or a 5xx that
names its cause with an error code), never an unhandled exception, and the server stays up.

The routes come from the server's own route table, so a route added later is swept too.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from dapr.proto.runtime.v1 import dapr_pb2
from google.protobuf import message_factory
from google.protobuf.message import Message

from tests.compat._components import component, write_components
from tests.fixtures.redis import host_port
from tests.fixtures.tether import TetherProcess
from tether.runtime.http.routes import all_routes
from tether.workflow.protos import pb

# Values for path parameters: names that exist on the server, names that do not, and junk.
PARAMS = {
    "store": ["statestore", "secrets", "config", "locks", "nope"],
    "pubsub": ["pubsub", "nope"],
    "component": ["dapr", "nope"],
    "name": ["cache", "no%20such"],
    "topic": ["t"],
    "id": ["i", "%00"],
    "app_id": ["nope"],
    "method": ["m"],
    "event": ["e"],
    "key": ["k", "a||b"],
}
BODIES: list[bytes | None] = [
    None,
    b"{",
    b"[]",
    b"{}",
    b'"text"',
    b"null",
    b"42",
    b"\xff\xfe\x00",
    b'{"key": 5, "value": {"x": 1}, "etag": 7, "keys": "k", "operations": {}}',
    b'[{"key": 5}, {"value": 1}, "x", null]',
    b'[{"key": "k", "value": 1, "options": "first-write", "ttlInSeconds": "x"}]',
    b'{"operations": [{"operation": "explode", "request": 3}]}',
    b'{"filter": {"NOPE": 1}, "sort": "x", "page": {"limit": -1}}',
    b'{"data": {"a": 1}, "operation": 5, "metadata": []}',
    b'{"lockOwner": 5, "resourceId": [], "expiryInSeconds": "soon"}',
    b'{"schedule": 5, "dueTime": [], "repeats": "x"}',
    b'{"appID": 5, "appPort": "x", "appProtocol": "smtp"}',
    b'{"instanceIDs": 5, "olderThan": "yesterday", "status": ["nope"]}',
]
QUERIES = ["", "?metadata.ttlInSeconds=abc&consistency=bogus&metadata.rawPayload=maybe"]


class _Anything:
    """Stands in for the runtime while the route table is built: only templates are read."""

    def __getattr__(self, name: str) -> _Anything:
        return self

    def __call__(self, *args: object, **kwargs: object) -> _Anything:
        return self


def _requests() -> Iterator[tuple[str, str]]:
    for route in all_routes(_Anything()):  # type: ignore[arg-type]
        template = getattr(route, "path", None)
        if template is None:
            continue
        names = re.findall(r"{(\w+)(?::\w+)?}", template)
        for values in itertools.product(*(PARAMS.get(n, ["x"]) for n in names)):
            path = template
            for name, value in zip(names, values, strict=True):
                path = re.sub(r"{" + name + r"(?::\w+)?}", value, path, count=1)
            for method in sorted(route.methods or ()):  # type: ignore[attr-defined]
                if method not in ("HEAD", "CONNECT", "TRACE", "OPTIONS"):
                    yield method, path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[TetherProcess]:
    root = tmp_path_factory.mktemp("sweep")
    redis_host = host_port(redis_url)
    write_components(
        root / "resources",
        "components.yaml",
        component("secrets", "secretstores.local.env", {"prefix": "TETHER_SWEEP_"}),
        component("config", "configuration.redis", {"redisHost": redis_host}),
        component("locks", "lock.redis", {"redisHost": redis_host}),
        component("cache", "bindings.redis", {"redisHost": redis_host}),
    )
    proc = TetherProcess(root / "data", extra_args=["--resources", str(root / "resources")])
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


def test_every_route_answers_bad_input_with_a_clear_error(server: TetherProcess) -> None:
    failures: list[str] = []
    count = 0
    with httpx.Client(base_url=server.http_url, timeout=10) as client:
        for (method, path), body, query in itertools.product(_requests(), BODIES, QUERIES):
            if method in ("GET", "DELETE") and body not in (None, b"{"):
                continue  # bodies mean nothing there; keep the sweep short
            count += 1
            r = client.request(method, path + query, content=body)
            if r.status_code < 400:
                continue
            try:
                doc = r.json()
            except ValueError:
                doc = {}
            code = doc.get("errorCode", "")
            if doc.get("ok") is False and doc.get("message"):
                code = "unsubscribe"  # daprd's answer to unsubscribing an unknown id
            if r.status_code >= 500 and (not code or code == "ERR_INTERNAL"):
                failures.append(f"{method} {path}{query} {body!r}: {r.status_code} {r.text[:200]}")
            elif not code and r.status_code not in (404, 405):
                failures.append(f"{method} {path}{query} {body!r}: {r.status_code} no error code")
        assert client.get("/v1.0/healthz").status_code == 204
    assert count > 1000
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert not failures, f"{len(failures)} of {count} requests:\n" + "\n".join(failures[:40])


# --- gRPC --------------------------------------------------------------------------------------


def _unary_methods() -> Iterator[tuple[str, type[Message]]]:
    """(method path, request class) of every unary RPC: the Dapr API and the workflow protocol."""
    services = (
        dapr_pb2.DESCRIPTOR.services_by_name["Dapr"],
        pb.DESCRIPTOR.services_by_name["TaskHubSidecarService"],
    )
    for service in services:
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            path = f"/{service.full_name}/{method.name}"
            yield path, message_factory.GetMessageClass(method.input_type)


def _requests_for(cls: type[Message]) -> Iterator[Message]:
    yield cls()  # every field empty
    junk = cls()
    for field in cls.DESCRIPTOR.fields:
        if field.type == field.TYPE_STRING and not field.is_repeated:
            setattr(junk, field.name, "nope\x00")
    yield junk


def test_every_unary_rpc_answers_empty_and_junk_requests_with_a_clear_status(
    server: TetherProcess,
) -> None:
    failures: list[str] = []
    count = 0
    with grpc.insecure_channel(server.grpc_address) as channel:
        for name, cls in _unary_methods():
            call = channel.unary_unary(
                name,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=lambda b: b,
            )
            bodies: list[Any] = [*_requests_for(cls)]
            for request in bodies:
                count += 1
                try:
                    call(request, timeout=10)
                except grpc.RpcError as exc:
                    code, details = exc.code(), exc.details() or ""
                    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) and (
                        not details or "Exception" in details or "Unexpected" in details
                    ):
                        failures.append(f"{name}({request}): {code} {details[:200]}")
            # Bytes that are not the message at all.
            raw = channel.unary_unary(name)
            try:
                raw(b"\xff\xff\xff\xff", timeout=10)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNKNOWN:
                    failures.append(f"{name}(garbage): {exc.code()} {exc.details()}")
    assert count > 100
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert not failures, f"{len(failures)} of {count} calls:\n" + "\n".join(failures[:40])


def test_garbage_and_unimplemented_rpcs_get_named_errors(server: TetherProcess) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        get_state = channel.unary_unary("/dapr.proto.runtime.v1.Dapr/GetState")
        with pytest.raises(grpc.RpcError) as info:
            get_state(b"\xff\xff\xff\xff", timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "dapr.proto.runtime.v1.GetStateRequest" in (info.value.details() or "")
        actor = channel.unary_unary("/dapr.proto.runtime.v1.Dapr/GetActorState")
        with pytest.raises(grpc.RpcError) as info:
            actor(b"", timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "GetActorState is not implemented" in (info.value.details() or "")
        # A bidirectional stream whose first message does not parse.
        stream = channel.stream_stream("/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1")
        with pytest.raises(grpc.RpcError) as info:
            list(stream(iter([b"\xff\xff\xff\xff"]), timeout=10))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
