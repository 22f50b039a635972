"""`tether`: run the server, and operate it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import typer

from tether import __version__
from tether.config import ServerConfig

app = typer.Typer(
    help="Tether: a self-hostable runtime for durable workflows and the Dapr APIs.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tether {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Tether: a self-hostable runtime for durable workflows and the Dapr APIs."""


@app.command()
def dev(
    data_dir: Path = typer.Option(Path(".tether"), help="Where embedded stores keep their files."),
    grpc_port: int = typer.Option(50001, help="gRPC port (Dapr API and workflow protocol)."),
    http_port: int = typer.Option(3500, help="HTTP port (Dapr HTTP API, health, metrics)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    store: str | None = typer.Option(
        None, help="Workflow store URL: postgresql://..., sqlite:///PATH or memory://."
    ),
    app_id: str = typer.Option(
        "tether-dev",
        help="App ID of callers that present no token (beyond loopback, only while no App ID "
        "has a token).",
    ),
    max_request_mb: int = typer.Option(16, help="Largest accepted request, in MiB."),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log JSON lines."),
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR."),
    app_port: int | None = typer.Option(
        None, help="Port the --app-id app listens on (service invocation, jobs, events)."
    ),
    app_protocol: str = typer.Option("http", help="How to call the app: http or grpc."),
    app_channel_address: str = typer.Option("127.0.0.1", help="Host the app listens on."),
    app_token: str | None = typer.Option(
        None, help="Sent to the app as dapr-api-token on every call into it."
    ),
    enable_app_health_check: bool = typer.Option(
        False, "--enable-app-health-check", help="Probe the app; pause deliveries while it fails."
    ),
    app_health_check_path: str = typer.Option("/healthz", help="Path probed (HTTP apps)."),
    app_health_probe_interval: float = typer.Option(5.0, help="Seconds between probes."),
    app_health_probe_timeout: int = typer.Option(500, help="Probe timeout in milliseconds."),
    app_health_threshold: int = typer.Option(3, help="Failed probes before unhealthy."),
    resources: list[Path] = typer.Option(
        [], "--resources", help="Folder or file of Dapr resources (repeatable)."
    ),
    admin_token: str | None = typer.Option(
        None,
        envvar="TETHER_ADMIN_TOKEN",
        show_default=False,
        help="Token the management API (/v1.0-tether/...) requires. Default: none on loopback; "
        "beyond loopback, one is generated into DATA_DIR/admin-token.",
    ),
) -> None:
    """Start the embedded server: everything in one process, state in --data-dir."""
    from tether import logs
    from tether.config import AppConfig, HealthCheck
    from tether.datadir import DataDirInUse
    from tether.server import serve

    logs.configure(log_level, json_logs)
    if app_protocol not in ("http", "grpc"):
        raise typer.BadParameter("use http or grpc", param_hint="--app-protocol")
    default_app = None
    if app_port is not None:
        health = None
        if enable_app_health_check:
            health = HealthCheck(
                path=app_health_check_path,
                interval=app_health_probe_interval,
                timeout=app_health_probe_timeout / 1000,
                threshold=app_health_threshold,
            )
        default_app = AppConfig(
            app_id=app_id, port=app_port, protocol=app_protocol, address=app_channel_address,
            app_token=app_token, health=health,
        )  # fmt: skip
    config = ServerConfig(
        host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        data_dir=data_dir,
        store_url=store,
        default_app_id=app_id,
        max_request_bytes=max_request_mb * 1024 * 1024,
        json_logs=json_logs,
        log_level=log_level,
        app=default_app,
        resources_paths=tuple(resources),
        admin_token=admin_token or None,
    )
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(config))
    except DataDirInUse as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    except OSError as exc:
        hint = (
            f"Check that --data-dir ({data_dir}) is writable."
            if exc.filename is not None  # the data directory, not a listener
            else f"Is another server using port {http_port} or {grpc_port}? "
            "Pick others with --http-port/--grpc-port."
        )
        typer.secho(f"error: {exc}. {hint}", fg="red", err=True)
        raise typer.Exit(1) from exc


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it is a dependency): less CPU per request on every listener."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _register_subcommands() -> None:
    from tether.cli import jobs, run, workflow

    app.add_typer(workflow.app, name="workflow")
    app.add_typer(jobs.app, name="jobs")
    app.command(name="run", context_settings=run.CONTEXT)(run.run)


def main() -> None:
    _register_subcommands()
    app()
