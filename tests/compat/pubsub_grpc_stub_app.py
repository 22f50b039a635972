"""A gRPC subscriber built straight on the SDK's generated stubs, for what `dapr.ext.grpc.App`
cannot show: apps that lack the bulk RPCs, as apps written against older protos or other SDKs do.

    python -m tests.compat.pubsub_grpc_stub_app PORT MODE PUBSUB TOPIC

It subscribes programmatically (`ListTopicSubscriptions`) to TOPIC with bulk delivery on, route
`/events`. MODE `single` implements no bulk RPC at all (only `OnTopicEvent`); MODE `alpha` adds
`AppCallbackAlpha.OnBulkTopicEventAlpha1` only, which answers SUCCESS per entry except that it
leaves out, the first time, an event whose data is `{"answer": "omit"}` and adds a status for an
entry id that was never sent. `OnInvoke` method `received` returns the events handled (id, data,
how) and every RPC called, in order.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from concurrent import futures
from typing import Any

import grpc
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2 as pb
from dapr.proto.runtime.v1 import appcallback_pb2_grpc as pb_grpc
from google.protobuf import any_pb2

lock = threading.Lock()
events: list[dict[str, Any]] = []
calls: list[str] = []
seen: Counter[str] = Counter()
SUCCESS = pb.TopicEventResponse.TopicEventResponseStatus.SUCCESS


class Recorder(grpc.ServerInterceptor):  # type: ignore[misc]
    """Records every RPC called, implemented or not."""

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        name = str(details.method).rsplit("/", 1)[-1]
        if name != "OnInvoke":
            with lock:
                calls.append(name)
        return continuation(details)


def _record(event_id: str, data: bytes, how: str) -> int:
    with lock:
        seen[event_id] += 1
        events.append({"id": event_id, "data": json.loads(data or b"null"), "how": how})
        return seen[event_id]


class Callbacks(pb_grpc.AppCallbackServicer):
    def __init__(self, pubsub: str, topic: str) -> None:
        self.pubsub, self.topic = pubsub, topic

    def ListTopicSubscriptions(self, request: Any, context: Any) -> Any:
        sub = pb.TopicSubscription(
            pubsub_name=self.pubsub,
            topic=self.topic,
            routes=pb.TopicRoutes(default="/events"),
            bulk_subscribe=pb.BulkSubscribeConfig(
                enabled=True, max_messages_count=4, max_await_duration_ms=200
            ),
        )
        return pb.ListTopicSubscriptionsResponse(subscriptions=[sub])

    def OnTopicEvent(self, request: Any, context: Any) -> Any:
        _record(request.id, request.data, f"single:{request.path}")
        return pb.TopicEventResponse(status=SUCCESS)

    def OnInvoke(self, request: Any, context: Any) -> Any:
        with lock:
            body = json.dumps({"events": events, "calls": calls}).encode()
        return common_pb2.InvokeResponse(
            data=any_pb2.Any(value=body), content_type="application/json"
        )


class AlphaCallbacks(pb_grpc.AppCallbackAlphaServicer):
    def OnBulkTopicEventAlpha1(self, request: Any, context: Any) -> Any:
        statuses = [pb.TopicEventBulkResponseEntry(entry_id="no-such-entry", status=SUCCESS)]
        for entry in request.entries:
            event = entry.cloud_event
            count = _record(event.id, event.data, f"bulk:{request.path}:{len(request.entries)}")
            if json.loads(event.data or b"{}").get("answer") == "omit" and count == 1:
                continue  # not answered for: the runtime must deliver it again
            statuses.append(pb.TopicEventBulkResponseEntry(entry_id=entry.entry_id, status=SUCCESS))
        return pb.TopicEventBulkResponse(statuses=statuses)


def main() -> None:
    port, mode, pubsub, topic = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10), interceptors=[Recorder()])
    pb_grpc.add_AppCallbackServicer_to_server(Callbacks(pubsub, topic), server)
    if mode == "alpha":
        pb_grpc.add_AppCallbackAlphaServicer_to_server(AlphaCallbacks(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
