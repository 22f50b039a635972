"""Which app path an event goes to: a subscription's CEL rules, tried in order, then its default.

Rules are compiled once, when a subscription is (re)started, so a syntax error is reported then,
with the subscription's name and file, and never per message. Evaluation follows daprd
(`pkg/runtime/subscription`): `event` is the CloudEvent as a map, the first rule whose
expression yields `true` wins, a non-boolean result is no match, and an evaluation error fails
the delivery (dead-lettered if the subscription has a dead-letter topic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tether.resources.subscription import RouteRule


class RouteInvalid(Exception):
    """A rule that does not compile; the message names the subscription and the rule."""


class RouteFailed(Exception):
    """A rule's expression failed on one event (a missing field, a type mismatch)."""


def _short(exc: BaseException) -> str:
    # celpy puts the whole activation into some messages; the first line of the first argument
    # is what a person needs.
    first = exc.args[0] if exc.args else exc
    text = str(first).strip()
    return text if len(text) <= 300 else text[:300] + "..."


@dataclass(frozen=True, slots=True)
class _Compiled:
    match: str
    path: str
    program: Any | None  # a celpy Runner, or None for a rule that always matches


class Router:
    """Compiled rules of one subscription. Raises `RouteInvalid` when a rule does not compile."""

    def __init__(self, rules: Sequence[RouteRule], default: str | None, where: str) -> None:
        self.where = where
        compiled: list[_Compiled] = []
        env: Any = None
        for index, rule in enumerate(rules):
            if not rule.match.strip():
                compiled.append(_Compiled(rule.match, rule.path, None))
                continue
            if env is None:
                env = _environment(where)
            try:
                program = env.program(env.compile(rule.match))
            except Exception as exc:  # celpy raises its own parse and compile errors
                raise RouteInvalid(
                    f"{where}: routes.rules[{index}].match {rule.match!r} is not a valid CEL "
                    f"expression: {_short(exc)}"
                ) from exc
            compiled.append(_Compiled(rule.match, rule.path, program))
        if default is not None:  # "" too: a gRPC app's topic-only subscription
            compiled.append(_Compiled("", default, None))
        self._rules = tuple(compiled)

    @property
    def has_routes(self) -> bool:
        return bool(self._rules)

    def route(self, event: Mapping[str, Any]) -> str | None:
        """The path for `event`, or None when no rule matches and there is no default."""
        activation: dict[str, Any] | None = None
        for rule in self._rules:
            if rule.program is None:
                return rule.path
            if activation is None:
                activation = {"event": _to_cel(event)}
            try:
                result = rule.program.evaluate(activation)
            except Exception as exc:
                raise RouteFailed(f"{self.where}: rule {rule.match!r}: {_short(exc)}") from exc
            if isinstance(result, Exception):  # celpy may return errors as values
                raise RouteFailed(f"{self.where}: rule {rule.match!r}: {_short(result)}")
            if _is_true(result):
                return rule.path
        return None


def _environment(where: str) -> Any:
    try:
        import celpy
    except ImportError as exc:
        raise RouteInvalid(
            f"{where}: routing rules need the CEL package: pip install 'tether[cel]'"
        ) from exc
    return celpy.Environment()


def _is_true(result: Any) -> bool:
    from celpy.celtypes import BoolType

    return isinstance(result, BoolType | bool) and bool(result)


def _to_cel(event: Mapping[str, Any]) -> Any:
    from celpy.adapter import json_to_cel

    return json_to_cel(dict(event))
