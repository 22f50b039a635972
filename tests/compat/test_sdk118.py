"""The previous SDK (dapr 1.18.3 + dapr-ext-workflow 1.18.3) against Tether, worker and client.

That SDK cannot share an interpreter with the project's dapr 1.19.0, so `sdk118_app.py` runs in
`.venv-sdk118` (created by scripts/sdk-venv.sh when missing; never skipped) and reports what it
saw as JSON. A 1.18.3 worker advertises no capabilities: no health pings, no cached histories.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import sdk118_python
from tests.fixtures.tether import TetherProcess

APP = Path(__file__).with_name("sdk118_app.py")
SUMMARY_PREFIX = "SUMMARY "
RUN_TIMEOUT = 150


@pytest.fixture(scope="module")
def summary(tether_server: TetherProcess) -> dict[str, Any]:
    """Run every scenario once with the 1.18.3 SDK and return its report."""
    python = sdk118_python()
    # The SDK reads DAPR_* at import: point it at the server before the interpreter starts, and
    # keep the project venv's paths out of the other interpreter.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= tether_server.env()
    args = [python, str(APP), "127.0.0.1", str(tether_server.grpc_port)]
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"sdk118_app.py did not finish in {RUN_TIMEOUT}s:\n{exc.stderr!r}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert done.returncode == 0 and lines, (
        f"sdk118_app.py exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    )
    report: dict[str, Any] = json.loads(lines[-1].removeprefix(SUMMARY_PREFIX))
    assert "error" not in report, f"{report['error']}\n{done.stderr[-6000:]}"
    report["_log"] = done.stderr[-6000:]
    return report


def scenario(summary: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = summary[name]
    assert "error" not in result, f"{name}: {result['error']}\n{summary['_log']}"
    return result


def test_it_is_really_the_118_sdk(summary: dict[str, Any]) -> None:
    sdk = summary["sdk"]
    assert sdk["dapr"] == "1.18.3"
    assert sdk["dapr-ext-workflow"] == "1.18.3"
    assert ".venv-sdk118" in sdk["module"]
    assert sdk["has_capabilities"] is False


def test_chaining(summary: dict[str, Any]) -> None:
    assert scenario(summary, "chaining") == {"status": "COMPLETED", "output": [2, 4, 5]}


def test_fan_out_fan_in(summary: dict[str, Any]) -> None:
    assert scenario(summary, "fan_out") == {
        "status": "COMPLETED",
        "output": {"parts": [0, 1, 4, 9, 16, 25], "sum": 55},
    }


def test_child_workflows(summary: dict[str, Any]) -> None:
    out = scenario(summary, "child")
    assert out["status"] == "COMPLETED"
    assert out["output"] == {"named": [3, 6, 7], "anonymous": {"parts": [0, 1], "sum": 1}}
    assert out["named_child"] == {"status": "COMPLETED", "output": [3, 6, 7]}


def test_durable_timer(summary: dict[str, Any]) -> None:
    out = scenario(summary, "timer")
    assert out["status"] == "COMPLETED"
    # Workflow time moves by at least the timer, and the timer does not fire early.
    assert 1.0 <= out["output"] < 5.0
    assert 1.0 <= out["wall_seconds"] < 5.0


def test_external_event_and_its_timeout(summary: dict[str, Any]) -> None:
    out = scenario(summary, "external_event")
    assert out["raised"] == {"status": "COMPLETED", "output": {"approved": {"n": 41}, "n": 42}}
    timeout = out["timeout"]
    assert timeout["status"] == "COMPLETED"
    assert timeout["output"]["timed_out"] is True
    assert 0.5 <= timeout["wall_seconds"] < 5.0


def test_retry_policy(summary: dict[str, Any]) -> None:
    out = scenario(summary, "retry_policy")
    assert out["recovers"] == {"status": "COMPLETED", "output": "ok after 3", "attempts": 3}
    exhausted = out["exhausted"]
    assert exhausted["status"] == "FAILED"
    assert exhausted["error_type"] == "TaskFailedError"
    assert exhausted["attempts"] == 2


def test_continue_as_new(summary: dict[str, Any]) -> None:
    assert scenario(summary, "continue_as_new") == {"status": "COMPLETED", "output": 4}


def test_suspend_and_resume(summary: dict[str, Any]) -> None:
    out = scenario(summary, "suspend_resume")
    assert out["running"] and out["suspended"]
    assert out["still_suspended"] == "SUSPENDED", "an event woke a suspended workflow"
    assert out["final"] == {"status": "COMPLETED", "output": {"approved": {"n": 1}, "n": 2}}


def test_terminate_is_recursive(summary: dict[str, Any]) -> None:
    out = scenario(summary, "terminate")
    assert out["child_running"]
    assert out["parent"] == {"status": "TERMINATED", "output": "stopped by test"}
    assert out["child"]["status"] == "TERMINATED"


def test_purge(summary: dict[str, Any]) -> None:
    out = scenario(summary, "purge")
    assert out["before"] == "COMPLETED"
    assert out["parent_after"] is None
    assert out["child_after"] is None, "a recursive purge left the child behind"
    assert out["terminated_after"] == [None, None]
    assert out["rerun"] == {"status": "COMPLETED", "output": [6, 12, 13]}
