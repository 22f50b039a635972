"""What the `tether` commands that talk to a running server share: the server, token and output
options, and turning an API failure into a message with a hint instead of a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from tether import admin
from tether.cli.client import ApiError, Client

# Piped output (scripts, less, CI logs) gets room for whole instance ids instead of rich's 80.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)

Server = Annotated[
    str,
    typer.Option(
        "--server", envvar="TETHER_URL", help="HTTP address of the Tether server.", metavar="URL"
    ),
]
Token = Annotated[
    str | None, typer.Option("--token", envvar="DAPR_API_TOKEN", help="API token of the App ID.")
]
AdminToken = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        envvar=admin.ENV,
        help="The server's admin token, if it requires one.",
        show_default=False,
    ),
]
DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Data directory of a server on this machine: without --admin-token, the token it "
        "generated there is sent.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead of tables.")]
USAGE = 2  # bad arguments, like click's own usage errors


def fail(message: str, hint: str | None = None, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] [red]{escape(message)}[/]")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")
    raise typer.Exit(code)


@contextmanager
def connect(
    server: str,
    token: str | None,
    admin_token: str | None,
    data_dir: Path,
    prefix: str | None = None,
) -> Iterator[Client]:
    admin_token = admin.for_client(admin_token, server, data_dir)
    try:
        with Client(server, token, admin_token=admin_token, prefix=prefix) as client:
            yield client
    except ApiError as exc:
        fail(exc.message, exc.hint)


def print_json(data: Any) -> None:
    # Plain print, not rich: a script reading stdout must get exactly the JSON.
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def when(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso
