"""Jobs across App IDs for operators: `/v1.0-tether/jobs` and `tether jobs`, against a real
`tether dev` whose app refuses connections, so that a fired occurrence stays undelivered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dapr.clients.grpc._jobs import ConstantFailurePolicy, Job

from tests.fixtures.apps import register, sdk
from tests.fixtures.tether import REPO, TetherProcess, free_port, wait_until

PREFIX = "/v1.0-tether/jobs"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TetherProcess]:
    # Nothing listens on the app port: every delivery fails and is retried.
    args = ["--app-id", "lister", "--app-port", str(free_port())]
    proc = TetherProcess(tmp_path_factory.mktemp("jobs"), extra_args=args)
    proc.start()
    with sdk(proc) as client:
        client.schedule_job(Job(name="hourly", schedule="@every 1h", repeats=3))
        client.schedule_job(
            Job(
                name="stuck", due_time="0s",
                failure_policy=ConstantFailurePolicy(max_retries=50, interval_seconds=30),
            )
        )  # fmt: skip
    token = register(proc, appID="other")
    with sdk(proc, token=token) as client:
        client.schedule_job(Job(name="nightly", schedule="0 0 3 * * *"))
    yield proc
    assert proc.stop() == 0, proc.log()


def listing(server: TetherProcess, app_id: str | None = None) -> dict[str, Any]:
    params = {"appID": app_id} if app_id else None
    got: dict[str, Any] = httpx.get(server.http_url + PREFIX, params=params, timeout=10).json()
    return got


def cli(server: TetherProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TETHER_URL": server.http_url, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tether", "jobs", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )  # fmt: skip


def test_every_app_s_jobs_and_the_undelivered_occurrences_are_listed(
    server: TetherProcess,
) -> None:
    def stuck_attempted() -> dict[str, Any] | None:
        found = listing(server)
        pending = [d for d in found["deliveries"] if d["name"] == "stuck"]
        return found if pending and pending[0]["attempts"] >= 1 else None

    found = wait_until(stuck_attempted, 15, what="a failed delivery of 'stuck'")
    assert [(j["appID"], j["name"]) for j in found["jobs"]] == [
        ("lister", "hourly"), ("other", "nightly"),
    ]  # fmt: skip
    hourly = found["jobs"][0]
    assert (hourly["schedule"], hourly["repeats"], hourly["fired"]) == ("@every 1h", 3, 0)
    assert hourly["nextFireAt"].endswith("Z") and hourly["expiresAt"] is None
    (stuck,) = found["deliveries"]
    assert stuck["appID"] == "lister" and stuck["owner"] and stuck["leaseUntil"]
    assert [j["name"] for j in listing(server, "other")["jobs"]] == ["nightly"]
    assert listing(server, "other")["deliveries"] == []


def test_the_cli_lists_and_deletes(server: TetherProcess) -> None:
    shown = cli(server, "list")
    assert shown.returncode == 0, shown.stderr
    for text in ("hourly", "nightly", "@every 1h x3", "not yet taken", "stuck"):
        assert text in shown.stdout
    as_json = json.loads(cli(server, "list", "--app-id", "other", "--json").stdout)
    assert [j["name"] for j in as_json["jobs"]] == ["nightly"]
    # A one-shot job is gone once it fired; deleting it drops the occurrence still retrying.
    deleted = cli(server, "delete", "lister", "stuck")
    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted job stuck of lister" in deleted.stdout
    assert listing(server)["deliveries"] == []
    missing = cli(server, "delete", "lister", "stuck")
    assert missing.returncode == 1
    assert "job stuck of app lister not found" in missing.stderr
    assert cli(server, "delete", "other", "nightly").returncode == 0
    assert cli(server, "list", "--app-id", "other").stdout.strip() == "App other has no jobs."
