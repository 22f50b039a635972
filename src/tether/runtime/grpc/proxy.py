"""gRPC proxying: a caller's own gRPC methods, forwarded to the app of the App ID it names.

Dapr's way to call a gRPC app through the sidecar: the client calls its own service's method
(`/helloworld.Greeter/SayHello`) on the runtime's gRPC port with `dapr-app-id: <target>`
metadata. `ProxyHandler` takes any method the port does not serve itself (the Dapr API, the
workflow sidecar) when that metadata is there, and forwards the call to the target's gRPC app
channel as raw bytes: the same method path, every message in both directions, the app's headers,
trailers, status code and details (rich error details included) unchanged. Unary, server-,
client- and bidirectional streaming calls are all one stream to it. Without `dapr-app-id` an
unknown method stays UNIMPLEMENTED.

As daprd (dapr/dapr pkg/messaging/grpc_proxy.go, pkg/api/grpc/proxy):

- The app gets the caller's metadata without `dapr-app-id` and the caller's `dapr-api-token`,
  plus `dapr-caller-app-id`, `dapr-callee-app-id`, a child `traceparent`, and the target's app
  token as `dapr-api-token` when it has one. The caller is who its API token says.
- The call is bounded by the caller's deadline; a cancelled or expired call cancels the app's.
- gRPC cannot tell a unary call from a stream on the wire, so a call counts as unary unless the
  caller sends `dapr-stream: true`. The target's resiliency policy (breakers per
  `<app>:<method>`) applies to unary calls whole: the timeout bounds the call, a status other
  than OK is a failure for the breaker and is retried while the call can be replayed (the
  caller sent one message and has nothing back yet; daprd fails a retried call that sends more,
  here such a call is just not retried). Streams are never timed out or retried; an open breaker
  refuses them and an app that cannot be reached counts against it.
- Errors: unknown App ID UNKNOWN, an App ID without a gRPC app or an unhealthy app UNAVAILABLE,
  a message past the caller's or the target's body limit RESOURCE_EXHAUSTED, an open breaker
  UNAVAILABLE, a resiliency timeout DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from tether import errors
from tether.runtime.api.invoke import CALLEE_HEADER, CALLER_HEADER, child_traceparent
from tether.runtime.appchannel_grpc import GrpcAppChannel
from tether.runtime.callers import TOKEN_HEADER
from tether.runtime.context import Runtime
from tether.runtime.grpc.registry import Meter, status
from tether.runtime.metrics import UNKNOWN_APP, invocation_outcome
from tether.runtime.resiliency import AttemptTimedOut, BreakerOpen, Policy

APP_ID_KEY = "dapr-app-id"
#: daprd's marker for a streaming call (pkg/api/grpc/proxy `StreamMetadataKey`).
STREAM_KEY = "dapr-stream"
#: The `route` of every proxied call in the API metrics.
PROXIED_ROUTE = "(proxied)"
_C = grpc.StatusCode
Metadata = Sequence[tuple[str, str | bytes]]
# Not passed to the app: routing and credentials (replaced by the runtime's own), and what the
# gRPC transport sets for each hop.
_DROPPED = frozenset(
    {APP_ID_KEY, TOKEN_HEADER, CALLER_HEADER, CALLEE_HEADER, "traceparent", "user-agent",
     "content-type", "te", "host", "accept-encoding"}
)  # fmt: skip
# The one reserved key an answer carries on: rich error details (google.rpc.Status).
_KEPT = frozenset({"grpc-status-details-bin"})


def _first(metadata: Metadata | None, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode(errors="replace")
    return None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "t", "y", "yes", "on")


def _passed(metadata: Metadata | None, keep: frozenset[str] = frozenset()) -> list[Any]:
    """Metadata a hop may carry on: gRPC's own keys (`:path`, `grpc-*`) stay behind."""
    return [(k, v) for k, v in metadata or () if k in keep or not k.startswith((":", "grpc-"))]


def app_metadata(metadata: Metadata | None, caller: str, target: str) -> list[tuple[str, Any]]:
    """What the app receives: the caller's metadata less its routing and credentials, with
    the runtime's caller, callee and trace context."""
    out: list[tuple[str, Any]] = [(k, v) for k, v in _passed(metadata) if k not in _DROPPED]
    parent = _first(metadata, "traceparent")
    out += [(CALLER_HEADER, caller), (CALLEE_HEADER, target),
            ("traceparent", child_traceparent(parent))]  # fmt: skip
    return out


@dataclass(slots=True)
class _Answer:
    """How the app ended one attempt."""

    code: Any
    details: str
    initial: list[Any]
    trailing: list[Any]


class _Failed(Exception):
    """An attempt the app ended with a status other than OK (a failure for the policy)."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(f"the app answered {answer.code.name}")
        self.answer = answer


class _Requests:
    """The caller's messages, read once (by one reader for the whole call, so that no attempt's
    end can lose one) and handed to each attempt in turn. The first message an attempt took is
    kept, so that a retry can send it again before what the caller sends next."""

    def __init__(self, context: grpc.aio.ServicerContext, limit: int) -> None:
        self._context = context
        self._limit = limit
        # A message, None for the caller's end of sending, or why the call must stop.
        self._queue: asyncio.Queue[bytes | errors.TetherError | None] = asyncio.Queue(1)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._kept: bytes | None = None
        self._taken = 0
        self._ended = False
        #: How many messages the caller has sent so far.
        self.count = 0

    @property
    def replayable(self) -> bool:
        """Whether another attempt could start over: the caller sent at most one message."""
        return self.count <= 1

    async def _read(self) -> None:
        while True:
            try:
                message = await self._context.read()
            except Exception:  # the caller's side broke off: nothing more will come
                message = grpc.aio.EOF
            if message is grpc.aio.EOF:
                await self._queue.put(None)
                return
            if len(message) > self._limit:
                size = len(message)
                await self._queue.put(errors.BodyTooLarge(
                    f"grpc: received message larger than max ({size} vs. {self._limit})"
                ))  # fmt: skip
                return
            self.count += 1
            await self._queue.put(message)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def feed(self, call: Any) -> None:
        """Write the caller's messages to `call` (the kept one first, on a retry) and close its
        sending side. Raises `BodyTooLarge`; stops quietly when the app's call has ended."""
        try:
            if self._kept is not None:
                await call.write(self._kept)
            while not self._ended:
                item = await self._queue.get()
                if item is None:
                    self._ended = True
                    break
                if isinstance(item, errors.TetherError):
                    raise item
                self._taken += 1
                self._kept = item if self._taken == 1 else None
                await call.write(item)
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the app's call is over; its status is the answer


def _refused(feeder: asyncio.Task[None]) -> BaseException | None:
    """Why the feeder stopped the call (a message past the limit), if it did."""
    if feeder.done() and not feeder.cancelled():
        return feeder.exception()
    return None


class _Call:
    """One proxied call: the caller's side (`context`) and the attempts at the app."""

    def __init__(
        self, context: grpc.aio.ServicerContext, method: str, channel: GrpcAppChannel,
        metadata: list[Any], requests: _Requests,
    ) -> None:  # fmt: skip
        self.context = context
        self.method = method
        self.channel = channel
        self.metadata = metadata
        self.requests = requests
        #: Whether anything (headers, a message) went back to the caller: no retry after that.
        self.replied = False

    async def _headers(self, metadata: Metadata | None) -> None:
        if not self.replied:
            self.replied = True
            await self.context.send_initial_metadata(_passed(metadata))

    async def attempt(self, timeout: float | None) -> _Answer:
        """Forward the caller's messages to the app and the app's answer back until the app
        ends the call; returns how it ended (raising nothing for a failed status)."""
        remaining = self.context.time_remaining()
        limits = [t for t in (timeout, remaining) if t is not None]
        call = self.channel.raw_call(self.method, self.metadata, min(limits) if limits else None)
        feeder = asyncio.get_running_loop().create_task(self.requests.feed(call))
        # A caller's message past the limit ends the app's call at once.
        feeder.add_done_callback(lambda t: _refused(t) is None or call.cancel())
        try:
            while True:
                try:
                    message = await call.read()
                except grpc.aio.AioRpcError:
                    break
                except asyncio.CancelledError:
                    # grpc raises this for a call cancelled here: when the feeder did that,
                    # this task goes on to report why.
                    task = asyncio.current_task()
                    if _refused(feeder) is None or (task is not None and task.cancelling()):
                        raise
                    break
                if message is grpc.aio.EOF:
                    break
                if not self.replied:
                    await self._headers(await call.initial_metadata())
                await self.context.write(message)
            refused = _refused(feeder)
            if refused is not None:
                raise refused
            return _Answer(
                code=await call.code(),
                details=await call.details() or "",
                initial=list(await call.initial_metadata() or ()),
                trailing=list(await call.trailing_metadata() or ()),
            )
        finally:
            # Cancelled, timed out, or the app ended early: nothing may outlive the attempt.
            call.cancel()
            if not feeder.done():
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder

    async def finish(self, answer: _Answer) -> None:
        """Give the caller the app's end of the call: headers not yet sent, trailers, status."""
        if answer.initial:
            await self._headers(answer.initial)
        self.context.set_trailing_metadata(_passed(answer.trailing, keep=_KEPT))
        if answer.code != _C.OK:
            self.context.set_code(answer.code)
            self.context.set_details(answer.details)

    async def unary(self, policy: Policy) -> _Answer:
        """The call under the whole policy: timeout, breaker, retries while replayable."""

        async def attempt() -> _Answer:
            answer = await self.attempt(policy.timeout)
            if answer.code != _C.OK:
                raise _Failed(answer)
            return answer

        def final(exc: Exception) -> bool:
            replayable = self.requests.replayable and not self.replied
            return isinstance(exc, errors.TetherError) or not replayable

        try:
            return await policy.call(attempt, final)
        except _Failed as failed:
            return failed.answer

    async def stream(self, policy: Policy) -> _Answer:
        """A `dapr-stream` call: only the breaker applies; failing to reach the app counts."""

        async def attempt() -> _Answer:
            answer = await self.attempt(None)
            if answer.code == _C.UNAVAILABLE and not self.replied:
                raise _Failed(answer)
            return answer

        try:
            return await Policy(policy.name, breaker=policy.breaker).call(attempt)
        except _Failed as failed:
            return failed.answer


class ProxyHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Serves any method carrying `dapr-app-id` by proxying it; consulted after the services
    the port implements, so it only ever sees methods they do not."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # Caller-chosen method names stay out of the API metrics too: one route for them all.
        self._meter = Meter(rt.metrics.api, "invoke", PROXIED_ROUTE)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        target = _first(details.invocation_metadata, APP_ID_KEY)
        if target is None:
            return None  # UNIMPLEMENTED, as for any unknown method
        method: str = details.method

        async def proxy(_requests: Any, context: grpc.aio.ServicerContext) -> None:
            start = time.perf_counter()
            failure: BaseException | None = None
            try:
                await self.proxy(method, target, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._meter.record(status(context, failure), time.perf_counter() - start)

        return grpc.stream_stream_rpc_method_handler(proxy)

    def _channel(self, target: str) -> GrpcAppChannel:
        apps = self.rt.apps
        if apps.get(target) is None:
            raise errors.ProxyAppNotFound(target, f"couldn't find service: {target}")
        channel = apps.channel(target)
        if not isinstance(channel, GrpcAppChannel):
            raise errors.ProxyAppNotGrpc(
                target, "the App ID has no gRPC app: register it with appProtocol grpc"
            )
        if not channel.healthy:
            raise errors.AppUnhealthy(target, "app is not in a healthy state")
        return channel

    async def proxy(self, method: str, target: str, context: grpc.aio.ServicerContext) -> None:
        start = time.perf_counter()
        outcome = "cancelled"
        try:
            answer = await self._forward(method, target, context)
            outcome = "success" if answer.code == _C.OK else "app_error"
        except errors.TetherError as exc:
            outcome = invocation_outcome(exc)
            await context.abort(exc.grpc_code, exc.message)
        except Exception as exc:
            outcome = invocation_outcome(exc)
            raise
        finally:
            # Method names are the caller's to choose: only the target is a label.
            app = target if self.rt.apps.get(target) is not None else UNKNOWN_APP
            self.rt.metrics.invocations.record(app, "proxy", outcome, time.perf_counter() - start)

    async def _forward(
        self, method: str, target: str, context: grpc.aio.ServicerContext
    ) -> _Answer:
        """Proxy the call and give the caller the app's answer; raises the `TetherError` the
        caller is to get instead."""
        rt = self.rt
        incoming = context.invocation_metadata()
        caller = rt.callers.for_grpc(context)
        channel = self._channel(target)
        requests = _Requests(context, min(rt.apps.max_body(caller), rt.apps.max_body(target)))
        call = _Call(context, method, channel, app_metadata(incoming, caller, target), requests)
        policy = rt.resiliency.policy_for_app(target, f"{target}:{method}")
        try:
            try:
                if policy.empty:
                    answer = await call.attempt(None)
                elif _truthy(_first(incoming, STREAM_KEY)):
                    answer = await call.stream(policy)
                else:
                    answer = await call.unary(policy)
            except BreakerOpen as exc:
                raise errors.CircuitOpen(target, str(exc)) from exc
            except AttemptTimedOut as exc:
                raise errors.InvokeTimedOut(target, str(exc)) from exc
            await call.finish(answer)
            return answer
        finally:
            await requests.close()


def add_proxy(server: grpc.aio.Server, rt: Runtime) -> None:
    """Register the proxy; add it after every service the port serves itself."""
    server.add_generic_rpc_handlers((ProxyHandler(rt),))
