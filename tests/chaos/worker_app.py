"""A Dapr workflow worker for the chaos tests: its own process, so a test can SIGKILL it.

    python tests/chaos/worker_app.py HOST PORT JOURNAL

Runs the official SDK's `WorkflowRuntime` with workflows that mix sequential activities, short
timers, a fan-out and a child workflow. Every activity execution appends one line to JOURNAL
(O_APPEND, fsync'd) before it returns:

    instance_id,task_key,start_ns,end_ns,pid

`task_key` is `<activity name>#<task id>`, the id of its `taskScheduled` event in the history.
Results are pure functions of the inputs (see `expected_output`), so a test can check outputs
however often an activity ran. Only APIs common to dapr 1.18.3 and 1.19.0 are used.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Any

CHILD_SUFFIX = "-child"
FAN_OUT = 4
READY_LINE = "chaos worker ready"
READY_TIMEOUT = 20.0


# --- pure functions: what activities compute, and what a whole workflow returns ------------------


def step_value(n: int, i: int) -> int:
    return (n * 31 + i * 7) % 1000


def square_value(x: int) -> int:
    return x * x


def rounds(n: int) -> int:
    return 2 + n % 5


def timer_seconds(n: int) -> float:
    return 0.4 + (n % 3) * 0.2


def expected_child(n: int) -> int:
    return step_value(n, 100) + step_value(n, 101)


def expected_output(n: int) -> dict[str, Any]:
    return {
        "n": n,
        "steps": [step_value(n, i) for i in range(rounds(n))],
        "squares": [square_value(n * 10 + j) for j in range(FAN_OUT)],
        "child": expected_child(n),
        "final": step_value(n, 999),
    }


# --- the journal --------------------------------------------------------------------------------


class Journal:
    """Append-only execution log that survives SIGKILL of this process."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def record(self, instance_id: str, task_key: str, start_ns: int) -> None:
        line = f"{instance_id},{task_key},{start_ns},{time.time_ns()},{os.getpid()}\n"
        with self._lock:
            os.write(self._fd, line.encode())
            os.fsync(self._fd)


# --- the worker ---------------------------------------------------------------------------------


def main(host: str, port: str, journal_path: str) -> None:
    import dapr.ext.workflow as wf

    journal = Journal(journal_path)
    runtime = wf.WorkflowRuntime(host=host, port=port, worker_ready_timeout=READY_TIMEOUT)

    def run_activity(ctx: Any, name: str, value: int) -> int:
        start = time.time_ns()
        # A little work, so that kills land while activities run.
        time.sleep(random.uniform(0.01, 0.12))
        journal.record(ctx.workflow_id, f"{name}#{ctx.task_id}", start)
        return value

    def chaos_step(ctx: Any, arg: dict[str, int]) -> int:
        return run_activity(ctx, "chaos_step", step_value(arg["n"], arg["i"]))

    def chaos_square(ctx: Any, x: int) -> int:
        return run_activity(ctx, "chaos_square", square_value(x))

    def chaos_child(ctx: Any, n: int) -> Any:
        a = yield ctx.call_activity("chaos_step", input={"n": n, "i": 100})
        yield ctx.create_timer(timedelta(seconds=0.3))
        b = yield ctx.call_activity("chaos_step", input={"n": n, "i": 101})
        return a + b

    def chaos_parent(ctx: Any, n: int) -> Any:
        steps = []
        for i in range(rounds(n)):
            steps.append((yield ctx.call_activity("chaos_step", input={"n": n, "i": i})))
            yield ctx.create_timer(timedelta(seconds=timer_seconds(n)))
        squares = yield wf.when_all(
            [ctx.call_activity("chaos_square", input=n * 10 + j) for j in range(FAN_OUT)]
        )
        child = yield ctx.call_child_workflow(
            "chaos_child", input=n, instance_id=f"{ctx.instance_id}{CHILD_SUFFIX}"
        )
        final = yield ctx.call_activity("chaos_step", input={"n": n, "i": 999})
        return {"n": n, "steps": steps, "squares": squares, "child": child, "final": final}

    runtime.register_activity(chaos_step, name="chaos_step")
    runtime.register_activity(chaos_square, name="chaos_square")
    runtime.register_workflow(chaos_child, name="chaos_child")
    runtime.register_workflow(chaos_parent, name="chaos_parent")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime.start()  # bounded by worker_ready_timeout
    print(f"{READY_LINE} pid={os.getpid()}", flush=True)
    try:
        stop.wait()
    finally:
        runtime.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
