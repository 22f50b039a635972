"""A gRPC app for the invocation and jobs suites, built on the SDK's `dapr.ext.grpc.App`.

Run as `python -m tests.compat.invoke_grpc_app PORT [JOB_NAME ...]`. `echo` reports the metadata
and data it got; `proto` answers a packed `StringValue` saying what it got (the type URL and value
of a packed request, else its bytes); `fail` raises (the SDK answers UNKNOWN); the named jobs are
recorded and `jobs` returns them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from dapr.clients.grpc._request import BindingRequest, InvokeMethodRequest, JobEvent
from dapr.clients.grpc._response import InvokeMethodResponse
from dapr.ext.grpc import App
from google.protobuf.wrappers_pb2 import StringValue

app = App()
received: list[dict[str, Any]] = []
ticks: list[dict[str, str]] = []
lock = threading.Lock()


@app.method(name="echo")
def echo(request: InvokeMethodRequest) -> InvokeMethodResponse:
    metadata = {k: v[0] if isinstance(v, list) and v else v for k, v in request.metadata.items()}
    body = json.dumps(
        {
            "metadata": metadata,
            "data": request.data.decode(errors="replace"),
            "contentType": request.content_type,
        }
    )
    return InvokeMethodResponse(body.encode(), "application/json")


#: The content type `proto` answers with, so that a test can see it pass through.
PROTO_CONTENT_TYPE = "application/vnd.tether-test"


@app.method(name="proto")
def proto(request: InvokeMethodRequest) -> InvokeMethodResponse:
    if request.is_proto():
        got = StringValue()
        request.unpack(got)  # raises for a message that is not a StringValue
        text = f"proto:{request.proto.type_url}:{got.value}"
    else:
        text = f"bytes:{request.data.decode(errors='replace')}:{request.content_type}"
    return InvokeMethodResponse(StringValue(value=text), PROTO_CONTENT_TYPE)


@app.method(name="fail")
def fail(request: InvokeMethodRequest) -> InvokeMethodResponse:
    raise RuntimeError("the app failed on purpose")


@app.method(name="jobs")
def jobs(request: InvokeMethodRequest) -> InvokeMethodResponse:
    with lock:
        return InvokeMethodResponse(json.dumps(received).encode(), "application/json")


@app.binding("ticker")
def ticker(request: BindingRequest) -> None:
    with lock:
        ticks.append(dict(request.binding_metadata))


@app.method(name="ticks")
def ticks_received(request: InvokeMethodRequest) -> InvokeMethodResponse:
    with lock:
        return InvokeMethodResponse(json.dumps(ticks).encode(), "application/json")


def _recorder(name: str) -> Any:
    def record(event: JobEvent) -> None:
        with lock:
            received.append({"name": event.name, "data": event.data.decode(errors="replace")})

    return record


def health() -> None:
    """Fails while the file named by SICK_FILE exists, so a test can make the app unhealthy."""
    sick = os.environ.get("SICK_FILE")
    if sick and os.path.exists(sick):
        raise RuntimeError("unhealthy on purpose")


def main() -> None:
    port = int(sys.argv[1])
    app.register_health_check(health)
    for name in sys.argv[2:]:
        app.job_event(name)(_recorder(name))
    app.run(port, listen_address="127.0.0.1")


if __name__ == "__main__":
    main()
