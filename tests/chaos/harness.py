"""Helpers for the crash tests: a killable SDK worker process, the execution journal, and the
checks that a history and the journal are what a durable engine must leave behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from dapr.ext.workflow import DaprWorkflowClient, WorkflowState, WorkflowStatus
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc
from dapr.ext.workflow._durabletask.internal import protos as pb

from tests.chaos import worker_app
from tests.fixtures.tether import REPO, TetherProcess, wait_until

WORKER_APP = Path(worker_app.__file__).resolve()
KILL_LINE = "@kill"
# Bookkeeping events the history RPC may leave out (workers cannot replay them).
MAY_HIDE_FROM_RPC = frozenset({"executionCompleted", "eventSent"})
STATUS_COMPLETED = 1


# --- SDK interpreters --------------------------------------------------------------------------


SDK118_VENV = REPO / ".venv-sdk118"


def sdk118_python() -> str:
    """The interpreter of `.venv-sdk118` (dapr 1.18.3 + dapr-ext-workflow 1.18.3), created by
    `scripts/sdk-venv.sh` if needed (that needs PyPI once; it is a no-op afterwards)."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "sdk-venv.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/sdk-venv.sh failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return str(SDK118_VENV / "bin" / "python")


# --- processes ----------------------------------------------------------------------------------


class WorkerProcess:
    """`worker_app.py` in its own process, pointed at a Tether server."""

    def __init__(
        self, server: TetherProcess, journal: Path, log_path: Path, python: str = sys.executable
    ) -> None:
        self.server = server
        self.journal = journal
        self.log_path = log_path
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        args = [self.python, str(WORKER_APP), "127.0.0.1", str(self.server.grpc_port)]
        # The worker may run another venv's interpreter: keep this one's paths out of it.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env |= {**self.server.env(), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*args, str(self.journal)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        ready = f"{worker_app.READY_LINE} pid={self.proc.pid}"
        wait_until(lambda: self._ready(ready), timeout, 0.05, what="the chaos worker to connect")
        return self

    def _ready(self, line: str) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"chaos worker exited with {self.proc.returncode}:\n{self.log()}")
        return line in self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


@dataclass(frozen=True, slots=True)
class KillWindow:
    """From just before SIGKILL (or SIGTERM) to the moment the replacement process was ready."""

    target: str
    start_ns: int
    up_ns: int

    def journal_line(self) -> str:
        return f"{KILL_LINE},{self.target},{self.start_ns},{self.up_ns}\n"


def kill_and_restart(target: str, proc: TetherProcess | WorkerProcess, journal: Path) -> KillWindow:
    """SIGKILL a process, start it again, and write the kill into the journal."""
    start = time.time_ns()
    proc.kill()
    proc.start()
    window = KillWindow(target, start, time.time_ns())
    with journal.open("a") as f:
        f.write(window.journal_line())
    return window


# --- the journal --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Execution:
    instance_id: str
    task_key: str
    start_ns: int
    end_ns: int
    pid: int

    @property
    def task_id(self) -> int:
        return int(self.task_key.rsplit("#", 1)[1])

    @property
    def name(self) -> str:
        return self.task_key.rsplit("#", 1)[0]


def read_journal(path: Path) -> tuple[list[Execution], list[KillWindow]]:
    runs: list[Execution] = []
    kills: list[KillWindow] = []
    if not path.exists():
        return runs, kills
    for line in path.read_text().splitlines():
        parts = line.split(",")
        if parts[0] == KILL_LINE:
            kills.append(KillWindow(parts[1], int(parts[2]), int(parts[3])))
        elif len(parts) == 5:
            runs.append(Execution(parts[0], parts[1], int(parts[2]), int(parts[3]), int(parts[4])))
        else:
            raise AssertionError(f"torn or malformed journal line: {line!r}")
    return runs, kills


# --- the SDK client -----------------------------------------------------------------------------


@contextlib.contextmanager
def workflow_client(server: TetherProcess) -> Iterator[DaprWorkflowClient]:
    """The SDK's client for `server`; its channel reconnects across server restarts."""
    client = DaprWorkflowClient(host="127.0.0.1", port=str(server.grpc_port))
    try:
        yield client
    finally:
        client.close()


def status_name(state: WorkflowState | None) -> str:
    return "MISSING" if state is None else state.runtime_status.name


def wait_all_terminal(
    client: DaprWorkflowClient,
    ids: Iterable[str],
    timeout: float,
    diagnose: Callable[[list[str]], str] | None = None,
) -> dict[str, WorkflowState]:
    """Poll until every instance is terminal; tolerates a server that is still coming up.

    On timeout the test fails, with `diagnose(stuck ids)` appended to the message.
    """
    terminal = {WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.TERMINATED}
    pending = set(ids)
    done: dict[str, WorkflowState] = {}
    last: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for iid in sorted(pending):
            try:
                state = client.get_workflow_state(iid, fetch_payloads=True)
            except grpc.RpcError as exc:
                last[iid] = f"rpc error {exc.code()}"
                continue
            last[iid] = status_name(state)
            if state is not None and state.runtime_status in terminal:
                done[iid] = state
                pending.discard(iid)
        if not pending:
            break
        if time.monotonic() > deadline:
            stuck = ", ".join(f"{i}={last.get(i, '?')}" for i in sorted(pending))
            detail = diagnose(sorted(pending)) if diagnose else ""
            pytest.fail(
                f"{len(pending)} workflows not finished after {timeout}s: {stuck}\n{detail}"
            )
        time.sleep(0.2)
    return done


def output_of(state: WorkflowState) -> Any:
    return json.loads(state.serialized_output) if state.serialized_output else None


# --- histories ----------------------------------------------------------------------------------


def rpc_history(server: TetherProcess, instance_id: str) -> list[Any]:
    """History through `TaskHubSidecarService/GetInstanceHistory`, as the 1.19 client reads it."""
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        res = stub.GetInstanceHistory(
            pb.GetInstanceHistoryRequest(instanceId=instance_id), timeout=10
        )
    return list(res.events)


def store_histories(
    store_url: str | None, data_dir: Path, ids: Iterable[str]
) -> dict[str, list[Any]]:
    """Every event the store holds, read with the server stopped (nothing filtered)."""
    from tether.workflow.store import open_store

    async def read() -> dict[str, list[Any]]:
        store = open_store(store_url, data_dir)
        await store.open()
        try:
            out: dict[str, list[Any]] = {}
            for iid in ids:
                out[iid] = [pb.HistoryEvent.FromString(raw) for raw in await store.get_history(iid)]
            return out
        finally:
            await store.close()

    return asyncio.run(read())


def kind(event: Any) -> str:
    return str(event.WhichOneof("eventType"))


def history_problems(iid: str, events: list[Any], full: bool) -> list[str]:
    """What is wrong with the history of a COMPLETED instance (empty list: nothing).

    `full` says the history is the store's, which must hold the executionCompleted event; the
    history RPC may leave that one out.
    """
    bad: list[str] = []
    kinds = Counter(kind(e) for e in events)
    if kinds["executionStarted"] != 1:
        bad.append(f"{iid}: {kinds['executionStarted']} executionStarted events")
    ends = [e for e in events if kind(e) == "executionCompleted"]
    if len(ends) > 1 or (full and not ends):
        bad.append(f"{iid}: {len(ends)} executionCompleted events")
    elif ends and ends[0] is not events[-1]:
        bad.append(f"{iid}: executionCompleted is not the last event")
    elif ends and ends[0].executionCompleted.workflowStatus != STATUS_COMPLETED:
        bad.append(f"{iid}: finished with status {ends[0].executionCompleted.workflowStatus}")
    for extra in ("taskFailed", "childWorkflowInstanceFailed", "executionTerminated"):
        if kinds[extra]:
            bad.append(f"{iid}: {kinds[extra]} {extra} events")

    action_ids = Counter(
        e.eventId
        for e in events
        if kind(e) in ("taskScheduled", "timerCreated", "childWorkflowInstanceCreated")
    )
    bad += [
        f"{iid}: action event id {i} recorded {n} times" for i, n in action_ids.items() if n > 1
    ]

    pairs = (
        ("taskScheduled", "taskCompleted", "taskScheduledId"),
        ("timerCreated", "timerFired", "timerId"),
        ("childWorkflowInstanceCreated", "childWorkflowInstanceCompleted", "taskScheduledId"),
    )
    for opened, closed, ref in pairs:
        scheduled = {e.eventId for e in events if kind(e) == opened}
        answers = Counter(getattr(getattr(e, closed), ref) for e in events if kind(e) == closed)
        for sid in sorted(scheduled):
            if answers[sid] != 1:
                bad.append(f"{iid}: {opened} {sid} has {answers[sid]} {closed} events")
        for sid in sorted(set(answers) - scheduled):
            bad.append(f"{iid}: {closed} answers {ref}={sid}, which was never {opened}")
    return bad


def journal_problems(
    runs: list[Execution], kills: list[KillWindow], histories: dict[str, list[Any]]
) -> list[str]:
    """Activities ran as often as they may, and no more.

    - every run belongs to an activity its workflow scheduled, and every scheduled one ran;
    - no run started after the activity's completion was recorded;
    - an activity ran at most once plus once per kill (of either process) whose window
      overlaps the time from its scheduling to its recorded completion. Each kill (or clean
      stop: a stopping server still works until it exits) can lose at most one execution's
      completion: the one the killed worker held, or the one the killed server had handed out
      (the worker may still run that stale work item after the restart; its result is then
      refused and the new server's dispatch runs it again).
    """
    bad: list[str] = []
    by_task: dict[tuple[str, int], list[Execution]] = defaultdict(list)
    for run in runs:
        by_task[(run.instance_id, run.task_id)].append(run)
    for iid, events in histories.items():
        scheduled = {e.eventId: e for e in events if kind(e) == "taskScheduled"}
        done = {
            e.taskCompleted.taskScheduledId: e.timestamp.ToNanoseconds()
            for e in events
            if kind(e) == "taskCompleted"
        }
        for tid, event in scheduled.items():
            if not by_task.get((iid, tid)):
                bad.append(f"{iid}: activity {event.taskScheduled.name}#{tid} never ran")
        for (run_iid, tid), task_runs in by_task.items():
            if run_iid != iid:
                continue
            if tid not in scheduled or task_runs[0].name != scheduled[tid].taskScheduled.name:
                bad.append(f"{iid}: {task_runs[0].task_key} ran but was never scheduled")
                continue
            if tid not in done:
                continue  # reported by history_problems
            since, until = scheduled[tid].timestamp.ToNanoseconds(), done[tid]
            for run in task_runs:
                if run.start_ns > until:
                    bad.append(
                        f"{iid}: {run.task_key} started {(run.start_ns - until) / 1e6:.1f} ms "
                        f"after its completion was recorded (pid {run.pid})"
                    )
            lossy = [k for k in kills if k.start_ns <= until and since <= k.up_ns]
            if len(task_runs) > 1 + len(lossy):
                starts = ", ".join(f"{r.start_ns / 1e9:.3f}/pid {r.pid}" for r in task_runs)
                bad.append(
                    f"{iid}: {task_runs[0].task_key} ran {len(task_runs)} times with "
                    f"{len(lossy)} kills between its scheduling and completion (runs at {starts})"
                )
    return bad


def describe_history(events: list[Any], origin_ns: int) -> str:
    """One line per event: seconds since `origin_ns`, kind, event id and what it answers."""
    lines = []
    for e in events:
        k = kind(e)
        body = getattr(e, k)
        refs = [f"{f}={getattr(body, f)}" for f in ("taskScheduledId", "timerId", "name")
                if f in body.DESCRIPTOR.fields_by_name and getattr(body, f)]  # fmt: skip
        at = (e.timestamp.ToNanoseconds() - origin_ns) / 1e9
        lines.append(f"  {at:8.3f} {k} id={e.eventId} {' '.join(refs)}")
    return "\n".join(lines)


def server_gauges(server: TetherProcess) -> str:
    """Connected workers and outstanding work items, from the metadata and metrics endpoints."""
    try:
        meta = httpx.get(f"{server.http_url}/v1.0/metadata", timeout=5).json()
        metrics = httpx.get(f"{server.http_url}/metrics", timeout=5).text
    except (httpx.HTTPError, ValueError) as exc:
        return f"server gauges unavailable: {exc}"
    gauges = [line for line in metrics.splitlines() if line.startswith("tether_workflow_")]
    workers = meta.get("extended", {}).get("connectedWorkers")
    return f"connected workers: {workers}; " + "; ".join(gauges)


def diagnose_stuck(server: TetherProcess, journal: Path, ids: list[str], origin_ns: int) -> str:
    """What a stuck instance (and its child) recorded and ran, and the kills: for the report."""
    runs, kills = read_journal(journal)
    out = [server_gauges(server)]
    out += ["kills: " + ", ".join(
        f"{k.target} {(k.start_ns - origin_ns) / 1e9:.3f}-{(k.up_ns - origin_ns) / 1e9:.3f}"
        for k in kills
    )]  # fmt: skip
    for iid in ids:
        for target in (iid, f"{iid}{worker_app.CHILD_SUFFIX}"):
            try:
                events = rpc_history(server, target)
            except grpc.RpcError as exc:
                out.append(f"{target}: history unavailable ({exc.code()})")
                continue
            out.append(f"{target} history:\n{describe_history(events, origin_ns)}")
            out += [
                f"  ran {r.task_key} {(r.start_ns - origin_ns) / 1e9:.3f}-"
                f"{(r.end_ns - origin_ns) / 1e9:.3f} pid {r.pid}"
                for r in runs
                if r.instance_id == target
            ]
    return "\n".join(out)
