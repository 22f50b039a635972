"""The four workloads written against the official Dapr workflow SDK.

Importing this module imports ``dapr``, which reads ``DAPR_*`` settings once,
at import; set the endpoint variables first (``bench.tether_runner`` does).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Generator
from typing import Any

from dapr.ext.workflow import (
    DaprWorkflowClient,
    DaprWorkflowContext,
    WorkflowActivityContext,
    WorkflowRuntime,
    WorkflowState,
    WorkflowStatus,
    when_all,
)
from dapr.ext.workflow._durabletask import task
from dapr.ext.workflow.aio import DaprWorkflowClient as AsyncDaprWorkflowClient
from dapr.ext.workflow.logger import LoggerOptions

from bench.common import WAIT_TIMEOUT_S, Figures, Sizes, Workload, latency_figures

# The SDK logs each schedule and wait at INFO; formatting those lines would
# be part of what we time.
_QUIET = LoggerOptions(log_level=logging.getLevelName(logging.WARNING))

WorkflowGen = Generator[task.Task[Any], Any, int]


# A plain ``def`` is the shape most Dapr apps use; the SDK runs it on its
# thread pool.
# The unused input parameter is what the SDK's typing expects of an activity.
def noop(ctx: WorkflowActivityContext, _input: None = None) -> None:
    return None


def sequential(ctx: DaprWorkflowContext, steps: int) -> WorkflowGen:
    for _ in range(steps):
        yield ctx.call_activity(noop)
    return steps


def fan_out(ctx: DaprWorkflowContext, width: int) -> WorkflowGen:
    yield when_all([ctx.call_activity(noop) for _ in range(width)])
    return width


class WorkflowFailed(RuntimeError):
    pass


def _check(instance_id: str, state: WorkflowState | None) -> None:
    if state is None:
        raise WorkflowFailed(f"{instance_id}: server says no such instance")
    if state.runtime_status is not WorkflowStatus.COMPLETED:
        raise WorkflowFailed(f"{instance_id}: ended {state.runtime_status.name}")


def start_runtime(ready_timeout_s: float) -> WorkflowRuntime:
    """Register the workloads and connect the worker, bounded in time.

    ``WorkflowRuntime.start()`` waits for the work-item stream with no
    deadline of its own in the underlying worker, so it runs on a helper
    thread that we stop waiting for.
    """
    runtime = WorkflowRuntime(logger_options=_QUIET, worker_ready_timeout=ready_timeout_s)
    runtime.register_workflow(sequential)
    runtime.register_workflow(fan_out)
    runtime.register_activity(noop)

    errors: list[BaseException] = []

    def start() -> None:
        try:
            runtime.start()  # type: ignore[no-untyped-call]
        except BaseException as exc:  # re-raised on the caller's thread
            errors.append(exc)

    starter = threading.Thread(target=start, name="bench-runtime-start", daemon=True)
    starter.start()
    starter.join(ready_timeout_s)
    if starter.is_alive():
        raise TimeoutError(f"WorkflowRuntime.start() still blocked after {ready_timeout_s:.0f}s")
    if errors:
        raise errors[0]
    return runtime


class DaprWorkloads:
    def __init__(self) -> None:
        self._client = DaprWorkflowClient(logger_options=_QUIET)
        # Unique ids per run: a persistent store may still hold the last run's.
        self._run = uuid.uuid4().hex[:8]

    def _id(self, label: str) -> str:
        return f"{label}-{self._run}-{uuid.uuid4().hex[:8]}"

    def _run_to_completion(self, workflow: Any, arg: int, label: str) -> None:
        instance_id = self._client.schedule_new_workflow(
            workflow, input=arg, instance_id=self._id(label)
        )
        state = self._client.wait_for_workflow_completion(
            instance_id, fetch_payloads=False, timeout_in_seconds=WAIT_TIMEOUT_S
        )
        _check(instance_id, state)

    def warmup(self) -> None:
        self._run_to_completion(sequential, 1, "warmup")

    def w1(self, sizes: Sizes) -> Figures:
        started = time.perf_counter()
        self._run_to_completion(sequential, sizes.w1_steps, "w1")
        elapsed = time.perf_counter() - started
        return {"ms_per_step": elapsed * 1000.0 / sizes.w1_steps, "seconds": elapsed}

    def w2(self, sizes: Sizes) -> Figures:
        # The async client so 500 schedules are really in flight together;
        # it binds its channel to the loop, so it lives only inside this run.
        return asyncio.run(self._w2(sizes))

    async def _w2(self, sizes: Sizes) -> Figures:
        client = AsyncDaprWorkflowClient(logger_options=_QUIET)
        started = time.perf_counter()
        ids = await asyncio.gather(
            *(
                client.schedule_new_workflow(
                    sequential, input=sizes.w2_steps, instance_id=self._id("w2")
                )
                for _ in range(sizes.w2_workflows)
            )
        )
        states = await asyncio.wait_for(
            asyncio.gather(
                *(
                    client.wait_for_workflow_completion(
                        i, fetch_payloads=False, timeout_in_seconds=WAIT_TIMEOUT_S
                    )
                    for i in ids
                )
            ),
            WAIT_TIMEOUT_S,
        )
        elapsed = time.perf_counter() - started
        for instance_id, state in zip(ids, states, strict=True):
            _check(instance_id, state)
        return {"wf_per_s": sizes.w2_workflows / elapsed, "seconds": elapsed}

    def w3(self, sizes: Sizes) -> Figures:
        started = time.perf_counter()
        self._run_to_completion(fan_out, sizes.w3_fanout, "w3")
        return {"seconds": time.perf_counter() - started}

    def w4(self, sizes: Sizes) -> Figures:
        latencies: list[float] = []
        for _ in range(sizes.w4_workflows):
            started = time.perf_counter()
            self._run_to_completion(sequential, 1, "w4")
            latencies.append(time.perf_counter() - started)
        return latency_figures(latencies)

    def impls(self) -> dict[str, Workload]:
        return {"W1": self.w1, "W2": self.w2, "W3": self.w3, "W4": self.w4}

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
