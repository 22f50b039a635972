"""`tether workflow ...`: inspect and operate workflow instances on a running server."""

from __future__ import annotations

import typer

app = typer.Typer(help="Inspect and operate workflow instances.", no_args_is_help=True)
