"""Order service: places a few orders with the official Dapr SDK, unchanged.

Each order is saved in the `statestore` state store, announced on the `orders` topic of the
`pubsub` component, and handed to the shipping service by service invocation. The App ID, its
token and Tether's address come from the environment `tether run` (or `dapr run`) sets up.

    tether run -f examples/two_apps/dev.yaml
"""

from __future__ import annotations

import json
import os
import time

from dapr.clients import DaprClient

STORE = "statestore"
PUBSUB = "pubsub"
TOPIC = "orders"
ITEMS = ("espresso beans", "grinder", "kettle", "scale", "filters")


def wait_for_shipping(client: DaprClient, timeout: float = 30.0) -> None:
    """Shipping starts alongside us; until it is subscribed, our events would reach no one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.invoke_method("shipping", "ready", http_verb="GET")
            return
        except Exception as exc:  # not listening yet, or not subscribed yet (503)
            if time.monotonic() > deadline:
                raise SystemExit(f"shipping was not ready after {timeout:.0f}s: {exc}") from exc
            time.sleep(0.3)


def main() -> None:
    count = int(os.environ.get("ORDER_COUNT", "3"))
    with DaprClient() as client:
        wait_for_shipping(client)
        for n in range(1, count + 1):
            order = {"orderId": f"order-{n}", "item": ITEMS[(n - 1) % len(ITEMS)], "quantity": n}
            body = json.dumps(order)
            client.save_state(STORE, order["orderId"], body)
            client.publish_event(PUBSUB, TOPIC, body, data_content_type="application/json")
            reply = client.invoke_method(
                "shipping", "ship", data=body, content_type="application/json", http_verb="POST"
            )
            print(f"placed {order['orderId']}: shipping says {reply.text()}")
            time.sleep(0.5)
    print(f"done: {count} orders placed")


if __name__ == "__main__":
    main()
