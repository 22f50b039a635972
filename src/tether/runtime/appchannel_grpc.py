"""Calls from the runtime into an app over gRPC: the `AppCallback` services apps implement.

As daprd (dapr/dapr pkg/channel/grpc): an invocation becomes `OnInvoke` with the HTTP verb and
query in `http_extension` and the headers as metadata; the data's type URL passes through both
ways; a gRPC failure comes back as the HTTP status daprd maps its code to, with the status as
JSON. Jobs go to the stable `OnJobEvent` and, for apps that only implement it, to
`OnJobEventAlpha1`.

Bulk pub/sub batches go to `OnBulkTopicEvent`, then `OnBulkTopicEventAlpha1` (what daprd calls);
an app that implements neither gets the batch's events one by one through `OnTopicEvent`. The
channel remembers which RPC the app answers, so an app without bulk support costs the failed
probes once, not on every batch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2, appcallback_pb2_grpc
from google.protobuf import any_pb2, empty_pb2, struct_pb2

from tether import errors
from tether.config import AppConfig
from tether.runtime.appchannel import (
    DROP,
    HOP_BY_HOP,
    RETRY,
    SUCCESS,
    TOKEN_HEADER,
    HealthChecked,
    HealthMonitor,
)
from tether.runtime.contracts import AppResponse, BulkBatch, BulkEntry

log = logging.getLogger("tether.appchannel")

_C = grpc.StatusCode
# dapr/dapr pkg/messaging/v1 HTTPStatusFromCode.
HTTP_FROM_GRPC = {
    _C.OK: 200, _C.CANCELLED: 499, _C.UNKNOWN: 500, _C.INVALID_ARGUMENT: 400,
    _C.DEADLINE_EXCEEDED: 504, _C.NOT_FOUND: 404, _C.ALREADY_EXISTS: 409,
    _C.PERMISSION_DENIED: 403, _C.UNAUTHENTICATED: 401, _C.RESOURCE_EXHAUSTED: 429,
    _C.FAILED_PRECONDITION: 400, _C.ABORTED: 409, _C.OUT_OF_RANGE: 400,
    _C.UNIMPLEMENTED: 501, _C.INTERNAL: 500, _C.UNAVAILABLE: 503, _C.DATA_LOSS: 500,
}  # fmt: skip
_VERBS = common_pb2.HTTPExtension.Verb
_STATUS = appcallback_pb2.TopicEventResponse.TopicEventResponseStatus
# Metadata gRPC itself owns or forbids.
_RESERVED = frozenset({"content-type", "user-agent", "accept-encoding", "grpc-timeout"})
# CloudEvent attributes that have their own TopicEventRequest field.
_CE_FIELDS = frozenset(
    {"id", "source", "type", "specversion", "datacontenttype", "data", "data_base64", "topic",
     "pubsubname"}
)  # fmt: skip


def _metadata(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    out = []
    for key, value in headers.items():
        k = key.lower()
        if k in HOP_BY_HOP or k in _RESERVED or k.startswith((":", "grpc-")) or k == TOKEN_HEADER:
            continue
        if k.endswith("-bin"):
            continue  # binary metadata must be bytes; text from HTTP headers is not
        out.append((k, value))
    return out


def _event_data(envelope: Mapping[str, Any]) -> bytes:
    """The payload bytes of a CloudEvent, as daprd hands them to gRPC subscribers."""
    if "data_base64" in envelope:
        return base64.b64decode(str(envelope["data_base64"]))
    data = envelope.get("data")
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data, separators=(",", ":")).encode()


def _extensions(envelope: Mapping[str, Any]) -> struct_pb2.Struct:
    """The CloudEvent's attributes that have no field of their own on the gRPC request."""
    extensions = struct_pb2.Struct()
    for key, value in envelope.items():
        if key not in _CE_FIELDS:
            try:
                extensions.update({key: value})
            except (ValueError, TypeError):
                extensions.update({key: str(value)})
    return extensions


def _bulk_entry(entry: BulkEntry, raw: bool) -> appcallback_pb2.TopicEventBulkRequestEntry:
    """daprd's entry for one event: the payload bytes for raw subscriptions, else the CloudEvent
    with its data as bytes."""
    event = entry.event
    if raw:
        return appcallback_pb2.TopicEventBulkRequestEntry(
            entry_id=entry.entry_id,
            bytes=_event_data(event),
            content_type=str(event.get("datacontenttype") or "application/octet-stream"),
        )
    return appcallback_pb2.TopicEventBulkRequestEntry(
        entry_id=entry.entry_id,
        cloud_event=appcallback_pb2.TopicEventCERequest(
            id=str(event.get("id", "")),
            source=str(event.get("source", "")),
            type=str(event.get("type", "")),
            spec_version=str(event.get("specversion", "")),
            data_content_type=str(event.get("datacontenttype", "")),
            data=_event_data(event),
            extensions=_extensions(event),
        ),
        content_type="application/cloudevents+json",
    )


def _bulk_statuses(response: Any, ids: list[str]) -> dict[str, str]:
    """Per-entry verdicts from a `TopicEventBulkResponse`; as daprd, an entry the app did not
    answer for, or answered with an unknown status, is retried, and unknown ids are ignored."""
    words = {_STATUS.SUCCESS: SUCCESS, _STATUS.RETRY: RETRY, _STATUS.DROP: DROP}
    found = {s.entry_id: words.get(s.status, RETRY) for s in response.statuses}
    return {i: found.get(i, RETRY) for i in ids}


class GrpcAppChannel(HealthChecked):
    """An app reached over gRPC on `<address>:<port>` (plaintext, like daprd's local channel)."""

    routes_optional = True

    def __init__(self, cfg: AppConfig) -> None:
        self.app_id = cfg.app_id
        self.config = cfg
        self.target = f"{cfg.address}:{cfg.port}"
        limit = cfg.max_body_bytes or 16 * 1024 * 1024
        self._channel = grpc.aio.insecure_channel(
            self.target,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        self._app = appcallback_pb2_grpc.AppCallbackStub(self._channel)  # type: ignore[no-untyped-call]
        self._alpha = appcallback_pb2_grpc.AppCallbackAlphaStub(self._channel)  # type: ignore[no-untyped-call]
        self._health = appcallback_pb2_grpc.AppCallbackHealthCheckStub(self._channel)  # type: ignore[no-untyped-call]
        self.health = HealthMonitor(cfg.app_id, cfg.health, self._probe)
        #: The bulk RPCs still worth trying, best first; the ones the app turned out not to
        #: implement are removed, so each is probed once per channel.
        self._bulk_rpcs: list[tuple[str, Callable[..., Awaitable[Any]]]] = [
            ("OnBulkTopicEvent", self._app.OnBulkTopicEvent),
            ("OnBulkTopicEventAlpha1", self._alpha.OnBulkTopicEventAlpha1),
        ]

    async def _close(self) -> None:
        await self._channel.close()

    def _md(self, headers: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        md = _metadata(headers or {})
        if self.config.app_token:
            md.append((TOKEN_HEADER, self.config.app_token))
        return md

    def raw_call(self, method: str, metadata: Sequence[tuple[str, str | bytes]],
                 timeout: float | None) -> Any:  # fmt: skip
        """A `grpc.aio.StreamStreamCall` of any `method` (`/pkg.Service/Method`) on the app,
        messages as raw bytes, with `metadata` as given plus the app token: gRPC proxying."""
        md = [*metadata]
        if self.config.app_token:
            md.append((TOKEN_HEADER, self.config.app_token))
        return self._channel.stream_stream(method)(metadata=md, timeout=timeout)

    async def _probe(self, timeout: float) -> bool:
        await self._health.HealthCheck(empty_pb2.Empty(), metadata=self._md(), timeout=timeout)
        return True

    def _unreachable(self, exc: grpc.aio.AioRpcError) -> errors.TetherError:
        if exc.code() == _C.DEADLINE_EXCEEDED:
            return errors.InvokeTimedOut(self.app_id, f"the app did not answer: {exc.details()}")
        return errors.DirectInvokeFailed(
            self.app_id, f"cannot reach the app at {self.target}: {exc.details()}"
        )

    async def invoke(
        self,
        method: str,
        verb: str,
        body: bytes,
        headers: Mapping[str, str],
        query: str = "",
        timeout: float | None = None,
        type_url: str = "",
    ) -> AppResponse:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        request = common_pb2.InvokeRequest(
            method=method.lstrip("/"),
            data=any_pb2.Any(type_url=type_url, value=body),
            content_type=content_type,
            http_extension=common_pb2.HTTPExtension(
                verb=_VERBS.Value(verb.upper()) if verb.upper() in _VERBS.keys() else _VERBS.POST,  # noqa: SIM118
                querystring=query,
            ),
        )
        call = self._app.OnInvoke(request, metadata=self._md(headers), timeout=timeout)
        try:
            response = await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() == _C.UNAVAILABLE or (
                exc.code() == _C.DEADLINE_EXCEEDED and timeout is not None
            ):
                raise self._unreachable(exc) from exc
            status = HTTP_FROM_GRPC.get(exc.code(), 500)
            body_json = {"code": exc.code().value[0], "message": exc.details() or "", "details": []}
            return AppResponse(
                status=status,
                body=json.dumps(body_json).encode(),
                headers=_headers(exc.initial_metadata()),
                content_type="application/json",
            )
        initial = await call.initial_metadata()
        return AppResponse(
            status=200,
            body=bytes(response.data.value),
            headers=_headers(initial),
            content_type=response.content_type,
            type_url=response.data.type_url,
        )

    async def subscriptions(self) -> list[dict[str, Any]]:
        try:
            listed = await self._app.ListTopicSubscriptions(empty_pb2.Empty(), metadata=self._md())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == _C.UNIMPLEMENTED:
                return []
            raise self._unreachable(exc) from exc
        out: list[dict[str, Any]] = []
        for sub in listed.subscriptions:
            entry: dict[str, Any] = {
                "pubsubname": sub.pubsub_name,
                "topic": sub.topic,
                "metadata": dict(sub.metadata),
                "routes": {
                    "rules": [{"match": r.match, "path": r.path} for r in sub.routes.rules],
                    "default": sub.routes.default,
                },
            }
            if sub.dead_letter_topic:
                entry["deadLetterTopic"] = sub.dead_letter_topic
            if sub.HasField("bulk_subscribe"):
                entry["bulkSubscribe"] = {
                    "enabled": sub.bulk_subscribe.enabled,
                    "maxMessagesCount": sub.bulk_subscribe.max_messages_count,
                    "maxAwaitDurationMs": sub.bulk_subscribe.max_await_duration_ms,
                }
            out.append(entry)
        return out

    async def deliver_event(
        self, route: str, envelope: Mapping[str, Any], raw: bytes, headers: Mapping[str, str]
    ) -> str:
        status = await self._topic_event(route, envelope, headers)
        if status is None:
            # daprd: the app does not handle this topic; retrying cannot help.
            log.warning("app %s does not implement topic %s: dropping the event",
                        self.app_id, envelope.get("topic", ""))  # fmt: skip
            return DROP
        return status

    async def _topic_event(
        self, route: str, envelope: Mapping[str, Any], headers: Mapping[str, str]
    ) -> str | None:
        """`OnTopicEvent`: SUCCESS, RETRY or DROP, or None when the app answers UNIMPLEMENTED."""
        request = appcallback_pb2.TopicEventRequest(
            id=str(envelope.get("id", "")),
            source=str(envelope.get("source", "")),
            type=str(envelope.get("type", "")),
            spec_version=str(envelope.get("specversion", "")),
            data_content_type=str(envelope.get("datacontenttype", "")),
            data=_event_data(envelope),
            topic=str(envelope.get("topic", "")),
            pubsub_name=str(envelope.get("pubsubname", "")),
            path=route,
            extensions=_extensions(envelope),
        )
        try:
            response = await self._app.OnTopicEvent(request, metadata=self._md(headers))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == _C.UNIMPLEMENTED:
                return None
            log.warning("pub/sub delivery to %s failed: %s", self.app_id, exc.details())
            return RETRY
        return {_STATUS.SUCCESS: SUCCESS, _STATUS.DROP: DROP}.get(response.status, RETRY)

    async def deliver_bulk(self, batch: BulkBatch, headers: Mapping[str, str]) -> dict[str, str]:
        ids = [e.entry_id for e in batch.entries]
        request = appcallback_pb2.TopicEventBulkRequest(
            id=batch.id,
            entries=[_bulk_entry(e, batch.raw) for e in batch.entries],
            topic=batch.topic,
            pubsub_name=batch.pubsub,
            type=batch.type,
            path=batch.path,
        )
        unimplemented: list[str] = []
        for name, rpc in list(self._bulk_rpcs):
            try:
                response = await rpc(request, metadata=self._md(headers))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == _C.UNIMPLEMENTED:
                    unimplemented.append(name)
                    continue
                log.warning("bulk pub/sub delivery to %s failed: %s", self.app_id, exc.details())
                return dict.fromkeys(ids, RETRY)
            self._skip_bulk(unimplemented)  # a later RPC answered: the earlier ones are missing
            return _bulk_statuses(response, ids)
        # No bulk RPC took the batch: one event at a time. UNIMPLEMENTED for every event too
        # means the app does not handle this topic at all (all dropped, as daprd), not that it
        # lacks the bulk RPCs, so only an app that handled some event is marked as lacking them.
        answers = await asyncio.gather(
            *(self._topic_event(batch.path, e.event, e.headers) for e in batch.entries)
        )
        if any(answer is not None for answer in answers):
            self._skip_bulk(unimplemented)
        else:
            log.warning("app %s does not implement topic %s: dropping %d events",
                        self.app_id, batch.topic, len(ids))  # fmt: skip
        return {i: answer or DROP for i, answer in zip(ids, answers, strict=True)}

    def _skip_bulk(self, names: list[str]) -> None:
        if names:
            log.info("app %s does not implement %s; not asked again",
                     self.app_id, ", ".join(names))  # fmt: skip
            self._bulk_rpcs = [(n, rpc) for n, rpc in self._bulk_rpcs if n not in names]

    async def binding_subscribed(self, name: str) -> bool:
        try:
            listed = await self._app.ListInputBindings(empty_pb2.Empty(), metadata=self._md())
        except grpc.aio.AioRpcError:
            return False
        return name in listed.bindings

    async def deliver_binding(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        request = appcallback_pb2.BindingEventRequest(name=name, data=data, metadata=metadata)
        try:
            await self._app.OnBindingEvent(request, metadata=self._md())
        except grpc.aio.AioRpcError as exc:
            log.warning("binding %s delivery to %s failed: %s", name, self.app_id, exc.details())
            return False
        return True

    async def deliver_job(self, name: str, data: Any) -> bool:
        payload = data if isinstance(data, any_pb2.Any) else any_pb2.Any()
        request = appcallback_pb2.JobEventRequest(
            name=name,
            data=payload,
            method=f"job/{name}",
            content_type=payload.type_url,
            http_extension=common_pb2.HTTPExtension(verb=_VERBS.POST),
        )
        try:
            try:
                await self._app.OnJobEvent(request, metadata=self._md())
            except grpc.aio.AioRpcError as exc:
                if exc.code() != _C.UNIMPLEMENTED:
                    raise
                await self._alpha.OnJobEventAlpha1(request, metadata=self._md())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == _C.NOT_FOUND:
                log.error("app %s has no handler for job %s (NOT_FOUND)", self.app_id, name)
                return True  # daprd: delivered, so that the job is not triggered again
            log.warning("job %s delivery to %s failed: %s", name, self.app_id, exc.details())
            return False
        return True


def _headers(md: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in md or ():
        if isinstance(value, str) and not key.startswith(":"):
            out[key] = value
    return out
