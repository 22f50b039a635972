"""`tether jobs ...`: see and clean up the jobs of every App ID on a running server.

Through the management API (`/v1.0-tether/jobs`), so it needs the admin token wherever the
server requires one. `--json` prints the server's JSON on stdout for scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.client import DEFAULT_URL, segment
from tether.cli.common import AdminToken, AsJson, DataDir, Server, connect, out, print_json, when

PREFIX = "/v1.0-tether/jobs"

app = typer.Typer(
    help="See and delete the jobs scheduled on a running Tether server.", no_args_is_help=True
)
AppId = Annotated[str, typer.Argument(help="The App ID the job belongs to.", show_default=False)]
JobName = Annotated[str, typer.Argument(help="The job's name.", show_default=False)]


def _schedule(job: dict[str, Any]) -> str:
    parts = [job.get("schedule") or "", f"due {job['dueTime']}" if job.get("dueTime") else ""]
    if job.get("repeats"):
        parts.append(f"x{job['repeats']}")
    return escape(" ".join(p for p in parts if p)) or "-"


@app.command("list")
def list_cmd(
    app_id: str | None = typer.Option(None, "--app-id", help="Only this App ID's jobs."),
    as_json: AsJson = False,
    server: Server = DEFAULT_URL,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """List jobs (by App ID and name), and occurrences still being delivered."""
    with connect(server, None, admin_token, data_dir, prefix=PREFIX) as client:
        found = client.request("GET", "", params={"appID": app_id} if app_id else None)
    if as_json:
        print_json(found)
        return
    jobs, deliveries = found["jobs"], found["deliveries"]
    if not jobs:
        out.print("No jobs are scheduled." if not app_id else f"App {escape(app_id)} has no jobs.")
    else:
        table = Table(show_edge=False, header_style="bold")
        for column in ("App ID", "Name", "Schedule", "Next", "Fired", "Expires"):
            table.add_column(column, overflow="fold")
        for job in jobs:
            table.add_row(
                escape(job["appID"]), escape(job["name"]), _schedule(job),
                when(job.get("nextFireAt")), str(job["fired"]), when(job.get("expiresAt")),
            )  # fmt: skip
        out.print(table)
    if deliveries:
        out.print(f"\n{len(deliveries)} occurrence(s) fired but not yet taken by their app:")
        table = Table(show_edge=False, header_style="bold")
        for column in ("App ID", "Name", "Due", "Failed attempts", "Held by", "Until"):
            table.add_column(column, overflow="fold")
        for d in deliveries:
            table.add_row(
                escape(d["appID"]), escape(d["name"]), when(d["dueAt"]), str(d["attempts"]),
                escape(d["owner"]), when(d["leaseUntil"]),
            )  # fmt: skip
        out.print(table)


@app.command()
def delete(
    app_id: AppId,
    name: JobName,
    server: Server = DEFAULT_URL,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Delete a job and any of its occurrences not yet delivered."""
    with connect(server, None, admin_token, data_dir, prefix=PREFIX) as client:
        client.request("DELETE", f"/{segment(app_id)}/{segment(name)}")
    out.print(f"Deleted job [bold]{escape(name)}[/] of {escape(app_id)}.")
