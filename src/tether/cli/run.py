"""`tether run`: the dev loop. Register apps with a Tether server and run them, like `dapr run`.

    tether run --app-id orders --app-port 8001 -- python app.py
    tether run -f dev.yaml

Everything else (the run file, the server, the processes) lives in `tether.devloop`; this module
turns flags into a `RunPlan` and rejects combinations that make no sense.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from tether import admin
from tether.devloop import runfile
from tether.devloop.output import Output
from tether.devloop.runfile import AppSpec, RunFileError
from tether.devloop.session import RunPlan
from tether.devloop.session import run as run_session

USAGE = 2  # bad arguments, like click's own usage errors

#: Everything after the first word of the app's command belongs to it, even without `--`.
CONTEXT: dict[str, Any] = {"allow_interspersed_args": False}

Command = Annotated[
    list[str] | None,
    typer.Argument(
        help="The app's command and its arguments (after --). Not with -f.", show_default=False
    ),
]
RunFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--run-file",
        "-f",
        help="A Dapr multi-app run file (or a folder holding dev.yaml or dapr.yaml).",
        show_default=False,
    ),
]
AppId = Annotated[
    str | None, typer.Option("--app-id", "-a", help="The app's App ID.", show_default=False)
]
AppPort = Annotated[
    list[str] | None,
    typer.Option(
        "--app-port",
        "-p",
        metavar="PORT",
        help="Port the app listens on for calls from Tether. With -f: APPID=PORT overrides "
        "that app's appPort (repeatable).",
        show_default=False,
    ),
]
AppProtocol = Annotated[
    str | None,
    typer.Option(
        "--app-protocol", "-P", help="How Tether calls the app: http or grpc.", show_default="http"
    ),
]
Resources = Annotated[
    list[Path] | None,
    typer.Option(
        "--resources",
        "-d",
        help="Folder of component YAML for the dev server tether run starts (repeatable).",
        show_default=False,
    ),
]
Server = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="TETHER_URL",
        metavar="URL",
        help="HTTP address of the Tether server to use. Default: http://127.0.0.1:<http-port>, "
        "started if nothing answers there.",
        show_default=False,
    ),
]
HttpPort = Annotated[
    int, typer.Option("--http-port", help="HTTP port of the dev server to find or start.")
]
GrpcPort = Annotated[
    int, typer.Option("--grpc-port", help="gRPC port of that server (the apps are told it).")
]
DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Data directory of a dev server tether run starts, or of a running server on this "
        "machine whose generated admin token it uses.",
    ),
]
AdminToken = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        envvar=admin.ENV,
        help="The server's admin token, if it requires one (a server tether run starts will).",
        show_default=False,
    ),
]
Grace = Annotated[
    float, typer.Option("--grace", help="Seconds an app gets to exit after SIGTERM.", min=0)
]
ServerLogs = Annotated[
    bool,
    typer.Option(
        "--server-logs",
        help="Print a started dev server's logs (default: DATA_DIR/dev-server.log).",
    ),
]


def run(
    command: Command = None,
    run_file: RunFileOpt = None,
    app_id: AppId = None,
    app_port: AppPort = None,
    app_protocol: AppProtocol = None,
    resources: Resources = None,
    server: Server = None,
    http_port: HttpPort = 3500,
    grpc_port: GrpcPort = 50001,
    data_dir: DataDir = Path(".tether"),
    grace: Grace = 5.0,
    server_logs: ServerLogs = False,
    admin_token: AdminToken = None,
) -> None:
    """Run apps against Tether, like `dapr run`: register their App IDs and start them.

    Uses the server at --server, TETHER_URL or :3500; starts `tether dev` if none answers.

    Each app gets DAPR_HTTP_ENDPOINT, DAPR_GRPC_ENDPOINT and its own DAPR_API_TOKEN.

    Ctrl-C or SIGTERM stops the apps, deregisters them and stops a server tether run started.

    The exit code is the first failing app's.
    """
    out = Output()
    extra = tuple(p.resolve() for p in resources or ())
    for folder in extra:
        if not folder.is_dir():
            _usage(f"--resources: no such folder: {folder}")
    if run_file is not None:
        if command:
            _usage("give the apps' commands in the run file, not after -f")
        if app_id is not None or app_protocol is not None:
            _usage("--app-id and --app-protocol describe one app; with -f the run file does")
        try:
            parsed = runfile.load(run_file)
        except RunFileError as exc:
            _usage(str(exc))
        apps = _override_ports(parsed.apps, app_port or [])
        notes = parsed.notes
    else:
        apps = (_single_app(command, app_id, app_port, app_protocol, extra),)
        notes = ()
    folders = tuple(dict.fromkeys([*(p for app in apps for p in app.resources), *extra]))
    plan = RunPlan(
        apps=apps,
        server_url=server or None,
        http_port=http_port,
        grpc_port=grpc_port,
        data_dir=data_dir,
        resources=folders,
        grace=grace,
        server_logs=server_logs,
        notes=notes,
        admin_token=admin_token or None,
    )
    raise typer.Exit(asyncio.run(run_session(plan, out)))


def _single_app(
    command: list[str] | None,
    app_id: str | None,
    app_port: list[str] | None,
    app_protocol: str | None,
    resources: tuple[Path, ...],
) -> AppSpec:
    if not command:
        _usage("give the app's command after --, e.g. tether run --app-id orders -- python app.py")
    if app_id is None:
        _usage("--app-id is required: the App ID the app's token stands for")
    if len(app_port or []) > 1:
        _usage("--app-port: give one port (APPID=PORT is for -f)")
    try:
        port = app_port[0] if app_port else None
        return runfile.from_flags(app_id, command, port, app_protocol, resources=resources)
    except RunFileError as exc:
        _usage(str(exc))


def _override_ports(apps: tuple[AppSpec, ...], overrides: list[str]) -> tuple[AppSpec, ...]:
    ports: dict[str, int] = {}
    known = {app.app_id for app in apps}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit() or not 0 < int(value) < 65536:
            _usage(f"--app-port {item!r}: with -f, give APPID=PORT")
        if name not in known:
            names = ", ".join(sorted(known))
            _usage(f"--app-port {item!r}: no app {name!r} in the run file ({names})")
        ports[name] = int(value)
    return tuple(
        dataclasses.replace(app, app_port=ports[app.app_id]) if app.app_id in ports else app
        for app in apps
    )


def _usage(message: str) -> NoReturn:
    Output().error(message)
    raise typer.Exit(USAGE)


__all__ = ["CONTEXT", "run"]
