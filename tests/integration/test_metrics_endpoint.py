"""`GET /metrics` of a real `tether dev`: the official SDK (gRPC) and httpx (HTTP) call the state,
pub/sub, invocation and jobs APIs, a FastAPI subscriber app receives, and the counters move by
exactly what was done. Every check compares two scrapes, so the harness's own polling (health,
metadata) cannot disturb it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from dapr.clients.grpc._jobs import Job

from tests.compat.pubsub_harness import (
    APP_ID,
    SQLITE,
    SubscriberApp,
    server_for,
    start_all,
    topic,
    wait_subscribed,
)
from tests.fixtures.apps import sdk
from tests.fixtures.prometheus import Exposition, parse
from tests.fixtures.tether import TetherProcess, wait_until

pytestmark = pytest.mark.timeout(180)

DELIVERED = topic("metrics-ok")
DROPPED = topic("metrics-drop")
HTTP = httpx.Client(timeout=10)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TetherProcess, SubscriberApp]]:
    work = tmp_path_factory.mktemp("metrics")
    resources = work / "resources"
    resources.mkdir()
    (resources / "pubsub.yaml").write_text(SQLITE)
    app = SubscriberApp(
        work / "app",
        {
            "subscriptions": [
                {"pubsub": "pubsub", "topic": DELIVERED, "route": "/ok", "mode": "success"},
                {"pubsub": "pubsub", "topic": DROPPED, "route": "/drop", "mode": "drop"},
            ]
        },
    )
    server = server_for(work / "tether", resources, app)
    try:
        start_all(server, app)
        wait_subscribed(server, "pubsub", DELIVERED)
        wait_subscribed(server, "pubsub", DROPPED)
        yield server, app
    finally:
        app.stop()
        assert server.stop() == 0, server.log()


def scrape(server: TetherProcess) -> Exposition:
    response = HTTP.get(f"{server.http_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def moved(before: Exposition, after: Exposition, name: str, **labels: str) -> float:
    return after.get(name, **labels) - before.get(name, **labels)


def api(transport: str, api: str, route: str, status: str) -> dict[str, str]:
    return {"transport": transport, "api": api, "route": route, "status": status}


def test_state_calls_are_counted_by_route_and_status(
    world: tuple[TetherProcess, SubscriberApp],
) -> None:
    server, _ = world
    base = f"{server.http_url}/v1.0/state/statestore"
    before = scrape(server)
    assert HTTP.post(base, json=[{"key": "metric-key", "value": 1}]).status_code == 204
    for _ in range(2):
        assert HTTP.get(f"{base}/metric-key").status_code == 200
    assert HTTP.post(base, content=b"{not json").status_code == 400
    assert HTTP.get(f"{server.http_url}/v1.0/state/no-such-store/k").status_code == 400
    with sdk(server) as client:
        client.save_state("statestore", "grpc-key", b"v")
        for _ in range(3):
            assert client.get_state("statestore", "grpc-key").data == b"v"
        with pytest.raises(grpc.RpcError) as failed:
            client.get_state("no-such-store", "k")
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(server)

    total = "tether_api_requests_total"
    save, get = "POST /v1.0/state/{store}", "GET /v1.0/state/{store}/{key}"
    assert moved(before, after, total, **api("http", "state", save, "204")) == 1
    assert moved(before, after, total, **api("http", "state", get, "200")) == 2
    assert moved(before, after, total, **api("http", "state", save, "400")) == 1
    assert moved(before, after, total, **api("http", "state", get, "400")) == 1
    dapr = "/dapr.proto.runtime.v1.Dapr"
    assert moved(before, after, total, **api("grpc", "state", f"{dapr}/SaveState", "OK")) == 1
    assert moved(before, after, total, **api("grpc", "state", f"{dapr}/GetState", "OK")) == 3
    bad = api("grpc", "state", f"{dapr}/GetState", "INVALID_ARGUMENT")
    assert moved(before, after, total, **bad) == 1
    latency = "tether_api_request_duration_seconds_count"
    assert moved(before, after, latency, **api("http", "state", get, "200")) == 2
    assert moved(before, after, latency, **api("grpc", "state", f"{dapr}/GetState", "OK")) == 3
    # Route templates and method names only: no key, no store name in any label.
    routes = {s["route"] for s in after.series(total)}
    assert not [r for r in routes if "metric-key" in r or "statestore" in r or "grpc-key" in r]


def test_published_messages_and_their_deliveries(
    world: tuple[TetherProcess, SubscriberApp],
) -> None:
    server, app = world
    before = scrape(server)
    url = f"{server.http_url}/v1.0/publish/pubsub/{DELIVERED}"
    assert HTTP.post(url, json={"n": 1}).status_code == 204
    with sdk(server) as client:
        client.publish_event("pubsub", DROPPED, b'{"n": 2}', data_content_type="application/json")
    app.wait_for("/ok", 1)
    app.wait_for("/drop", 1)
    deliveries = "tether_pubsub_deliveries_total"
    sub = {"app_id": APP_ID, "pubsub": "pubsub"}

    def settled() -> Exposition | None:
        now = scrape(server)
        done = now.get(deliveries, **sub, topic=DELIVERED, outcome="success") >= 1
        dropped = now.get(deliveries, **sub, topic=DROPPED, outcome="drop") >= 1
        return now if done and dropped else None

    after = wait_until(settled, 15, what="both deliveries in the metrics")
    published = "tether_pubsub_published_total"
    for name in (DELIVERED, DROPPED):
        labels = {"pubsub": "pubsub", "topic": name, "result": "success"}
        assert moved(before, after, published, **labels) == 1
    assert moved(before, after, deliveries, **sub, topic=DELIVERED, outcome="success") == 1
    assert moved(before, after, deliveries, **sub, topic=DROPPED, outcome="drop") == 1
    assert after.total(deliveries, topic=DELIVERED) == 1  # no retries, no other fate
    count = "tether_pubsub_delivery_duration_seconds_count"
    assert moved(before, after, count, **sub, topic=DELIVERED) == 1
    publish = api("http", "pubsub", "POST /v1.0/publish/{pubsub}/{topic}", "204")
    assert moved(before, after, "tether_api_requests_total", **publish) == 1
    rpc = api("grpc", "pubsub", "/dapr.proto.runtime.v1.Dapr/PublishEvent", "OK")
    assert moved(before, after, "tether_api_requests_total", **rpc) == 1
    subscriptions = "tether_pubsub_subscriptions"
    assert after.get(subscriptions, **sub, kind="programmatic") == 2


def test_invocations_by_target_and_outcome(world: tuple[TetherProcess, SubscriberApp]) -> None:
    server, _ = world
    before = scrape(server)
    with sdk(server) as client:
        client.invoke_method(APP_ID, "healthz", http_verb="GET")
        client.invoke_method(APP_ID, "healthz", http_verb="GET")
    # FastAPI answers a POST to a GET route 405: the app's answer, passed back.
    invoke = f"{server.http_url}/v1.0/invoke/{APP_ID}/method/healthz"
    assert HTTP.post(invoke).status_code == 405
    missing = HTTP.get(f"{server.http_url}/v1.0/invoke/nobody/method/x")
    assert missing.status_code == 500
    after = scrape(server)
    calls = "tether_invocations_total"
    assert moved(before, after, calls, app_id=APP_ID, kind="invoke", outcome="success") == 2
    assert moved(before, after, calls, app_id=APP_ID, kind="invoke", outcome="app_error") == 1
    unknown = {"app_id": "_unknown", "kind": "invoke", "outcome": "unavailable"}
    assert moved(before, after, calls, **unknown) == 1
    route = "GET /v1.0/invoke/{app_id}/method/{method}"
    assert moved(before, after, "tether_api_requests_total", **api("http", "invoke", route,
                                                                   "500")) == 1  # fmt: skip
    assert after.get("tether_app_healthy", app_id=APP_ID) == 1


def test_jobs_and_components(world: tuple[TetherProcess, SubscriberApp]) -> None:
    server, _ = world
    before = scrape(server)
    with sdk(server) as client:
        client.schedule_job(Job(name="metrics-once", due_time="0s"))

    def fired() -> Exposition | None:
        now = scrape(server)
        return now if now.get("tether_jobs_delivered_total", app_id=APP_ID) >= 1 else None

    after = wait_until(fired, 15, what="the job's delivery in the metrics")
    # The app has no /job route: a 404, which counts as delivered (as in daprd).
    assert moved(before, after, "tether_jobs_claimed_total", app_id=APP_ID) == 1
    assert moved(before, after, "tether_jobs_delivered_total", app_id=APP_ID) == 1
    assert moved(before, after, "tether_jobs_retries_total", app_id=APP_ID) == 0
    assert after.get("tether_components_loaded", type="pubsub.sqlite") == 1
    assert after.get("tether_components_loaded", type="state.sqlite") == 1
    assert after.total("tether_component_load_failures_total") == 0


def test_a_broken_component_counts_as_a_load_failure(
    world: tuple[TetherProcess, SubscriberApp],
) -> None:
    server, _ = world
    resources = Path(server.extra_args[server.extra_args.index("--resources") + 1])
    broken = resources / "broken.yaml"
    broken.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: broken}\n"
        "spec: {type: state.nonexistent, version: v1}\n"
    )
    try:
        failures = "tether_component_load_failures_total"
        wait_until(lambda: scrape(server).get(failures, type="state.nonexistent") >= 1, 15,
                   what="the failed load in the metrics")  # fmt: skip
    finally:
        broken.unlink()
