"""The `Resiliency` resource: named policies and the targets that use them.

Durations are seconds. Defaults are Dapr's (dapr/kit `retry.DefaultConfig`, `breaker`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tether.resources._fields import Node

#: Policy names Dapr defines itself; targets may name them without declaring them.
_BUILTIN_PREFIX = "DaprBuiltIn"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: `constant`: wait `duration` between attempts; `exponential`: back off up to `max_interval`.
    policy: Literal["constant", "exponential"] = "constant"
    duration: float = 5.0
    max_interval: float = 60.0
    #: -1 retries forever.
    max_retries: int = -1


@dataclass(frozen=True, slots=True)
class CircuitBreakerPolicy:
    #: Requests let through while half-open.
    max_requests: int = 1
    #: Cyclic period in which failure counts are cleared while closed; 0 never clears.
    interval: float = 0.0
    #: How long the breaker stays open before going half-open.
    timeout: float = 60.0
    #: When to open, e.g. `consecutiveFailures >= 5`.
    trip: str = "consecutiveFailures > 5"


@dataclass(frozen=True, slots=True)
class TargetPolicies:
    """Names of the policies applied to one target (None: not applied)."""

    timeout: str | None = None
    retry: str | None = None
    circuit_breaker: str | None = None


@dataclass(frozen=True, slots=True)
class ComponentPolicies:
    #: Calls from the runtime to the component (save state, publish).
    outbound: TargetPolicies | None = None
    #: Calls from the component into the app (pub/sub and binding deliveries).
    inbound: TargetPolicies | None = None


@dataclass(frozen=True, slots=True)
class Resiliency:
    name: str
    timeouts: dict[str, float] = field(default_factory=dict)
    retries: dict[str, RetryPolicy] = field(default_factory=dict)
    circuit_breakers: dict[str, CircuitBreakerPolicy] = field(default_factory=dict)
    #: Keyed by App ID (service invocation targets).
    apps: dict[str, TargetPolicies] = field(default_factory=dict)
    #: Keyed by component name.
    components: dict[str, ComponentPolicies] = field(default_factory=dict)
    scopes: tuple[str, ...] = ()
    source: str = ""


def parse_resiliency(doc: Node, name: str) -> Resiliency:
    spec = doc.require("spec")
    policies = spec.get("policies")
    timeouts: dict[str, float] = {}
    retries: dict[str, RetryPolicy] = {}
    breakers: dict[str, CircuitBreakerPolicy] = {}
    if policies is not None:
        section = policies.get("timeouts")
        for key, node in section.items() if section is not None else []:
            timeouts[key] = node.duration()
        section = policies.get("retries")
        for key, node in section.items() if section is not None else []:
            retries[key] = _retry(node)
        section = policies.get("circuitBreakers")
        for key, node in section.items() if section is not None else []:
            breakers[key] = _breaker(node)
    declared = {"timeout": set(timeouts), "retry": set(retries), "circuitBreaker": set(breakers)}
    apps: dict[str, TargetPolicies] = {}
    components: dict[str, ComponentPolicies] = {}
    targets = spec.get("targets")
    if targets is not None:
        section = targets.get("apps")
        for key, node in section.items() if section is not None else []:
            apps[key] = _target(node, declared)
        section = targets.get("components")
        for key, node in section.items() if section is not None else []:
            node.mapping()
            outbound, inbound = node.get("outbound"), node.get("inbound")
            components[key] = ComponentPolicies(
                outbound=_target(outbound, declared) if outbound is not None else None,
                inbound=_target(inbound, declared) if inbound is not None else None,
            )
    scopes = doc.get("scopes")
    return Resiliency(
        name=name,
        timeouts=timeouts,
        retries=retries,
        circuit_breakers=breakers,
        apps=apps,
        components=components,
        scopes=scopes.strings() if scopes is not None else (),
        source=doc.source,
    )


def _retry(node: Node) -> RetryPolicy:
    default = RetryPolicy()
    policy = node.get("policy")
    duration = node.get("duration")
    max_interval = node.get("maxInterval")
    max_retries = node.get("maxRetries")
    kind: Literal["constant", "exponential"] = "constant"
    if policy is not None and policy.choice("constant", "exponential") == "exponential":
        kind = "exponential"
    return RetryPolicy(
        policy=kind,
        duration=duration.duration() if duration is not None else default.duration,
        max_interval=max_interval.duration() if max_interval is not None else default.max_interval,
        max_retries=max_retries.integer(-1) if max_retries is not None else default.max_retries,
    )


def _breaker(node: Node) -> CircuitBreakerPolicy:
    default = CircuitBreakerPolicy()
    max_requests = node.get("maxRequests")
    interval = node.get("interval")
    timeout = node.get("timeout")
    trip = node.get("trip")
    return CircuitBreakerPolicy(
        max_requests=max_requests.integer(1) if max_requests is not None else default.max_requests,
        interval=interval.duration() if interval is not None else default.interval,
        timeout=timeout.duration() if timeout is not None else default.timeout,
        trip=trip.string() if trip is not None else default.trip,
    )


def _target(node: Node, declared: dict[str, set[str]]) -> TargetPolicies:
    names: dict[str, str | None] = {}
    for field_name, known in declared.items():
        ref = node.get(field_name)
        if ref is None:
            names[field_name] = None
            continue
        policy = ref.string()
        if policy not in known and not policy.startswith(_BUILTIN_PREFIX):
            listed = ", ".join(sorted(known)) or "none"
            ref.fail(f"unknown {field_name} policy '{policy}' (declared: {listed})")
        names[field_name] = policy
    return TargetPolicies(names["timeout"], names["retry"], names["circuitBreaker"])
