"""kill -9 the server and the worker at random moments while dozens of workflows run.

Afterwards every workflow must have completed with the right output, every history must be
whole (no event lost or recorded twice), and no activity whose completion was recorded may have
run again. The kill schedule is seeded: the seed is printed, and CHAOS_SEED=<seed> replays it.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import worker_app
from tests.chaos.harness import (
    MAY_HIDE_FROM_RPC,
    KillWindow,
    WorkerProcess,
    diagnose_stuck,
    history_problems,
    journal_problems,
    kill_and_restart,
    kind,
    output_of,
    read_journal,
    rpc_history,
    store_histories,
    wait_all_terminal,
    workflow_client,
)
from tests.fixtures.tether import TetherProcess

WORKFLOWS = 40
# Starts are spread over this many seconds (durable scheduled starts), so kills find workflows
# in every phase: not yet started, mid-chain, in the fan-out, waiting on a child or a timer.
START_SPREAD = 12.0
COMPLETION_TIMEOUT = 45.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """None: the embedded default (SQLite in the data dir); else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database_url")
    return url


def replayable(events: list[Any]) -> list[bytes]:
    return [e.SerializeToString() for e in events if kind(e) not in MAY_HIDE_FROM_RPC]


def kill_plan(rng: random.Random) -> list[tuple[str, float]]:
    """(target, seconds to wait before killing it), 2-3 kills of each process, shuffled."""
    targets = ["server"] * rng.choice((2, 3)) + ["worker"] * rng.choice((2, 3))
    rng.shuffle(targets)
    return [(target, rng.uniform(0.5, 3.0)) for target in targets]


def in_flight(histories: dict[str, list[Any]], at_ns: int) -> int:
    """How many instances existed (scheduled or running) and had not finished at `at_ns`."""
    count = 0
    for events in histories.values():
        started = [e.timestamp.ToNanoseconds() for e in events if kind(e) == "executionStarted"]
        ended = [e.timestamp.ToNanoseconds() for e in events if kind(e) == "executionCompleted"]
        if started and started[0] <= at_ns and (not ended or at_ns < ended[0]):
            count += 1
    return count


def test_kill9_server_and_worker_loses_nothing(tmp_path: Path, store_url: str | None) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(2**31))
    print(f"\nchaos seed {seed} (replay with CHAOS_SEED={seed})")
    rng = random.Random(seed)
    journal = tmp_path / "journal.csv"
    ids = {f"chaos-{n:02d}": n for n in range(WORKFLOWS)}
    every_id = [*ids, *(f"{iid}{worker_app.CHILD_SUFFIX}" for iid in ids)]
    kills: list[KillWindow] = []
    origin = time.time_ns()
    server = TetherProcess(tmp_path / "server", store=store_url).start()
    worker = WorkerProcess(server, journal, tmp_path / "worker.log").start()
    try:
        with workflow_client(server) as client:
            now = datetime.now(UTC)
            for iid, n in ids.items():
                delay = rng.uniform(0, START_SPREAD) if n >= WORKFLOWS // 4 else 0.0
                start_at = now + timedelta(seconds=delay) if delay else None
                client.schedule_new_workflow(
                    "chaos_parent", input=n, instance_id=iid, start_at=start_at
                )

            plan = kill_plan(rng)
            print("kill plan:", ", ".join(f"{t} after {d:.2f}s" for t, d in plan))
            began = time.monotonic()
            for target, pause in plan:
                time.sleep(pause)  # the random moment is the point
                kills.append(
                    kill_and_restart(target, server if target == "server" else worker, journal)
                )
            print(f"chaos phase: {len(kills)} kills in {time.monotonic() - began:.1f}s")

            states = wait_all_terminal(
                client,
                ids,
                COMPLETION_TIMEOUT,
                lambda stuck: diagnose_stuck(server, journal, stuck, origin),
            )
        wrong = {
            iid: (states[iid].runtime_status.name, output_of(states[iid]))
            for iid, n in ids.items()
            if states[iid].runtime_status.name != "COMPLETED"
            or output_of(states[iid]) != worker_app.expected_output(n)
        }
        assert not wrong, f"seed {seed}: wrong results: {wrong}"
        via_rpc = {iid: rpc_history(server, iid) for iid in every_id}
    finally:
        worker.stop()
        code = server.stop()
    assert code == 0, f"tether dev did not shut down cleanly ({code}):\n{server.log()}"

    stored = store_histories(store_url, server.data_dir, every_id)
    problems: list[str] = []
    for iid in every_id:
        problems += history_problems(iid, via_rpc[iid], full=False)
        problems += history_problems(iid, stored[iid], full=True)
        if replayable(stored[iid]) != replayable(via_rpc[iid]):
            problems.append(f"{iid}: GetInstanceHistory differs from the stored history")
    runs, logged_kills = read_journal(journal)
    assert logged_kills == kills
    problems += journal_problems(runs, kills, stored)
    reruns = len(runs) - len({(r.instance_id, r.task_key) for r in runs})
    hits = [
        f"{k.target}@{(k.start_ns - origin) / 1e9:.1f}s: {in_flight(stored, k.start_ns)}"
        for k in kills
    ]
    print(f"{len(runs)} activity executions, {reruns} re-executions; open at kills: {hits}")
    assert not problems, f"seed {seed}:\n" + "\n".join(problems[:50])
    for target in ("server", "worker"):
        assert any(in_flight(stored, k.start_ns) for k in kills if k.target == target), (
            f"seed {seed}: no {target} kill hit a running workflow: {hits}"
        )
