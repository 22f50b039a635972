"""`tether workflow ...` against a real `tether dev`.

Most commands run as real subprocesses (`python -m tether workflow ...` with TETHER_URL), the
way a user runs them; a few use typer's CliRunner where only the output matters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from typer.testing import CliRunner

from tests.fixtures.tether import REPO, TetherProcess, free_port
from tests.integration.test_manage_api import worker
from tether.cli.workflow import app

PREFIX = "/v1.0-tether/workflows"


def cli(
    server: TetherProcess | str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    url = server if isinstance(server, str) else server.http_url
    # Wide columns so tables do not wrap the values the tests look for.
    env = {**os.environ, "TETHER_URL": url, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tether", "workflow", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def invoke(server: TetherProcess, *args: str, stdin: str | None = None) -> Any:
    """CliRunner run; returns the result (for `--json` output, parse `.stdout`)."""
    return CliRunner().invoke(app, [*args, "--server", server.http_url], input=stdin)


def quick(server: TetherProcess, *args: str) -> str:
    """An in-process run that must succeed; its stdout."""
    result = invoke(server, *args)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_of(server: TetherProcess, iid: str) -> str | None:
    resp = httpx.get(f"{server.http_url}{PREFIX}/{iid}", timeout=10)
    return None if resp.status_code == 404 else str(resp.json()["status"])


def test_start_list_show_and_operate(tether_server: TetherProcess) -> None:
    name = unique("cli")
    ids = [f"{name}-{i}" for i in range(3)]
    for i, iid in enumerate(ids):
        out = ok(cli(tether_server, "start", name, "--id", iid, "--input", json.dumps({"n": i})))
        assert f"Started workflow '{name}' as instance {iid}." in out

    table = ok(cli(tether_server, "list", "--name", name))
    lines = [line for line in table.splitlines() if name in line]
    assert [next(i for i in ids if i in line) for line in lines] == ids[::-1]  # newest first
    assert all("PENDING" in line for line in lines)
    assert "3 instance(s)." in table

    assert "Suspended" in quick(tether_server, "suspend", ids[0])
    assert status_of(tether_server, ids[0]) == "SUSPENDED"
    assert "Resumed" in quick(tether_server, "resume", ids[0])
    out = quick(tether_server, "raise", ids[0], "approval", "--data", '{"ok": true}')
    assert f"Raised event 'approval' on {ids[0]}." in out
    out = quick(tether_server, "terminate", ids[0], "--output", '"enough"')
    assert f"Terminated {ids[0]} (status TERMINATED)." in out
    # Suspending a finished instance changes nothing and says why.
    assert "only running or pending" in quick(tether_server, "suspend", ids[0])

    show = ok(cli(tether_server, "show", ids[0]))
    assert "TERMINATED" in show and '"n": 0' in show and '"enough"' in show
    detail = json.loads(quick(tether_server, "show", ids[0], "--json"))
    assert detail["output"] == "enough" and detail["input"] == {"n": 0}

    listed = json.loads(quick(tether_server, "list", "--name", name, "-s", "terminated", "--json"))
    assert [i["instanceID"] for i in listed["instances"]] == [ids[0]]
    assert listed["cursor"] is None


def test_list_pages_and_all(tether_server: TetherProcess) -> None:
    name = unique("page")
    ids = {f"{name}-{i}" for i in range(5)}
    for iid in ids:
        assert invoke(tether_server, "start", name, "--id", iid).exit_code == 0

    first = json.loads(invoke(tether_server, "list", "--name", name, "-n", "2", "--json").stdout)
    assert len(first["instances"]) == 2 and first["cursor"]
    seen = [i["instanceID"] for i in first["instances"]]
    cursor = first["cursor"]
    while cursor:
        page = json.loads(
            invoke(
                tether_server, "list", "--name", name, "-n", "2", "--cursor", cursor, "--json"
            ).stdout
        )
        seen += [i["instanceID"] for i in page["instances"]]
        cursor = page["cursor"]
    assert sorted(seen) == sorted(ids)  # no duplicates, no gaps

    everything = json.loads(
        ok(cli(tether_server, "list", "--name", name, "-n", "2", "--all", "--json"))
    )
    assert sorted(i["instanceID"] for i in everything["instances"]) == sorted(ids)
    assert everything["cursor"] is None

    table = ok(cli(tether_server, "list", "--name", name, "-n", "2"))
    assert "--cursor '" in table and "--all" in table
    since = ok(
        cli(tether_server, "list", "--name", name, "--since", "1h", "--before", "2999-01-01")
    )
    assert "5 instance(s)." in since
    assert "No workflow instances match." in ok(
        cli(tether_server, "list", "--name", name, "--before", "1h")
    )


def test_history_table_without_a_worker(tether_server: TetherProcess) -> None:
    iid = unique("hist")
    ok(cli(tether_server, "start", "never-runs", "--id", iid))
    assert "has no history yet" in ok(cli(tether_server, "history", iid))
    ok(cli(tether_server, "terminate", iid, "--output", '{"reason": "test"}', "--no-recursive"))

    table = ok(cli(tether_server, "history", iid))
    assert f"History of {iid} (UTC, {datetime.now(UTC).date().isoformat()}" in table
    header = next(line for line in table.splitlines() if "EVENT ID" in line)
    for column in ("#", "TYPE", "TIMESTAMP", "DETAILS"):
        assert column in header
    rows = [line for line in table.splitlines() if "execution" in line]
    # The start is kept even though the instance never ran: its input stays visible.
    assert "executionStarted" in rows[0] and "never-runs" in rows[0]
    assert "executionTerminated" in rows[1] and "recurse=false" in rows[1]
    assert 'output={"reason": "test"}' in rows[1]
    assert "executionCompleted" in rows[2] and "status=TERMINATED" in rows[2]
    assert [r.split()[1] for r in rows] == ["0", "1", "2"]  # the index column

    events = json.loads(ok(cli(tether_server, "history", iid, "--json")))["events"]
    assert [e["type"] for e in events] == [
        "executionStarted",
        "executionTerminated",
        "executionCompleted",
    ]


def test_history_and_rerun_of_a_completed_workflow(tether_server: TetherProcess) -> None:
    iid = unique("done")
    with worker(tether_server):
        ok(cli(tether_server, "start", "hello", "--id", iid, "--input", '"cli"'))
        deadline = time.monotonic() + 20
        while status_of(tether_server, iid) != "COMPLETED":
            assert time.monotonic() < deadline, f"{iid} is {status_of(tether_server, iid)}"
            time.sleep(0.05)

        table = ok(cli(tether_server, "history", iid))
        scheduled = next(line for line in table.splitlines() if "taskScheduled" in line)
        assert 'name=shout input="hello cli"' in scheduled
        event_id = scheduled.split("│")[2].strip()
        assert event_id.isdigit()
        completed = next(line for line in table.splitlines() if "taskCompleted" in line)
        assert f"taskScheduledId={event_id}" in completed and 'result="HELLO CLI!"' in completed
        assert f"tether workflow rerun {iid} --from-event <EVENT ID>" in table
        assert '"greeting": "HELLO CLI!"' in ok(cli(tether_server, "show", iid))

        copy = unique("copy")
        args = ["rerun", iid, "--from-event", event_id, "--new-id", copy, "--input", '"twice"']
        assert f"as instance {copy}." in ok(cli(tether_server, *args))
        deadline = time.monotonic() + 20
        while status_of(tether_server, copy) != "COMPLETED":
            assert time.monotonic() < deadline, f"{copy} is {status_of(tether_server, copy)}"
            time.sleep(0.05)
        shown = json.loads(ok(cli(tether_server, "show", copy, "--json")))
        assert shown["output"] == {"greeting": "TWICE!"}


def test_purge_one_with_confirmation(tether_server: TetherProcess) -> None:
    iid = unique("p1")
    quick(tether_server, "start", "x", "--id", iid)
    refused = invoke(tether_server, "purge", iid, "--yes")
    assert refused.exit_code == 1 and "terminate it first" in refused.stderr
    quick(tether_server, "terminate", iid)

    declined = cli(tether_server, "purge", iid, stdin="n\n")
    assert declined.returncode == 1 and "Nothing was purged." in declined.stderr
    closed = cli(tether_server, "purge", iid)  # stdin at EOF: nobody to answer
    assert closed.returncode == 1 and "pass --yes" in closed.stderr
    assert status_of(tether_server, iid) == "TERMINATED"

    out = ok(cli(tether_server, "purge", iid, stdin="y\n"))
    assert "Purged 1 workflow instance(s)." in out
    assert status_of(tether_server, iid) is None

    forced = unique("p1")
    quick(tether_server, "start", "x", "--id", forced)
    assert "Purged 1" in quick(tether_server, "purge", forced, "--force", "-y")
    assert status_of(tether_server, forced) is None


def test_bulk_purge(tether_server: TetherProcess) -> None:
    since = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    name = unique("bulk")
    ids = [f"{name}-{i}" for i in range(4)]
    for iid in ids:
        assert invoke(tether_server, "start", name, "--id", iid).exit_code == 0
    for iid in ids[:3]:
        assert invoke(tether_server, "terminate", iid).exit_code == 0

    declined = cli(tether_server, "purge", "-s", "TERMINATED", "--since", since, stdin="n\n")
    assert "Delete 3 workflow instance(s) (TERMINATED" in declined.stderr
    assert declined.returncode == 1 and status_of(tether_server, ids[0]) == "TERMINATED"

    nothing = ok(cli(tether_server, "purge", "--status", "COMPLETED", "--older-than", "1h", "-y"))
    assert "nothing to purge" in nothing

    out = ok(cli(tether_server, "purge", "--status", "terminated", "--since", since, stdin="y\n"))
    assert "Purged 3 workflow instance(s)." in out
    assert [status_of(tether_server, i) for i in ids] == [None, None, None, "PENDING"]


def test_errors_are_clear_and_not_tracebacks(tether_server: TetherProcess) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = cli(down, "list")
    assert result.returncode == 1
    assert f"cannot reach Tether at {down}" in result.stderr and "tether dev" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout

    iid = unique("bad")
    result = cli(tether_server, "start", "x", "--id", iid, "--input", "{not json")
    assert result.returncode == 2 and "--input is not valid JSON" in result.stderr
    assert status_of(tether_server, iid) is None  # refused before any request

    res = invoke(tether_server, "raise", iid, "go", "--data", "nope")
    assert res.exit_code == 2 and "--data is not valid JSON" in res.stderr

    res = invoke(tether_server, "show", iid)
    assert res.exit_code == 1
    assert f"no such instance exists: '{iid}'" in res.stderr
    assert "tether workflow list" in res.stderr

    res = invoke(tether_server, "list", "--status", "DONE")
    assert res.exit_code == 1 and "use one of RUNNING" in res.stderr

    usage: list[tuple[list[str], str]] = [
        (["list", "--since", "last tuesday"], "neither an age nor a time"),
        (["purge"], "give an instance ID, or filters"),
        (["purge", iid, "--status", "COMPLETED"], "not both"),
        (["purge", "--status", "RUNNING"], "only finished workflows can be purged"),
        (["purge", "--older-than", "7d", "--force"], "--force applies to one instance"),
    ]
    for args, phrase in usage:
        res = invoke(tether_server, *args)
        assert res.exit_code == 2, (args, res.output)
        assert phrase in res.output, (args, res.output)

    wrong = CliRunner().invoke(app, ["show", iid, "--server", "not a url"])
    assert wrong.exit_code == 1 and "--server" in wrong.output


class _Recorder(BaseHTTPRequestHandler):
    """Stands in for a server: lists nothing on the management path, 404s elsewhere."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("dapr-api-token")))
        found = self.path.startswith(PREFIX)
        body = b'{"instances": [], "cursor": null}' if found else b"no such page"
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_token_is_sent_and_foreign_servers_are_named() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        ok(cli(url, "list", "--token", "from-flag"))
        env = {"DAPR_API_TOKEN": "from-env"}
        assert CliRunner().invoke(app, ["list", "--server", url], env=env).exit_code == 0
        assert [token for _, token in _Recorder.seen] == ["from-flag", "from-env"]

        # Something that is not Tether's management API answers: say so, not "not found".
        result = cli(url + "/elsewhere", "list")
        assert result.returncode == 1
        assert "does not serve Tether's management API" in result.stderr
    finally:
        httpd.shutdown()
        thread.join(5)


@pytest.mark.parametrize(
    "command",
    [
        "list",
        "show",
        "history",
        "start",
        "raise",
        "suspend",
        "resume",
        "terminate",
        "purge",
        "rerun",
    ],
)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--server" in result.output and "TETHER_URL" in result.output
    assert "Usage:" in result.output
