"""Resiliency policies in force: timeouts, retries and circuit breakers, per target.

Built from the `Resiliency` resources (`resources.resiliency`) and swapped whole by `apply`, so a
reload never leaves a half-updated set. A target's `Policy` wraps one operation:

    policy = rt.resiliency.policy_for_app("orders", "orders:checkout")
    result = await policy.call(lambda: channel.invoke(...))

Each attempt runs under the timeout; a failed attempt (an exception) counts against the circuit
breaker and is retried per the retry policy. An open breaker fails the call without attempting it
and is never retried. Semantics follow daprd (dapr/dapr pkg/resiliency, dapr/kit retry, sony
gobreaker): the timeout bounds each attempt, exponential backoff starts at 500 ms and grows 1.5x
with jitter up to `maxInterval`, breakers are kept per target endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from tether.metrics import CounterSeries
from tether.resources.resiliency import (
    CircuitBreakerPolicy,
    Resiliency,
    RetryPolicy,
    TargetPolicies,
)
from tether.runtime.metrics import ResiliencyMetrics

log = logging.getLogger("tether.resiliency")
T = TypeVar("T")
Direction = Literal["inbound", "outbound"]

# dapr/kit retry defaults for the exponential policy.
_INITIAL_INTERVAL = 0.5
_MULTIPLIER = 1.5
_RANDOMIZATION = 0.5

# Policies applied to targets that have none of their own, by daprd's well-known names (the
# specific name wins over the generic one).
_DEFAULTS = {
    "app": ("DefaultApp{}Policy", "Default{}Policy"),
    "inbound": ("DefaultComponentInbound{}Policy", "DefaultComponent{}Policy", "Default{}Policy"),
    "outbound": ("DefaultComponentOutbound{}Policy", "DefaultComponent{}Policy", "Default{}Policy"),
}


class BreakerOpen(Exception):
    """The circuit breaker refused the call: open, or half-open with its probes in flight."""


class AttemptTimedOut(Exception):
    """One attempt exceeded the policy's timeout."""


# --- circuit breaker ---------------------------------------------------------------------------

_TRIP_TERM = re.compile(
    r"^\s*(requests|totalSuccesses|totalFailures|consecutiveSuccesses|consecutiveFailures)"
    r"\s*(>=|<=|==|!=|>|<)\s*(\d+)\s*$"
)
_OPS: dict[str, Callable[[int, int], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def compile_trip(expr: str) -> Callable[[dict[str, int]], bool]:
    """The subset of CEL Dapr users write in `trip`: comparisons joined by `&&` and `||`.

    Raises ValueError for anything else, so a bad resource is reported when it is applied.
    """
    alternatives: list[list[tuple[str, str, int]]] = []
    for alternative in expr.split("||"):
        terms = []
        for term in alternative.split("&&"):
            match = _TRIP_TERM.match(term.strip().strip("()"))
            if match is None:
                raise ValueError(
                    f"unsupported trip expression {expr!r}: use comparisons of requests, "
                    "totalSuccesses, totalFailures, consecutiveSuccesses or consecutiveFailures "
                    "with a number, joined by && or ||"
                )
            terms.append((match.group(1), match.group(2), int(match.group(3))))
        alternatives.append(terms)

    def trip(counts: dict[str, int]) -> bool:
        return any(all(_OPS[op](counts[k], n) for k, op, n in terms) for terms in alternatives)

    return trip


@dataclass
class CircuitBreaker:
    """gobreaker's state machine: closed -> open -> half-open -> closed (or open again)."""

    name: str
    spec: CircuitBreakerPolicy
    trip: Callable[[dict[str, int]], bool]
    state: Literal["closed", "open", "half-open"] = "closed"
    counts: dict[str, int] = field(default_factory=dict)
    #: Counts the times it opened (metrics).
    opened: CounterSeries | None = None
    _opened_at: float = 0.0
    _cleared_at: float = field(default_factory=time.monotonic)
    _in_flight: int = 0

    def __post_init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.counts = dict.fromkeys(
            ("requests", "totalSuccesses", "totalFailures", "consecutiveSuccesses",
             "consecutiveFailures"), 0,
        )  # fmt: skip
        self._cleared_at = time.monotonic()

    def _refresh(self) -> None:
        now = time.monotonic()
        if self.state == "open" and now - self._opened_at >= self.spec.timeout:
            self._move("half-open")
        elif (
            self.state == "closed"
            and self.spec.interval > 0
            and now - self._cleared_at >= self.spec.interval
        ):
            self._clear()

    def _move(self, state: Literal["closed", "open", "half-open"]) -> None:
        log.info("circuit breaker %s: %s -> %s", self.name, self.state, state)
        self.state = state
        self._in_flight = 0
        self._clear()
        if state == "open":
            self._opened_at = time.monotonic()
            if self.opened is not None:
                self.opened.inc()

    def current(self) -> str:
        """The state now: an open breaker whose timeout passed is half-open."""
        self._refresh()
        return self.state

    def before(self) -> None:
        self._refresh()
        if self.state == "open":
            raise BreakerOpen(f"circuit breaker {self.name} is open")
        if self.state == "half-open" and self._in_flight >= self.spec.max_requests:
            raise BreakerOpen(f"circuit breaker {self.name} is half-open: too many requests")
        self._in_flight += 1
        self.counts["requests"] += 1

    def after(self, ok: bool) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        c = self.counts
        if ok:
            c["totalSuccesses"] += 1
            c["consecutiveSuccesses"] += 1
            c["consecutiveFailures"] = 0
            if self.state == "half-open" and c["consecutiveSuccesses"] >= self.spec.max_requests:
                self._move("closed")
            return
        c["totalFailures"] += 1
        c["consecutiveFailures"] += 1
        c["consecutiveSuccesses"] = 0
        if self.state == "half-open" or (self.state == "closed" and self.trip(c)):
            self._move("open")


# --- retries -----------------------------------------------------------------------------------


def backoff(spec: RetryPolicy, attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1-based)."""
    if spec.policy == "constant":
        return spec.duration
    interval = min(_INITIAL_INTERVAL * _MULTIPLIER ** (attempt - 1), spec.max_interval)
    delta = _RANDOMIZATION * interval
    return min(random.uniform(interval - delta, interval + delta), spec.max_interval)


# --- policies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What applies to one target. `call` with no timeout, retry or breaker just calls."""

    name: str = ""
    timeout: float | None = None
    retry: RetryPolicy | None = None
    breaker: CircuitBreaker | None = None
    #: Counts the retries made (metrics).
    retried: CounterSeries | None = None

    @property
    def empty(self) -> bool:
        return self.timeout is None and self.retry is None and self.breaker is None

    @property
    def retries(self) -> bool:
        return self.retry is not None and self.retry.max_retries != 0

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        final: Callable[[Exception], bool] | None = None,
    ) -> T:
        """Run `fn` under the policy; raises its last exception, `BreakerOpen` or
        `AttemptTimedOut` when it finally fails. A failed attempt for which `final(exc)` is
        true still counts against the breaker but is not retried."""
        attempt = 0
        while True:
            try:
                return await self._attempt(fn)
            except BreakerOpen:
                raise
            except Exception as exc:
                attempt += 1
                spec = self.retry
                if spec is None or (spec.max_retries >= 0 and attempt > spec.max_retries):
                    raise
                if final is not None and final(exc):
                    raise
                delay = backoff(spec, attempt)
                if self.retried is not None:
                    self.retried.inc()
                log.debug("%s: attempt %d failed (%s); retrying in %.3fs", self.name, attempt,
                          exc, delay)  # fmt: skip
                await asyncio.sleep(delay)

    async def _attempt(self, fn: Callable[[], Awaitable[T]]) -> T:
        if self.breaker is not None:
            self.breaker.before()
        ok = False
        try:
            if self.timeout is None:
                result = await fn()
            else:
                try:
                    result = await asyncio.wait_for(fn(), self.timeout)
                except TimeoutError as exc:
                    raise AttemptTimedOut(f"timed out after {self.timeout:g}s") from exc
            ok = True
            return result
        finally:
            if self.breaker is not None:
                self.breaker.after(ok)


NO_POLICY = Policy()


class Resiliencies:
    """The policies in force, looked up per target. Breakers live as long as their resource."""

    def __init__(
        self, resources: Sequence[Resiliency] = (), metrics: ResiliencyMetrics | None = None
    ) -> None:
        self._resources: tuple[Resiliency, ...] = ()
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._metrics = metrics or ResiliencyMetrics()
        self.apply(resources)

    def apply(self, resources: Sequence[Resiliency]) -> None:
        """Replace the policies with those of `resources` (all `Resiliency` documents loaded).

        Breakers whose resource and policy did not change keep their state. Raises ValueError
        when a circuit breaker's `trip` cannot be understood.
        """
        for res in resources:
            for name, spec in res.circuit_breakers.items():
                try:
                    compile_trip(spec.trip)
                except ValueError as exc:
                    raise ValueError(f"{res.source}: circuitBreakers.{name}: {exc}") from exc
        if tuple(resources) != self._resources:
            self._resources = tuple(resources)
            self._breakers.clear()

    def _lookup(
        self, kind: str, names: Callable[[Resiliency], TargetPolicies | None]
    ) -> tuple[Resiliency, TargetPolicies] | None:
        for res in self._resources:
            target = names(res)
            if target is not None:
                return res, target
        # No resource names the target: fall back to daprd's default policy names.
        for res in self._resources:
            found = {
                what: next(
                    (
                        pattern.format(what)
                        for pattern in _DEFAULTS[kind]
                        if pattern.format(what) in pool
                    ),
                    None,
                )
                for what, pool in (
                    ("Timeout", res.timeouts),
                    ("Retry", res.retries),
                    ("CircuitBreaker", res.circuit_breakers),
                )
            }
            if any(found.values()):
                return res, TargetPolicies(
                    found["Timeout"], found["Retry"], found["CircuitBreaker"]
                )
        return None

    def _build(
        self, res: Resiliency, target: TargetPolicies, key: str, scope: str, labels: tuple[str, str]
    ) -> Policy:
        breaker = None
        if target.circuit_breaker and target.circuit_breaker in res.circuit_breakers:
            spec = res.circuit_breakers[target.circuit_breaker]
            breaker = self._breakers.get((key, scope))
            if breaker is None or breaker.spec != spec:
                opened = self._metrics.opened.labels(*labels)
                breaker = CircuitBreaker(scope, spec, compile_trip(spec.trip), opened=opened)
                self._breakers[(key, scope)] = breaker
        retry = res.retries.get(target.retry) if target.retry else None
        return Policy(
            name=scope,
            timeout=res.timeouts.get(target.timeout) if target.timeout else None,
            retry=retry,
            breaker=breaker,
            retried=self._metrics.retries.labels(*labels) if retry is not None else None,
        )

    def breaker_states(self) -> dict[tuple[str, ...], float]:
        """How many breakers are in each state, per (kind, target, state): breakers are kept
        per endpoint (`<app>:<method>`, which callers choose), so they are counted per
        policy target instead of listed."""
        out: dict[tuple[str, ...], float] = {}
        for (key, scope), breaker in self._breakers.items():
            labels = (*_labels(key, scope), breaker.current())
            out[labels] = out.get(labels, 0.0) + 1.0
        return out

    def policy_for_app(self, app_id: str, endpoint: str | None = None) -> Policy:
        """The policy for calls into `app_id`; breakers are kept per `endpoint` (daprd uses
        `<app>:<method>`), or per App ID when none is given."""
        found = self._lookup("app", lambda r: r.apps.get(app_id))
        if found is None:
            return NO_POLICY
        return self._build(*found, "app:" + app_id, endpoint or app_id, ("app", app_id))

    def policy_for_component(self, name: str, direction: Direction) -> Policy:
        """The policy for calls to component `name` (`outbound`) or from it into the app
        (`inbound`: pub/sub and input binding deliveries)."""

        def pick(res: Resiliency) -> TargetPolicies | None:
            comp = res.components.get(name)
            return None if comp is None else getattr(comp, direction)

        found = self._lookup(direction, pick)
        if found is None:
            return NO_POLICY
        return self._build(*found, f"component:{direction}", name, (f"component_{direction}", name))


def _labels(key: str, scope: str) -> tuple[str, str]:
    """The metric labels (kind, target) of a breaker's `_breakers` key."""
    kind, _, rest = key.partition(":")
    if kind == "app":
        return "app", rest
    return f"component_{rest}", scope


def apply_resiliency(target: Resiliencies, policies: Sequence[Resiliency]) -> None:
    """What the component host calls after (re)loading resources: `rt.resiliency` is the target."""
    target.apply(policies)
