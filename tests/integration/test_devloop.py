"""`tether run`: the run file, and the dev loop against real `tether dev` servers.

The first half reads run files in-process (fast); the second runs `tether run` as a user would,
as a subprocess whose apps are small Python scripts that report what they saw.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from tests.fixtures.tether import REPO, TetherProcess, free_port, wait_until
from tether.cli import run as run_cli
from tether.devloop import runfile
from tether.devloop.runfile import AppSpec, RunFileError
from tether.devloop.server import Endpoint
from tether.devloop.session import app_env

# --- the run file -------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def parse(tmp_path: Path, text: str) -> runfile.RunFile:
    return runfile.load(write(tmp_path / "dev.yaml", text))


def test_reads_a_dapr_run_file(tmp_path: Path) -> None:
    for folder in ("orders", "shipping", "resources", "shipping/components"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "billing" / ".dapr" / "resources").mkdir(parents=True)
    rf = parse(
        tmp_path,
        """
        version: 1
        common:
          resourcesPath: ./resources
          appProtocol: grpc
          env: {DEBUG: true, LEVEL: info}
        apps:
          - appDirPath: ./orders/
            command: ["python", "app.py", 3]
            env: {LEVEL: debug}
          - appID: shipping
            appDirPath: shipping
            appPort: "6002"
            appProtocol: HTTP
            resourcesPath: ./components
            command: ["python", "app.py"]
          - appID: billing
            appDirPath: ./billing
            command: [node, index.js]
        """,
    )
    orders, shipping, billing = rf.apps
    assert orders == AppSpec(
        app_id="orders",  # from the folder's name, as in Dapr
        command=("python", "app.py", "3"),
        app_dir=tmp_path / "orders",
        app_protocol="grpc",
        env={
            "DEBUG": "true",
            "LEVEL": "debug",
        },  # the app's value wins; booleans as Dapr writes them
        resources=(tmp_path / "resources",),
    )
    assert shipping.app_port == 6002 and shipping.app_protocol == "http"
    # An app's own paths resolve against its appDirPath, and its resources replace common's.
    assert shipping.resources == (tmp_path / "shipping" / "components",)
    # <appDirPath>/.dapr/resources is used when the app names none, before common's.
    assert billing.resources == (tmp_path / "billing" / ".dapr" / "resources",)
    assert rf.resources == (
        tmp_path / "resources",
        tmp_path / "shipping" / "components",
        tmp_path / "billing" / ".dapr" / "resources",
    )
    assert rf.notes == ()


def test_a_folder_stands_for_its_run_file(tmp_path: Path) -> None:
    write(tmp_path / "dapr.yaml", "version: 1\napps: [{appID: a, command: [x]}]\n")
    assert runfile.load(tmp_path).path == tmp_path / "dapr.yaml"
    write(tmp_path / "dev.yaml", "version: 1\napps: [{appID: b, command: [x]}]\n")
    assert runfile.load(tmp_path).apps[0].app_id == "b"
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFileError, match=r"empty: no dev.yaml or dapr.yaml in this folder"):
        runfile.load(tmp_path / "empty")
    with pytest.raises(RunFileError, match=r"nope.yaml: no such file"):
        runfile.load(tmp_path / "nope.yaml")


def test_notes_fields_tether_ignores_and_unknown_ones(tmp_path: Path) -> None:
    rf = parse(
        tmp_path,
        """
        version: 1
        common: {logLevel: debug}
        apps:
          - appID: a
            command: [x]
            daprHTTPPort: 3501
            comand: [y]
        """,
    )
    assert rf.notes == (
        "common.logLevel is ignored: not used by tether run",
        "apps[0].daprHTTPPort is ignored: all apps share one Tether server; set its port with "
        "--http-port",
        "apps[0].comand is not a run file field; ignored (did you mean command?)",
    )


APP = "apps: [{appID: a, command: [x]}]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apps: [{appID: a, command: [x]}]", "version: missing; this format is `version: 1`"),
        (f"version: 2\n{APP}", "version: only version 1 is supported, got 2"),
        ("version: 1", "apps: expected a list of apps"),
        ("version: 1\napps: []", "apps: expected a list of apps"),
        ("version: 1\napps: [x]", "apps[0]: expected a mapping, got a string"),
        ("version: 1\napps: [{command: [x]}]", "apps[0].appID: missing"),
        ("version: 1\napps: [{appID: a.b/c, command: [x]}]", "apps[0].appID: 'a.b/c' is not"),
        ("version: 1\napps: [{appID: a}]", "apps[0].command: expected the program"),
        ("version: 1\napps: [{appID: a, command: python app.py}]", "apps[0].command: expected"),
        ("version: 1\napps: [{appID: a, command: [x, [y]]}]", "apps[0].command[1]: expected a str"),
        ("version: 1\napps: [{appID: a, command: [x], appPort: 0}]", "apps[0].appPort: expected a"),
        ("version: 1\napps: [{appID: a, command: [x], appPort: http}]", "apps[0].appPort:"),
        (
            "version: 1\napps: [{appID: a, command: [x], appProtocol: https}]",
            "apps[0].appProtocol: expected http or grpc, got 'https'",
        ),
        ("version: 1\napps: [{appID: a, command: [x], env: [A]}]", "apps[0].env: expected a map"),
        ("version: 1\napps: [{appID: a, command: [x], env: {A: {b: 1}}}]", "apps[0].env.A:"),
        (
            "version: 1\napps: [{appID: a, command: [x], appDirPath: ./nope}]",
            "apps[0].appDirPath: no such folder",
        ),
        (f"version: 1\ncommon: {{resourcesPath: ./nope}}\n{APP}", "common.resourcesPath: no such"),
        (
            "version: 1\napps: [{appID: a, command: [x], resourcesPaths: [., ./nope]}]",
            "apps[0].resourcesPaths[1]: no such folder",
        ),
        (f"version: 1\ncommon: [x]\n{APP}", "common: expected a mapping, got a list"),
        (
            "version: 1\napps: [{appID: a, command: [x]}, {appID: a, command: [y]}]",
            "apps[1].appID: 'a' is already used by apps[0]",
        ),
        ("version: 1\napps: [{appID: a\n", "line 3: invalid YAML"),
        ("- just\n- a list", "expected a run file"),
    ],
)
def test_rejects_mistakes_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RunFileError) as info:
        parse(tmp_path, text)
    assert str(info.value).startswith(f"{tmp_path / 'dev.yaml'}: ")
    assert message in str(info.value)


def test_flags_follow_the_same_rules() -> None:
    app = runfile.from_flags("orders", ["python", "app.py"], "8001", "GRPC")
    assert (app.app_id, app.app_port, app.app_protocol) == ("orders", 8001, "grpc")
    with pytest.raises(RunFileError, match=r"^--app-port: expected a port number"):
        runfile.from_flags("orders", ["x"], "99999")
    with pytest.raises(RunFileError, match=r"^--app-id: 'or ders' is not a valid App ID"):
        runfile.from_flags("or ders", ["x"])


def test_app_env_points_the_sdk_at_tether_and_lets_the_app_override() -> None:
    app = AppSpec("orders", ("x",), Path("."), app_port=8001, env={"DAPR_HTTP_PORT": "1"})
    env = app_env(app, Endpoint("https://tether.example:8443", 9443), "tok")
    assert env["DAPR_HTTP_ENDPOINT"] == "https://tether.example:8443"
    assert env["DAPR_GRPC_ENDPOINT"] == "https://tether.example:9443"  # TLS like its HTTP side
    assert env["DAPR_API_TOKEN"] == "tok"
    assert (env["APP_ID"], env["APP_PORT"], env["APP_PROTOCOL"]) == ("orders", "8001", "http")
    assert env["DAPR_GRPC_PORT"] == "9443"
    assert env["DAPR_HTTP_PORT"] == "1"  # the app's own env wins, as with dapr run


# --- tether run, end to end -----------------------------------------------------------------------

# Prints what the SDK would see, and which App ID the injected token authenticates as.
REPORT = """
import json, os, sys, urllib.request
names = ["DAPR_HTTP_ENDPOINT", "DAPR_GRPC_ENDPOINT", "DAPR_API_TOKEN", "APP_ID", "APP_PORT",
         "APP_PROTOCOL", "DAPR_HTTP_PORT", "DAPR_GRPC_PORT", "EXTRA"]
seen = {name: os.environ.get(name) for name in names}
request = urllib.request.Request(os.environ["DAPR_HTTP_ENDPOINT"] + "/v1.0/metadata",
                                 headers={"dapr-api-token": os.environ["DAPR_API_TOKEN"]})
seen["metadataId"] = json.load(urllib.request.urlopen(request))["id"]
print(json.dumps(seen))
print("to stderr", file=sys.stderr)
"""


def tether_run(
    *args: str, cwd: Path = REPO, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TETHER_URL": ""},
    )


def lines_of(output: str, app_id: str) -> list[str]:
    """What `app_id` printed, without the `[app_id]` prefix."""
    prefix = f"[{app_id}]"
    return [line[len(prefix) :].strip() for line in output.splitlines() if line.startswith(prefix)]


def registered(server: TetherProcess) -> list[str]:
    apps = httpx.get(f"{server.http_url}/v1.0-tether/apps", timeout=5).json()["apps"]
    return [app["appID"] for app in apps]


def server_args(server: TetherProcess) -> list[str]:
    return ["--server", server.http_url, "--grpc-port", str(server.grpc_port)]


def test_injects_the_environment_and_prefixes_output(tether_server: TetherProcess) -> None:
    port = free_port()
    result = tether_run(
        *server_args(tether_server),
        "--app-id", "envcheck", "--app-port", str(port),
        "--", sys.executable, "-c", REPORT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [line] = lines_of(result.stdout, "envcheck")
    seen = json.loads(line)
    assert seen["DAPR_HTTP_ENDPOINT"] == tether_server.http_url
    assert seen["DAPR_GRPC_ENDPOINT"] == tether_server.grpc_address
    assert seen["DAPR_HTTP_PORT"] == str(tether_server.http_port)
    assert seen["DAPR_GRPC_PORT"] == str(tether_server.grpc_port)
    assert (seen["APP_ID"], seen["APP_PORT"], seen["APP_PROTOCOL"]) == (
        "envcheck",
        str(port),
        "http",
    )
    assert seen["metadataId"] == "envcheck"  # the token authenticates as the App ID
    assert lines_of(result.stderr, "envcheck") == ["to stderr"]
    assert f"registered app envcheck (token …{seen['DAPR_API_TOKEN'][-4:]})" in result.stderr
    assert seen["DAPR_API_TOKEN"] not in result.stderr  # only its last characters are shown
    assert "envcheck" not in registered(tether_server)  # deregistered at the end


def test_run_file_apps_with_a_pinned_token(tether_server: TetherProcess, tmp_path: Path) -> None:
    write(tmp_path / "app" / "report.py", REPORT)
    write(
        tmp_path / "dev.yaml",
        f"""
        version: 1
        common:
          env: {{EXTRA: shared}}
        apps:
          - appID: pinned
            appDirPath: ./app
            command: ["{sys.executable}", "report.py"]
            env: {{DAPR_API_TOKEN: pinned-token-0123456789}}
          - appID: second
            appDirPath: ./app
            command: ["{sys.executable}", "report.py"]
        """,
    )
    # Left over from a run that never finished: replaced, with a warning.
    httpx.post(f"{tether_server.http_url}/v1.0-tether/apps", json={"appID": "second"})
    result = tether_run("-f", str(tmp_path / "dev.yaml"), *server_args(tether_server))
    assert result.returncode == 0, result.stderr
    assert "App ID second was already registered" in result.stderr
    assert "App ID pinned was already registered" not in result.stderr
    pinned = json.loads(lines_of(result.stdout, "pinned")[0])
    second = json.loads(lines_of(result.stdout, "second")[0])
    assert pinned["DAPR_API_TOKEN"] == "pinned-token-0123456789"
    assert (pinned["metadataId"], second["metadataId"]) == ("pinned", "second")
    assert pinned["EXTRA"] == second["EXTRA"] == "shared"
    assert second["DAPR_API_TOKEN"] not in ("", None, pinned["DAPR_API_TOKEN"])


def test_exit_code_is_the_first_failing_apps(tether_server: TetherProcess, tmp_path: Path) -> None:
    write(
        tmp_path / "dev.yaml",
        f"""
        version: 1
        apps:
          - appID: failing
            command: ["{sys.executable}", "-c", "import sys; print('oops'); sys.exit(3)"]
          - appID: forever
            command: ["{sys.executable}", "-c", "import time; time.sleep(300)"]
        """,
    )
    started = time.monotonic()
    result = tether_run("-f", str(tmp_path), *server_args(tether_server))
    assert result.returncode == 3, result.stderr
    assert lines_of(result.stdout, "failing") == ["oops"]
    assert "error: failing exited with code 3" in result.stderr
    assert "stopped forever" in result.stderr
    assert time.monotonic() - started < 30
    assert not {"failing", "forever"} & set(registered(tether_server))


def test_usage_errors(tmp_path: Path) -> None:
    # In-process: these fail before anything starts, and a subprocess each would cost seconds.
    cli = typer.Typer()
    cli.command(name="run", context_settings=run_cli.CONTEXT)(run_cli.run)
    cli.callback()(lambda: None)  # a group, so that `run` is a subcommand as in `tether run`

    def usage(*args: str) -> str:
        result = CliRunner().invoke(cli, ["run", *args])
        assert result.exit_code == 2, result.output
        return result.stderr

    assert "give the app's command after --" in usage("--app-id", "a")
    assert "--app-id is required" in usage("--", "true")
    assert "--app-port: give one port" in usage("-a", "a", "-p", "1", "-p", "2", "--", "true")
    write(tmp_path / "dev.yaml", "version: 1\napps: [{appID: a, command: [x], appPort: -1}]\n")
    assert "apps[0].appPort: expected a port number" in usage("-f", str(tmp_path))
    write(tmp_path / "dev.yaml", "version: 1\napps: [{appID: a, command: [x]}]\n")
    assert "with -f the run file does" in usage("-f", str(tmp_path), "--app-id", "b")
    assert "give the apps' commands in the run file" in usage("-f", str(tmp_path), "--", "x")
    assert "no app 'b' in the run file" in usage("-f", str(tmp_path), "--app-port", "b=80")
    assert "with -f, give APPID=PORT" in usage("-f", str(tmp_path), "--app-port", "80")
    assert "--resources: no such folder" in usage("-f", str(tmp_path), "-d", str(tmp_path / "x"))
    assert CliRunner().invoke(cli, ["run", "--help"]).exit_code == 0


def test_command_not_found(tether_server: TetherProcess) -> None:
    result = tether_run(*server_args(tether_server), "--app-id", "ghost", "--", "no-such-cmd-4821")
    assert result.returncode == 127, result.stderr
    assert "ghost: command not found: no-such-cmd-4821" in result.stderr
    assert "ghost" not in registered(tether_server)


def test_starts_and_stops_its_own_server(tmp_path: Path) -> None:
    http_port, grpc_port = free_port(), free_port()
    result = tether_run(
        "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        "--data-dir", str(tmp_path / "data"),
        "--app-id", "solo", "--", sys.executable, "-c", REPORT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seen = json.loads(lines_of(result.stdout, "solo")[0])
    assert seen["DAPR_HTTP_ENDPOINT"] == f"http://127.0.0.1:{http_port}"
    assert seen["DAPR_GRPC_ENDPOINT"] == f"127.0.0.1:{grpc_port}"
    assert seen["metadataId"] == "solo"
    assert f"starting dev server on :{http_port} (gRPC :{grpc_port})" in result.stderr
    assert "stopped dev server" in result.stderr
    assert (tmp_path / "data" / "dev-server.log").exists()
    with pytest.raises(httpx.HTTPError):  # nothing left listening
        httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)


def test_a_started_server_loads_the_run_files_resources(tmp_path: Path) -> None:
    write(
        tmp_path / "resources" / "cache.yaml",
        """
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata: {name: cache}
        spec: {type: state.in-memory, version: v1}
        """,
    )
    show = (
        "import json, os, urllib.request\n"
        "r = urllib.request.Request(os.environ['DAPR_HTTP_ENDPOINT'] + '/v1.0/metadata',"
        " headers={'dapr-api-token': os.environ['DAPR_API_TOKEN']})\n"
        "print(sorted(c['name'] for c in json.load(urllib.request.urlopen(r))['components']))"
    )
    write(
        tmp_path / "dev.yaml",
        f"""
        version: 1
        common: {{resourcesPath: ./resources}}
        apps: [{{appID: lister, command: ["{sys.executable}", "-c", {json.dumps(show)}]}}]
        """,
    )
    result = tether_run(
        "-f", str(tmp_path / "dev.yaml"), "--data-dir", str(tmp_path / "data"),
        "--http-port", str(free_port()), "--grpc-port", str(free_port()),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [components] = lines_of(result.stdout, "lister")
    assert "'cache'" in components, components


GRACEFUL = """
import os, signal, sys, time
def bye(*_):
    print("bye", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
open("graceful.pid", "w").write(str(os.getpid()))
time.sleep(300)
"""
STUBBORN = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open("stubborn.pid", "w").write(str(os.getpid()))
time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; whoever reaps it is not our concern


def test_sigterm_stops_every_app_and_exits_cleanly(
    tether_server: TetherProcess, tmp_path: Path
) -> None:
    write(tmp_path / "graceful.py", GRACEFUL)
    write(tmp_path / "stubborn.py", STUBBORN)
    # A wrapper whose child outlives it unless the whole process group is stopped.
    wrapper = "sleep 300 & echo $! > orphan.pid; wait"
    write(
        tmp_path / "dev.yaml",
        f"""
        version: 1
        apps:
          - {{appID: graceful, command: ["{sys.executable}", "graceful.py"]}}
          - {{appID: stubborn, command: ["{sys.executable}", "stubborn.py"]}}
          - {{appID: wrapper, command: ["sh", "-c", "{wrapper}"]}}
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "run", "-f", str(tmp_path / "dev.yaml"),
         *server_args(tether_server), "--grace", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        names = ("graceful", "stubborn", "orphan")
        wait_until(
            lambda: all((tmp_path / f"{n}.pid").exists() for n in names), 20, what="apps to start"
        )
        pids = [int((tmp_path / f"{n}.pid").read_text()) for n in names]
        assert set(registered(tether_server)) >= {"graceful", "stubborn", "wrapper"}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert lines_of(out, "graceful") == ["bye"]
    assert "stopped graceful" in err
    assert "stubborn did not stop within 1s; killed" in err
    assert not [pid for pid in pids if alive(pid)]
    assert not {"graceful", "stubborn", "wrapper"} & set(registered(tether_server))
