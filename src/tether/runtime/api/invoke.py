"""Service invocation: a call from one App ID into another app, with resiliency applied.

As daprd: the callee receives the caller's headers plus `dapr-caller-app-id`,
`dapr-callee-app-id` and a `traceparent` (a child of the caller's, or a new trace), and the app
token as `dapr-api-token` when its App ID has one (never the caller's token). The app's status,
headers and body come back unchanged, and so does the type URL of a packed protobuf message
between gRPC callers and gRPC apps. Under a resiliency policy an answer outside 200-399 counts
as a failure: it is retried, counted by the circuit breaker and, when the retries run out,
returned to the caller as the app gave it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from tether import errors
from tether.runtime.apps import Apps
from tether.runtime.contracts import AppResponse
from tether.runtime.metrics import UNKNOWN_APP, InvocationMetrics, invocation_outcome
from tether.runtime.resiliency import AttemptTimedOut, BreakerOpen, Resiliencies

CALLER_HEADER = "dapr-caller-app-id"
CALLEE_HEADER = "dapr-callee-app-id"
# Never forwarded to the callee: the caller's credentials and Dapr's own routing headers.
_DROPPED = frozenset({"dapr-api-token", "dapr-app-id", CALLER_HEADER, CALLEE_HEADER})
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def child_traceparent(parent: str | None) -> str:
    """A W3C traceparent for the hop to the callee: same trace and flags, a new span."""
    span = secrets.token_hex(8)
    match = _TRACEPARENT.match((parent or "").strip().lower())
    if match is not None and match.group(2) != "0" * 32:
        return f"00-{match.group(2)}-{span}-{match.group(4)}"
    return f"00-{secrets.token_hex(16)}-{span}-01"


@dataclass(slots=True)
class Invocation:
    target: str
    method: str
    verb: str = "POST"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    #: The type URL of a gRPC caller's packed protobuf data.
    type_url: str = ""


class _FailedAnswer(Exception):
    """An app's answer that the resiliency policy treats as a failed attempt."""

    def __init__(self, response: AppResponse) -> None:
        super().__init__(f"the app answered {response.status}")
        self.response = response


class InvokeApi:
    def __init__(
        self, apps: Apps, resiliency: Resiliencies, metrics: InvocationMetrics | None = None
    ) -> None:
        self._apps = apps
        self._resiliency = resiliency
        self._metrics = metrics or InvocationMetrics()

    def body_limit(self, caller: str, target: str) -> int:
        """The largest request body `caller` may send to `target`: both App IDs' limits hold."""
        return min(self._apps.max_body(caller), self._apps.max_body(target))

    async def invoke(self, caller: str, call: Invocation) -> AppResponse:
        start = time.perf_counter()
        outcome = "error"
        try:
            response = await self._invoke(caller, call)
            outcome = "success" if 200 <= response.status <= 399 else "app_error"
            return response
        except BaseException as exc:
            outcome = invocation_outcome(exc)
            raise
        finally:
            target = call.target if self._apps.get(call.target) is not None else UNKNOWN_APP
            self._metrics.record(target, "invoke", outcome, time.perf_counter() - start)

    async def _invoke(self, caller: str, call: Invocation) -> AppResponse:
        target = call.target
        if not target:
            raise errors.DirectInvokeNoAppId(
                "failed getting app id either from the URL path or the header dapr-app-id"
            )
        if self._apps.get(target) is None:
            raise errors.DirectInvokeFailed(target, f"couldn't find service: {target}")
        channel = self._apps.channel(target)
        if channel is None:
            raise errors.DirectInvokeFailed(
                target, "app channel is not initialized: the App ID has no app endpoint"
            )
        if not channel.healthy:
            raise errors.AppUnhealthy(target, "app is not in a healthy state")
        limit = self.body_limit(caller, target)
        if len(call.body) > limit:
            raise errors.BodyTooLarge(f"request body exceeds {limit} bytes")
        headers = forwarded(call.headers, caller, target)
        method = call.method.lstrip("/")
        policy = self._resiliency.policy_for_app(target, f"{target}:{method}")
        if policy.empty:
            return await channel.invoke(method, call.verb, call.body, headers, call.query,
                                        type_url=call.type_url)  # fmt: skip

        async def attempt() -> AppResponse:
            response = await channel.invoke(method, call.verb, call.body, headers, call.query,
                                            type_url=call.type_url)  # fmt: skip
            if not 200 <= response.status <= 399:
                raise _FailedAnswer(response)
            return response

        try:
            return await policy.call(attempt)
        except _FailedAnswer as failed:
            return failed.response
        except BreakerOpen as exc:
            raise errors.CircuitOpen(target, str(exc)) from exc
        except AttemptTimedOut as exc:
            raise errors.InvokeTimedOut(target, str(exc)) from exc


def forwarded(headers: Mapping[str, str], caller: str, target: str) -> dict[str, str]:
    out = {k.lower(): v for k, v in headers.items() if k.lower() not in _DROPPED}
    out[CALLER_HEADER] = caller
    out[CALLEE_HEADER] = target
    out["traceparent"] = child_traceparent(out.get("traceparent"))
    return out
