"""Input bindings end to end: a `bindings.cron` component fires into a FastAPI app and a
`dapr.ext.grpc.App` (each declares the binding its own way) through a real `tether dev`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.apps import AppProcess, register
from tests.fixtures.tether import TetherProcess, wait_until

CRON = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: ticker
spec:
  type: bindings.cron
  version: v1
  metadata:
    - name: schedule
      value: "@every 1s"
"""


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppProcess, AppProcess]]:
    logs = tmp_path_factory.mktemp("apps")
    http_app = AppProcess("tests.compat.invoke_http_app").start(logs)
    grpc_app = AppProcess("tests.compat.invoke_grpc_app").start(logs)
    yield http_app, grpc_app
    http_app.stop()
    grpc_app.stop()


def test_cron_binding_fires_into_http_and_grpc_apps(
    tmp_path_factory: pytest.TempPathFactory, apps: tuple[AppProcess, AppProcess]
) -> None:
    http_app, grpc_app = apps
    resources = tmp_path_factory.mktemp("resources")
    (resources / "cron.yaml").write_text(CRON)
    server = TetherProcess(
        tmp_path_factory.mktemp("tether"),
        extra_args=[
            "--app-id", "ticked", "--app-port", str(http_app.port),
            "--resources", str(resources),
        ],
    )  # fmt: skip
    server.start()
    try:
        register(server, appID="ticked-grpc", appPort=grpc_app.port, appProtocol="grpc")

        def http_ticks() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = httpx.get(
                f"http://127.0.0.1:{http_app.port}/ticks", timeout=10
            ).json()
            return got if len(got) >= 2 else []

        def grpc_ticks() -> list[dict[str, Any]]:
            url = f"{server.http_url}/v1.0/invoke/ticked-grpc/method/ticks"
            got: list[dict[str, Any]] = httpx.post(url, timeout=10).json()
            return got if len(got) >= 2 else []

        ticks = wait_until(http_ticks, 15, what="two ticks at the HTTP app")
        assert ticks[0]["readtimeutc"].endswith("Z")
        assert wait_until(grpc_ticks, 15, what="two ticks at the gRPC app")[0]["timeZone"] == "UTC"
    finally:
        assert server.stop() == 0, server.log()
