"""`InvokeService` of the Dapr gRPC API: service invocation for gRPC callers.

daprd's answer when the callee is an HTTP app: a 2xx body becomes the response data; any other
status fails the call with the gRPC code daprd maps it to, the body as the message, and the
status in the `dapr-http-status` header. A gRPC app's own status passes through, and so do the
type URL and content type of its answer's data.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from dapr.proto.common.v1 import common_pb2
from google.protobuf import any_pb2

from tether.runtime.api.invoke import Invocation, InvokeApi
from tether.runtime.appchannel import HOP_BY_HOP
from tether.runtime.context import Runtime
from tether.runtime.grpc.workflows import mapped

_C = grpc.StatusCode
# dapr/dapr pkg/messaging/v1 CodeFromHTTPStatus.
_CODE_FROM_HTTP = {
    400: _C.INVALID_ARGUMENT, 401: _C.UNAUTHENTICATED, 403: _C.PERMISSION_DENIED,
    404: _C.NOT_FOUND, 408: _C.DEADLINE_EXCEEDED, 409: _C.ABORTED, 412: _C.FAILED_PRECONDITION,
    416: _C.OUT_OF_RANGE, 429: _C.RESOURCE_EXHAUSTED, 499: _C.CANCELLED, 500: _C.INTERNAL,
    501: _C.UNIMPLEMENTED, 503: _C.UNAVAILABLE, 504: _C.DEADLINE_EXCEEDED,
}  # fmt: skip
_CODES = {code.value[0]: code for code in _C}
_VERB_NAMES = common_pb2.HTTPExtension.Verb


def _metadata_headers(context: grpc.aio.ServicerContext) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str) and not key.startswith(":"):
            headers[key] = value
    return headers


def _response_metadata(headers: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (k.lower(), v)
        for k, v in headers.items()
        if k.lower() not in HOP_BY_HOP
        and k.lower() not in ("content-type", "content-encoding")
        and not k.lower().startswith(("grpc-", ":"))
        and v.isascii()
    ]


class InvokeRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    @mapped
    async def InvokeService(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        caller = self.rt.callers.for_grpc(context)
        message = request.message
        headers = _metadata_headers(context)
        if message.content_type:
            headers["content-type"] = message.content_type
        verb = message.http_extension.verb
        api = InvokeApi(self.rt.apps, self.rt.resiliency, self.rt.metrics.invocations)
        answer = await api.invoke(
            caller,
            Invocation(
                target=request.id,
                method=message.method,
                verb=_VERB_NAMES.Name(verb) if verb != _VERB_NAMES.NONE else "POST",
                body=bytes(message.data.value),
                headers=headers,
                query=message.http_extension.querystring,
                type_url=message.data.type_url,
            ),
        )
        cfg = self.rt.apps.get(request.id)
        metadata = _response_metadata(answer.headers)
        if cfg is not None and cfg.protocol == "http":
            metadata.append(("dapr-http-status", str(answer.status)))
        if 200 <= answer.status <= 299:
            await context.send_initial_metadata(metadata)
            return common_pb2.InvokeResponse(
                data=any_pb2.Any(type_url=answer.type_url, value=answer.body),
                content_type=answer.content_type,
            )
        code, text = _C.UNKNOWN, answer.body.decode(errors="replace")
        if cfg is not None and cfg.protocol == "grpc":
            # The gRPC channel reported the app's status as JSON: give it back as it was.
            try:
                status = json.loads(answer.body)
                code, text = _CODES.get(int(status["code"]), _C.UNKNOWN), str(status["message"])
            except (ValueError, KeyError, TypeError):
                pass
        else:
            code = _CODE_FROM_HTTP.get(answer.status, _C.INTERNAL if answer.status >= 500
                                       else _C.UNKNOWN)  # fmt: skip
        await context.send_initial_metadata(metadata)
        await context.abort(code, text)
