"""The pub/sub RPCs of the Dapr gRPC API: `PublishEvent`, `BulkPublishEvent` (and its Alpha1
name, which SDK 1.19.0 falls back to) and the streaming `SubscribeTopicEventsAlpha1`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from dapr.proto.runtime.v1 import pubsub_pb2
from google.protobuf import empty_pb2

from tether import errors
from tether.runtime.api.pubsub import BulkItem, PubSubApi, Trace
from tether.runtime.context import Runtime
from tether.runtime.grpc.workflows import mapped
from tether.runtime.pubsub.streaming import StreamSession

log = logging.getLogger("tether.pubsub")


def _trace(context: grpc.aio.ServicerContext) -> Trace:
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if key in ("traceparent", "tracestate"):
            found[key] = value if isinstance(value, str) else value.decode()
    return Trace(found.get("traceparent", ""), found.get("tracestate", ""))


class PubSubRpcs:
    """Mixed into the Dapr servicer; expects `self.rt: Runtime`."""

    rt: Runtime

    @property
    def _pubsub(self) -> PubSubApi:
        return PubSubApi(self.rt.components, self.rt.metrics.pubsub)

    @mapped
    async def PublishEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        await self._pubsub.publish(
            app_id,
            request.pubsub_name,
            request.topic,
            request.data,
            request.data_content_type,
            dict(request.metadata),
            _trace(context),
        )
        return empty_pb2.Empty()

    @mapped
    async def BulkPublishEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        app_id = self.rt.callers.for_grpc(context)
        api = self._pubsub
        to = api.target(app_id, request.pubsub_name, request.topic)
        items = [
            BulkItem(e.entry_id, e.event, e.content_type, dict(e.metadata)) for e in request.entries
        ]
        failed = await api.bulk_publish(to, items, dict(request.metadata), _trace(context))
        # Partial failures are an answer, not an error: the SDK reports them per entry.
        return pubsub_pb2.BulkPublishResponse(
            failedEntries=[
                pubsub_pb2.BulkPublishResponseFailedEntry(entry_id=f.entry_id, error=f.error)
                for f in failed
            ]
        )

    BulkPublishEventAlpha1 = BulkPublishEvent

    async def SubscribeTopicEventsAlpha1(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        manager = self.rt.pubsub
        if manager is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "pub/sub is not running")
            return
        try:
            app_id = self.rt.callers.for_grpc(context)
            first = await anext(aiter(request_iterator), None)
            if first is None or first.WhichOneof("subscribe_topic_events_request_type") != (
                "initial_request"
            ):
                raise errors.BadRequest("the first message must be the initial request")
            initial = first.initial_request
            session = await manager.open_stream(
                app_id,
                initial.pubsub_name,
                initial.topic,
                dict(initial.metadata),
                initial.dead_letter_topic or None,
            )
        except errors.TetherError as exc:
            await context.abort(exc.grpc_code, exc.message)
            return
        reader = asyncio.get_running_loop().create_task(_read_answers(request_iterator, session))
        try:
            yield pubsub_pb2.SubscribeTopicEventsResponseAlpha1(
                initial_response=pubsub_pb2.SubscribeTopicEventsResponseInitialAlpha1()
            )
            while True:
                message = await session.outgoing.get()
                if message is None:
                    break
                yield message
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await manager.close_stream(session)


async def _read_answers(requests: AsyncIterator[Any], session: StreamSession) -> None:
    """Hand the app's answers to the session; the stream's end closes it."""
    try:
        async for request in requests:
            kind = request.WhichOneof("subscribe_topic_events_request_type")
            if kind == "event_processed":
                answer = request.event_processed
                session.answered(answer.id, answer.status.status)
            else:
                log.warning("%s: unexpected second initial request ignored", session.app_id)
    except grpc.aio.AioRpcError:
        pass  # the app's side of the stream broke: same as it ending
    finally:
        session.close()
