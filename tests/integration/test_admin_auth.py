"""The management API's admin token, against real `tether dev` servers, the CLI and `tether run`.

Three servers: the loopback one every other test uses (no admin token: open), one started with
`--admin-token`, and one listening on 0.0.0.0 with none (it generates one into its data dir).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.tether import REPO, TetherProcess, free_port

ADMIN = "admin-token-for-tests-0123456789"
APPS = "/v1.0-tether/apps"
WORKFLOWS = "/v1.0-tether/workflows"
# Every kind of management route: app registry, workflow reads and operations, refreshes.
MANAGEMENT = [
    ("GET", APPS, None),
    ("POST", APPS, {"appID": "intruder"}),
    ("DELETE", f"{APPS}/victim", None),
    ("POST", f"{APPS}/victim/subscriptions/refresh", None),
    ("GET", WORKFLOWS, None),
    ("GET", f"{WORKFLOWS}/some-id", None),
    ("POST", WORKFLOWS, {"name": "anything"}),
    ("POST", f"{WORKFLOWS}/some-id/terminate", None),
    ("DELETE", f"{WORKFLOWS}/some-id", None),
    ("POST", f"{WORKFLOWS}/purge", {"status": ["COMPLETED"]}),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(
    server: TetherProcess, method: str, path: str, body: Any = None, **headers: str
) -> httpx.Response:
    return httpx.request(
        method, server.http_url + path, json=body, headers=headers or None, timeout=10
    )


def assert_refused(resp: httpx.Response, *phrases: str) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"].startswith("Bearer")
    body = resp.json()
    assert body["errorCode"] == "ERR_ADMIN_UNAUTHORIZED", body
    for phrase in phrases:
        assert phrase in body["message"], body


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TETHER_ADMIN_TOKEN", "TETHER_URL")}
    return {**env, "COLUMNS": "200", "NO_COLOR": "1", **extra}


def tether(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TetherProcess]:
    """A loopback server started with --admin-token."""
    server = TetherProcess(tmp_path_factory.mktemp("guarded"), extra_args=["--admin-token", ADMIN])
    server.start()
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TetherProcess]:
    """A server on every interface with no admin token configured."""
    server = TetherProcess(tmp_path_factory.mktemp("exposed"), extra_args=["--host", "0.0.0.0"])
    server.start()
    yield server
    assert server.stop() == 0, server.log()


# --- no token configured, loopback: open, as before ---------------------------------------------


def test_a_loopback_server_without_a_token_is_open(tether_server: TetherProcess) -> None:
    assert call(tether_server, "GET", APPS).status_code == 200
    assert call(tether_server, "GET", WORKFLOWS).status_code == 200
    # A stray admin token is not an error: there is nothing to check it against.
    assert call(tether_server, "GET", APPS, **bearer("whatever")).status_code == 200
    registered = call(tether_server, "POST", APPS, {"appID": "open-app"})
    assert registered.status_code == 201, registered.text
    assert call(tether_server, "DELETE", f"{APPS}/open-app").status_code == 204
    assert not (tether_server.data_dir / "admin-token").exists()


# --- a configured token -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT)
def test_every_management_route_needs_the_token(
    guarded: TetherProcess, method: str, path: str, body: Any
) -> None:
    assert_refused(
        call(guarded, method, path, body),
        "requires the admin token",
        "Authorization: Bearer <token>",
        "TETHER_ADMIN_TOKEN",
    )
    assert_refused(call(guarded, method, path, body, **bearer("wrong")), "invalid admin token")
    assert_refused(
        call(guarded, method, path, body, **{"tether-admin-token": ADMIN[:-1]}),
        "invalid admin token",
    )


def test_an_apps_api_token_is_not_an_admin_token(guarded: TetherProcess) -> None:
    made = call(guarded, "POST", APPS, {"appID": "tenant"}, **bearer(ADMIN))
    assert made.status_code == 201, made.text
    app_token = made.json()["apiToken"]
    try:
        as_app = {"dapr-api-token": app_token}
        assert_refused(
            call(guarded, "DELETE", f"{APPS}/tenant", **as_app),
            "API token (dapr-api-token) does not grant access",
            "TETHER_ADMIN_TOKEN",
        )
        assert_refused(call(guarded, "POST", APPS, {"appID": "tenant"}, **as_app))
        assert_refused(call(guarded, "POST", f"{WORKFLOWS}/purge", {"olderThan": "0s"}, **as_app))
        assert_refused(call(guarded, "GET", APPS, **bearer(app_token)), "invalid admin token")
        # The token still is the App ID on the Dapr API, which the admin token does not gate.
        metadata = call(guarded, "GET", "/v1.0/metadata", **as_app)
        assert metadata.status_code == 200 and metadata.json()["id"] == "tenant"
        assert call(guarded, "GET", "/v1.0/healthz").status_code == 204
    finally:
        call(guarded, "DELETE", f"{APPS}/tenant", **bearer(ADMIN))


def test_the_right_token_manages_apps_and_workflows(guarded: TetherProcess) -> None:
    admin_headers = {"tether-admin-token": ADMIN}  # the header form works as well as Bearer
    made = call(
        guarded, "POST", APPS, {"appID": "managed", "apiToken": "managed-tok"}, **bearer(ADMIN)
    )
    assert made.status_code == 201, made.text
    listed = call(guarded, "GET", APPS, **admin_headers).json()["apps"]
    assert "managed" in [app["appID"] for app in listed]
    assert call(guarded, "DELETE", f"{APPS}/managed", **bearer(ADMIN)).status_code == 204

    started = call(guarded, "POST", WORKFLOWS, {"name": "guarded-wf"}, **bearer(ADMIN))
    assert started.status_code == 202, started.text
    iid = started.json()["instanceID"]
    got = call(guarded, "GET", f"{WORKFLOWS}/{iid}", **admin_headers)
    assert got.status_code == 200 and got.json()["status"] == "PENDING"
    ended = call(guarded, "POST", f"{WORKFLOWS}/{iid}/terminate", **bearer(ADMIN))
    assert ended.status_code == 200 and ended.json()["status"] == "TERMINATED", ended.text
    purged = call(guarded, "DELETE", f"{WORKFLOWS}/{iid}", **bearer(ADMIN))
    assert purged.status_code == 200 and purged.json() == {"deleted": 1}


def test_the_cli_sends_the_token(guarded: TetherProcess) -> None:
    env = clean_env(TETHER_URL=guarded.http_url)
    refused = tether("workflow", "list", env=env)
    assert refused.returncode == 1
    assert "requires the admin token" in refused.stderr
    assert "hint: pass the server's admin token with --admin-token" in refused.stderr.replace(
        "\n", " "
    )
    from_env = tether("workflow", "start", "cli-guarded", "--id", "cli-guarded-1",
                      env={**env, "TETHER_ADMIN_TOKEN": ADMIN})  # fmt: skip
    assert from_env.returncode == 0, from_env.stderr
    from_flag = tether(
        "workflow", "show", "cli-guarded-1", "--json", "--admin-token", ADMIN, env=env
    )
    assert from_flag.returncode == 0, from_flag.stderr
    assert json.loads(from_flag.stdout)["instanceID"] == "cli-guarded-1"
    wrong = tether("workflow", "show", "cli-guarded-1", "--admin-token", "nope", env=env)
    assert wrong.returncode == 1 and "invalid admin token" in wrong.stderr


# What an app run by `tether run` holds: the admin token (it must not), its App ID, and what the
# management API answers its own API token.
REPORT = """
import json, os, urllib.error, urllib.request
base, mine = os.environ["DAPR_HTTP_ENDPOINT"], {"dapr-api-token": os.environ["DAPR_API_TOKEN"]}
app_id = json.load(urllib.request.urlopen(urllib.request.Request(base + "/v1.0/metadata",
                                                                 headers=mine)))["id"]
try:
    manage = urllib.request.urlopen(urllib.request.Request(base + "/v1.0-tether/apps",
                                                           headers=mine)).status
except urllib.error.HTTPError as exc:
    manage = exc.code
print(json.dumps({"admin": os.environ.get("TETHER_ADMIN_TOKEN"), "id": app_id, "manage": manage}))
"""


def reported(stdout: str, app_id: str) -> dict[str, Any]:
    [line] = [ln for ln in stdout.splitlines() if ln.startswith(f"[{app_id}]")]
    result: dict[str, Any] = json.loads(line[len(app_id) + 2 :])
    return result


def registered(server: TetherProcess, token: str) -> list[str]:
    apps = call(server, "GET", APPS, **bearer(token)).json()["apps"]
    return [app["appID"] for app in apps]


def test_tether_run_sends_the_token(guarded: TetherProcess) -> None:
    where = ["--server", guarded.http_url, "--grpc-port", str(guarded.grpc_port)]
    app = ["--app-id", "run-guarded", "--", sys.executable, "-c", REPORT]
    refused = tether("run", *where, *app, env=clean_env())
    assert refused.returncode == 1
    assert "ERR_ADMIN_UNAUTHORIZED" in refused.stderr and "TETHER_ADMIN_TOKEN" in refused.stderr
    result = tether("run", *where, "--admin-token", ADMIN, *app, env=clean_env())
    assert result.returncode == 0, result.stderr
    seen = reported(result.stdout, "run-guarded")
    # The app never gets the admin token, and its own token manages nothing.
    assert seen == {"admin": None, "id": "run-guarded", "manage": 401}
    assert "deregistered run-guarded" in result.stderr
    assert "run-guarded" not in registered(guarded, ADMIN)


def test_tether_run_starts_a_server_that_requires_its_token(tmp_path: Path) -> None:
    http_port, grpc_port = free_port(), free_port()
    result = tether(
        "run", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        "--data-dir", str(tmp_path / "data"), "--app-id", "solo",
        "--", sys.executable, "-c", REPORT,
        env=clean_env(TETHER_ADMIN_TOKEN=ADMIN),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Registered with the token; the server it started required it (the app was refused).
    assert reported(result.stdout, "solo") == {"admin": None, "id": "solo", "manage": 401}
    assert "deregistered solo" in result.stderr and "stopped dev server" in result.stderr


# --- no token configured, beyond loopback: one is generated ------------------------------------


def test_a_server_beyond_loopback_generates_a_token(exposed: TetherProcess) -> None:
    token_file = exposed.data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert f"generated in {token_file.resolve()}" in exposed.log()
    assert token not in exposed.log()
    for method, path, body in MANAGEMENT:
        assert_refused(
            call(exposed, method, path, body),
            "generated one",
            "'admin-token' in its data directory",
        )
    assert str(exposed.data_dir) not in call(exposed, "GET", APPS).text  # no paths to strangers
    assert call(exposed, "GET", APPS, **bearer(token)).status_code == 200


def test_the_cli_and_tether_run_read_the_generated_token(exposed: TetherProcess) -> None:
    data_dir = str(exposed.data_dir)
    env = clean_env(TETHER_URL=exposed.http_url)
    assert tether("workflow", "list", env=env).returncode == 1  # ./.tether is not its data dir
    listed = tether("workflow", "list", "--data-dir", data_dir, env=env)
    assert listed.returncode == 0, listed.stderr
    result = tether(
        "run", "--server", exposed.http_url, "--grpc-port", str(exposed.grpc_port),
        "--data-dir", data_dir, "--app-id", "exposed-app", "--", sys.executable, "-c", REPORT,
        env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seen = reported(result.stdout, "exposed-app")
    assert seen == {"admin": None, "id": "exposed-app", "manage": 401}


def test_beyond_loopback_a_caller_without_a_token_is_refused_once_tokens_exist(
    exposed: TetherProcess,
) -> None:
    token_file = exposed.data_dir / "admin-token"
    admin_token = token_file.read_text().strip()
    registered = call(exposed, "POST", APPS, {"appID": "needs-token"}, **bearer(admin_token))
    assert registered.status_code == 201, registered.text
    api_token = registered.json()["apiToken"]
    anonymous = httpx.get(f"{exposed.http_url}/v1.0/metadata", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["errorCode"] == "ERR_UNAUTHORIZED"
    assert "DAPR_API_TOKEN" in anonymous.json()["message"]
    mine = httpx.get(
        f"{exposed.http_url}/v1.0/metadata", headers={"dapr-api-token": api_token}, timeout=10
    )
    assert mine.status_code == 200 and mine.json()["id"] == "needs-token"


def test_on_loopback_a_caller_without_a_token_acts_as_the_default_app(
    tether_server: TetherProcess,
) -> None:
    registered = call(tether_server, "POST", APPS, {"appID": "has-token"})
    assert registered.status_code == 201, registered.text
    anonymous = httpx.get(f"{tether_server.http_url}/v1.0/metadata", timeout=10)
    assert anonymous.status_code == 200 and anonymous.json()["id"] == "tether-dev"
