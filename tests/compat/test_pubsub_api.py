"""Pub/sub end to end: the official SDK publishes (gRPC and HTTP), a `dapr.ext.fastapi` app
subscribes, real brokers carry the messages.

One `tether dev` serves the App ID `subscriber`, whose app (`pubsub_app.py`) runs as a
subprocess with every subscription these tests need; topics carry a per-run suffix so that
messages left on shared brokers by earlier runs never reach this one. Broker components other
than the default SQLite one are added while the server runs (hot reload) by the tests that need
them. Tests that kill or duplicate runtimes are in test_pubsub_runtimes.py.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from dapr.clients import DaprClient
from dapr.clients.grpc._request import BulkPublishEntry
from dapr.conf import settings
from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2

from tests.compat.pubsub_harness import (
    APP_ID,
    HTTP,
    RUN,
    SQLITE,
    WAIT,
    SubscriberApp,
    forget,
    publish_http,
    server_for,
    start_all,
    subscriptions,
    topic,
    wait_subscribed,
)
from tests.fixtures.redis import host_port
from tests.fixtures.tether import wait_until

pytestmark = pytest.mark.timeout(120)

# --- the shared world ----------------------------------------------------------------------------

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

SUBSCRIPTIONS = f"""\
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {{name: routed}}
spec:
  pubsubname: pubsub
  topic: {topic("routed")}
  routes:
    rules:
    - match: event.type == "order" && event.data.amount > 100
      path: /big
    - match: event.type == "order"
      path: /small
    default: /other
scopes: [{APP_ID}]
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {{name: bulky}}
spec:
  pubsubname: pubsub
  topic: {topic("bulky")}
  routes: {{default: /bulk}}
  bulkSubscribe: {{enabled: true, maxMessagesCount: 4, maxAwaitDurationMs: 200}}
scopes: [{APP_ID}]
"""

BAD_CEL = f"""\
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {{name: broken-rules}}
spec:
  pubsubname: pubsub
  topic: {topic("broken")}
  routes:
    rules:
    - match: event.type ==
      path: /never
scopes: [{APP_ID}]
"""

SCOPED = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: private}
spec:
  type: pubsub.sqlite
  version: v1
scopes: [someone-else]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: narrow}
spec:
  type: pubsub.sqlite
  version: v1
  metadata:
  - {name: publishingScopes, value: "subscriber=allowed"}
"""

BROKERS = ["redis", "jetstream", "rabbitmq", "mqtt3"]


def app_config() -> dict[str, Any]:
    subs = [
        {"pubsub": "pubsub", "topic": topic("orders"), "mode": "success"},
        {"pubsub": "pubsub", "topic": topic("flaky"), "mode": "retry:2"},
        {"pubsub": "pubsub", "topic": topic("dropme"), "mode": "drop"},
        {"pubsub": "pubsub", "topic": topic("doomed"), "mode": "retry",
         "deadLetterTopic": topic("doomed-dead")},
        {"pubsub": "pubsub", "topic": topic("doomed-dead"), "route": "/dead", "mode": "success"},
        {"pubsub": "pubsub", "topic": topic("raw"), "route": "/raw", "mode": "success",
         "metadata": {"rawPayload": "true"}},
    ]  # fmt: skip
    for broker in BROKERS:
        subs += [
            {"pubsub": f"ps-{broker}", "topic": topic("orders"), "mode": "success"},
            {"pubsub": f"ps-{broker}", "topic": topic("flaky"), "mode": "error:1"},
        ]
    return {
        "subscriptions": subs,
        "routes": [{"path": p, "mode": "success"} for p in ("/big", "/small", "/other", "/late")],
        "bulk_routes": [{"path": "/bulk", "mode": "success"}],
    }


class World:
    def __init__(self, tmp: Path) -> None:
        self.resources = tmp / "resources"
        self.resources.mkdir()
        for name, text in [("resiliency.yaml", RESILIENCY), ("sqlite.yaml", SQLITE),
                           ("subscriptions.yaml", SUBSCRIPTIONS), ("bad-cel.yaml", BAD_CEL),
                           ("scoped.yaml", SCOPED)]:  # fmt: skip
            (self.resources / name).write_text(text)
        self.app = SubscriberApp(tmp / "app", app_config())
        self.server = server_for(tmp / "server", self.resources, self.app,
                                 APP_ID, "--max-request-mb", "1")  # fmt: skip
        start_all(self.app, self.server)
        #: broker -> its address, for the brokers whose `ps-<broker>` component was added.
        self.added: dict[str, str] = {}

    def add_component(self, broker: str, text: str, url: str) -> None:
        """Write a component into the resources folder: the server picks it up while running."""
        if broker not in self.added:
            (self.resources / f"ps-{broker}.yaml").write_text(text)
            self.added[broker] = url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("pubsub"))
    wait_subscribed(w.server, "pubsub", topic("orders"))
    yield w
    code = w.server.stop()
    w.app.stop()
    for broker, url in w.added.items():
        forget(broker, url, [topic("orders"), topic("flaky")], APP_ID, f"tether-{RUN}")
    assert code == 0, w.server.log()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[DaprClient]:
    old = settings.DAPR_HTTP_ENDPOINT
    settings.DAPR_HTTP_ENDPOINT = (
        world.server.http_url
    )  # DaprClient probes it before the first call
    c = DaprClient(address=world.server.grpc_address)
    yield c
    c.close()
    settings.DAPR_HTTP_ENDPOINT = old


# --- publishing and delivery ---------------------------------------------------------------------


def _event_ids(got: list[dict[str, Any]]) -> list[str]:
    return [r["event"]["id"] for r in got]


def test_sdk_publish_delivers_a_cloudevent(world: World, client: DaprClient) -> None:
    client.publish_event("pubsub", topic("orders"), json.dumps({"order": 1}),
                         data_content_type="application/json")  # fmt: skip
    (got,) = world.app.wait_for(f"/events/pubsub/{topic('orders')}", 1)
    event = got["event"]
    assert event["data"] == {"order": 1}
    assert event["source"] == APP_ID and event["specversion"] == "1.0"
    assert event["type"] == "com.dapr.event.sent"
    assert event["datacontenttype"] == "application/json"
    assert (event["topic"], event["pubsubname"]) == (topic("orders"), "pubsub")
    assert event["traceparent"].startswith("00-") and event["id"] and event["time"]
    assert got["content_type"] == "application/cloudevents+json"
    assert got["pubsubname"] == "pubsub"


def test_http_publish_text_and_cloudevent_passthrough(world: World) -> None:
    path = f"/events/pubsub/{topic('orders')}"
    before = len(world.app.received(path))
    assert publish_http(world.server, "pubsub", topic("orders"), b"hello", "text/plain") \
        .status_code == 204  # fmt: skip
    own = {"id": f"mine-{RUN}", "type": "shipment", "source": "elsewhere", "specversion": "1.0",
           "datacontenttype": "application/json", "data": {"n": 2}}  # fmt: skip
    response = publish_http(world.server, "pubsub", topic("orders"), json.dumps(own).encode(),
                            "application/cloudevents+json")  # fmt: skip
    assert response.status_code == 204
    got = world.app.wait_for(path, before + 2)[before:]
    by_type = {r["event"]["type"]: r["event"] for r in got}
    assert by_type["com.dapr.event.sent"]["data"] == "hello"
    assert by_type["com.dapr.event.sent"]["datacontenttype"] == "text/plain"
    passed = by_type["shipment"]
    assert (passed["id"], passed["source"], passed["data"]) == (own["id"], "elsewhere", {"n": 2})
    assert passed["topic"] == topic("orders") and passed["traceparent"]


def test_metadata_lists_subscriptions(world: World) -> None:
    wait_subscribed(world.server, "pubsub", topic("routed"))
    subs = {(s["pubsubname"], s["topic"]): s for s in subscriptions(world.server)}
    orders = subs[("pubsub", topic("orders"))]
    assert orders["type"] == "PROGRAMMATIC"
    assert orders["rules"] == [{"path": f"/events/pubsub/{topic('orders')}"}]
    routed = subs[("pubsub", topic("routed"))]
    assert routed["type"] == "DECLARATIVE" and len(routed["rules"]) == 3
    assert subs[("pubsub", topic("doomed"))]["deadLetterTopic"] == topic("doomed-dead")
    # The gRPC metadata carries the same subscriptions, with their type as the proto enum.
    with grpc.insecure_channel(world.server.grpc_address) as channel:
        answer = dapr_pb2_grpc.DaprStub(channel).GetMetadata(metadata_pb2.GetMetadataRequest())
    by_topic = {s.topic: s for s in answer.subscriptions}
    assert by_topic[topic("routed")].type == metadata_pb2.DECLARATIVE
    assert [r.path for r in by_topic[topic("routed")].rules.rules] == ["/big", "/small", "/other"]
    assert by_topic[topic("orders")].type == metadata_pb2.PROGRAMMATIC
    # Re-reading the app's /dapr/subscribe on demand keeps what it lists.
    url = f"{world.server.http_url}/v1.0-tether/apps/{APP_ID}/subscriptions/refresh"
    assert HTTP.post(url).status_code == 204
    wait_subscribed(world.server, "pubsub", topic("orders"), "PROGRAMMATIC")


def test_subscription_resources_hot_reload(world: World) -> None:
    """A Subscription file added while the server runs starts delivering; removed, it stops."""
    late = world.resources / "late.yaml"
    late.write_text(
        f"apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {{name: late}}\n"
        f"spec: {{pubsubname: pubsub, topic: {topic('late')}, routes: {{default: /late}}}}\n"
    )
    wait_subscribed(world.server, "pubsub", topic("late"), "DECLARATIVE")
    assert publish_http(world.server, "pubsub", topic("late"), b'{"late": 1}').status_code == 204

    def delivered() -> bool:
        return any(r["event"]["topic"] == topic("late") for r in world.app.received("/late"))

    wait_until(delivered, WAIT, what="delivery through the added subscription")
    late.unlink()
    wait_until(
        lambda: not any(s["topic"] == topic("late") for s in subscriptions(world.server)),
        WAIT,
        what="the removed subscription to stop",
    )


def test_cel_rules_route_to_paths(world: World) -> None:
    wait_subscribed(world.server, "pubsub", topic("routed"))
    for kind, amount in [("order", 150), ("order", 5), ("refund", 1)]:
        event = {"type": kind, "specversion": "1.0", "source": "t",
                 "datacontenttype": "application/json", "data": {"amount": amount}}  # fmt: skip
        body, ce_type = json.dumps(event).encode(), "application/cloudevents+json"
        assert (
            publish_http(world.server, "pubsub", topic("routed"), body, ce_type).status_code == 204
        )
    assert world.app.wait_for("/big", 1)[0]["event"]["data"] == {"amount": 150}
    assert world.app.wait_for("/small", 1)[0]["event"]["data"] == {"amount": 5}
    assert world.app.wait_for("/other", 1)[0]["event"]["type"] == "refund"


def test_retry_then_success_under_the_resiliency_policy(world: World, client: DaprClient) -> None:
    client.publish_event("pubsub", topic("flaky"), "try me")
    got = world.app.wait_for(f"/events/pubsub/{topic('flaky')}", 3)
    assert len(set(_event_ids(got))) == 1  # the same event, RETRY twice then SUCCESS


def test_drop_is_acknowledged(world: World, client: DaprClient) -> None:
    path = f"/events/pubsub/{topic('dropme')}"
    client.publish_event("pubsub", topic("dropme"), "drop me")
    world.app.wait_for(path, 1)
    time.sleep(1.0)  # longer than the broker's retry delay: a redelivery would show by now
    assert len(world.app.received(path)) == 1


def test_dead_letter_after_retries(world: World, client: DaprClient) -> None:
    client.publish_event("pubsub", topic("doomed"), json.dumps({"x": 1}),
                         data_content_type="application/json")  # fmt: skip
    dead = world.app.wait_for("/dead", 1)
    attempts = world.app.received(f"/events/pubsub/{topic('doomed')}")
    assert len(attempts) == 3  # the first delivery and maxRetries 2
    assert dead[0]["event"]["id"] == attempts[0]["event"]["id"]
    assert dead[0]["event"]["data"] == {"x": 1}


def test_bulk_publish_http_and_grpc(world: World, client: DaprClient) -> None:
    path = f"/events/pubsub/{topic('orders')}"
    before = len(world.app.received(path))
    entries = [
        {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
        {"entryId": "2", "event": "two", "contentType": "text/plain"},
        {"entryId": "3", "event": base64.b64encode(b"\x03").decode(),
         "contentType": "application/octet-stream"},
    ]  # fmt: skip
    url = f"{world.server.http_url}/v1.0-alpha1/publish/bulk/pubsub/{topic('orders')}"
    assert HTTP.post(url, json=entries, timeout=10).status_code == 204
    response = client.publish_events(
        "pubsub", topic("orders"),
        [BulkPublishEntry(entry_id="a", event='{"n": 4}', content_type="application/json"),
         BulkPublishEntry(entry_id="b", event="five", content_type="text/plain")],
    )  # fmt: skip
    assert response.failed_entries == []
    got = world.app.wait_for(path, before + 5)[before:]
    values = [r["event"].get("data", r["event"].get("data_base64")) for r in got]
    assert sorted(map(str, values)) == sorted(
        map(str, [{"n": 1}, "two", base64.b64encode(b"\x03").decode(), {"n": 4}, "five"])
    )


def test_bulk_subscribe_delivers_batches(world: World) -> None:
    wait_subscribed(world.server, "pubsub", topic("bulky"))
    entries = [{"entryId": str(i), "event": {"i": i}, "contentType": "application/json"}
               for i in range(7)]  # fmt: skip
    url = f"{world.server.http_url}/v1.0-alpha1/publish/bulk/pubsub/{topic('bulky')}"
    assert HTTP.post(url, json=entries, timeout=10).status_code == 204
    got = world.app.wait_for("/bulk", 7)
    assert sorted(r["event"]["event"]["data"]["i"] for r in got) == list(range(7))
    batch = got[0]["event"]["bulk"]
    assert batch["type"] == "com.dapr.event.sent.bulk" and batch["topic"] == topic("bulky")
    assert got[0]["event"]["contentType"] == "application/cloudevents+json"
    assert max(len(r["event"]["bulk"]["entries"]) for r in got) > 1  # batched, not one by one
    assert got[0]["content_type"].startswith("application/json")


def test_raw_payload_reaches_http_subscriber_as_data_base64(
    world: World, client: DaprClient
) -> None:
    payload = b"\x00raw bytes\xff"
    client.publish_event("pubsub", topic("raw"), payload, publish_metadata={"rawPayload": "true"})
    response = publish_http(world.server, "pubsub", topic("raw"), b"plain http",
                            "application/octet-stream", "metadata.rawPayload=true")  # fmt: skip
    assert response.status_code == 204
    got = world.app.wait_for("/raw", 2)
    decoded = {base64.b64decode(r["event"]["data_base64"]) for r in got}
    assert decoded == {payload, b"plain http"}
    assert {r["event"]["datacontenttype"] for r in got} == {"application/octet-stream"}


def test_streaming_subscription(world: World, client: DaprClient) -> None:
    name = topic("stream")
    sub = client.subscribe("pubsub", name)
    try:
        wait_subscribed(world.server, "pubsub", name, "STREAMING")
        for i in range(3):
            client.publish_event("pubsub", name, json.dumps({"i": i}),
                                 data_content_type="application/json")  # fmt: skip
        seen = []
        while len(seen) < 3:
            message = sub.next_message()
            if message is None:
                continue
            seen.append(message.data()["i"])
            assert message.topic() == name and message.pubsub_name() == "pubsub"
            sub.respond_success(message)
        assert sorted(seen) == [0, 1, 2]
    finally:
        sub.close()
    raw = client.subscribe("pubsub", topic("stream-raw"), metadata={"rawPayload": "true"})
    try:
        wait_subscribed(world.server, "pubsub", topic("stream-raw"), "STREAMING")
        client.publish_event("pubsub", topic("stream-raw"), b"\x01\x02",
                             publish_metadata={"rawPayload": "true"})  # fmt: skip
        message = None
        while message is None:
            message = raw.next_message()
        assert message.raw_data() == b"\x01\x02"
        raw.respond_success(message)
    finally:
        raw.close()
    wait_until(lambda: not any(s["type"] == "STREAMING" for s in subscriptions(world.server)),
               WAIT, what="closed streams to leave the metadata")  # fmt: skip


# --- every broker --------------------------------------------------------------------------------


def _component(broker: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """The component YAML of `ps-<broker>`, and the address cleanup needs."""
    metadata: dict[str, str]
    if broker == "redis":
        url = host_port(request.getfixturevalue("redis_url"))
        metadata = {"redisHost": url, "processingTimeout": "2s", "redeliverInterval": "200ms",
                    "retryDelay": "200ms"}  # fmt: skip
    elif broker == "jetstream":
        url = request.getfixturevalue("nats_url")
        metadata = {"natsURL": url, "ackWait": "2s", "retryDelay": "200ms"}
    elif broker == "rabbitmq":
        url = request.getfixturevalue("rabbitmq_url")
        metadata = {"connectionString": url, "retryDelay": "200ms"}
    else:
        url = request.getfixturevalue("mqtt_url")
        metadata = {"url": url, "retryDelay": "200ms", "consumerID": f"tether-{RUN}"}
    items = "\n".join(f"  - {{name: {k}, value: '{v}'}}" for k, v in metadata.items())
    text = (
        f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: ps-{broker}}}\n"
        f"spec:\n  type: pubsub.{broker}\n  version: v1\n  metadata:\n{items}\n"
    )
    return text, url


@pytest.mark.parametrize("broker", BROKERS)
def test_broker_publish_deliver_and_retry(
    world: World, client: DaprClient, broker: str, request: pytest.FixtureRequest
) -> None:
    world.add_component(broker, *_component(broker, request))
    pubsub = f"ps-{broker}"
    wait_subscribed(world.server, pubsub, topic("orders"))
    wait_subscribed(world.server, pubsub, topic("flaky"))
    for i in range(3):
        client.publish_event(pubsub, topic("orders"), json.dumps({"i": i}),
                             data_content_type="application/json")  # fmt: skip
    got = world.app.wait_for(f"/events/{pubsub}/{topic('orders')}", 3)
    assert sorted(r["event"]["data"]["i"] for r in got) == [0, 1, 2]
    assert publish_http(world.server, pubsub, topic("flaky"), b'"again"').status_code == 204
    # error:1 answers 500 once; with no Resiliency policy the broker redelivers it.
    flaky = world.app.wait_for(f"/events/{pubsub}/{topic('flaky')}", 2)
    assert len(set(_event_ids(flaky))) == 1


# --- bad input -----------------------------------------------------------------------------------


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("errorCode", "")


def test_bad_publishes(world: World, client: DaprClient) -> None:
    s = world.server
    assert _error(publish_http(s, "nope", "t", b"{}")) == (404, "ERR_PUBSUB_NOT_FOUND")
    assert _error(publish_http(s, "pubsub", "", b"{}")) == (404, "ERR_TOPIC_NAME_EMPTY")
    bulk = f"{s.http_url}/v1.0-alpha1/publish/bulk/pubsub/{topic('orders')}"
    response = HTTP.post(bulk, content=b"[{not json", timeout=5)
    assert _error(response) == (400, "ERR_PUBSUB_EVENTS_SER")
    response = HTTP.post(bulk, json=[{"event": 1, "contentType": "application/json"}], timeout=5)
    assert _error(response) == (400, "ERR_PUBSUB_EVENTS_SER")  # no entryId
    big = b"x" * (1024 * 1024 + 10)
    assert _error(publish_http(s, "pubsub", topic("orders"), big)) == (413, "ERR_BODY_TOO_LARGE")
    for query in ("metadata.rawPayload=maybe", "metadata.ttlInSeconds=soon"):
        response = publish_http(s, "pubsub", topic("orders"), b"x", query=query)
        assert _error(response) == (400, "ERR_PUBSUB_REQUEST_METADATA")
    assert _error(publish_http(s, "pubsub", topic("orders"), b"not json",
                               "application/cloudevents+json")) \
        == (500, "ERR_PUBSUB_CLOUD_EVENTS_SER")  # fmt: skip
    assert _error(publish_http(s, "private", "t", b"{}")) == (403, "ERR_PUBSUB_FORBIDDEN")
    assert publish_http(s, "narrow", "allowed", b"{}").status_code == 204
    assert _error(publish_http(s, "narrow", "other", b"{}")) == (403, "ERR_PUBSUB_FORBIDDEN")
    with pytest.raises(Exception) as info:
        client.publish_event("nope", "t", "x")
    assert "INVALID_ARGUMENT" in str(info.value) or "not found" in str(info.value)


def test_bad_cel_is_reported_and_the_server_keeps_running(world: World) -> None:
    def reported() -> bool:
        log = world.server.log_path.read_text(errors="replace")
        return "bad-cel.yaml" in log and "not a valid CEL expression" in log

    wait_until(reported, WAIT, what="the CEL error, naming its file, in the log")
    assert not any(s["topic"] == topic("broken") for s in subscriptions(world.server))
    assert HTTP.get(f"{world.server.http_url}/v1.0/healthz", timeout=5).status_code == 204


def test_streaming_to_unknown_pubsub_fails(client: DaprClient) -> None:
    with pytest.raises(Exception, match=r"not found|NOT_FOUND|INVALID_ARGUMENT"):
        client.subscribe("nope", topic("x"))
