"""Serving a generated gRPC service so that bad calls get clear answers, not tracebacks.

The generated `add_<Service>Servicer_to_server` helpers leave two kinds of bad call to grpc's
defaults, which log a traceback as an error and answer with little to go on: bytes that do not
parse as the request message (INTERNAL), and methods the servicer does not implement (the
generated base class raises). Registered with `serve_service` instead, a request that does not
parse is answered INVALID_ARGUMENT naming the message type, and a method nobody implements
UNIMPLEMENTED naming the method; neither is an error of the server, so neither is logged as one.

Every method is also counted and timed here (`ApiMetrics`), by the status it ended with: the
one place every RPC of the Dapr service and the workflow sidecar goes through.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError

from tether.metrics import CounterSeries, HistogramSeries
from tether.runtime.metrics import ApiMetrics

_C = grpc.StatusCode
_clock = time.perf_counter


class _Malformed:
    """What a request that does not parse becomes, so that the handler can refuse it."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _lenient(cls: Any) -> Callable[[bytes], Any]:
    name = cls.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return _Malformed(f"the request is not a valid {name} message: {exc}")

    return parse


async def _refuse(context: grpc.aio.ServicerContext, request: Any) -> None:
    if isinstance(request, _Malformed):
        await context.abort(_C.INVALID_ARGUMENT, request.message)


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
    async for request in requests:
        await _refuse(context, request)
        yield request


def _unimplemented(full_name: str, streams_out: bool) -> Callable[..., Any]:
    message = f"{full_name} is not implemented by this server"
    if streams_out:

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(_C.UNIMPLEMENTED, message)
            yield  # pragma: no cover - abort raises

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(_C.UNIMPLEMENTED, message)

    return unary


class Meter:
    """Counts and times the calls of one method by their status (`ApiMetrics`)."""

    __slots__ = ("_api", "_metrics", "_route", "_series")

    def __init__(self, metrics: ApiMetrics, api: str, route: str) -> None:
        self._metrics = metrics
        self._api = api
        self._route = route
        self._series: dict[grpc.StatusCode, tuple[CounterSeries, HistogramSeries]] = {}

    def record(self, code: grpc.StatusCode, seconds: float) -> None:
        series = self._series.get(code)
        if series is None:
            series = self._metrics.series("grpc", self._api, self._route, code.name)
            self._series[code] = series
        series[0].inc()
        series[1].observe(seconds)


def status(context: grpc.aio.ServicerContext, failure: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with: what the handler set (`abort`, `set_code`), else what
    grpc answers for how it ended."""
    code: grpc.StatusCode | None = context.code()
    if code is not None:
        return code
    if failure is None:
        return _C.OK
    if isinstance(failure, asyncio.CancelledError | GeneratorExit):
        return _C.CANCELLED
    return _C.UNKNOWN


def _guarded(
    fn: Callable[..., Any], method: MethodDescriptor, meter: Meter, check: bool = True
) -> Callable[..., Any]:
    """`fn` measured, with malformed requests refused before it sees them when `check`. The
    wrapper is of `fn`'s kind (async generator or coroutine function): grpc.aio serves the two
    differently."""

    async def first(arg: Any, context: grpc.aio.ServicerContext) -> Any:
        if not check:
            return arg
        if method.client_streaming:
            return _checked(arg, context)
        await _refuse(context, arg)
        return arg

    if inspect.isasyncgenfunction(fn):

        async def stream(arg: Any, context: grpc.aio.ServicerContext) -> Any:
            start = _clock()
            failure: BaseException | None = None
            try:
                async for item in fn(await first(arg, context), context):
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                meter.record(status(context, failure), _clock() - start)

        return stream

    async def call(arg: Any, context: grpc.aio.ServicerContext) -> Any:
        start = _clock()
        failure: BaseException | None = None
        try:
            return await fn(await first(arg, context), context)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            meter.record(status(context, failure), _clock() - start)

    return call


_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def serve_service(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    servicer: Any,
    base: type,
    metrics: ApiMetrics | None = None,
    api: Callable[[str], str] | str = "other",
) -> None:
    """Serve every method of `service` on `server`: `servicer`'s where it overrides the generated
    `base`, UNIMPLEMENTED elsewhere. Every call is counted and timed in `metrics`, as the
    building block `api` names (a method name's, when it is a function)."""
    metrics = metrics or ApiMetrics()
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        block = api if isinstance(api, str) else api(method.name)
        meter = Meter(metrics, block, f"/{service.full_name}/{method.name}")
        ours = getattr(type(servicer), method.name, None)
        if ours is None or ours is getattr(base, method.name, None):
            fn = _unimplemented(method.full_name, method.server_streaming)
            fn = _guarded(fn, method, meter, check=False)
        else:
            fn = _guarded(getattr(servicer, method.name), method, meter)
        kind = _KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(
            fn,
            request_deserializer=_lenient(request_cls),
            response_serializer=response_cls.SerializeToString,
        )
    generic = grpc.method_handlers_generic_handler(service.full_name, handlers)
    server.add_generic_rpc_handlers((generic,))
