"""Pub/sub deliveries to gRPC apps, bulk subscriptions above all: the official SDK publishes, and
the subscribers are a `dapr.ext.grpc.App` (`pubsub_grpc_app.py`) and, for apps that lack the bulk
RPCs, servicers built on the SDK's generated stubs (`pubsub_grpc_stub_app.py`). Each records the
RPCs the runtime called on it, so the tests see whether a batch went as a batch.

Bulk batches go to `OnBulkTopicEvent`, then `OnBulkTopicEventAlpha1`, then one event at a time
through `OnTopicEvent`; the channel remembers what the app lacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dapr.clients import DaprClient

from tests.compat.pubsub_harness import HTTP, SQLITE, WAIT, topic
from tests.fixtures.apps import AppProcess, register, sdk
from tests.fixtures.tether import TetherProcess, wait_until

pytestmark = pytest.mark.timeout(120)

SDK_APP, SINGLE_APP, ALPHA_APP = "sdk-sub", "stub-single", "stub-alpha"
BULK, DEAD, UNHANDLED, RAW = topic("g-bulk"), topic("g-dead"), topic("g-unhandled"), topic("g-raw")
SINGLE, ALPHA = topic("g-single"), topic("g-alpha")
#: Subscribed to by the SDK app's own `@app.subscribe` only: no resource, no route.
PROGRAMMATIC = topic("g-programmatic")


def _subscription(name: str, topic_name: str, *, bulk: bool, extra: str = "") -> str:
    # Declarative, for bulk and dead letters; they take precedence over the app's own
    # subscriptions to these topics. The route is the topic: `dapr.ext.grpc.App` finds a topic's
    # handler by it.
    spec = (
        f"apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {{name: {name}}}\n"
        f"spec:\n  pubsubname: pubsub\n  topic: {topic_name}\n"
        f"  routes: {{default: {topic_name}}}\n{extra}"
    )
    if bulk:
        spec += "  bulkSubscribe: {enabled: true, maxMessagesCount: 4, maxAwaitDurationMs: 200}\n"
    return spec + f"scopes: [{SDK_APP}]\n"


# A RETRY is retried at once under this policy (here: in a new batch) rather than dead-lettered.
RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: pubsub-retries}
spec:
  policies:
    retries:
      twice: {policy: constant, duration: 50ms, maxRetries: 2}
  targets:
    components:
      pubsub:
        inbound: {retry: twice}
"""

SUBSCRIPTIONS = "---\n".join(
    [
        _subscription("g-bulk", BULK, bulk=True, extra=f"  deadLetterTopic: {DEAD}\n"),
        _subscription("g-dead", DEAD, bulk=False),
        _subscription("g-unhandled", UNHANDLED, bulk=True, extra=f"  deadLetterTopic: {DEAD}\n"),
        _subscription("g-raw", RAW, bulk=True, extra="  metadata: {rawPayload: 'true'}\n"),
    ]
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TetherProcess]:
    resources = tmp_path_factory.mktemp("resources")
    (resources / "pubsub.yaml").write_text(SQLITE)
    (resources / "subscriptions.yaml").write_text(SUBSCRIPTIONS)
    (resources / "resiliency.yaml").write_text(RESILIENCY)
    logs = tmp_path_factory.mktemp("apps")
    apps = [
        (
            SDK_APP,
            AppProcess("tests.compat.pubsub_grpc_app", "pubsub", BULK, DEAD, RAW, PROGRAMMATIC),
        ),
        (SINGLE_APP, AppProcess("tests.compat.pubsub_grpc_stub_app", "single", "pubsub", SINGLE)),
        (ALPHA_APP, AppProcess("tests.compat.pubsub_grpc_stub_app", "alpha", "pubsub", ALPHA)),
    ]
    for _, app in apps:
        app.start(logs)
    tether = TetherProcess(tmp_path_factory.mktemp("tether"),
                           extra_args=["--resources", str(resources)])  # fmt: skip
    tether.start()
    tokens = {
        app_id: register(tether, appID=app_id, appPort=app.port, appProtocol="grpc")
        for app_id, app in apps
    }
    for app_id, name in ((SDK_APP, BULK), (SDK_APP, DEAD), (SDK_APP, UNHANDLED),
                         (SDK_APP, RAW), (SDK_APP, PROGRAMMATIC), (SINGLE_APP, SINGLE),
                         (ALPHA_APP, ALPHA)):  # fmt: skip
        wait_subscribed(tether, tokens[app_id], name)
    yield tether
    for _, app in apps:
        app.stop()
    assert tether.stop() == 0, tether.log()


@pytest.fixture(scope="module")
def client(server: TetherProcess) -> Iterator[DaprClient]:
    with sdk(server, "grpc") as c:
        yield c


def wait_subscribed(server: TetherProcess, token: str, name: str) -> None:
    def probe() -> bool:
        meta = HTTP.get(f"{server.http_url}/v1.0/metadata", headers={"dapr-api-token": token})
        return any(s["topic"] == name for s in meta.json().get("subscriptions", []))

    wait_until(probe, WAIT, interval=0.05, what=f"a subscription to {name}")


def received(server: TetherProcess, app_id: str) -> dict[str, Any]:
    """What the app recorded: `events` handled and `calls` (RPC names, in order)."""
    got: dict[str, Any] = HTTP.post(
        f"{server.http_url}/v1.0/invoke/{app_id}/method/received"
    ).json()
    return got


def wait_events(
    server: TetherProcess, app_id: str, done: Callable[[list[dict[str, Any]]], bool], what: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        got = received(server, app_id)
        return got if done(got["events"]) else None

    return wait_until(probe, WAIT, interval=0.1, what=what)


def publish(client: DaprClient, name: str, *payloads: dict[str, Any]) -> None:
    response = client.publish_events(
        "pubsub", name, [json.dumps(p) for p in payloads], data_content_type="application/json"
    )
    assert not response.failed_entries


def numbers(events: list[dict[str, Any]], run: str) -> list[int]:
    return sorted(e["data"]["n"] for e in events if (e["data"] or {}).get("run") == run)


# --- dapr.ext.grpc.App ----------------------------------------------------------------------------


def test_bulk_batches_reach_the_sdk_app_through_on_bulk_topic_event(
    server: TetherProcess, client: DaprClient
) -> None:
    before = received(server, SDK_APP)["calls"]
    answers = ["success"] * 5 + ["retry", "drop"]
    publish(client, BULK, *({"run": "bulk", "n": n, "answer": a} for n, a in enumerate(answers)))
    # Each event once; the RETRY one twice (retried under the policy, in a later batch); the DROP
    # one twice: in its batch, then from the dead-letter topic (not a bulk subscription).
    want = [0, 1, 2, 3, 4, 5, 5, 6, 6]
    got = wait_events(server, SDK_APP, lambda ev: numbers(ev, "bulk") == want, "bulk deliveries")
    calls = got["calls"][len(before) :]
    bulk_calls = calls.count("OnBulkTopicEvent")
    assert 1 <= bulk_calls < 8  # batched: fewer calls than the 8 events they carried
    assert "OnBulkTopicEventAlpha1" not in calls
    assert calls.count("OnTopicEvent") == 1  # only the dead letter came one by one
    bulk = [e for e in got["events"] if (e["data"] or {}).get("run") == "bulk"]
    assert {e["topic"] for e in bulk} == {BULK}
    assert all(e["contentType"] == "application/json" for e in bulk)


def test_raw_payload_bulk_entries_carry_the_bytes(
    server: TetherProcess, client: DaprClient
) -> None:
    before = len(received(server, SDK_APP)["calls"])
    client.publish_event("pubsub", RAW, b"raw bytes", publish_metadata={"rawPayload": "true"},
                         data_content_type="application/octet-stream")  # fmt: skip

    def arrived(events: list[dict[str, Any]]) -> bool:
        return any(e["raw"] == "raw bytes" for e in events)

    got = wait_events(server, SDK_APP, arrived, "the raw event")
    assert got["calls"][before:] == ["OnBulkTopicEvent"]
    event = next(e for e in got["events"] if e["raw"] == "raw bytes")
    assert event["topic"] == RAW and event["contentType"] == "application/octet-stream"


def test_a_topic_the_app_does_not_handle_is_dropped_and_bulk_stays_on(
    server: TetherProcess, client: DaprClient
) -> None:
    before = len(received(server, SDK_APP)["calls"])
    publish(client, UNHANDLED, {"run": "unhandled", "n": 0}, {"run": "unhandled", "n": 1})
    # UNIMPLEMENTED from every RPC: dropped, so dead-lettered (to a topic the app handles).
    wait_events(server, SDK_APP, lambda ev: numbers(ev, "unhandled") == [0, 1], "dead letters")
    middle = len(received(server, SDK_APP)["calls"])
    publish(client, BULK, {"run": "after", "n": 0}, {"run": "after", "n": 1})
    got = wait_events(server, SDK_APP, lambda ev: numbers(ev, "after") == [0, 1], "deliveries")
    probes = got["calls"][before:middle]
    assert "OnBulkTopicEvent" in probes and "OnBulkTopicEventAlpha1" in probes
    # The app lacked a handler, not the RPC: later batches still use OnBulkTopicEvent.
    after = got["calls"][middle:]
    assert "OnBulkTopicEvent" in after and "OnBulkTopicEventAlpha1" not in after
    assert "OnTopicEvent" not in after


def test_the_sdk_apps_own_subscription_without_a_route_is_served(
    server: TetherProcess, client: DaprClient
) -> None:
    # `@app.subscribe(pubsub, topic)` lists the topic with no route; like daprd, Tether delivers
    # with the empty path and the SDK finds the handler by the topic.
    before = len(received(server, SDK_APP)["calls"])
    publish(client, PROGRAMMATIC, {"run": "programmatic", "n": 0})
    got = wait_events(server, SDK_APP, lambda ev: numbers(ev, "programmatic") == [0], "delivery")
    assert got["calls"][before:] == ["OnTopicEvent"]
    (event,) = [e for e in got["events"] if (e["data"] or {}).get("run") == "programmatic"]
    assert event["topic"] == PROGRAMMATIC


# --- apps without the stable bulk RPC ---------------------------------------------------------


def test_app_without_bulk_rpcs_gets_the_events_one_by_one(
    server: TetherProcess, client: DaprClient
) -> None:
    publish(client, SINGLE, {"run": "single", "n": 0})
    wait_events(server, SINGLE_APP, lambda ev: numbers(ev, "single") == [0], "the first event")
    publish(client, SINGLE, *({"run": "single", "n": n} for n in range(1, 7)))
    got = wait_events(
        server, SINGLE_APP, lambda ev: numbers(ev, "single") == list(range(7)), "all events"
    )
    calls = got["calls"]
    # Both bulk RPCs were tried once, for the first batch, and never again.
    assert calls.count("OnBulkTopicEvent") == 1 and calls.count("OnBulkTopicEventAlpha1") == 1
    assert calls.count("OnTopicEvent") == 7
    assert {e["how"] for e in got["events"]} == {"single:/events"}


def test_app_with_only_the_alpha_rpc_gets_batches_through_it(
    server: TetherProcess, client: DaprClient
) -> None:
    publish(client, ALPHA, {"run": "alpha", "n": 0})
    wait_events(server, ALPHA_APP, lambda ev: numbers(ev, "alpha") == [0], "the first event")
    payloads = [{"run": "alpha", "n": n} for n in range(1, 6)]
    payloads[2]["answer"] = "omit"  # n=3 is left out of the app's first answer
    publish(client, ALPHA, *payloads)
    want = [0, 1, 2, 3, 3, 4, 5]
    got = wait_events(server, ALPHA_APP, lambda ev: numbers(ev, "alpha") == want, "batches")
    calls = got["calls"]
    assert calls.count("OnBulkTopicEvent") == 1  # probed once, then skipped
    assert calls.count("OnBulkTopicEventAlpha1") >= 2 and "OnTopicEvent" not in calls
    sizes = [int(e["how"].rsplit(":", 1)[1]) for e in got["events"]]
    assert all(e["how"].startswith("bulk:/events:") for e in got["events"])
    assert max(sizes) > 1  # batched


def test_the_runtime_says_once_what_an_app_lacks(server: TetherProcess) -> None:
    log = server.log_path.read_text(errors="replace")
    single = f"app {SINGLE_APP} does not implement OnBulkTopicEvent, OnBulkTopicEventAlpha1;"
    alpha = f"app {ALPHA_APP} does not implement OnBulkTopicEvent;"
    assert log.count(single) == 1 and log.count(alpha) == 1
    assert f"app {SDK_APP} does not implement OnBulk" not in log
