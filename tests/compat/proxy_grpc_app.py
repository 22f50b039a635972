"""A plain gRPC app (no Dapr SDK) for the gRPC proxying suite: service `tether.test.Echo`.

Run as `python -m tests.compat.proxy_grpc_app PORT`. Its methods take and answer
`google.protobuf.StringValue`, served by a generic handler as generated servicers would be:

- `Unary`: a JSON report of the request, the metadata it got and its deadline; sends a header
  and a binary header first and a trailer with the answer.
- `ServerStream` (`"n"` or `"n:seconds"`): n messages `"0"` .. `"n-1"`, seconds apart.
- `ClientStream`: the values it got, joined with `,`.
- `Bidi`: each value upper-cased, answered as it arrives.
- `Fail`: a header, then NOT_FOUND with `google.rpc.ErrorInfo` details and a trailer.
- `Count` (unary or client streaming): counts calls per the first value and fails INTERNAL with
  `count=<n>`, or answers it after `Flaky`'s threshold (`"key:ok-after"`).
- `Hang`: records `started:<value>`, waits to be cancelled and records `cancelled:<value>`.
- `Events`: the recorded events as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.wrappers_pb2 import StringValue
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

SERVICE = "tether.test.Echo"
events: list[str] = []
counts: dict[str, int] = {}


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else f"bin:{value.hex()}"


async def unary(request: StringValue, context: grpc.aio.ServicerContext) -> StringValue:
    await context.send_initial_metadata((("x-app-header", "h"), ("x-app-bin", b"\x00\xff")))
    context.set_trailing_metadata((("x-app-trailer", "t"),))
    metadata: dict[str, list[str]] = {}
    for key, value in context.invocation_metadata() or ():
        metadata.setdefault(key, []).append(_text(value))
    report = {"got": request.value, "metadata": metadata, "deadline": context.time_remaining()}
    return StringValue(value=json.dumps(report))


async def server_stream(
    request: StringValue, context: grpc.aio.ServicerContext
) -> AsyncIterator[StringValue]:
    n, _, delay = request.value.partition(":")
    for i in range(int(n)):
        if i and delay:
            await asyncio.sleep(float(delay))
        yield StringValue(value=str(i))


async def client_stream(
    requests: AsyncIterator[StringValue], context: grpc.aio.ServicerContext
) -> StringValue:
    return StringValue(value=",".join([r.value async for r in requests]))


async def bidi(
    requests: AsyncIterator[StringValue], context: grpc.aio.ServicerContext
) -> AsyncIterator[StringValue]:
    async for request in requests:
        yield StringValue(value=request.value.upper())


async def fail(request: StringValue, context: grpc.aio.ServicerContext) -> StringValue:
    await context.send_initial_metadata((("x-app-header", "before-abort"),))
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="NO_SUCH_THING", domain="tether.test"))
    status = status_pb2.Status(
        code=grpc.StatusCode.NOT_FOUND.value[0], message=f"no {request.value}", details=[info]
    )
    # What `abort_with_status` sends, plus a trailer of the app's own.
    trailers = (*rpc_status.to_status(status).trailing_metadata, ("x-app-trailer", "t"))
    await context.abort(grpc.StatusCode.NOT_FOUND, status.message, trailers)
    raise AssertionError("unreachable")


async def count(
    requests: AsyncIterator[StringValue], context: grpc.aio.ServicerContext
) -> StringValue:
    values = [r.value async for r in requests]
    key, _, ok_after = (values[0] if values else "").partition(":")
    n = counts[key] = counts.get(key, 0) + 1
    if ok_after and n > int(ok_after):
        return StringValue(value=f"count={n}")
    await context.abort(grpc.StatusCode.INTERNAL, f"count={n}")
    raise AssertionError("unreachable")


async def hang(request: StringValue, context: grpc.aio.ServicerContext) -> StringValue:
    events.append(f"started:{request.value}")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        events.append(f"cancelled:{request.value}")
        raise
    return request


async def report(request: StringValue, context: grpc.aio.ServicerContext) -> StringValue:
    return StringValue(value=json.dumps(events))


def _handlers() -> dict[str, grpc.RpcMethodHandler]:
    de, ser = StringValue.FromString, StringValue.SerializeToString
    kinds: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "Unary": (grpc.unary_unary_rpc_method_handler, unary),
        "ServerStream": (grpc.unary_stream_rpc_method_handler, server_stream),
        "ClientStream": (grpc.stream_unary_rpc_method_handler, client_stream),
        "Bidi": (grpc.stream_stream_rpc_method_handler, bidi),
        "Fail": (grpc.unary_unary_rpc_method_handler, fail),
        "Count": (grpc.stream_unary_rpc_method_handler, count),
        "Hang": (grpc.unary_unary_rpc_method_handler, hang),
        "Events": (grpc.unary_unary_rpc_method_handler, report),
    }
    return {
        name: kind(fn, request_deserializer=de, response_serializer=ser)
        for name, (kind, fn) in kinds.items()
    }


async def main() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, _handlers()),))
    server.add_insecure_port(f"127.0.0.1:{int(sys.argv[1])}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
