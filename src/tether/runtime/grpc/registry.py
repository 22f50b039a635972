"""Serving a generated gRPC service so that bad calls get clear answers, not tracebacks.

The generated `add_<Service>Servicer_to_server` helpers leave two kinds of bad call to grpc's
defaults, which log a traceback as an error and answer with little to go on: bytes that do not
parse as the request message (INTERNAL), and methods the servicer does not implement (the
generated base class raises). Registered with `serve_service` instead, a request that does not
parse is answered INVALID_ARGUMENT naming the message type, and a method nobody implements
UNIMPLEMENTED naming the method; neither is an error of the server, so neither is logged as one.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError

_C = grpc.StatusCode


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


def _guarded(fn: Callable[..., Any], method: MethodDescriptor) -> Callable[..., Any]:
    """`fn` with malformed requests refused before it sees them. The wrapper is of `fn`'s kind
    (async generator or coroutine function): grpc.aio serves the two differently."""

    async def first(arg: Any, context: grpc.aio.ServicerContext) -> Any:
        if method.client_streaming:
            return _checked(arg, context)
        await _refuse(context, arg)
        return arg

    if inspect.isasyncgenfunction(fn):

        async def stream(arg: Any, context: grpc.aio.ServicerContext) -> Any:
            async for item in fn(await first(arg, context), context):
                yield item

        return stream

    async def call(arg: Any, context: grpc.aio.ServicerContext) -> Any:
        return await fn(await first(arg, context), context)

    return call


_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def serve_service(
    server: grpc.aio.Server, service: ServiceDescriptor, servicer: Any, base: type
) -> None:
    """Serve every method of `service` on `server`: `servicer`'s where it overrides the generated
    `base`, UNIMPLEMENTED elsewhere."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        ours = getattr(type(servicer), method.name, None)
        if ours is None or ours is getattr(base, method.name, None):
            fn = _unimplemented(method.full_name, method.server_streaming)
        else:
            fn = _guarded(getattr(servicer, method.name), method)
        kind = _KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(
            fn,
            request_deserializer=_lenient(request_cls),
            response_serializer=response_cls.SerializeToString,
        )
    generic = grpc.method_handlers_generic_handler(service.full_name, handlers)
    server.add_generic_rpc_handlers((generic,))
