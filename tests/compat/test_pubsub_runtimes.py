"""Pub/sub across runtime processes: competing consumers of one App ID, a runtime killed
mid-delivery, an app whose health checks fail. Each test starts its own servers and apps."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.compat.pubsub_harness import (
    HTTP,
    SQLITE,
    WAIT,
    SubscriberApp,
    forget,
    publish_http,
    redis_component,
    server_for,
    start_all,
    subscriptions,
    topic,
    wait_subscribed,
)
from tests.fixtures.redis import host_port
from tests.fixtures.tether import wait_until

pytestmark = pytest.mark.timeout(120)


def test_competing_consumers_share_one_app_id(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "redis.yaml").write_text(redis_component(request, "shared"))
    name = topic("compete")
    config = {"subscriptions": [{"pubsub": "shared", "topic": name, "mode": "success"}]}
    apps = [SubscriberApp(tmp_path / f"app{i}", config) for i in range(2)]
    servers = [server_for(tmp_path / f"s{i}", resources, apps[i], "worker") for i in range(2)]
    try:
        start_all(*apps, *servers)
        for server in servers:
            wait_subscribed(server, "shared", name)
        for i in range(30):
            url = f"{servers[i % 2].http_url}/v1.0/publish/shared/{name}"
            assert HTTP.post(url, json=i).status_code == 204
        path = f"/events/shared/{name}"

        def everything() -> list[int] | None:
            got = [r["event"]["data"] for app in apps for r in app.received(path)]
            return got if len(set(got)) == 30 else None

        got = wait_until(everything, WAIT, what="all 30 messages")
        assert sorted(got) == list(range(30))  # each delivered once: no runtime got a copy
    finally:
        for server in servers:
            server.stop()
        for app in apps:
            app.stop()
        forget("redis", host_port(request.getfixturevalue("redis_url")), [name], "worker")


def test_killed_runtime_loses_nothing(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """SIGKILL mid-delivery, restart: every acknowledged publish is delivered at least once, from
    the SQLite broker (its file in the data directory) and from Redis Streams alike."""
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "redis.yaml").write_text(redis_component(request, "durable-redis"))
    sqlite = SQLITE.replace("name: pubsub", "name: durable-sqlite").replace("3s", "2s")
    (resources / "sqlite.yaml").write_text(sqlite)
    name = topic("crash")
    pubsubs = ("durable-sqlite", "durable-redis")
    config = {"subscriptions": [{"pubsub": p, "topic": name, "mode": "slow:1.5"} for p in pubsubs]}
    app = SubscriberApp(tmp_path / "app", config)
    server = server_for(tmp_path / "server", resources, app, "crashy")
    try:
        start_all(app, server)
        for pubsub in pubsubs:
            wait_subscribed(server, pubsub, name)
        for i in range(30):
            pubsub = pubsubs[i % 2]
            url = f"{server.http_url}/v1.0/publish/{pubsub}/{name}"
            assert HTTP.post(url, json={"n": i, "via": pubsub}).status_code == 204
        app.wait_for(f"/events/durable-sqlite/{name}", 1)
        app.wait_for(f"/events/durable-redis/{name}", 1)
        server.kill()  # mid-delivery: most messages are stored but not yet delivered
        server.start(timeout=60)

        def everything() -> set[int] | None:
            got = {r["event"]["data"]["n"] for r in app.received()}
            return got if len(got) == 30 else None

        assert wait_until(everything, 40, what="every message after the restart") == set(range(30))
        # Deliveries in flight at the kill were never acknowledged, so they come again (once
        # their lease runs out, which may be after the last new message arrived).
        wait_until(lambda: len(app.received()) > 30, 20, what="in-flight messages redelivered")
    finally:
        server.stop()
        app.stop()
        forget("redis", host_port(request.getfixturevalue("redis_url")), [name], "crashy")


def test_deliveries_wait_while_the_app_is_unhealthy(tmp_path: Path) -> None:
    """An app failing its health checks gets nothing; once it passes again, what was published
    meanwhile is delivered."""
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "sqlite.yaml").write_text(SQLITE)
    name = topic("health")
    app = SubscriberApp(tmp_path / "app", {"subscriptions": [{"pubsub": "pubsub", "topic": name}]})
    checks = ["--enable-app-health-check", "--app-health-probe-interval", "0.1",
              "--app-health-threshold", "1"]  # fmt: skip
    server = server_for(tmp_path / "server", resources, app, "fragile", *checks)
    path = f"/events/pubsub/{name}"
    try:
        start_all(app, server)
        wait_subscribed(server, "pubsub", name)
        HTTP.post(f"http://127.0.0.1:{app.port}/health/fail")
        wait_until(lambda: not subscriptions(server), WAIT, what="deliveries to pause")
        for i in range(3):
            assert publish_http(server, "pubsub", name, json.dumps(i).encode()).status_code == 204
        time.sleep(0.5)  # several probe intervals: nothing may arrive while the app is down
        assert app.received(path) == []
        HTTP.post(f"http://127.0.0.1:{app.port}/health/ok")
        got = app.wait_for(path, 3)
        assert sorted(r["event"]["data"] for r in got) == [0, 1, 2]
    finally:
        server.stop()
        app.stop()
