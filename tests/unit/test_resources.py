"""Loading Dapr resource YAML: models, validation messages, durations, hot reload."""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tether.errors import ResourceInvalid
from tether.resources.component import ComponentSpec
from tether.resources.component_resource import MetadataItem, SecretKeyRef, resolve_secrets
from tether.resources.duration import format_duration, parse_duration
from tether.resources.loader import ResourceSet, load
from tether.resources.resiliency import RetryPolicy, TargetPolicies
from tether.resources.subscription import BulkSubscribe, RouteRule
from tether.resources.watch import ResourceWatcher

REDIS = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
  - name: redisPassword
    secretKeyRef:
      name: redis-secret
      key: password
  - name: actorStateStore
    value: true
  - name: ttlInSeconds
    value: 60
auth:
  secretStore: localsecrets
scopes: [orders, checkout]
"""

SUBSCRIPTION = """
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - match: event.type == "order.created"
      path: /orders/created
    default: /orders
  deadLetterTopic: poison
  bulkSubscribe:
    enabled: true
    maxMessagesCount: 50
  metadata:
    rawPayload: true
scopes: [orders]
"""

RESILIENCY = """
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: policies
spec:
  policies:
    timeouts:
      general: 5s
      slow: 1m30s
      bare: 250
    retries:
      retryForever:
        policy: exponential
        maxInterval: 15s
        maxRetries: -1
      important:
        policy: constant
        duration: 500ms
        maxRetries: 3
    circuitBreakers:
      simpleCB:
        maxRequests: 1
        timeout: 30s
        trip: consecutiveFailures >= 5
  targets:
    apps:
      checkout:
        timeout: general
        retry: important
        circuitBreaker: simpleCB
    components:
      statestore:
        outbound:
          timeout: slow
          retry: retryForever
      pubsub:
        inbound:
          retry: important
"""

CONFIGURATION = """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: appconfig
spec:
  tracing:
    samplingRate: "1"
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: checkout
      defaultAction: allow
      operations:
      - name: /admin/*
        httpVerb: [post, GET]
        action: deny
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def invalid(folder: Path, text: str, name: str = "bad.yaml") -> str:
    write(folder, name, text)
    with pytest.raises(ResourceInvalid) as raised:
        load(folder)
    return raised.value.message


@pytest.fixture
def components(tmp_path: Path) -> Path:
    return tmp_path / "components"


# --- loading ----------------------------------------------------------------------------------


def test_loads_every_kind_from_a_folder(components: Path) -> None:
    write(components, "redis.yaml", REDIS)
    write(components, "subscription.yml", SUBSCRIPTION)
    write(components, "resiliency.yaml", RESILIENCY)
    write(components, "config.yaml", CONFIGURATION)
    write(components, "README.md", "not yaml")
    loaded = load(components)

    (store,) = loaded.components
    assert store.name == "statestore" and store.type == "state.redis" and store.version == "v1"
    assert store.scopes == ("orders", "checkout")
    assert store.secret_store == "localsecrets"
    assert store.source == "components/redis.yaml"
    assert store.metadata == (
        MetadataItem("redisHost", "localhost:6379"),
        MetadataItem("redisPassword", secret_ref=SecretKeyRef("redis-secret", "password")),
        MetadataItem("actorStateStore", "true"),
        MetadataItem("ttlInSeconds", "60"),
    )

    (sub,) = loaded.subscriptions
    assert (sub.pubsubname, sub.topic, sub.default_route) == ("pubsub", "orders", "/orders")
    assert sub.rules == (RouteRule('event.type == "order.created"', "/orders/created"),)
    assert sub.dead_letter_topic == "poison"
    assert sub.bulk_subscribe == BulkSubscribe(True, 50, 1000)
    assert sub.metadata == {"rawPayload": "true"} and sub.scopes == ("orders",)

    (res,) = loaded.resiliencies
    assert res.timeouts == {"general": 5.0, "slow": 90.0, "bare": 0.25}
    assert res.retries["retryForever"] == RetryPolicy("exponential", 5.0, 15.0, -1)
    assert res.retries["important"] == RetryPolicy("constant", 0.5, 60.0, 3)
    breaker = res.circuit_breakers["simpleCB"]
    assert (breaker.max_requests, breaker.timeout, breaker.trip) == (
        1,
        30.0,
        "consecutiveFailures >= 5",
    )
    assert res.apps["checkout"] == TargetPolicies("general", "important", "simpleCB")
    assert res.components["statestore"].outbound == TargetPolicies("slow", "retryForever", None)
    assert res.components["statestore"].inbound is None
    assert res.components["pubsub"].inbound == TargetPolicies(None, "important", None)

    config = loaded.configuration("appconfig")
    assert config is not None and config.spec["tracing"] == {"samplingRate": "1"}
    access = config.access_control
    assert access is not None and access.default_action == "deny"
    policy = access.policy_for("checkout")
    assert policy is not None and policy.default_action == "allow"
    (op,) = policy.operations
    assert (op.name, op.http_verbs, op.action) == ("/admin/*", ("POST", "GET"), "deny")
    assert loaded.warnings == ()


def test_multi_document_files(components: Path) -> None:
    second = REDIS.replace("name: statestore", "name: cache")
    write(components, "all.yaml", f"---\n{REDIS}\n---\n{SUBSCRIPTION}\n---\n{second}\n---\n")
    loaded = load(components)
    assert [c.name for c in loaded.components] == ["statestore", "cache"]
    assert loaded.components[1].source == "components/all.yaml#3"
    assert len(loaded.subscriptions) == 1


def test_v1alpha1_subscription_route(components: Path) -> None:
    write(
        components,
        "sub.yaml",
        """
        apiVersion: dapr.io/v1alpha1
        kind: Subscription
        metadata: {name: old}
        spec: {pubsubname: pubsub, topic: t, route: /t}
        """,
    )
    (sub,) = load(components).subscriptions
    assert sub.default_route == "/t" and sub.rules == () and sub.route_paths() == ("/t",)


def test_unknown_kinds_are_reported_and_skipped(
    components: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(components, "redis.yaml", REDIS)
    write(
        components,
        "other.yaml",
        """
        apiVersion: dapr.io/v1alpha1
        kind: HTTPEndpoint
        metadata: {name: ext}
        spec: {baseUrl: http://example.invalid}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        """,
    )
    with caplog.at_level(logging.WARNING, logger="tether.resources"):
        loaded = load(components)
    assert len(loaded.components) == 1
    assert loaded.warnings == (
        "components/other.yaml#1: kind 'HTTPEndpoint' is not served (only Component, "
        "Subscription, Resiliency, Configuration); skipped",
        "components/other.yaml#2: apps/v1 Deployment is not a Dapr resource; skipped",
    )
    assert [r.getMessage() for r in caplog.records] == list(loaded.warnings)


def test_component_spec_and_scopes(components: Path) -> None:
    write(
        components,
        "mem.yaml",
        """
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata: {name: mem}
        spec:
          type: state.in-memory
          version: v1
          metadata: [{name: ttlInSeconds, value: "5"}]
        scopes: [a]
        """,
    )
    (mem,) = load(components).components
    assert mem.spec() == ComponentSpec(
        "mem", "state.in-memory", "v1", {"ttlInSeconds": "5"}, ("a",), "components/mem.yaml"
    )
    assert mem.spec().allows("a") and not mem.spec().allows("b")


async def test_resolve_secrets(components: Path) -> None:
    write(components, "redis.yaml", REDIS)
    (store,) = load(components).components
    with pytest.raises(ResourceInvalid):
        store.spec()
    seen: list[tuple[str, str, str]] = []

    async def lookup(secret_store: str, name: str, key: str) -> str:
        seen.append((secret_store, name, key))
        return "s3cret"

    spec = await resolve_secrets(store, lookup)
    assert seen == [("localsecrets", "redis-secret", "password")]
    assert spec.metadata["redisPassword"] == "s3cret"
    assert spec.get("REDISHOST") == "localhost:6379"
    assert spec.scopes == ("orders", "checkout") and spec.source == "components/redis.yaml"


async def test_secret_reference_without_a_secret_store(components: Path) -> None:
    write(components, "redis.yaml", REDIS.replace("auth:\n  secretStore: localsecrets\n", ""))
    (store,) = load(components).components

    async def lookup(secret_store: str, name: str, key: str) -> str:
        return f"{secret_store}/{name}/{key}"

    with pytest.raises(ResourceInvalid, match=r"redis.yaml: spec.metadata\[1\].secretKeyRef"):
        await resolve_secrets(store, lookup)
    spec = await resolve_secrets(store, lookup, default_store="vault")
    assert spec.metadata["redisPassword"] == "vault/redis-secret/password"


# --- validation messages ------------------------------------------------------------------------

COMPONENT_HEAD = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: redis
"""


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            """
            spec:
              type: state.redis
              metadata:
              - {name: a, value: "1"}
              - {name: b, value: "2"}
              - {value: "3"}
            """,
            "components/bad.yaml: spec.metadata[2]: missing 'name'",
        ),
        ("spec: {version: v1}", "components/bad.yaml: spec: missing 'type'"),
        ("", "components/bad.yaml: missing 'spec'"),
        ("spec: {type: redis}", "components/bad.yaml: spec.type: expected '<building block>."),
        (
            "spec: {type: [state.redis]}",
            "components/bad.yaml: spec.type: expected a string, got a list",
        ),
        (
            "spec: {type: state.redis, metadata: {name: a}}",
            "components/bad.yaml: spec.metadata: expected a list, got a mapping",
        ),
        (
            "spec: {type: state.redis, metadata: [{name: a, value: x, secretKeyRef: {name: s}}]}",
            "components/bad.yaml: spec.metadata[0]: metadata 'a' has both 'value' and "
            "'secretKeyRef'",
        ),
        (
            "spec: {type: state.redis, metadata: [{name: a, secretKeyRef: {key: k}}]}",
            "components/bad.yaml: spec.metadata[0].secretKeyRef: missing 'name'",
        ),
        (
            "spec: {type: state.redis, metadata: [{name: Host, value: a}, {name: host, value: b}]}",
            "components/bad.yaml: spec.metadata[1]: duplicate metadata 'host' "
            "(also spec.metadata[0])",
        ),
        (
            "spec: {type: state.redis}\nscopes: orders",
            "components/bad.yaml: scopes: expected a list, got a string",
        ),
        (
            "spec: {type: state.redis, initTimeout: soon}",
            "components/bad.yaml: spec.initTimeout: invalid duration 'soon'",
        ),
    ],
)
def test_component_errors_name_file_and_field(components: Path, spec: str, message: str) -> None:
    text = textwrap.dedent(COMPONENT_HEAD) + textwrap.dedent(spec)
    assert invalid(components, text).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "components/bad.yaml: expected a resource"),
        ("kind: Component\n", "components/bad.yaml: missing 'apiVersion'"),
        (
            "apiVersion: dapr.io/v2alpha1\nkind: Component\nmetadata: {name: x}\n",
            "components/bad.yaml: apiVersion: Component must be dapr.io/v1alpha1, got "
            "'dapr.io/v2alpha1'",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {}\n",
            "components/bad.yaml: metadata: missing 'name'",
        ),
        ("a: [unclosed\n", "components/bad.yaml: line 2: invalid YAML"),
        (
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n"
            "spec: {pubsubname: p, topic: t}\n",
            "components/bad.yaml: spec: no route",
        ),
        (
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n"
            "spec: {pubsubname: p, topic: t, routes: {rules: [{match: x}]}}\n",
            "components/bad.yaml: spec.routes.rules[0]: missing 'path'",
        ),
        (
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n"
            "spec: {pubsubname: p, topic: t, route: /a, bulkSubscribe: {maxMessagesCount: 0}}\n",
            "components/bad.yaml: spec.bulkSubscribe.maxMessagesCount: must be at least 1, got 0",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n"
            "spec: {policies: {timeouts: {t: 5 seconds}}}\n",
            "components/bad.yaml: spec.policies.timeouts.t: invalid duration '5 seconds'",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n"
            "spec: {policies: {retries: {r: {policy: linear}}}}\n",
            "components/bad.yaml: spec.policies.retries.r.policy: expected one of constant, "
            "exponential, got 'linear'",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n"
            "spec: {policies: {timeouts: {t: 1s}}, targets: {components: {db: {outbound: "
            "{timeout: t, retry: nope}}}}}\n",
            "components/bad.yaml: spec.targets.components.db.outbound.retry: unknown retry "
            "policy 'nope' (declared: none)",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\n"
            "spec: {accessControl: {defaultAction: maybe}}\n",
            "components/bad.yaml: spec.accessControl.defaultAction: expected one of allow, deny",
        ),
    ],
)
def test_document_errors_name_file_and_field(components: Path, text: str, message: str) -> None:
    assert invalid(components, text).startswith(message)


def test_duplicate_names_name_both_files(components: Path) -> None:
    write(components, "a.yaml", REDIS)
    message = invalid(components, REDIS, name="b.yaml")
    assert message == (
        "components/b.yaml: Component 'statestore' is already defined in components/a.yaml"
    )


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResourceInvalid, match="no such file or folder"):
        load(tmp_path / "nope")


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h2m3.5s", 3723.5),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("10ns", 1e-8),
        ("0", 0.0),
        ("-2s", -2.0),
        ("+.5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "5 s", "1d", "5s3", "--1s", "1.2.3s", "+"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(90, "1m30s"), (0.5, "500ms"), (3600, "1h"), (0, "0s"), (5.25, "5.25s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


# --- hot reload ---------------------------------------------------------------------------------


async def eventually(probe: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s")
        await asyncio.sleep(0.02)


def touch_later(path: Path, text: str) -> None:
    """Rewrite `path` with a new mtime even on filesystems with coarse timestamps."""
    before = path.stat().st_mtime_ns
    path.write_text(textwrap.dedent(text))
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


async def test_hot_reload(components: Path, caplog: pytest.LogCaptureFixture) -> None:
    redis = write(components, "redis.yaml", REDIS)
    received: list[ResourceSet] = []

    async def on_change(resources: ResourceSet) -> None:
        received.append(resources)

    watcher = ResourceWatcher(components, on_change, interval=0.02)
    first = await watcher.start()
    try:
        assert [c.name for c in first.components] == ["statestore"]

        # An edit reaches the callback.
        touch_later(redis, REDIS.replace("localhost:6379", "redis:6380"))
        await eventually(lambda: len(received) == 1)
        assert received[0].components[0].metadata[0] == MetadataItem("redisHost", "redis:6380")
        assert watcher.current is received[0]

        # A new file too.
        write(components, "sub.yaml", SUBSCRIPTION)
        await eventually(lambda: len(received) == 2)
        assert [s.name for s in received[1].subscriptions] == ["orders"]

        # A broken file keeps the previous set and says why.
        with caplog.at_level(logging.ERROR, logger="tether.resources"):
            touch_later(redis, REDIS.replace("  - name: redisHost\n", "  - nam: redisHost\n"))
            await eventually(lambda: watcher.last_error is not None)
        assert "components/redis.yaml: spec.metadata[0]: missing 'name'" in caplog.text
        assert watcher.current is received[1] and len(received) == 2

        # Fixing it reloads again; touching without changes does not call back.
        touch_later(redis, REDIS)
        await eventually(lambda: len(received) == 3)
        assert watcher.last_error is None
        assert received[2].components[0].metadata[0].value == "localhost:6379"
        touch_later(redis, REDIS)
        await asyncio.sleep(0.2)
        assert len(received) == 3

        # Deleting a file is a change as well.
        (components / "sub.yaml").unlink()
        await eventually(lambda: len(received) == 4)
        assert received[3].subscriptions == ()
    finally:
        await watcher.stop()


async def test_watcher_start_fails_on_a_broken_folder(components: Path) -> None:
    write(components, "bad.yaml", "kind: Component\n")

    async def on_change(resources: ResourceSet) -> None:
        raise AssertionError("not called")

    watcher = ResourceWatcher(components, on_change)
    with pytest.raises(ResourceInvalid, match="missing 'apiVersion'"):
        await watcher.start()
    await watcher.stop()


async def test_a_failing_callback_does_not_stop_the_watcher(components: Path) -> None:
    redis = write(components, "redis.yaml", REDIS)
    calls: list[int] = []

    async def on_change(resources: ResourceSet) -> None:
        calls.append(len(resources.components))
        raise RuntimeError("boom")

    watcher = ResourceWatcher(components, on_change, interval=3600)
    await watcher.start()
    try:
        touch_later(redis, REDIS.replace("statestore", "s2"))
        assert await watcher.poll() is True
        write(components, "more.yaml", REDIS.replace("statestore", "s3"))
        assert await watcher.poll() is True
        assert await watcher.poll() is False  # nothing changed since
        assert calls == [1, 2]
    finally:
        await watcher.stop()
