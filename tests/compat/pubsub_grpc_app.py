"""A gRPC pub/sub subscriber written the way Dapr users write one: the SDK's `dapr.ext.grpc.App`.

    python -m tests.compat.pubsub_grpc_app PORT PUBSUB TOPIC [TOPIC ...]

Each topic gets a handler that answers by the event's JSON data: `{"answer": "success"}`,
`"drop"`, or `"retry"` (RETRY the first delivery of that event, then SUCCESS). The app serves
one method, `received`, returning the events it handled (topic, id, data, raw bytes as text,
content type) and the name of every
RPC the runtime called on it, in order; a server interceptor records those, so a test can tell
`OnBulkTopicEvent` from `OnTopicEvent`, which the SDK hides from handlers.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from concurrent import futures
from typing import Any

import grpc
from dapr.clients.grpc._request import InvokeMethodRequest
from dapr.clients.grpc._response import InvokeMethodResponse, TopicEventResponse
from dapr.ext.grpc import App, SubscriptionMessage

lock = threading.Lock()
events: list[dict[str, Any]] = []
calls: list[str] = []
seen: Counter[str] = Counter()


class Recorder(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(self, continuation: Any, details: Any) -> Any:
        name = str(details.method).rsplit("/", 1)[-1]
        if name != "OnInvoke":
            with lock:
                calls.append(name)
        return continuation(details)


app = App(thread_pool=futures.ThreadPoolExecutor(max_workers=10), interceptors=[Recorder()])


def handle(event: SubscriptionMessage) -> TopicEventResponse:
    data = event.data()
    answer = data.get("answer", "success") if isinstance(data, dict) else "success"
    with lock:
        seen[event.id()] += 1
        events.append(
            {
                "topic": event.topic(),
                "id": event.id(),
                "data": data if isinstance(data, dict) else None,
                "raw": bytes(event.raw_data()).decode(errors="replace"),
                "contentType": event.data_content_type(),
            }
        )
        first = seen[event.id()] == 1
    if answer == "retry" and first:
        return TopicEventResponse("retry")
    return TopicEventResponse("drop" if answer == "drop" else "success")


@app.method(name="received")
def received(request: InvokeMethodRequest) -> InvokeMethodResponse:
    with lock:
        body = json.dumps({"events": events, "calls": calls})
    return InvokeMethodResponse(body.encode(), "application/json")


def main() -> None:
    port, pubsub, topics = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    for topic in topics:
        app.subscribe(pubsub, topic)(handle)
    app.run(port, listen_address="127.0.0.1")


if __name__ == "__main__":
    main()
