"""The two-app example, end to end: `tether run -f examples/two_apps/dev.yaml`.

The order service (a plain `DaprClient` script) saves each order, publishes it on `orders` and
invokes the shipping service (FastAPI with `dapr.ext.fastapi`), which also receives the event.
Everything is the official SDK, unchanged; the run file is the example's own, with only the
ports moved (flags) so that the test runs next to anything else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.fixtures.tether import REPO, TetherProcess, free_port

EXAMPLE = REPO / "examples" / "two_apps"
ORDERS = 3  # the example's ORDER_COUNT
TOKEN = "two-apps-example-test-token"


class Relay:
    """Collects a process' stdout and stderr lines while it runs."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((proc.stdout, self.out), (proc.stderr, self.err)):
            assert stream is not None
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _read(stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def said(self, app_id: str) -> list[str]:
        prefix = f"[{app_id}]"
        return [line[len(prefix) :].strip() for line in self.out if line.startswith(prefix)]

    def text(self) -> str:
        return "\n".join(["--- stdout", *self.out, "--- stderr", *self.err])


def test_orders_reach_shipping_by_event_and_invocation(tether_server: TetherProcess) -> None:
    venv_bin = str(Path(sys.executable).parent)  # the run file says `python3`, as users type it
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("TETHER_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "tether", "run", "-f", str(EXAMPLE / "dev.yaml"),
            "--server", tether_server.http_url, "--grpc-port", str(tether_server.grpc_port),
            "--app-port", f"shipping={free_port()}",
        ],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    relay = Relay(proc)
    ids = [f"order-{n}" for n in range(1, ORDERS + 1)]
    try:

        def flow_done() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"tether run exited with {proc.returncode}:\n{relay.text()}")
            events = [line for line in relay.said("shipping") if line.startswith("event:")]
            return f"done: {ORDERS} orders placed" in relay.said("orders") and len(events) >= ORDERS

        deadline = time.monotonic() + 60
        while not flow_done():
            if time.monotonic() > deadline:
                pytest.fail(f"the order flow did not finish within 60s:\n{relay.text()}")
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, relay.text()

    shipping, orders = relay.said("shipping"), relay.said("orders")
    for order_id in ids:
        # The invocation: shipping served /ship, and orders got its answer back.
        assert f"shipping {order_id} to the customer" in shipping, relay.text()
        assert any(
            line.startswith(f"placed {order_id}: shipping says") and '"shipped"' in line
            for line in orders
        ), relay.text()
        # The event, delivered once per order (at-least-once may repeat; it must not be missing).
        assert any(line.startswith(f"event: {order_id} placed") for line in shipping), relay.text()

    # The state: orders' keys are its own (`orders||order-1`), so read them as orders. tether run
    # removed the App ID when it stopped; registering it again with a known token is what an
    # operator would do, and leaves the stored state untouched.
    url = tether_server.http_url
    response = httpx.post(f"{url}/v1.0-tether/apps", json={"appID": "orders", "apiToken": TOKEN})
    assert response.status_code == 201, response.text
    try:
        for n, order_id in enumerate(ids, start=1):
            response = httpx.get(
                f"{url}/v1.0/state/statestore/{order_id}", headers={"dapr-api-token": TOKEN}
            )
            assert response.status_code == 200, response.text
            assert response.json()["orderId"] == order_id
            assert response.json()["quantity"] == n
    finally:
        httpx.delete(f"{url}/v1.0-tether/apps/orders")
