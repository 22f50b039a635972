"""Order processing with the official Dapr workflow SDK, unchanged, against Tether.

An order is checked for stock, paid for (with retries), shipped by a child workflow, and orders
above a threshold wait for a manager's approval, which times out into a rejection.

Run `tether dev` (or `scripts/dev`) in one terminal, then:

    python examples/order_processing/app.py                # places a small order
    python examples/order_processing/app.py --amount 5000  # needs approval: approve it with
    tether workflow raise <id> approval --data '{"approved": true}'

The SDK finds the server through its usual settings (DAPR_GRPC_ENDPOINT, or localhost:50001).
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta

import dapr.ext.workflow as wf

APPROVAL_THRESHOLD = 1000
runtime = wf.WorkflowRuntime()


@dataclass
class Order:
    order_id: str
    item: str
    quantity: int
    amount: float


# --- activities: everything that touches the outside world ---------------------------------


@runtime.activity(name="reserve_inventory")
def reserve_inventory(ctx: wf.WorkflowActivityContext, order: dict[str, object]) -> bool:
    return int(str(order["quantity"])) <= 100


@runtime.activity(name="charge_payment")
def charge_payment(ctx: wf.WorkflowActivityContext, order: dict[str, object]) -> str:
    # A flaky payment provider: the retry policy below absorbs transient failures. The receipt
    # derives from the order id so a retried charge is idempotent.
    if random.random() < 0.3:
        raise ConnectionError("payment provider timed out")
    return f"receipt-{order['order_id']}"


@runtime.activity(name="ship_package")
def ship_package(ctx: wf.WorkflowActivityContext, order: dict[str, object]) -> str:
    return f"tracking-{order['order_id'][:8]}"


@runtime.activity(name="notify")
def notify(ctx: wf.WorkflowActivityContext, message: str) -> None:
    print(f"  [notify] {message}")


# --- workflows: deterministic orchestration -------------------------------------------------

payment_retry = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=200),
    max_number_of_attempts=5,
    backoff_coefficient=2.0,
)


@runtime.workflow(name="shipping")
def shipping(ctx: wf.DaprWorkflowContext, order: dict[str, object]):  # type: ignore[no-untyped-def]
    tracking = yield ctx.call_activity(ship_package, input=order)
    yield ctx.call_activity(notify, input=f"order {order['order_id']} shipped: {tracking}")
    return tracking


@runtime.workflow(name="order_processing")
def order_processing(ctx: wf.DaprWorkflowContext, order: dict[str, object]):  # type: ignore[no-untyped-def]
    ctx.set_custom_status("checking inventory")
    if not (yield ctx.call_activity(reserve_inventory, input=order)):
        return {"status": "rejected", "reason": "out of stock"}

    if float(str(order["amount"])) >= APPROVAL_THRESHOLD:
        ctx.set_custom_status("waiting for approval")
        approval = ctx.wait_for_external_event("approval")
        timeout = ctx.create_timer(timedelta(seconds=int(str(order.get("approval_seconds", 30)))))
        winner = yield wf.when_any([approval, timeout])
        if winner is timeout or not (approval.get_result() or {}).get("approved"):
            return {"status": "rejected", "reason": "not approved"}

    ctx.set_custom_status("charging")
    receipt = yield ctx.call_activity(charge_payment, input=order, retry_policy=payment_retry)
    ctx.set_custom_status("shipping")
    tracking = yield ctx.call_child_workflow(shipping, input=order, retry_policy=payment_retry)
    ctx.set_custom_status("done")
    return {"status": "completed", "receipt": receipt, "tracking": tracking}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--item", default="coffee beans")
    parser.add_argument("--quantity", type=int, default=2)
    parser.add_argument("--amount", type=float, default=42.0)
    parser.add_argument("--approval-seconds", type=int, default=30)
    parser.add_argument("--approve", action="store_true", help="approve right away")
    parser.add_argument("--timeout", type=int, default=120, help="seconds to wait for the result")
    args = parser.parse_args()

    runtime.start()
    try:
        client = wf.DaprWorkflowClient()
        order = asdict(Order(uuid.uuid4().hex, args.item, args.quantity, args.amount))
        order["approval_seconds"] = args.approval_seconds
        instance_id = client.schedule_new_workflow(order_processing, input=order)
        print(f"started order workflow {instance_id}")
        if args.approve:
            # Safe before the workflow waits: the event is recorded and handed over in order.
            client.raise_workflow_event(instance_id, "approval", data={"approved": True})
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=args.timeout)
        if state is None:
            raise SystemExit(f"workflow {instance_id} vanished")
        result = json.loads(state.serialized_output or "null")
        print(f"{state.runtime_status.name}: {json.dumps(result)}")
    finally:
        runtime.shutdown()


if __name__ == "__main__":
    main()
