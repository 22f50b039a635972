"""The `Configuration` resource: the raw spec, with `accessControl` parsed and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tether.resources._fields import Node

Action = Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class OperationRule:
    """Allow or deny calls to `name` (a path, `/orders/*` style) with the given HTTP verbs."""

    name: str
    action: Action
    #: Upper-case verbs; `*` matches any.
    http_verbs: tuple[str, ...] = ("*",)


@dataclass(frozen=True, slots=True)
class AppPolicy:
    """What calls from App ID `app_id` may do; unmatched operations get `default_action`."""

    app_id: str
    default_action: Action
    trust_domain: str = "public"
    namespace: str = "default"
    operations: tuple[OperationRule, ...] = ()


@dataclass(frozen=True, slots=True)
class AccessControl:
    """`spec.accessControl`: callers without a policy get `default_action`."""

    default_action: Action = "allow"
    trust_domain: str = "public"
    policies: tuple[AppPolicy, ...] = ()

    def policy_for(self, app_id: str) -> AppPolicy | None:
        return next((p for p in self.policies if p.app_id == app_id), None)


@dataclass(frozen=True, slots=True)
class Configuration:
    name: str
    #: The whole `spec` as written (tracing, features, httpPipeline, ...).
    spec: dict[str, Any] = field(default_factory=dict)
    access_control: AccessControl | None = None
    source: str = ""


def parse_configuration(doc: Node, name: str) -> Configuration:
    spec_node = doc.get("spec")
    spec = spec_node.mapping() if spec_node is not None else {}
    access = spec_node.get("accessControl") if spec_node is not None else None
    return Configuration(
        name=name,
        spec=spec,
        access_control=_access_control(access) if access is not None else None,
        source=doc.source,
    )


def _action(node: Node | None, default: Action) -> Action:
    if node is None:
        return default
    return "allow" if node.choice("allow", "deny") == "allow" else "deny"


def _access_control(node: Node) -> AccessControl:
    default_action = _action(node.get("defaultAction"), "allow")
    trust = node.get("trustDomain")
    trust_domain = trust.string() if trust is not None else "public"
    policies: list[AppPolicy] = []
    seen: set[tuple[str, str]] = set()
    listed = node.get("policies")
    for entry in listed.elements() if listed is not None else []:
        app_id = entry.require("appId").string()
        namespace_node = entry.get("namespace")
        namespace = namespace_node.string() if namespace_node is not None else "default"
        if (app_id, namespace) in seen:
            entry.fail(f"duplicate policy for appId '{app_id}'")
        seen.add((app_id, namespace))
        domain = entry.get("trustDomain")
        operations = entry.get("operations")
        policies.append(
            AppPolicy(
                app_id=app_id,
                default_action=_action(entry.get("defaultAction"), default_action),
                trust_domain=domain.string() if domain is not None else trust_domain,
                namespace=namespace,
                operations=tuple(
                    _operation(op)
                    for op in (operations.elements() if operations is not None else [])
                ),
            )
        )
    return AccessControl(default_action, trust_domain, tuple(policies))


def _operation(node: Node) -> OperationRule:
    name = node.require("name").string()
    verbs = node.get("httpVerb")
    return OperationRule(
        name=name,
        action=_action(node.require("action"), "deny"),
        http_verbs=tuple(v.upper() for v in verbs.strings()) if verbs is not None else ("*",),
    )
