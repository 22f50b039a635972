"""Server restarts a worker must ride out, and a clean shutdown with work in flight."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from dapr.ext.workflow import WorkflowStatus

from tests.chaos import worker_app
from tests.chaos.harness import (
    KillWindow,
    WorkerProcess,
    history_problems,
    journal_problems,
    kill_and_restart,
    output_of,
    read_journal,
    rpc_history,
    sdk118_python,
    wait_all_terminal,
    workflow_client,
)
from tests.fixtures.tether import TetherProcess, wait_until

TIMEOUT = 45.0
# A graceful stop must not wait for workflows, timers or connected workers.
SHUTDOWN_SECONDS = 5.0


@pytest.fixture(scope="module", params=["dapr-1.19.0", "dapr-1.18.3"])
def sdk_python(request: pytest.FixtureRequest) -> str:
    """The interpreter whose Dapr SDK runs the worker."""
    return sys.executable if request.param == "dapr-1.19.0" else sdk118_python()


def ran(journal: Path, instance_id: str) -> int:
    runs, _ = read_journal(journal)
    return sum(1 for r in runs if r.instance_id == instance_id)


def test_sdk_worker_heals_after_a_server_restart(tmp_path: Path, sdk_python: str) -> None:
    """The same worker process reconnects after the server is killed and restarted: it finishes
    the workflow that was in flight and runs one started afterwards. (A clean restart is
    covered by the SIGTERM test below.)"""
    journal = tmp_path / "journal.csv"
    # n=9: four rounds of activity + timer, then fan-out, child and a last activity.
    ids = {"heal-before": 9, "heal-after": 1}
    every_id = [*ids, *(f"{iid}{worker_app.CHILD_SUFFIX}" for iid in ids)]
    server = TetherProcess(tmp_path / "server").start()
    worker = WorkerProcess(server, journal, tmp_path / "worker.log", python=sdk_python).start()
    try:
        with workflow_client(server) as client:
            client.schedule_new_workflow("chaos_parent", input=9, instance_id="heal-before")
            wait_until(lambda: ran(journal, "heal-before") >= 1, 15, what="the first activity")
            kills = [kill_and_restart("server", server, journal)]
            client.schedule_new_workflow("chaos_parent", input=1, instance_id="heal-after")
            states = wait_all_terminal(client, ids, TIMEOUT)
        for iid, n in ids.items():
            assert states[iid].runtime_status == WorkflowStatus.COMPLETED, iid
            assert output_of(states[iid]) == worker_app.expected_output(n), iid
        assert worker.alive(), f"the worker died:\n{worker.log()}"
        histories = {iid: rpc_history(server, iid) for iid in every_id}
    finally:
        worker.stop()
        code = server.stop()
    assert code == 0, server.log()
    runs, _ = read_journal(journal)
    assert {r.pid for r in runs} == {worker.pid}, "activities ran outside the one worker"
    assert any(r.start_ns > kills[0].up_ns for r in runs if r.instance_id == "heal-before")
    problems = [p for iid in every_id for p in history_problems(iid, histories[iid], False)]
    problems += journal_problems(runs, kills, histories)
    assert not problems, "\n".join(problems)


def test_sigterm_with_work_in_flight_exits_zero_quickly_and_resumes(tmp_path: Path) -> None:
    journal = tmp_path / "journal.csv"
    ids = {f"term-{n:02d}": n for n in range(12)}
    every_id = [*ids, *(f"{iid}{worker_app.CHILD_SUFFIX}" for iid in ids)]
    server = TetherProcess(tmp_path / "server").start()
    worker = WorkerProcess(server, journal, tmp_path / "worker.log").start()
    try:
        with workflow_client(server) as client:
            for iid, n in ids.items():
                client.schedule_new_workflow("chaos_parent", input=n, instance_id=iid)
            wait_until(lambda: len(read_journal(journal)[0]) >= 15, 20, what="activities to run")
            running = [
                iid
                for iid in ids
                if (st := client.get_workflow_state(iid)) is not None
                and st.runtime_status == WorkflowStatus.RUNNING
            ]
            assert running, "no workflow was in flight when the server was stopped"

            start, began = time.time_ns(), time.monotonic()
            code = server.stop(timeout=SHUTDOWN_SECONDS + 10)
            took = time.monotonic() - began
            assert code == 0, f"SIGTERM exit code {code}:\n{server.log()}"
            assert took < SHUTDOWN_SECONDS, f"SIGTERM took {took:.1f}s with work in flight"
            server.start()
            window = KillWindow("server-sigterm", start, time.time_ns())
            done = wait_all_terminal(client, ids, TIMEOUT)
        wrong = {
            iid: (done[iid].runtime_status.name, output_of(done[iid]))
            for iid, n in ids.items()
            if output_of(done[iid]) != worker_app.expected_output(n)
        }
        assert not wrong, f"{len(running)} in flight at SIGTERM; wrong results: {wrong}"
        histories = {iid: rpc_history(server, iid) for iid in every_id}
    finally:
        worker.stop()
        code = server.stop()
    assert code == 0, server.log()
    problems = [p for iid in every_id for p in history_problems(iid, histories[iid], False)]
    problems += journal_problems(read_journal(journal)[0], [window], histories)
    assert not problems, "\n".join(problems)
