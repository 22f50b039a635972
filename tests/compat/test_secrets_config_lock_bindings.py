"""Secrets, configuration, distributed lock and output bindings through the official SDK and
raw HTTP, against `tether dev` with real Redis and PostgreSQL behind the components."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import redis
from dapr.clients import DaprClient
from dapr.clients.grpc._response import UnlockResponseStatus

from tests.compat import _components
from tests.compat._components import component, write_components
from tests.fixtures.redis import host_port
from tests.fixtures.tether import TetherProcess, wait_until

ENV_PREFIX = f"TTS{uuid.uuid4().hex[:6].upper()}_"
CONFIG_PREFIX = f"cfg-{uuid.uuid4().hex[:8]}-"


class _Target(http.server.BaseHTTPRequestHandler):
    """The HTTP binding's target: records requests, answers by path."""

    seen: list[tuple[str, str, bytes, dict[str, str]]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        _Target.seen.append((self.command, self.path, body, dict(self.headers)))
        status = 404 if self.path.endswith("/missing") else 200
        payload = json.dumps({"path": self.path, "method": self.command}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Target", "yes")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    pg_module_database_url: str,
    redis_url: str,
    target: str,
) -> Iterator[TetherProcess]:
    root = tmp_path_factory.mktemp("blocks")
    secrets_file = root / "secrets.json"
    secrets_file.write_text(json.dumps({"db": {"password": "s3cret", "user": "app"}, "plain": "p"}))
    redis_host = host_port(redis_url)
    pg = pg_module_database_url
    write_components(
        root / "resources",
        "components.yaml",
        component("envsecrets", "secretstores.local.env", {"prefix": ENV_PREFIX}),
        component("filesecrets", "secretstores.local.file", {"secretsFile": str(secrets_file)}),
        component(
            "multisecrets",
            "secretstores.local.file",
            {"secretsFile": str(secrets_file), "multiValued": "true"},
        ),
        # Connects only if the secret reference is resolved: the host is not written anywhere.
        component(
            "securedstate",
            "state.redis",
            {"redisHost": {"secretKeyRef": {"name": "REDIS_HOST", "key": "REDIS_HOST"}}},
            secret_store="envsecrets",
        ),
        component("redisconfig", "configuration.redis", {"redisHost": redis_host}),
        component(
            "pgconfig", "configuration.postgresql", {"connectionString": pg, "table": "appconfig"}
        ),
        component("redislock", "lock.redis", {"redisHost": redis_host}),
        component("pglock", "lock.postgresql", {"connectionString": pg}),
        component("web", "bindings.http", {"url": target}),
        component("sql", "bindings.postgresql", {"connectionString": pg}),
        component("cache", "bindings.redis", {"redisHost": redis_host}),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(f"{ENV_PREFIX}REDIS_HOST", redis_host)
        mp.setenv(f"{ENV_PREFIX}API_KEY", "key-1")
        proc = TetherProcess(root / "data", extra_args=["--resources", str(root / "resources")])
        proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{CONFIG_PREFIX}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def dapr(server: TetherProcess) -> Iterator[DaprClient]:
    with _components.dapr_client(server) as client:
        yield client


@pytest.fixture(scope="module")
def http_client(server: TetherProcess) -> Iterator[httpx.Client]:
    with _components.http_client(server) as client:
        yield client


@pytest.fixture
def rds(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def pg_execute(url: str, sql: str, *args: Any) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    asyncio.run(run())


# --- secrets ---------------------------------------------------------------------------------


def test_env_and_file_secrets(dapr: DaprClient, http_client: httpx.Client) -> None:
    assert dapr.get_secret("envsecrets", "API_KEY").secret == {"API_KEY": "key-1"}
    assert dapr.get_secret("filesecrets", "db:password").secret == {"db:password": "s3cret"}
    assert dapr.get_secret("multisecrets", "db").secret == {"password": "s3cret", "user": "app"}
    bulk = dapr.get_bulk_secret("filesecrets").secrets
    assert bulk["plain"] == {"plain": "p"} and bulk["db:user"] == {"db:user": "app"}
    env_bulk = http_client.get("/v1.0/secrets/envsecrets/bulk").json()
    assert env_bulk["API_KEY"] == {"API_KEY": "key-1"}
    assert not any(k.startswith(("DAPR_", "TETHER_")) for k in env_bulk)
    got = http_client.get("/v1.0/secrets/filesecrets/db:password", params={"metadata.x": "1"})
    assert got.status_code == 200 and got.json() == {"db:password": "s3cret"}


def test_secret_errors(dapr: DaprClient, http_client: httpx.Client) -> None:
    missing = http_client.get("/v1.0/secrets/filesecrets/nope")
    assert missing.status_code == 500 and missing.json()["errorCode"] == "ERR_SECRET_GET"
    unknown = http_client.get("/v1.0/secrets/nostore/x")
    assert unknown.status_code == 401
    assert unknown.json()["errorCode"] == "ERR_SECRET_STORE_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as info:
        dapr.get_secret("nostore", "x")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        dapr.get_secret("envsecrets", "NOT_SET_ANYWHERE")
    assert info.value.code() == grpc.StatusCode.INTERNAL


def test_secret_key_ref_is_used_to_connect(dapr: DaprClient) -> None:
    dapr.save_state("securedstate", "k", "through a secret")
    assert dapr.get_state("securedstate", "k").data == b"through a secret"


# --- configuration ---------------------------------------------------------------------------


def test_redis_configuration_get_and_subscribe(
    dapr: DaprClient, http_client: httpx.Client, rds: redis.Redis
) -> None:
    key = CONFIG_PREFIX + "orders"
    rds.set(key, "100||1")
    items = dapr.get_configuration("redisconfig", [key, CONFIG_PREFIX + "absent"]).items
    assert set(items) == {key}
    assert items[key].value == "100" and items[key].version == "1"
    resp = http_client.get("/v1.0/configuration/redisconfig", params={"key": key})
    assert resp.json() == {key: {"value": "100", "version": "1", "metadata": {}}}
    updates: list[tuple[str, str]] = []

    def handler(sub_id: str, response: Any) -> None:
        for k, item in response.items.items():
            updates.append((k, item.value))

    sub_id = dapr.subscribe_configuration("redisconfig", [key], handler)
    assert sub_id
    rds.set(key, "200||2")
    wait_until(lambda: (key, "200") in updates, 10, 0.05, "the configuration update")
    rds.delete(key)
    wait_until(lambda: (key, "") in updates, 10, 0.05, "the deletion")
    assert dapr.unsubscribe_configuration("redisconfig", sub_id) is True
    assert dapr.unsubscribe_configuration("redisconfig", sub_id) is False


def test_postgres_configuration_get_and_subscribe(
    dapr: DaprClient, pg_module_database_url: str
) -> None:
    url = pg_module_database_url
    pg_execute(
        url, "INSERT INTO appconfig (key, value, version) VALUES ($1, $2, $3)", "color", "red", "1"
    )
    pg_execute(
        url, "INSERT INTO appconfig (key, value, version) VALUES ($1, $2, $3)", "color", "blue", "2"
    )
    items = dapr.get_configuration("pgconfig", ["color"]).items
    assert items["color"].value == "blue" and items["color"].version == "2"
    updates: list[str] = []
    sub_id = dapr.subscribe_configuration(
        "pgconfig", ["color"], lambda _, r: updates.extend(i.value for i in r.items.values())
    )
    assert sub_id
    pg_execute(
        url,
        "INSERT INTO appconfig (key, value, version) VALUES ($1, $2, $3)",
        "color",
        "green",
        "3",
    )
    wait_until(lambda: "green" in updates, 10, 0.05, "the PostgreSQL configuration update")
    pg_execute(
        url, "INSERT INTO appconfig (key, value, version) VALUES ($1, $2, $3)", "size", "XL", "1"
    )
    time.sleep(0.3)
    assert "XL" not in updates  # not a subscribed key
    dapr.unsubscribe_configuration("pgconfig", sub_id)


def test_configuration_errors(http_client: httpx.Client) -> None:
    resp = http_client.get("/v1.0/configuration/nostore", params={"key": "a"})
    assert resp.status_code == 400
    assert resp.json()["errorCode"] == "ERR_CONFIGURATION_STORE_NOT_FOUND"
    sub = http_client.get("/v1.0/configuration/redisconfig/subscribe", params={"key": "a"})
    assert sub.status_code == 500  # no app channel to deliver to, as in daprd
    empty = http_client.get("/v1.0/configuration/redisconfig", params={"key": "absent-key"})
    assert empty.status_code == 204


# --- lock ------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["redislock", "pglock"])
def test_lock_semantics(dapr: DaprClient, store: str) -> None:
    resource = f"res-{uuid.uuid4().hex[:8]}"
    with pytest.warns(UserWarning):
        assert dapr.try_lock(store, resource, "owner-a", 30).success
        assert not dapr.try_lock(store, resource, "owner-b", 30).success
        assert not dapr.try_lock(store, resource, "owner-a", 30).success  # not re-entrant
        assert dapr.unlock(store, resource, "owner-b").status == (
            UnlockResponseStatus.lock_belongs_to_others
        )
        assert dapr.unlock(store, resource, "owner-a").status == UnlockResponseStatus.success
        assert dapr.unlock(store, resource, "owner-a").status == (
            UnlockResponseStatus.lock_does_not_exist
        )


@pytest.mark.parametrize("store", ["redislock", "pglock"])
def test_lock_expiry(http_client: httpx.Client, store: str) -> None:
    resource = f"res-{uuid.uuid4().hex[:8]}"
    body = {"resourceId": resource, "lockOwner": "a", "expiryInSeconds": 1}
    assert http_client.post(f"/v1.0-alpha1/lock/{store}", json=body).json() == {"success": True}
    taken = {"resourceId": resource, "lockOwner": "b", "expiryInSeconds": 10}
    assert http_client.post(f"/v1.0-alpha1/lock/{store}", json=taken).json() == {"success": False}
    wait_until(
        lambda: http_client.post(f"/v1.0-alpha1/lock/{store}", json=taken).json()["success"],
        5,
        0.1,
        "the expired lock to be free",
    )
    gone = http_client.post(
        f"/v1.0-alpha1/unlock/{store}", json={"resourceId": resource, "lockOwner": "a"}
    )
    assert gone.json() == {"status": 2}  # held by b now


def test_lock_bad_input(http_client: httpx.Client) -> None:
    cases = [
        (
            "nolock",
            {"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 5},
            400,
            "ERR_LOCK_STORE_NOT_FOUND",
        ),
        ("redislock", {"lockOwner": "o", "expiryInSeconds": 5}, 400, "ERR_MALFORMED_REQUEST"),
        ("redislock", {"resourceId": "r", "expiryInSeconds": 5}, 400, "ERR_MALFORMED_REQUEST"),
        ("redislock", {"resourceId": "r", "lockOwner": "o"}, 400, "ERR_MALFORMED_REQUEST"),
    ]
    for store, body, status, code in cases:
        resp = http_client.post(f"/v1.0-alpha1/lock/{store}", json=body)
        assert (resp.status_code, resp.json()["errorCode"]) == (status, code), body
    broken = http_client.post("/v1.0-alpha1/lock/redislock", content=b"{")
    assert broken.status_code == 400


# --- bindings --------------------------------------------------------------------------------


def test_http_binding(dapr: DaprClient, http_client: httpx.Client) -> None:
    _Target.seen.clear()
    resp = dapr.invoke_binding("web", "post", b'{"a":1}', {"path": "/orders", "X-Tag": "t1"})
    assert json.loads(resp.data) == {"path": "/orders", "method": "POST"}
    assert resp.binding_metadata["statusCode"] == "200"
    method, path, body, headers = _Target.seen[-1]
    assert (method, path, body) == ("POST", "/orders", b'{"a":1}')
    assert headers["X-Tag"] == "t1"
    raw = http_client.post(
        "/v1.0/bindings/web", json={"operation": "get", "metadata": {"path": "items"}}
    )
    assert raw.status_code == 200 and raw.json()["path"] == "/items"
    assert raw.headers["metadata.statusCode"] == "200"
    assert raw.headers["metadata.X-Target"] == "yes"
    failed = http_client.post(
        "/v1.0/bindings/web", json={"operation": "get", "metadata": {"path": "missing"}}
    )
    assert failed.status_code == 500
    assert failed.json()["errorCode"] == "ERR_INVOKE_OUTPUT_BINDING"
    assert failed.headers["metadata.statusCode"] == "404"


def test_postgres_binding(dapr: DaprClient) -> None:
    table = f"orders_{uuid.uuid4().hex[:8]}"
    dapr.invoke_binding(
        "sql",
        "exec",
        b"",
        {
            "sql": f"CREATE TABLE {table} "
            "(id INT PRIMARY KEY, item TEXT, price NUMERIC, at TIMESTAMPTZ)"
        },
    )
    insert = f"INSERT INTO {table} (id, item, price, at) VALUES ($1, $2, $3, $4)"
    for params in ([1, "apple", 1.5, "2024-01-02T03:04:05Z"], ["2", "pear", "2", None]):
        resp = dapr.invoke_binding(
            "sql", "exec", b"", {"sql": insert, "params": json.dumps(params)}
        )
        assert resp.binding_metadata["rows-affected"] == "1"
    rows = dapr.invoke_binding(
        "sql", "query", b"", {"sql": f"SELECT id, item, price, at FROM {table} ORDER BY id"}
    )
    assert json.loads(rows.data) == [
        [1, "apple", 1.5, "2024-01-02T03:04:05Z"],
        [2, "pear", 2, None],
    ]
    assert rows.binding_metadata["operation"] == "query"
    with pytest.raises(grpc.RpcError) as info:
        dapr.invoke_binding("sql", "query", b"", {"sql": "SELECT * FROM no_such_table"})
    assert info.value.code() == grpc.StatusCode.INTERNAL


def test_redis_binding(dapr: DaprClient, http_client: httpx.Client, rds: redis.Redis) -> None:
    key = CONFIG_PREFIX + "binding"
    dapr.invoke_binding("cache", "create", b"cached", {"key": key})
    assert rds.get(key) == b"cached"
    assert dapr.invoke_binding("cache", "get", b"", {"key": key}).data == b"cached"
    created = http_client.post(
        "/v1.0/bindings/cache",
        json={"operation": "create", "data": {"x": 1}, "metadata": {"key": key}},
    )
    assert created.status_code == 204 and rds.get(key) == b'{"x":1}'
    dapr.invoke_binding("cache", "delete", b"", {"key": key})
    assert rds.get(key) is None


def test_binding_errors(http_client: httpx.Client) -> None:
    unknown = http_client.post("/v1.0/bindings/nobinding", json={"operation": "get"})
    assert unknown.status_code == 500
    assert unknown.json()["errorCode"] == "ERR_INVOKE_OUTPUT_BINDING"
    bad_op = http_client.post("/v1.0/bindings/cache", json={"operation": "explode"})
    assert bad_op.status_code == 500
    malformed = http_client.post("/v1.0/bindings/cache", content=b"[")
    assert malformed.status_code == 400


def test_metadata_lists_every_component(dapr: DaprClient) -> None:
    components = {c.name: c for c in dapr.get_metadata().registered_components}
    assert components["web"].type == "bindings.http"
    assert list(components["web"].capabilities) == ["OUTPUT_BINDING"]
    assert "MULTIPLE_KEY_VALUES_PER_SECRET" in components["multisecrets"].capabilities
    for name in ("redisconfig", "pgconfig", "redislock", "pglock", "envsecrets"):
        assert name in components
