"""Resiliency policies as the runtime applies them: retries, timeouts, circuit breakers."""

from __future__ import annotations

import asyncio
import time

import pytest

from tether.resources.resiliency import (
    CircuitBreakerPolicy,
    ComponentPolicies,
    Resiliency,
    RetryPolicy,
    TargetPolicies,
)
from tether.runtime.metrics import ResiliencyMetrics
from tether.runtime.resiliency import (
    AttemptTimedOut,
    BreakerOpen,
    Resiliencies,
    backoff,
    compile_trip,
)


class Flaky:
    def __init__(self, failures: int, delay: float = 0.0) -> None:
        self.failures, self.delay, self.calls = failures, delay, 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.calls <= self.failures:
            raise RuntimeError(f"failure {self.calls}")
        return "ok"


def resiliency(metrics: ResiliencyMetrics | None = None, **targets: TargetPolicies) -> Resiliencies:
    return Resiliencies(
        [
            Resiliency(
                name="r",
                timeouts={"short": 0.05},
                retries={
                    "three": RetryPolicy("constant", 0.01, 1.0, 3),
                    "forever": RetryPolicy("constant", 0.001, 1.0, -1),
                },
                circuit_breakers={
                    "cb": CircuitBreakerPolicy(
                        max_requests=1, interval=0, timeout=0.1, trip="consecutiveFailures >= 2"
                    ),
                },
                apps=dict(targets),
                components={"queue": ComponentPolicies(inbound=TargetPolicies(retry="three"))},
            )
        ],
        metrics,
    )


async def test_retries_then_succeeds_or_gives_up() -> None:
    policy = resiliency(a=TargetPolicies(retry="three")).policy_for_app("a")
    flaky = Flaky(3)
    assert await policy.call(flaky) == "ok" and flaky.calls == 4
    flaky = Flaky(10)
    with pytest.raises(RuntimeError, match="failure 4"):
        await policy.call(flaky)
    forever = resiliency(a=TargetPolicies(retry="forever")).policy_for_app("a")
    flaky = Flaky(50)
    assert await forever.call(flaky) == "ok" and flaky.calls == 51


async def test_a_final_failure_is_not_retried() -> None:
    policy = resiliency(a=TargetPolicies(retry="three")).policy_for_app("a")
    flaky = Flaky(10)
    with pytest.raises(RuntimeError, match="failure 2"):
        await policy.call(flaky, final=lambda exc: str(exc) == "failure 2")
    assert flaky.calls == 2


async def test_timeout_bounds_each_attempt() -> None:
    policy = resiliency(a=TargetPolicies(timeout="short", retry="three")).policy_for_app("a")
    slow = Flaky(0, delay=1.0)
    started = time.monotonic()
    with pytest.raises(AttemptTimedOut):
        await policy.call(slow)
    assert slow.calls == 4 and time.monotonic() - started < 0.8


async def test_breaker_opens_half_opens_and_closes() -> None:
    policies = resiliency(a=TargetPolicies(circuit_breaker="cb"))
    policy = policies.policy_for_app("a", "a:m")
    flaky = Flaky(2)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await policy.call(flaky)
    with pytest.raises(BreakerOpen):
        await policy.call(flaky)
    assert flaky.calls == 2
    # Breakers are per endpoint, and the same one is found again.
    assert await policies.policy_for_app("a", "a:other").call(Flaky(0)) == "ok"
    await asyncio.sleep(0.12)
    assert await policies.policy_for_app("a", "a:m").call(flaky) == "ok"
    assert policy.breaker is not None and policy.breaker.state == "closed"


async def test_retries_and_breakers_are_counted_per_target() -> None:
    metrics = ResiliencyMetrics()
    policies = resiliency(
        metrics, a=TargetPolicies(retry="three"), b=TargetPolicies(circuit_breaker="cb")
    )
    assert await policies.policy_for_app("a", "a:m").call(Flaky(2)) == "ok"
    assert await policies.policy_for_component("queue", "inbound").call(Flaky(1)) == "ok"
    assert metrics.retries.labels("app", "a").value == 2
    assert metrics.retries.labels("component_inbound", "queue").value == 1
    for endpoint in ("b:one", "b:two"):
        with pytest.raises(RuntimeError):
            await policies.policy_for_app("b", endpoint).call(Flaky(1))
    broken = policies.policy_for_app("b", "b:one")
    with pytest.raises(RuntimeError):
        await broken.call(Flaky(1))
    assert metrics.opened.labels("app", "b").value == 1
    assert policies.breaker_states() == {("app", "b", "open"): 1, ("app", "b", "closed"): 1}
    await asyncio.sleep(0.12)
    assert policies.breaker_states() == {("app", "b", "half-open"): 1, ("app", "b", "closed"): 1}


async def test_half_open_failure_reopens() -> None:
    policy = resiliency(a=TargetPolicies(circuit_breaker="cb")).policy_for_app("a")
    flaky = Flaky(3)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await policy.call(flaky)
    await asyncio.sleep(0.12)
    with pytest.raises(RuntimeError):
        await policy.call(flaky)  # the half-open probe fails
    with pytest.raises(BreakerOpen):
        await policy.call(flaky)


async def test_targets_and_defaults() -> None:
    policies = resiliency(a=TargetPolicies(retry="three"))
    assert policies.policy_for_app("unknown").empty
    assert policies.policy_for_component("queue", "inbound").retries
    assert policies.policy_for_component("queue", "outbound").empty
    defaults = Resiliencies(
        [Resiliency(name="d", retries={"DefaultAppRetryPolicy": RetryPolicy(max_retries=1)})]
    )
    assert defaults.policy_for_app("anyone").retries
    assert defaults.policy_for_component("queue", "inbound").empty


def test_trip_expressions_and_backoff() -> None:
    trip = compile_trip("consecutiveFailures > 3 && requests >= 5 || totalFailures == 10")
    counts = dict.fromkeys(
        ("requests", "totalSuccesses", "totalFailures", "consecutiveSuccesses",
         "consecutiveFailures"), 0,
    )  # fmt: skip
    assert not trip(counts)
    assert trip({**counts, "consecutiveFailures": 4, "requests": 5})
    assert trip({**counts, "totalFailures": 10})
    with pytest.raises(ValueError, match="unsupported trip"):
        compile_trip("failures > 3")
    with pytest.raises(ValueError):
        Resiliencies([Resiliency(name="x", circuit_breakers={"b": CircuitBreakerPolicy(trip="?")})])
    exp = RetryPolicy("exponential", 5.0, 2.0, 10)
    assert all(0.25 <= backoff(exp, 1) <= 0.75 for _ in range(20))
    assert backoff(exp, 30) <= 2.0
    assert backoff(RetryPolicy("constant", 0.2), 7) == 0.2
