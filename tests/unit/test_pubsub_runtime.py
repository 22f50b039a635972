"""Pure parts of pub/sub delivery: envelopes, routing rules, topic scopes, the per-message
pipeline (with an in-memory broker standing in only for `publish`, to watch dead letters)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import pytest

from tests.fixtures.prometheus import parse
from tether.components.pubsub.base import Message, Outcome
from tether.metrics import Registry
from tether.resources.subscription import RouteRule
from tether.runtime.api.pubsub import event_bytes
from tether.runtime.appchannel import bulk_statuses
from tether.runtime.metrics import PubSubMetrics
from tether.runtime.pubsub import envelope as ce
from tether.runtime.pubsub import scopes
from tether.runtime.pubsub.delivery import Pipeline, SubscriberGone
from tether.runtime.pubsub.model import Kind, TopicSubscription, from_programmatic
from tether.runtime.pubsub.routing import RouteFailed, RouteInvalid, Router
from tether.runtime.pubsub.streaming import topic_event

# --- envelopes -----------------------------------------------------------------------------------


def test_new_event_embeds_json_and_encodes_binary() -> None:
    common: dict[str, Any] = {"source": "app", "topic": "t", "pubsub": "ps", "traceparent": "tp"}
    event = ce.new_event(data=b'{"a": 1}', content_type="application/json", **common)
    assert event["data"] == {"a": 1}
    assert event["specversion"] == "1.0" and event["type"] == "com.dapr.event.sent"
    assert event["source"] == "app" and event["traceparent"] == event["traceid"] == "tp"
    assert event["time"].endswith("Z") and len(event["id"]) == 36
    binary = ce.new_event(data=b"\x00\x01", content_type="application/octet-stream", **common)
    assert binary["data_base64"] == base64.b64encode(b"\x00\x01").decode() and "data" not in binary
    text = ce.new_event(data=b"hi", content_type="", **common)
    assert text["data"] == "hi" and text["datacontenttype"] == "text/plain"


def test_cloudevent_overrides_from_metadata() -> None:
    event = ce.new_event(
        source="app", topic="t", pubsub="ps", data=b"x", content_type="text/plain",
        traceparent="tp", metadata={"cloudevent.id": "my-id", "cloudevent.type": "order"},
    )  # fmt: skip
    assert (event["id"], event["type"]) == ("my-id", "order")


def test_cloud_event_passes_through_with_required_fields_filled() -> None:
    body = json.dumps({"id": "1", "type": "custom", "data": {"k": 2}, "extra": "x"}).encode()
    event = ce.from_cloud_event(body, source="app", topic="t", pubsub="ps", traceparent="tp")
    assert event["id"] == "1" and event["type"] == "custom" and event["extra"] == "x"
    assert event["specversion"] == "1.0" and event["source"] == "app" and event["topic"] == "t"
    with pytest.raises(ValueError):
        ce.from_cloud_event(b"[1]", source="a", topic="t", pubsub="p", traceparent="")


def test_read_event_wraps_raw_payloads() -> None:
    wrapped = ce.read_event(b"\xff\x00", {}, topic="t", pubsub="ps", raw=False)
    assert base64.b64decode(wrapped["data_base64"]) == b"\xff\x00"
    flagged = ce.read_event(b'{"a":1}', {"rawPayload": "true"}, topic="t", pubsub="ps", raw=False)
    assert base64.b64decode(flagged["data_base64"]) == b'{"a":1}'
    plain = ce.read_event(b'{"id":"x"}', {}, topic="t", pubsub="ps", raw=False)
    assert plain == {"id": "x"}


def test_expiration() -> None:
    event: dict[str, Any] = {}
    ce.set_expiration(event, {"ttlInSeconds": "60"})
    assert not ce.has_expired(event)
    assert ce.has_expired({"expiration": "2000-01-01T00:00:00Z"})


def test_topic_event_for_streaming() -> None:
    raw = ce.from_raw_payload(b"\x01\x02", topic="t", pubsub="ps")
    msg = topic_event(raw, "t", "ps")
    assert msg.data == b"\x01\x02" and msg.data_content_type == "application/octet-stream"
    json_event = {"id": "1", "datacontenttype": "application/json", "data": {"a": 1},
                  "traceparent": "tp"}  # fmt: skip
    msg = topic_event(json_event, "t", "ps")
    assert json.loads(msg.data) == {"a": 1} and msg.extensions["traceparent"] == "tp"


def test_bulk_entry_event_bytes() -> None:
    assert event_bytes({"a": 1}, "application/json") == b'{"a":1}'
    assert event_bytes("hi", "text/plain") == b"hi"
    assert event_bytes(base64.b64encode(b"\x00").decode(), "application/octet-stream") == b"\x00"
    with pytest.raises(ValueError):
        event_bytes({"a": 1}, "text/plain")
    with pytest.raises(ValueError):
        event_bytes("not base64!", "application/octet-stream")


# --- routing -----------------------------------------------------------------------------------


def test_rules_in_order_then_default() -> None:
    router = Router(
        [
            RouteRule('event.type == "order" && event.data.amount > 100', "/big"),
            RouteRule('event.type == "order"', "/small"),
        ],
        "/other",
        "test",
    )
    assert router.route({"type": "order", "data": {"amount": 150}}) == "/big"
    assert router.route({"type": "order", "data": {"amount": 5}}) == "/small"
    assert router.route({"type": "refund"}) == "/other"
    assert Router([RouteRule('event.type == "x"', "/x")], None, "t").route({"type": "y"}) is None


def test_bad_cel_names_the_subscription() -> None:
    with pytest.raises(RouteInvalid, match=r"Subscription 's' \(res/s.yaml\).*rules\[0\]"):
        Router([RouteRule("event.type ==", "/x")], None, "Subscription 's' (res/s.yaml)")


def test_failing_expression_is_an_error() -> None:
    router = Router([RouteRule("event.data.amount > 1", "/x")], None, "t")
    with pytest.raises(RouteFailed):
        router.route({"data": "text"})


# --- scopes ------------------------------------------------------------------------------------


def test_topic_scopes() -> None:
    md = {"publishingScopes": "a=t1,t2;b=", "allowedTopics": "t1,t2,t3", "protectedTopics": "t3"}
    assert scopes.allowed(md, scopes.PUBLISHING, "a", "t1")
    assert not scopes.allowed(md, scopes.PUBLISHING, "a", "t3")
    assert not scopes.allowed(md, scopes.PUBLISHING, "b", "t1")  # listed with no topics
    assert scopes.allowed(md, scopes.PUBLISHING, "c", "t2")  # not listed: unrestricted
    assert not scopes.allowed(md, scopes.PUBLISHING, "c", "t3")  # protected
    assert not scopes.allowed(md, scopes.PUBLISHING, "c", "t4")  # not allowed at all


def test_programmatic_subscriptions() -> None:
    subs = from_programmatic(
        [
            {"pubsubname": "ps", "topic": "a", "route": "/a", "deadLetterTopic": "dead"},
            {
                "pubsubname": "ps",
                "topic": "b",
                "routes": {"rules": [{"match": "x", "path": "/x"}], "default": "/d"},
            },
            {"pubsubname": "ps", "topic": "c"},  # no route: skipped
            "junk",
        ],
        "app",
    )
    assert [(s.topic, s.default_route, s.dead_letter_topic) for s in subs] == [
        ("a", "/a", "dead"),
        ("b", "/d", None),
    ]
    assert subs[1].describe()["rules"] == [{"match": "x", "path": "/x"}, {"path": "/d"}]
    assert subs[0].describe()["type"] == "PROGRAMMATIC"
    # A gRPC app's subscription may name no route: the empty path, as daprd gives it.
    (grpc_sub,) = from_programmatic([{"pubsubname": "ps", "topic": "c"}], "app", True)
    assert (grpc_sub.topic, grpc_sub.rules, grpc_sub.default_route) == ("c", (), "")


def test_bulk_statuses() -> None:
    body = json.dumps({"statuses": [{"entryId": "1", "status": "SUCCESS"},
                                    {"entryId": "2", "status": "drop"},
                                    {"entryId": "4", "status": "MAYBE"},
                                    {"entryId": "x", "status": "SUCCESS"}]}).encode()  # fmt: skip
    assert bulk_statuses(200, body, ["1", "2", "3", "4"]) == {
        "1": Outcome.SUCCESS, "2": Outcome.DROP, "3": Outcome.RETRY, "4": Outcome.RETRY,
    }  # fmt: skip
    assert bulk_statuses(404, b"", ["1"]) == {"1": Outcome.DROP}
    assert bulk_statuses(500, b"", ["1"]) == {"1": Outcome.RETRY}
    assert bulk_statuses(200, b"", ["1"]) == {"1": Outcome.SUCCESS}  # no statuses: all done
    assert bulk_statuses(200, b"not json", ["1"]) == {"1": Outcome.SUCCESS}


# --- the pipeline ------------------------------------------------------------------------------


class DeadLetters:
    """Stands in for the broker's `publish`, the only broker call a pipeline makes."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        self.published.append((topic, data))


class Attempts:
    """A `Policy`-like retry: up to `n` attempts."""

    def __init__(self, n: int) -> None:
        self.n = n

    async def call(self, fn: Any) -> Any:
        for attempt in range(self.n):
            try:
                return await fn()
            except Exception:
                if attempt == self.n - 1:
                    raise
        raise AssertionError


def _pipeline(answers: list[Any], dead_letter: str | None = None, n: int = 1) -> Any:
    sub = TopicSubscription("app", Kind.DECLARATIVE, "ps", "t", default_route="/in",
                            dead_letter_topic=dead_letter, where="test")  # fmt: skip
    broker = DeadLetters()
    calls: list[str] = []

    async def deliver(path: str, event: Mapping[str, Any]) -> Outcome:
        calls.append(path)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Outcome(answer)

    async def ready() -> None:
        return None

    policy = Attempts(n)
    pipeline = Pipeline(sub, Router((), "/in", "test"), broker, deliver, ready,  # type: ignore[arg-type]
                        lambda: policy)  # fmt: skip
    return pipeline, broker, calls


def _message() -> Message:
    return Message("m1", "t", json.dumps({"id": "e1", "data": 1}).encode(), {})


async def test_retry_until_success_under_the_policy() -> None:
    pipeline, broker, calls = _pipeline(["RETRY", "RETRY", "SUCCESS"], n=3)
    assert await pipeline.handle(_message()) is Outcome.SUCCESS
    assert calls == ["/in"] * 3 and broker.published == []


async def test_exhausted_retries_go_to_the_dead_letter_topic() -> None:
    pipeline, broker, _ = _pipeline(["RETRY", RuntimeError("app down")], "dead", n=2)
    assert await pipeline.handle(_message()) is Outcome.SUCCESS
    assert [t for t, _ in broker.published] == ["dead"]


async def test_exhausted_retries_without_dead_letter_go_back_to_the_broker() -> None:
    pipeline, broker, _ = _pipeline(["RETRY"])
    assert await pipeline.handle(_message()) is Outcome.RETRY
    assert broker.published == []


async def test_drop_acknowledges_and_dead_letters() -> None:
    pipeline, broker, _ = _pipeline(["DROP"], "dead")
    assert await pipeline.handle(_message()) is Outcome.DROP
    assert [t for t, _ in broker.published] == ["dead"]


async def test_gone_subscriber_is_not_dead_lettered() -> None:
    pipeline, broker, _ = _pipeline([SubscriberGone("closed")], "dead")
    assert await pipeline.handle(_message()) is Outcome.RETRY
    assert broker.published == []


@pytest.mark.parametrize(
    ("answers", "dead_letter", "outcome", "fate"),
    [
        (["SUCCESS"], None, Outcome.SUCCESS, "success"),
        (["DROP"], None, Outcome.DROP, "drop"),
        (["DROP"], "dead", Outcome.DROP, "dead_letter"),
        (["RETRY"], None, Outcome.RETRY, "retry"),
        (["RETRY"], "dead", Outcome.SUCCESS, "dead_letter"),
        ([SubscriberGone("closed")], "dead", Outcome.RETRY, "retry"),
    ],
)
async def test_each_message_is_counted_by_its_fate(
    answers: list[Any], dead_letter: str | None, outcome: Outcome, fate: str
) -> None:
    registry = Registry()
    pipeline, _, _ = _pipeline(answers, dead_letter)
    pipeline.meter = PubSubMetrics(registry).delivery("app", "ps", "t")
    assert await pipeline.handle(_message()) is outcome
    got = parse(registry.render())
    assert got.series("tether_pubsub_deliveries_total") == [
        {"app_id": "app", "pubsub": "ps", "topic": "t", "outcome": fate}
    ]
    assert got.total("tether_pubsub_deliveries_total") == 1
    assert got.total("tether_pubsub_delivery_duration_seconds_count") == 1


async def test_unrouted_and_expired_messages_are_counted_as_such() -> None:
    metrics = PubSubMetrics()
    sub = TopicSubscription("app", Kind.DECLARATIVE, "ps", "t", where="test")
    meter = metrics.delivery("app", "ps", "t")
    pipeline = Pipeline(sub, Router((), None, "test"), DeadLetters(), _never, _ready, meter=meter)  # type: ignore[arg-type]
    assert await pipeline.handle(_message()) is Outcome.SUCCESS
    expired = json.dumps({"id": "e2", "expiration": "2000-01-01T00:00:00Z"}).encode()
    assert await pipeline.handle(Message("m2", "t", expired, {})) is Outcome.DROP
    assert metrics.deliveries.labels("app", "ps", "t", "unrouted").value == 1
    assert metrics.deliveries.labels("app", "ps", "t", "expired").value == 1


async def _ready() -> None:
    return None


async def _never(path: str, event: Mapping[str, Any]) -> Outcome:
    raise AssertionError("nothing is delivered")
