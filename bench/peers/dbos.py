"""DBOS peer: DBOS Transact as a library in this process, its system database
on SQLite or PostgreSQL.

Run alone with ``python -m bench.peers.dbos --db sqlite --scale 0.1``; for
PostgreSQL pass ``--db postgres --pg-url postgresql://.../throwaway_db``
(``bench.run`` creates and drops that database around the run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from dbos import DBOS, DBOSConfig, SetWorkflowID

from bench.common import (
    Figures,
    Sizes,
    Workload,
    add_runner_args,
    latency_figures,
    progress,
    run_workloads,
)


# Sync step in a sync workflow: DBOS's default shape, as plain ``def`` is for
# the Dapr SDK.
@DBOS.step()
def noop() -> None:
    return None


@DBOS.workflow()
def sequential(steps: int) -> int:
    for _ in range(steps):
        noop()
    return steps


# DBOS runs steps concurrently only inside an async workflow (asyncio.gather
# over async steps); that is its documented equivalent of when_all.
@DBOS.step()
async def noop_async() -> None:
    return None


@DBOS.workflow()
async def fan_out(width: int) -> int:
    await asyncio.gather(*(noop_async() for _ in range(width)))
    return width


class _Workloads:
    def __init__(self) -> None:
        self._run = uuid.uuid4().hex[:8]

    def _id(self, label: str) -> str:
        return f"{label}-{self._run}-{uuid.uuid4().hex[:8]}"

    def _sequential(self, steps: int, label: str) -> None:
        # start_workflow + get_result mirrors schedule + wait in the other SDKs;
        # a direct call would skip DBOS's own enqueue path.
        with SetWorkflowID(self._id(label)):
            handle = DBOS.start_workflow(sequential, steps)
        handle.get_result()

    def warmup(self) -> None:
        self._sequential(1, "warmup")

    def w1(self, sizes: Sizes) -> Figures:
        started = time.perf_counter()
        self._sequential(sizes.w1_steps, "w1")
        elapsed = time.perf_counter() - started
        return {"ms_per_step": elapsed * 1000.0 / sizes.w1_steps, "seconds": elapsed}

    def w2(self, sizes: Sizes) -> Figures:
        started = time.perf_counter()
        handles = []
        for _ in range(sizes.w2_workflows):
            with SetWorkflowID(self._id("w2")):
                handles.append(DBOS.start_workflow(sequential, sizes.w2_steps))
        for handle in handles:
            handle.get_result()
        elapsed = time.perf_counter() - started
        return {"wf_per_s": sizes.w2_workflows / elapsed, "seconds": elapsed}

    def w3(self, sizes: Sizes) -> Figures:
        # An async workflow is started and awaited from an event loop.
        return asyncio.run(self._w3(sizes))

    async def _w3(self, sizes: Sizes) -> Figures:
        started = time.perf_counter()
        with SetWorkflowID(self._id("w3")):
            handle = await DBOS.start_workflow_async(fan_out, sizes.w3_fanout)
        await handle.get_result()
        return {"seconds": time.perf_counter() - started}

    def w4(self, sizes: Sizes) -> Figures:
        latencies: list[float] = []
        for _ in range(sizes.w4_workflows):
            started = time.perf_counter()
            self._sequential(1, "w4")
            latencies.append(time.perf_counter() - started)
        return latency_figures(latencies)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.dbos", description=__doc__)
    add_runner_args(parser)
    parser.add_argument("--db", choices=("sqlite", "postgres"), required=True)
    parser.add_argument(
        "--pg-url",
        help="system database URL for --db postgres; the database must be throwaway",
    )
    args = parser.parse_args(argv)
    if args.db == "postgres" and not args.pg_url:
        parser.error("--db postgres needs --pg-url")

    target = f"dbos-{args.db}"
    with tempfile.TemporaryDirectory(prefix="bench-dbos-") as tmp:
        url = args.pg_url if args.db == "postgres" else f"sqlite:///{Path(tmp) / 'dbos.sqlite'}"
        config: DBOSConfig = {
            "name": "bench",
            "system_database_url": url,
            # INFO logs a line per recovery/launch event; keep stderr for progress.
            "log_level": logging.getLevelName(logging.WARNING),
        }
        progress(target, f"launching DBOS on {args.db}")
        DBOS(config=config)
        DBOS.launch()
        try:
            loads = _Workloads()
            impls: dict[str, Workload] = {
                "W1": loads.w1,
                "W2": loads.w2,
                "W3": loads.w3,
                "W4": loads.w4,
            }
            return run_workloads(
                target,
                args.workloads,
                Sizes.scaled(args.scale),
                impls,
                args.deadline,
                warmup=loads.warmup,
            )
        finally:
            DBOS.destroy()


if __name__ == "__main__":
    sys.exit(main())
