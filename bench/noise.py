"""How much CPU the rest of the machine used while a target ran.

The load average cannot tell our own just-finished target from someone
else's build, so this subtracts our process tree's CPU time from the whole
machine's busy time instead. Linux only (``/proc/stat``); elsewhere it
reports nothing rather than guessing.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path


def _machine_busy_s() -> float | None:
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    ticks = [int(x) for x in first[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    # Children count once reaped: runners and the servers we start are waited
    # for before the sample is taken; PostgreSQL's backends are not ours.
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class CpuSample:
    wall: float
    machine: float | None
    own: float

    @classmethod
    def now(cls) -> CpuSample:
        return cls(time.monotonic(), _machine_busy_s(), _own_cpu_s())

    def other_cores_since(self, start: CpuSample) -> float | None:
        """Average number of cores kept busy by processes not ours."""
        if self.machine is None or start.machine is None:
            return None
        wall = self.wall - start.wall
        if wall <= 0:
            return None
        other = (self.machine - start.machine) - (self.own - start.own)
        return max(0.0, other / wall)
