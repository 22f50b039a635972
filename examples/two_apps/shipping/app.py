"""Shipping service: hears about every order placed and ships orders on request.

A FastAPI app with the official `dapr.ext.fastapi` extension, unchanged: `DaprApp` answers
Tether's `GET /dapr/subscribe` with the subscription below, and Tether delivers each event on
the `orders` topic to it. `POST /ship` is what the order service reaches with
`invoke_method("shipping", "ship", ...)`. It listens on APP_PORT, which `tether run` sets from
the run file's appPort.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import uvicorn
from dapr.ext.fastapi import DaprApp
from fastapi import Body, FastAPI, Request, Response
from starlette.middleware.base import RequestResponseEndpoint

app = FastAPI()
dapr_app = DaprApp(app)
subscribed = False


@app.middleware("http")
async def note_subscription_read(request: Request, call_next: RequestResponseEndpoint) -> Response:
    # Tether, like daprd, asks for our subscriptions once we listen; until then an event
    # published on `orders` would have no subscriber, so /ready says "not yet".
    global subscribed
    response = await call_next(request)
    if request.url.path == "/dapr/subscribe" and response.status_code == 200:
        subscribed = True
    return response


# Async handlers run one at a time on the event loop: sync ones run on a thread pool, where two
# prints at once can interleave their text and newlines.
@dapr_app.subscribe(pubsub="pubsub", topic="orders")
async def order_placed(event: Annotated[dict[str, Any], Body()]) -> None:
    order = event["data"]
    if isinstance(order, str):  # a publisher that did not say its data was JSON
        order = json.loads(order)
    print(f"event: {order['orderId']} placed ({order['quantity']} x {order['item']})")


@app.post("/ship")
async def ship(order: Annotated[dict[str, Any], Body()]) -> dict[str, str]:
    print(f"shipping {order['orderId']} to the customer")
    return {"orderId": order["orderId"], "status": "shipped"}


@app.get("/ready")
def ready() -> Response:
    return Response(status_code=200 if subscribed else 503)


if __name__ == "__main__":
    port = int(os.environ.get("APP_PORT", "6002"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
