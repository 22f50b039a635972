"""The pieces pub/sub end-to-end tests share: the subscriber app process, servers wired to it,
and polling helpers over the metadata API. Topics carry a per-run suffix (`topic`) so that
messages left on shared brokers by earlier runs never reach this one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.redis import host_port
from tests.fixtures.tether import TetherProcess, free_port, wait_until

APP = Path(__file__).with_name("pubsub_app.py")
RUN = uuid.uuid4().hex[:8]
WAIT = 15.0
APP_ID = "subscriber"
#: One client for the whole module: a new httpx client per call costs more than the call.
HTTP = httpx.Client(timeout=10)


def topic(name: str) -> str:
    return f"{name}-{RUN}"


# --- processes -----------------------------------------------------------------------------------


class SubscriberApp:
    """`pubsub_app.py` on a free port, configured with `config`."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / f"app-{self.port}.json"
        cfg.write_text(json.dumps(config))
        self.log_path = workdir / f"app-{self.port}.log"
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), str(self.port), str(cfg)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def start(self, timeout: float = 60) -> SubscriberApp:
        """Wait until it listens (it was launched on construction)."""
        wait_until(self._up, timeout, what="the subscriber app to listen")
        return self

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"subscriber app exited:\n{self.log_path.read_text()}")
        try:
            return HTTP.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).is_success
        except httpx.HTTPError:
            return False

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = HTTP.get(
            f"http://127.0.0.1:{self.port}/received", timeout=5
        ).json()
        return [r for r in got if path is None or r["path"] == path]

    def wait_for(self, path: str, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        def probe() -> list[dict[str, Any]] | None:
            got = self.received(path)
            return got if len(got) >= count else None

        return wait_until(probe, timeout, interval=0.05, what=f"{count} deliveries to {path}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def server_for(
    tmp: Path, resources: Path, app: SubscriberApp, app_id: str = APP_ID, *extra: str
) -> TetherProcess:
    """A `tether dev` serving `app_id` with `app` as its app (not started yet)."""
    args = ["--app-id", app_id, "--app-port", str(app.port), "--resources", str(resources),
            *extra]  # fmt: skip
    return TetherProcess(tmp, extra_args=args)


def start_all(*processes: TetherProcess | SubscriberApp) -> None:
    """Start servers and apps side by side: each takes seconds to import and listen."""
    with ThreadPoolExecutor(len(processes)) as pool:
        # Generous: on a loaded two-core machine four interpreters importing at once are slow.
        for future in [pool.submit(p.start, timeout=60) for p in processes]:
            future.result()


def subscriptions(server: TetherProcess) -> list[dict[str, Any]]:
    meta = HTTP.get(f"{server.http_url}/v1.0/metadata", timeout=5).json()
    subs: list[dict[str, Any]] = meta.get("subscriptions", [])
    return subs


def wait_subscribed(server: TetherProcess, pubsub: str, name: str, kind: str = "") -> None:
    def probe() -> bool:
        return any(
            s["pubsubname"] == pubsub and s["topic"] == name and (not kind or s["type"] == kind)
            for s in subscriptions(server)
        )

    wait_until(probe, WAIT, interval=0.05, what=f"a subscription to {pubsub}/{name}")


def publish_http(
    server: TetherProcess,
    pubsub: str,
    name: str,
    body: bytes,
    content_type: str = "application/json",
    query: str = "",
) -> httpx.Response:
    url = f"{server.http_url}/v1.0/publish/{pubsub}/{name}" + (f"?{query}" if query else "")
    return HTTP.post(url, content=body, headers={"content-type": content_type}, timeout=10)


SQLITE = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec:
  type: pubsub.sqlite
  version: v1
  metadata:
  - {name: retryDelay, value: 200ms}
  - {name: pollInterval, value: 200ms}
  - {name: visibilityTimeout, value: 3s}
"""


def redis_component(request: pytest.FixtureRequest, name: str) -> str:
    return (
        f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\n"
        "spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n"
        f"  - {{name: redisHost, value: '{host_port(request.getfixturevalue('redis_url'))}'}}\n"
        "  - {name: processingTimeout, value: 2s}\n  - {name: redeliverInterval, value: 200ms}\n"
    )


# --- cleanup -------------------------------------------------------------------------------------


async def _forget(broker: str, url: str, topics: list[str], group: str, consumer: str) -> None:
    if broker == "redis":
        from redis.asyncio import Redis

        host, _, port = url.rpartition(":")
        client = Redis(host=host, port=int(port))
        await client.delete(*topics)
        await client.aclose()
    elif broker == "jetstream":
        import nats

        from tether.components.pubsub.jetstream import stream_name

        nc = await nats.connect(url)
        for name in topics:
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(stream_name(name))
        await nc.close()
    elif broker == "rabbitmq":
        import aio_pika

        conn = await aio_pika.connect(url)
        channel = await conn.channel()
        for name in topics:
            await channel.queue_delete(f"{group}-{name}")
            await channel.exchange_delete(name)
        await conn.close()
    elif broker == "mqtt3":
        from tether.components.pubsub.mqtt3 import client_id, forget_sessions

        await forget_sessions(url, [client_id(consumer, group, name) for name in topics])


def forget(broker: str, url: str, topics: list[str], group: str, consumer: str = "") -> None:
    """Delete what a test left on a shared broker (streams, queues, sessions); best effort."""
    try:
        asyncio.run(_forget(broker, url, topics, group, consumer))
    except Exception as exc:  # cleanup must not fail a passing test
        print(f"cleanup of {broker} left something behind: {exc!r}")
