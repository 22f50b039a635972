"""Worker and client on the previous Dapr Python SDK (dapr 1.18.3 + dapr-ext-workflow 1.18.3).

    .venv-sdk118/bin/python tests/compat/sdk118_app.py HOST PORT

Runs under `.venv-sdk118` (see scripts/sdk-venv.sh), NOT the project venv: it imports nothing
from Tether or the tests. It registers workflows, drives every scenario through the SDK's own
client, and prints one line `SUMMARY {json}` with what it observed; tests/compat/test_sdk118.py
asserts on it. dapr 1.18.3 reads DAPR_* settings at import, so the caller sets them in the
environment before this starts; the SDK is imported inside `main` all the same, after argv.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

WAIT = 20  # seconds: the bound of every single wait
START_TIMEOUT = 20.0
SUMMARY_PREFIX = "SUMMARY "

_attempts: Counter[str] = Counter()
_attempts_lock = threading.Lock()


def main(host: str, port: str) -> dict[str, Any]:
    import importlib.metadata as md

    import dapr.ext.workflow as wf
    from dapr.ext.workflow._durabletask.internal import protos as pb

    summary: dict[str, Any] = {
        "sdk": {
            "dapr": md.version("dapr"),
            "dapr-ext-workflow": md.version("dapr-ext-workflow"),
            "module": wf.__file__,
            "has_capabilities": "capabilities" in pb.GetWorkItemsRequest.DESCRIPTOR.fields_by_name,
        }
    }

    # --- activities ------------------------------------------------------------------------

    def add1(ctx: Any, x: int) -> int:
        return x + 1

    def double(ctx: Any, x: int) -> int:
        return x * 2

    def square(ctx: Any, x: int) -> int:
        return x * x

    def flaky(ctx: Any, arg: dict[str, Any]) -> str:
        """Fails the first `fail` attempts for a key, then succeeds."""
        with _attempts_lock:
            _attempts[arg["key"]] += 1
            attempt = _attempts[arg["key"]]
        if attempt <= arg["fail"]:
            raise ValueError(f"attempt {attempt} of {arg['key']} fails on purpose")
        return f"ok after {attempt}"

    # --- workflows -------------------------------------------------------------------------

    def chain(ctx: Any, x: int) -> Any:
        a = yield ctx.call_activity("add1", input=x)
        b = yield ctx.call_activity("double", input=a)
        c = yield ctx.call_activity("add1", input=b)
        return [a, b, c]

    def fan(ctx: Any, n: int) -> Any:
        parts = yield wf.when_all([ctx.call_activity("square", input=i) for i in range(n)])
        return {"parts": parts, "sum": sum(parts)}

    def parent(ctx: Any, x: int) -> Any:
        named = yield ctx.call_child_workflow("chain", input=x, instance_id=f"{ctx.instance_id}-c")
        anonymous = yield ctx.call_child_workflow("fan", input=x)
        return {"named": named, "anonymous": anonymous}

    def timer(ctx: Any, seconds: float) -> Any:
        before = ctx.current_utc_datetime
        yield ctx.create_timer(timedelta(seconds=seconds))
        return (ctx.current_utc_datetime - before).total_seconds()

    def approval(ctx: Any, timeout: float | None = None) -> Any:
        wait = timedelta(seconds=timeout) if timeout is not None else None
        try:
            data = yield ctx.wait_for_external_event("approve", timeout=wait)
        except Exception as exc:  # the SDK's timeout error type differs between versions
            return {"timed_out": True, "error": type(exc).__name__}
        n = yield ctx.call_activity("add1", input=data["n"])
        return {"approved": data, "n": n}

    def retrying(ctx: Any, arg: dict[str, Any]) -> Any:
        policy = wf.RetryPolicy(
            first_retry_interval=timedelta(seconds=0.2),
            max_number_of_attempts=arg["max"],
            backoff_coefficient=1.0,
        )
        result = yield ctx.call_activity("flaky", input=arg, retry_policy=policy)
        return result

    def counter(ctx: Any, n: int) -> Any:
        n = yield ctx.call_activity("add1", input=n)
        if n < 4:
            ctx.continue_as_new(n)
            return None
        return n

    def waits_on_child(ctx: Any, _: Any = None) -> Any:
        result = yield ctx.call_child_workflow(
            "approval", input=None, instance_id=f"{ctx.instance_id}-c"
        )
        return result

    runtime = wf.WorkflowRuntime(host=host, port=port, worker_ready_timeout=START_TIMEOUT)
    activities: list[Callable[..., Any]] = [add1, double, square, flaky]
    workflows: list[Callable[..., Any]] = [
        chain, fan, parent, timer, approval, retrying, counter, waits_on_child,
    ]  # fmt: skip
    for fn in activities:
        runtime.register_activity(fn, name=fn.__name__)
    for fn in workflows:
        runtime.register_workflow(fn, name=fn.__name__)

    # 1.18.3's start() waits for the stream with no deadline of its own: bound it.
    started: list[BaseException | None] = []

    def start() -> None:
        try:
            runtime.start()
            started.append(None)
        except BaseException as exc:
            started.append(exc)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    starter.join(START_TIMEOUT + 5)
    if not started or started[0] is not None:
        summary["error"] = f"WorkflowRuntime.start() did not finish: {started or 'timed out'}"
        return summary

    client = wf.DaprWorkflowClient(host=host, port=port)

    def state_of(iid: str) -> dict[str, Any]:
        st = client.get_workflow_state(iid, fetch_payloads=True)
        if st is None:
            return {"status": None}
        return describe(st)

    def describe(st: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"status": st.runtime_status.name}
        if st.serialized_output:
            out["output"] = json.loads(st.serialized_output)
        if st.failure_details is not None:
            out["error_type"] = st.failure_details.error_type
        return out

    def run(name: str, input: Any = None, iid: str | None = None) -> tuple[str, dict[str, Any]]:
        iid = client.schedule_new_workflow(name, input=input, instance_id=iid)
        st = client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
        return iid, describe(st) if st is not None else {"status": None}

    def wait_status(iid: str, status: str) -> bool:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if state_of(iid)["status"] == status:
                return True
            time.sleep(0.05)
        return False

    # --- scenarios -------------------------------------------------------------------------

    def chaining() -> dict[str, Any]:
        return run("chain", 1, "s118-chain")[1]

    def fan_out() -> dict[str, Any]:
        return run("fan", 6, "s118-fan")[1]

    def child() -> dict[str, Any]:
        out = run("parent", 2, "s118-parent")[1]
        out["named_child"] = state_of("s118-parent-c")
        return out

    def durable_timer() -> dict[str, Any]:
        began = time.monotonic()
        out = run("timer", 1.0, "s118-timer")[1]
        out["wall_seconds"] = time.monotonic() - began
        return out

    def external_event() -> dict[str, Any]:
        iid = client.schedule_new_workflow("approval", input=10.0, instance_id="s118-event")
        client.wait_for_workflow_start(iid, timeout_in_seconds=WAIT)
        client.raise_workflow_event(iid, "approve", data={"n": 41})
        raised = client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
        began = time.monotonic()
        timed_out = run("approval", 0.5, "s118-event-timeout")[1]
        timed_out["wall_seconds"] = time.monotonic() - began
        return {"raised": describe(raised), "timeout": timed_out}

    def retry_policy() -> dict[str, Any]:
        ok = run("retrying", {"key": "succeeds", "fail": 2, "max": 3}, "s118-retry")[1]
        ok["attempts"] = _attempts["succeeds"]
        failed = run("retrying", {"key": "gives-up", "fail": 5, "max": 2}, "s118-retry-fail")[1]
        failed["attempts"] = _attempts["gives-up"]
        return {"recovers": ok, "exhausted": failed}

    def continue_as_new() -> dict[str, Any]:
        return run("counter", 0, "s118-counter")[1]

    def suspend_resume() -> dict[str, Any]:
        iid = client.schedule_new_workflow("approval", input=None, instance_id="s118-suspend")
        out: dict[str, Any] = {"running": wait_status(iid, "RUNNING")}
        client.pause_workflow(iid)
        out["suspended"] = wait_status(iid, "SUSPENDED")
        client.raise_workflow_event(iid, "approve", data={"n": 1})
        time.sleep(0.5)  # nothing may happen while suspended: there is no event to poll for
        out["still_suspended"] = state_of(iid)["status"]
        client.resume_workflow(iid)
        out["final"] = describe(client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT))
        return out

    def terminate() -> dict[str, Any]:
        iid = client.schedule_new_workflow("waits_on_child", instance_id="s118-term")
        out: dict[str, Any] = {"child_running": wait_status(f"{iid}-c", "RUNNING")}
        client.terminate_workflow(iid, output="stopped by test")
        out["parent"] = describe(client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT))
        child_done = client.wait_for_workflow_completion(f"{iid}-c", timeout_in_seconds=WAIT)
        out["child"] = describe(child_done)
        return out

    def purge() -> dict[str, Any]:
        # Finished by the scenarios above: a parent with a named child, and a terminated pair.
        out: dict[str, Any] = {"before": state_of("s118-parent")["status"]}
        client.purge_workflow("s118-parent")
        out["parent_after"] = state_of("s118-parent")["status"]
        out["child_after"] = state_of("s118-parent-c")["status"]
        client.purge_workflow("s118-term", recursive=True)
        out["terminated_after"] = [
            state_of("s118-term")["status"],
            state_of("s118-term-c")["status"],
        ]
        # An id can be used again once purged.
        out["rerun"] = run("chain", 5, "s118-parent")[1]
        return out

    scenarios: dict[str, Callable[[], dict[str, Any]]] = {
        "chaining": chaining,
        "fan_out": fan_out,
        "child": child,
        "timer": durable_timer,
        "external_event": external_event,
        "retry_policy": retry_policy,
        "continue_as_new": continue_as_new,
        "suspend_resume": suspend_resume,
        "terminate": terminate,
        "purge": purge,
    }
    try:
        for name, scenario in scenarios.items():
            try:
                summary[name] = scenario()
            except Exception as exc:
                summary[name] = {"error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
    finally:
        client.close()
        runtime.shutdown()
    return summary


if __name__ == "__main__":
    result = main(sys.argv[1], sys.argv[2])
    print(SUMMARY_PREFIX + json.dumps(result), flush=True)
