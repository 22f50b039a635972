"""Shared vocabulary for every benchmark target: workload sizes, metrics, and
the line protocol a target subprocess uses to report back to ``bench.run``.

Every target runs in its own subprocess because two of them cannot share one:
the Dapr SDK reads its endpoint settings once at import, and DBOS is a
process-wide singleton bound to one system database.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import math
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

WORKLOADS: tuple[str, ...] = ("W1", "W2", "W3", "W4")

WORKLOAD_TITLES: Mapping[str, str] = {
    "W1": "1 workflow x N sequential no-op activities",
    "W2": "N workflows x 3 sequential activities, started at once",
    "W3": "1 workflow fanning out N no-op activities",
    "W4": "N one-activity workflows, one after another",
}

# Stdout lines carrying results start with this so SDK chatter on stdout can
# never be mistaken for a figure.
RESULT_PREFIX = "BENCH_RESULT "

# One bounded wait for any single workflow; generous because a loaded 2-core
# box running a peer's server, worker and client at once can stall for seconds.
WAIT_TIMEOUT_S = 300

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; ``scale`` shrinks them for smoke runs."""

    w1_steps: int = 100
    w2_workflows: int = 500
    w2_steps: int = 3
    w3_fanout: int = 500
    w4_workflows: int = 200

    @classmethod
    def scaled(cls, scale: float) -> Sizes:
        full = cls()

        def s(n: int, floor: int) -> int:
            return max(floor, round(n * scale))

        # W2's per-workflow shape is part of its definition, so only counts scale.
        # W4 keeps enough samples for a p99 to mean something.
        return cls(
            w1_steps=s(full.w1_steps, 1),
            w2_workflows=s(full.w2_workflows, 1),
            w2_steps=full.w2_steps,
            w3_fanout=s(full.w3_fanout, 1),
            w4_workflows=s(full.w4_workflows, 10),
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Metric:
    workload: str
    key: str
    label: str
    unit: str
    better: Better


METRICS: tuple[Metric, ...] = (
    Metric("W1", "ms_per_step", "W1 per step", "ms", "lower"),
    Metric("W2", "wf_per_s", "W2 throughput", "wf/s", "higher"),
    Metric("W3", "seconds", "W3 fan-out", "s", "lower"),
    Metric("W4", "p50_ms", "W4 p50", "ms", "lower"),
    Metric("W4", "p99_ms", "W4 p99", "ms", "lower"),
)

Figures = dict[str, float]
Workload = Callable[[Sizes], Figures]
AsyncWorkload = Callable[[Sizes], Awaitable[Figures]]


def parse_workloads(text: str) -> list[str]:
    names = [w.strip().upper() for w in text.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(unknown)}; choose from {','.join(WORKLOADS)}"
        )
    return names


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """Arguments every target subprocess accepts, so ``bench.run`` can treat
    them alike."""
    parser.add_argument(
        "--workloads", type=parse_workloads, default=list(WORKLOADS), help="e.g. W1,W3"
    )
    parser.add_argument("--scale", type=positive_float, default=1.0)
    parser.add_argument(
        "--deadline",
        type=positive_float,
        default=600.0,
        help="seconds after which a single workload is abandoned and the process exits",
    )


def progress(target: str, message: str) -> None:
    # stderr, because stdout is reserved for result lines.
    print(f"  [{target}] {message}", file=sys.stderr, flush=True)


def emit(payload: Mapping[str, object]) -> None:
    print(RESULT_PREFIX + json.dumps(payload), flush=True)


def parse_result_lines(stdout: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            parsed = json.loads(line[len(RESULT_PREFIX) :])
            if isinstance(parsed, dict):
                out.append(parsed)
    return out


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Kill the process if the body overruns.

    Not every SDK wait can be bounded (DBOS's ``get_result`` takes no
    timeout, and a wedged gRPC stream can ignore one), so this is the
    backstop; it dumps every thread's stack first so the hang is diagnosable.
    Results already emitted survive because each workload reports on its own.
    """
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def run_workloads(
    target: str,
    names: Sequence[str],
    sizes: Sizes,
    impls: Mapping[str, Workload],
    deadline_s: float,
    warmup: Callable[[], None] | None = None,
) -> int:
    """Run the chosen workloads in order, emitting one result line each.

    Returns a process exit code: non-zero if any workload failed, so the
    orchestrator can flag the target even if it misses a line.
    """
    if warmup is not None:
        # Pays for connection set-up and first-use imports outside the timings,
        # so W1 does not carry one-off costs the other workloads avoid.
        with deadline(deadline_s):
            warmup()
    failed = False
    for name in names:
        _announce(target, name)
        started = time.perf_counter()
        try:
            with deadline(deadline_s):
                figures = impls[name](sizes)
        except Exception as exc:  # one workload's failure must not hide the rest
            failed = True
            _report_failure(target, name, exc)
            continue
        _report_success(target, name, sizes, figures, started)
    return 1 if failed else 0


async def run_workloads_async(
    target: str,
    names: Sequence[str],
    sizes: Sizes,
    impls: Mapping[str, AsyncWorkload],
    deadline_s: float,
    warmup: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """``run_workloads`` for SDKs whose client and worker share one event loop."""
    if warmup is not None:
        with deadline(deadline_s):
            await warmup()
    failed = False
    for name in names:
        _announce(target, name)
        started = time.perf_counter()
        try:
            with deadline(deadline_s):
                figures = await impls[name](sizes)
        except Exception as exc:  # one workload's failure must not hide the rest
            failed = True
            _report_failure(target, name, exc)
            continue
        _report_success(target, name, sizes, figures, started)
    return 1 if failed else 0


def _announce(target: str, name: str) -> None:
    progress(target, f"{name}: {WORKLOAD_TITLES[name]} ...")


def _report_failure(target: str, name: str, exc: Exception) -> None:
    traceback.print_exc(file=sys.stderr)
    emit({"workload": name, "error": f"{type(exc).__name__}: {exc}"})
    progress(target, f"{name}: FAILED ({type(exc).__name__}: {exc})")


def _report_success(target: str, name: str, sizes: Sizes, figures: Figures, started: float) -> None:
    emit({"workload": name, "figures": figures, "sizes": sizes.as_dict()})
    shown = ", ".join(f"{k}={v:.4g}" for k, v in figures.items())
    progress(target, f"{name}: {shown} ({time.perf_counter() - started:.1f}s wall)")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: always a latency that was actually observed."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def latency_figures(latencies_s: Sequence[float]) -> Figures:
    ms = [x * 1000.0 for x in latencies_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms),
    }


def free_ports(count: int) -> list[int]:
    """Ports nobody is listening on, distinct from each other.

    Racy by nature (they are released before the server binds them), but the
    window is tiny and every server here fails loudly if it loses; holding
    all sockets until the end at least keeps the ports mutually distinct.
    """
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
