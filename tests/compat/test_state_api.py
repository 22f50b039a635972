"""The state API through the official SDK (gRPC) and raw HTTP, against `tether dev` with SQLite,
PostgreSQL and Redis state stores defined in a resources folder."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from dapr.clients import DaprClient
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, StateItem, StateOptions

from tests.compat import _components
from tests.compat._components import component, write_components
from tests.fixtures.redis import host_port
from tests.fixtures.tether import TetherProcess, wait_until

STORES = ["sqlitestate", "pgstate", "redisstate", "statestore"]
QUERYABLE = ["sqlitestate", "pgstate", "statestore"]
APP_ID = f"state-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, pg_module_database_url: str, redis_url: str
) -> Iterator[TetherProcess]:
    root = tmp_path_factory.mktemp("state")
    write_components(
        root / "resources",
        "state.yaml",
        component("sqlitestate", "state.sqlite"),
        component("pgstate", "state.postgresql", {"connectionString": pg_module_database_url}),
        component("redisstate", "state.redis", {"redisHost": host_port(redis_url)}),
        component("namestate", "state.sqlite", {"keyPrefix": "name"}),
    )
    proc = TetherProcess(
        root / "data",
        extra_args=[
            "--resources",
            str(root / "resources"),
            "--app-id",
            APP_ID,
            "--max-request-mb",
            "1",
        ],
    )
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{APP_ID}||*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def dapr(server: TetherProcess) -> Iterator[DaprClient]:
    with _components.dapr_client(server) as client:
        yield client


@pytest.fixture(scope="module")
def http(server: TetherProcess) -> Iterator[httpx.Client]:
    with _components.http_client(server) as client:
        yield client


def new_key() -> str:
    return f"k-{uuid.uuid4().hex[:10]}"


def grpc_code(exc: pytest.ExceptionInfo[Any]) -> grpc.StatusCode:
    return exc.value.code()  # type: ignore[no-any-return]


def error_code(resp: httpx.Response) -> str:
    return str(resp.json()["errorCode"])


# --- the SDK (gRPC) --------------------------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
def test_save_get_delete_with_etags(dapr: DaprClient, store: str) -> None:
    key = new_key()
    dapr.save_state(store, key, "v1")
    got = dapr.get_state(store, key)
    assert got.data == b"v1" and got.etag
    stale = got.etag
    dapr.save_state(store, key, "v2", etag=stale)
    with pytest.raises(grpc.RpcError) as info:
        dapr.save_state(store, key, "v3", etag=stale)
    assert grpc_code(info) == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.RpcError) as info:
        dapr.save_state(store, key, "v3", etag="not-an-etag")
    assert grpc_code(info) == grpc.StatusCode.INVALID_ARGUMENT
    current = dapr.get_state(store, key)
    assert current.data == b"v2" and current.etag != stale
    first_write = StateOptions(concurrency=Concurrency.first_write)
    with pytest.raises(grpc.RpcError) as info:
        dapr.save_state(store, key, "v4", options=first_write)
    assert grpc_code(info) == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.RpcError) as info:
        dapr.delete_state(store, key, etag=stale)
    assert grpc_code(info) == grpc.StatusCode.ABORTED
    dapr.delete_state(store, key, etag=current.etag)
    gone = dapr.get_state(store, key)
    assert gone.data == b"" and gone.etag == ""


@pytest.mark.parametrize("store", STORES)
def test_bulk_save_get_and_delete(dapr: DaprClient, store: str) -> None:
    keys = [new_key() for _ in range(3)]
    dapr.save_bulk_state(store, [StateItem(k, f"value-{k}") for k in keys[:2]])
    items = dapr.get_bulk_state(store, keys).items
    assert [i.key for i in items] == keys
    assert [i.data for i in items] == [
        f"value-{keys[0]}".encode(),
        f"value-{keys[1]}".encode(),
        b"",
    ]
    assert items[0].etag and not items[2].etag


@pytest.mark.parametrize("store", STORES)
def test_transactions_are_all_or_nothing(dapr: DaprClient, store: str) -> None:
    a, b, c = new_key(), new_key(), new_key()
    dapr.save_state(store, b, "to-delete")
    dapr.execute_state_transaction(
        store,
        [
            TransactionalStateOperation(key=a, data="A"),
            TransactionalStateOperation(key=b, operation_type=TransactionOperationType.delete),
        ],
    )
    assert dapr.get_state(store, a).data == b"A"
    assert dapr.get_state(store, b).data == b""
    etag = dapr.get_state(store, a).etag
    with pytest.raises(grpc.RpcError) as info:
        dapr.execute_state_transaction(
            store,
            [
                TransactionalStateOperation(key=c, data="C"),
                TransactionalStateOperation(key=a, data="A2", etag=str(int(etag) + 1)),
            ],
        )
    assert grpc_code(info) == grpc.StatusCode.INTERNAL  # daprd's code for a failed transaction
    assert dapr.get_state(store, c).data == b""
    assert dapr.get_state(store, a).data == b"A"


@pytest.mark.parametrize("store", STORES)
def test_ttl_expires_items(dapr: DaprClient, store: str) -> None:
    key = new_key()
    dapr.save_state(store, key, "short", state_metadata={"ttlInSeconds": "1"})
    got = dapr.get_state(store, key)
    assert got.data == b"short"
    wait_until(lambda: dapr.get_state(store, key).data == b"", 6, 0.2, f"{key} to expire")


@pytest.mark.parametrize("store", QUERYABLE)
def test_query(dapr: DaprClient, store: str) -> None:
    tag = uuid.uuid4().hex[:8]
    people = {
        f"{tag}-{i}": {"tag": tag, "n": i, "city": "Oslo" if i % 2 else "Rome"} for i in range(5)
    }
    for key, value in people.items():
        dapr.save_state(store, key, json.dumps(value))
    query = {
        "filter": {"AND": [{"EQ": {"tag": tag}}, {"EQ": {"city": "Oslo"}}]},
        "sort": [{"key": "n", "order": "DESC"}],
    }
    with pytest.warns(UserWarning):
        resp = dapr.query_state(store, json.dumps(query))
    assert [r.key for r in resp.results] == [f"{tag}-3", f"{tag}-1"]
    assert json.loads(resp.results[0].value) == people[f"{tag}-3"]
    paged = {"filter": {"EQ": {"tag": tag}}, "page": {"limit": 2}}
    with pytest.warns(UserWarning):
        first = dapr.query_state(store, json.dumps(paged))
    assert len(first.results) == 2 and first.token


def test_query_on_a_store_without_query_support(dapr: DaprClient) -> None:
    with pytest.raises(grpc.RpcError) as info, pytest.warns(UserWarning):
        dapr.query_state("redisstate", json.dumps({"filter": {"EQ": {"a": 1}}}))
    assert grpc_code(info) == grpc.StatusCode.INTERNAL


def test_unknown_store_over_grpc(dapr: DaprClient) -> None:
    for call in (
        lambda: dapr.get_state("nope", "k"),
        lambda: dapr.save_state("nope", "k", "v"),
        lambda: dapr.delete_state("nope", "k"),
        lambda: dapr.get_bulk_state("nope", ["k"]),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert grpc_code(info) == grpc.StatusCode.INVALID_ARGUMENT


# --- HTTP and interop ------------------------------------------------------------------------


def test_grpc_and_http_values_interoperate_as_in_daprd(
    dapr: DaprClient, http: httpx.Client
) -> None:
    key = new_key()
    dapr.save_state("statestore", key, "plain text")
    resp = http.get(f"/v1.0/state/statestore/{key}")
    assert resp.status_code == 200 and resp.content == b"plain text"
    assert resp.headers["etag"] == dapr.get_state("statestore", key).etag
    other = new_key()
    saved = http.post("/v1.0/state/statestore", json=[{"key": other, "value": {"a": [1, 2]}}])
    assert saved.status_code == 204
    assert json.loads(dapr.get_state("statestore", other).data) == {"a": [1, 2]}
    text = new_key()
    http.post("/v1.0/state/statestore", json=[{"key": text, "value": "hi"}])
    assert dapr.get_state("statestore", text).data == b'"hi"'  # JSON text, as daprd stores it


@pytest.mark.parametrize("store", STORES)
def test_http_state_api(http: httpx.Client, store: str) -> None:
    key = new_key()
    base = f"/v1.0/state/{store}"
    assert http.post(base, json=[{"key": key, "value": {"n": 1}}]).status_code == 204
    got = http.get(f"{base}/{key}")
    assert got.status_code == 200 and got.json() == {"n": 1}
    etag = got.headers["etag"]
    stale = http.post(base, json=[{"key": key, "value": 2, "etag": str(int(etag) + 1)}])
    assert stale.status_code == 409 and error_code(stale) == "ERR_STATE_SAVE"
    bad = http.post(base, json=[{"key": key, "value": 2, "etag": "abc"}])
    assert bad.status_code == 400 and error_code(bad) == "ERR_STATE_SAVE"
    assert http.post(base, json=[{"key": key, "value": 2, "etag": etag}]).status_code == 204
    bulk = http.post(f"{base}/bulk", json={"keys": [key, "missing"]})
    assert bulk.status_code == 200
    assert bulk.json()[0]["data"] == 2 and bulk.json()[0]["etag"]
    assert bulk.json()[1] == {"key": "missing"}
    wrong = http.delete(f"{base}/{key}", headers={"If-Match": etag})
    assert wrong.status_code == 409 and error_code(wrong) == "ERR_STATE_DELETE"
    tx = {"operations": [{"operation": "upsert", "request": {"key": key, "value": "t"}}]}
    assert http.post(f"{base}/transaction", json=tx).status_code == 204
    assert http.get(f"{base}/{key}").json() == "t"
    current = http.get(f"{base}/{key}").headers["etag"]
    assert http.delete(f"{base}/{key}", headers={"If-Match": current}).status_code == 204
    assert http.get(f"{base}/{key}").status_code == 204


def test_http_ttl_and_query_versions(http: httpx.Client) -> None:
    key = new_key()
    http.post(
        "/v1.0/state/sqlitestate",
        json=[{"key": key, "value": {"q": key}, "metadata": {"ttlInSeconds": "60"}}],
    )
    got = http.get(f"/v1.0/state/sqlitestate/{key}")
    assert got.headers["metadata.ttlExpireTime"].endswith("Z")
    for version in ("v1.0-alpha1", "v1.0-beta1"):
        resp = http.post(f"/{version}/state/sqlitestate/query", json={"filter": {"EQ": {"q": key}}})
        assert resp.status_code == 200
        assert [r["key"] for r in resp.json()["results"]] == [key]
        assert resp.json()["results"][0]["data"] == {"q": key}
    none = http.post("/v1.0-alpha1/state/sqlitestate/query", json={"filter": {"EQ": {"q": "-"}}})
    assert none.status_code == 204


def test_key_prefix_name_and_original_keys(http: httpx.Client, dapr: DaprClient) -> None:
    key = new_key()
    http.post("/v1.0/state/namestate", json=[{"key": key, "value": 1}])
    assert dapr.get_state("namestate", key).data == b"1"
    assert http.post("/v1.0/state/namestate/bulk", json={"keys": [key]}).json()[0]["key"] == key


def test_bad_input_on_every_endpoint(http: httpx.Client) -> None:
    unknown = [
        http.post("/v1.0/state/nope", json=[{"key": "k", "value": 1}]),
        http.get("/v1.0/state/nope/k"),
        http.delete("/v1.0/state/nope/k"),
        http.post("/v1.0/state/nope/bulk", json={"keys": ["k"]}),
        http.post("/v1.0/state/nope/transaction", json={"operations": []}),
        http.post("/v1.0-alpha1/state/nope/query", json={}),
    ]
    for resp in unknown:
        assert resp.status_code == 400, resp.request.url
        assert error_code(resp) == "ERR_STATE_STORE_NOT_FOUND"
    for path in (
        "/v1.0/state/statestore",
        "/v1.0/state/statestore/bulk",
        "/v1.0/state/statestore/transaction",
    ):
        resp = http.post(path, content=b"{not json")
        assert resp.status_code == 400 and error_code(resp) == "ERR_MALFORMED_REQUEST", path
    missing_key = http.post("/v1.0/state/statestore", json=[{"value": 1}])
    assert missing_key.status_code == 400 and error_code(missing_key) == "ERR_MALFORMED_REQUEST"
    separator = http.post("/v1.0/state/statestore", json=[{"key": "a||b", "value": 1}])
    assert separator.status_code == 400 and error_code(separator) == "ERR_MALFORMED_REQUEST"
    bad_ttl = http.post(
        "/v1.0/state/statestore", json=[{"key": "k", "value": 1, "metadata": {"ttlInSeconds": "x"}}]
    )
    assert bad_ttl.status_code == 400
    bad_op = http.post(
        "/v1.0/state/statestore/transaction",
        json={"operations": [{"operation": "merge", "request": {"key": "k"}}]},
    )
    assert bad_op.status_code == 400 and error_code(bad_op) == "ERR_NOT_SUPPORTED_STATE_OPERATION"
    bad_query = http.post("/v1.0-alpha1/state/statestore/query", json={"filter": {"XX": {}}})
    assert bad_query.status_code == 400 and error_code(bad_query) == "ERR_STATE_QUERY"
    unsupported = http.post("/v1.0-alpha1/state/redisstate/query", json={})
    assert unsupported.status_code == 500
    assert error_code(unsupported) == "ERR_STATE_STORE_NOT_SUPPORTED"
    huge = http.post("/v1.0/state/statestore", content=b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert huge.status_code == 413


def test_metadata_lists_the_state_stores(http: httpx.Client, dapr: DaprClient) -> None:
    doc = http.get("/v1.0/metadata").json()
    by_name = {c["name"]: c for c in doc["components"]}
    assert by_name["pgstate"]["type"] == "state.postgresql"
    assert "TRANSACTIONAL" in by_name["redisstate"]["capabilities"]
    assert "QUERY_API" in by_name["sqlitestate"]["capabilities"]
    sdk = {c.name: c for c in dapr.get_metadata().registered_components}
    assert sdk["statestore"].type == "state.sqlite"
    assert "ETAG" in sdk["pgstate"].capabilities


def test_tether_data_dir_holds_the_sqlite_stores(server: TetherProcess) -> None:
    assert (Path(server.data_dir) / "state" / "sqlitestate.db").exists()
    assert (Path(server.data_dir) / "state" / "statestore.db").exists()
