"""Timing loops and CPU accounting for ``bench.blocks``.

Latency comes from ops run one after another; throughput from the same op
kept ``in_flight`` deep by that many coroutines sharing one index iterator.
CPU is split four ways so a figure can be read against what the machine was
doing: this process (the client), the Tether server, the backends
(``redis-server`` and ``postgres`` processes) and everything else.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import percentile

Op = Callable[[int], Awaitable[None]]

BACKEND_COMMS = frozenset({"redis-server", "postgres"})


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float


def latency_of(samples_s: list[float]) -> Latency:
    ms = [s * 1000.0 for s in samples_s]
    return Latency(percentile(ms, 50), percentile(ms, 99))


async def sequential(op: Op, indices: range) -> list[float]:
    """Seconds each op took, run one at a time."""
    out: list[float] = []
    clock = time.perf_counter
    for i in indices:
        t0 = clock()
        await op(i)
        out.append(clock() - t0)
    return out


async def concurrent(op: Op, indices: range, in_flight: int) -> float:
    """Seconds to run every op with ``in_flight`` of them outstanding at once."""
    shared: Iterator[int] = iter(indices)

    async def worker() -> None:
        # Safe without a lock: nothing yields between next() and the op.
        for i in shared:
            await op(i)

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(in_flight, len(indices))):
            tg.create_task(worker())
    return time.perf_counter() - t0


# --- CPU ---------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float | None:
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK


def _proc_cpu_s(pid: int) -> tuple[str, float] | None:
    """(command name, user+system seconds) of one process, None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may itself hold spaces or parentheses.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return comm, (int(fields[11]) + int(fields[12])) / _TICK


def _backend_cpu() -> dict[int, float]:
    out: dict[int, float] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        got = _proc_cpu_s(pid)
        if got is not None and got[0] in BACKEND_COMMS:
            out[pid] = got[1]
    return out


def _own_cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


@dataclass(frozen=True)
class CpuShare:
    """Average cores used over an interval."""

    client: float
    server: float | None
    backends: float
    other: float | None


@dataclass(frozen=True)
class CpuMark:
    wall: float
    machine: float | None
    own: float
    server: float | None
    backends: dict[int, float]

    @classmethod
    def now(cls, server_pid: int | None) -> CpuMark:
        server = _proc_cpu_s(server_pid) if server_pid is not None else None
        return cls(
            time.monotonic(),
            _machine_busy_s(),
            _own_cpu_s(),
            server[1] if server is not None else None,
            _backend_cpu(),
        )

    def since(self, start: CpuMark) -> CpuShare:
        wall = max(self.wall - start.wall, 1e-9)
        client = self.own - start.own
        server = (
            self.server - start.server
            if self.server is not None and start.server is not None
            else None
        )
        # A backend born meanwhile (a new PostgreSQL connection) counts in full;
        # one that exited meanwhile loses its share, which is small.
        backends = sum(cpu - start.backends.get(pid, 0.0) for pid, cpu in self.backends.items())
        other = None
        if self.machine is not None and start.machine is not None:
            other = max(0.0, (self.machine - start.machine) - client - (server or 0.0) - backends)
        return CpuShare(
            client / wall,
            None if server is None else server / wall,
            backends / wall,
            None if other is None else other / wall,
        )
