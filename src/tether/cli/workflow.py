"""`tether workflow ...`: inspect and operate workflow instances on a running server.

Everything goes through the server's management API (see `tether.cli.client`), so these commands
work the same against `tether dev` on a laptop and a remote deployment. Tables and messages go to
the terminal; `--json` prints the server's JSON on stdout for scripts. Progress and errors go to
stderr so they never mix with output a script reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from tether.cli.client import DEFAULT_URL, FINISHED, ApiError, Client, iso_time
from tether.cli.common import (
    USAGE,
    AdminToken,
    AsJson,
    DataDir,
    Server,
    Token,
    connect,
    err,
    fail,
    out,
    print_json,
    when,
)

app = typer.Typer(
    help="Inspect and operate workflow instances on a running Tether server.",
    no_args_is_help=True,
)
Statuses = Annotated[
    list[str] | None,
    typer.Option("--status", "-s", help="Only instances in this status; repeatable."),
]
Since = Annotated[
    str | None, typer.Option("--since", help="Created at or after: age (1h, 2d) or ISO time.")
]
Recursive = Annotated[
    bool, typer.Option("--recursive/--no-recursive", help="Include its child workflows.")
]
InstanceId = Annotated[str, typer.Argument(help="The workflow instance ID.", show_default=False)]

# Green/red for how it ended, magenta when someone ended it, yellow while waiting.
STATUS_STYLE = {"COMPLETED": "green", "FAILED": "bold red", "STALLED": "bold red"}
STATUS_STYLE.update({"TERMINATED": "magenta", "CANCELED": "magenta"})
STATUS_STYLE.update({"PENDING": "yellow", "SUSPENDED": "yellow"})
# Events a rerun can start from (the server checks; this only decides whether to offer the hint).
_RERUNNABLE = frozenset({"taskScheduled", "timerCreated", "childWorkflowInstanceCreated"})


# --- helpers ---------------------------------------------------------------------------------


def parse_json(value: str | None, flag: str) -> tuple[bool, Any]:
    """(given, value) for a JSON option; checked before any request is made."""
    if value is None:
        return False, None
    try:
        return True, json.loads(value)
    except ValueError as exc:
        fail(
            f"{flag} is not valid JSON: {exc}",
            f"""quote it for your shell, e.g. {flag} '{{"amount": 5}}'; """
            f"""text needs JSON quotes too: {flag} '"hello"'""",
            USAGE,
        )


def parse_when(value: str | None, flag: str) -> str | None:
    try:
        return iso_time(value) if value is not None else None
    except ValueError:
        fail(
            f"{flag} '{value}' is neither an age nor a time",
            "use an age (30m, 12h, 7d, 2w) or an ISO 8601 time (2024-05-01T12:00:00Z)",
            USAGE,
        )


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'cyan')}]{escape(status)}[/]"


def compact(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def failure_text(failure: dict[str, Any]) -> str:
    text = f"{failure.get('type') or 'Error'}: {failure.get('message', '')}"
    inner = failure.get("inner")
    return f"{text} (caused by {failure_text(inner)})" if inner else text


def describe(details: dict[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        if key == "failure":
            parts.append(f"failure={failure_text(value)}")
        elif key in ("input", "result", "output"):
            # Payloads keep their JSON quoting so "5" and 5 stay distinguishable.
            parts.append(f"{key}={compact(json.dumps(value, ensure_ascii=False))}")
        else:
            parts.append(f"{key}={compact(value)}")
    return " ".join(parts)


def instances_table(instances: list[dict[str, Any]]) -> Table:
    table = Table(title="Workflow instances (times in UTC)", title_justify="left")
    table.add_column("INSTANCE ID", overflow="fold", style="bold")
    table.add_column("NAME", overflow="fold")
    table.add_column("STATUS")
    table.add_column("CREATED", no_wrap=True)
    table.add_column("UPDATED", no_wrap=True)
    for inst in instances:
        table.add_row(
            escape(inst["instanceID"]),
            escape(inst["name"]),
            styled(inst["status"]),
            when(inst.get("createdAt")),
            when(inst.get("lastUpdatedAt")),
        )
    return table


# --- reading ---------------------------------------------------------------------------------


@app.command("list")
def list_cmd(
    status: Statuses = None,
    name: str | None = typer.Option(None, "--name", help="Only instances of this workflow."),
    since: Since = None,
    before: str | None = typer.Option(None, "--before", help="Created before: age or ISO time."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="Instances per page."),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue from a printed cursor."),
    all_pages: bool = typer.Option(False, "--all", help="Follow cursors to list every match."),
    payloads: bool = typer.Option(False, "--payloads", help="With --json: include inputs/outputs."),
    as_json: AsJson = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """List workflow instances, newest first."""
    filters: dict[str, Any] = dict(statuses=status or [], name=name, limit=limit, cursor=cursor)
    filters.update(payloads=payloads, created_from=parse_when(since, "--since"))
    filters["created_to"] = parse_when(before, "--before")
    with connect(server, token, admin_token, data_dir) as client:
        if all_pages:
            page: dict[str, Any] = {"instances": list(client.list_all(**filters)), "cursor": None}
        else:
            page = client.list_page(**filters)
    if as_json:
        print_json(page)
        return
    instances = page["instances"]
    if not instances:
        out.print("No workflow instances match.")
        return
    out.print(instances_table(instances))
    out.print(f"{len(instances)} instance(s).")
    if page.get("cursor"):
        out.print(
            f"More match: add [bold]--cursor '{escape(page['cursor'])}'[/] for the next page, "
            "or --all for everything."
        )


@app.command()
def show(
    instance_id: InstanceId,
    as_json: AsJson = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Show one instance: status, times, input, output and failure."""
    with connect(server, token, admin_token, data_dir) as client:
        inst = client.get(instance_id)
    if as_json:
        print_json(inst)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("Instance ID", escape(inst["instanceID"])),
        ("Name", escape(inst["name"])),
        ("Status", styled(inst["status"])),
        ("Created", when(inst.get("createdAt"))),
        ("Last updated", when(inst.get("lastUpdatedAt"))),
        ("Completed", when(inst.get("completedAt"))),
    ]
    if inst.get("scheduledStartAt"):
        rows.append(("Scheduled start", when(inst["scheduledStartAt"])))
    if inst.get("parentInstanceID"):
        rows.append(("Parent", escape(inst["parentInstanceID"])))
    for label, key in (("Custom status", "customStatus"), ("Input", "input"), ("Output", "output")):
        if inst.get(key) is not None:
            rows.append((label, escape(json.dumps(inst[key], indent=2, ensure_ascii=False))))
    failure = inst.get("failure")
    if failure:
        rows.append(("Failure", f"[red]{escape(failure_text(failure))}[/]"))
        if failure.get("stackTrace"):
            rows.append(("Stack trace", escape(failure["stackTrace"])))
    for label, value in rows:
        grid.add_row(label, value)
    out.print(grid)


@app.command()
def history(
    instance_id: InstanceId,
    as_json: AsJson = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Show an instance's history: every event the workflow has seen, in order."""
    with connect(server, token, admin_token, data_dir) as client:
        events = client.history(instance_id)
    if as_json:
        print_json({"events": events})
        return
    if not events:
        out.print(
            f"'{escape(instance_id)}' has no history yet: it has not been run by a worker "
            "(is one connected for its app?)."
        )
        return
    # One day's events need no date on every row; the title carries it.
    days = {(e.get("timestamp") or "")[:10] for e in events}
    day = days.pop() if len(days) == 1 else None
    title = f"History of {escape(instance_id)} (UTC{', ' + day if day else ''})"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("EVENT ID", justify="right")
    table.add_column("TYPE", no_wrap=True)
    table.add_column("TIMESTAMP", no_wrap=True)
    table.add_column("DETAILS")
    for event in events:
        stamp = (event.get("timestamp") or "").replace("T", " ")
        table.add_row(
            str(event["index"]),
            "-" if event["eventId"] < 0 else str(event["eventId"]),
            escape(event["type"]),
            stamp[11:23] if day else stamp[:23],
            escape(describe(event.get("details", {}))),
        )
    out.print(table)
    if any(e["type"] in _RERUNNABLE for e in events):
        out.print(
            "[dim]To rerun from an activity, timer or child workflow: "
            f"tether workflow rerun {escape(instance_id)} --from-event <EVENT ID>[/]"
        )


# --- operating -------------------------------------------------------------------------------


@app.command()
def start(
    name: str = typer.Argument(..., help="The registered workflow name."),
    input: str | None = typer.Option(None, "--input", help="Workflow input as JSON."),
    instance_id: str | None = typer.Option(None, "--id", help="Instance ID (default: random)."),
    start_at: str | None = typer.Option(None, "--start-at", help="Not before this ISO time."),
    as_json: AsJson = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Start a new workflow instance."""
    has_input, value = parse_json(input, "--input")
    at = parse_when(start_at, "--start-at") if start_at else None
    with connect(server, token, admin_token, data_dir) as client:
        iid = client.start(
            name, instance_id=instance_id, input=value, has_input=has_input, start_at=at
        )
    if as_json:
        print_json({"instanceID": iid})
        return
    out.print(f"Started workflow '{escape(name)}' as instance [bold]{escape(iid)}[/].")


@app.command("raise")
def raise_cmd(
    instance_id: InstanceId,
    event: str = typer.Argument(..., help="The event name the workflow waits for."),
    data: str | None = typer.Option(None, "--data", help="Event data as JSON."),
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Raise an external event on an instance."""
    parse_json(data, "--data")
    with connect(server, token, admin_token, data_dir) as client:
        inst = client.raise_event(instance_id, event, data)
    if inst["status"] in FINISHED:
        out.print(
            f"[yellow]'{escape(instance_id)}' is {escape(inst['status'])}; the event "
            f"'{escape(event)}' was dropped.[/]"
        )
        return
    out.print(f"Raised event '{escape(event)}' on [bold]{escape(instance_id)}[/].")


def _report(inst: dict[str, Any], done: str, expected: tuple[str, ...], why: str) -> None:
    status = inst["status"]
    if status in expected:
        out.print(f"{done} [bold]{escape(inst['instanceID'])}[/] (status {styled(status)}).")
    else:
        out.print(f"[yellow]'{escape(inst['instanceID'])}' is {escape(status)}; {why}.[/]")


@app.command()
def suspend(
    instance_id: InstanceId,
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Pause an instance: it takes no further steps until resumed."""
    with connect(server, token, admin_token, data_dir) as client:
        inst = client.lifecycle(instance_id, "suspend")
    _report(inst, "Suspended", ("SUSPENDED",), "only running or pending workflows can be suspended")


@app.command()
def resume(
    instance_id: InstanceId,
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Resume a suspended instance."""
    with connect(server, token, admin_token, data_dir) as client:
        inst = client.lifecycle(instance_id, "resume")
    _report(inst, "Resumed", ("RUNNING", "PENDING"), "only suspended workflows can be resumed")


@app.command()
def terminate(
    instance_id: InstanceId,
    output: str | None = typer.Option(None, "--output", help="Output to record, as JSON."),
    recursive: Recursive = True,
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Stop an instance now, with or without a worker; it ends as TERMINATED."""
    has_output, value = parse_json(output, "--output")
    body: dict[str, Any] = {"recursive": recursive}
    if has_output:
        body["output"] = value
    with connect(server, token, admin_token, data_dir) as client:
        inst = client.lifecycle(instance_id, "terminate", body)
    _report(inst, "Terminated", ("TERMINATED",), "it had already finished")


@app.command()
def rerun(
    instance_id: str = typer.Argument(..., help="The finished instance to rerun."),
    from_event: int = typer.Option(
        ..., "--from-event", min=0, help="EVENT ID (from `history`) of the step to rerun from."
    ),
    new_id: str | None = typer.Option(None, "--new-id", help="ID of the new instance."),
    input: str | None = typer.Option(None, "--input", help="New input (JSON) for that step."),
    as_json: AsJson = False,
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Rerun a finished instance from one of its steps, as a new instance."""
    has_input, value = parse_json(input, "--input")
    with connect(server, token, admin_token, data_dir) as client:
        iid = client.rerun(instance_id, from_event, new_id=new_id, input=value, has_input=has_input)
    if as_json:
        print_json({"instanceID": iid})
        return
    out.print(
        f"Rerunning '{escape(instance_id)}' from event {from_event} as instance "
        f"[bold]{escape(iid)}[/]."
    )


# --- purging ---------------------------------------------------------------------------------


def _confirm(question: str) -> None:
    try:
        agreed = typer.confirm(question, default=False, err=True)
    except typer.Abort:  # stdin closed: nobody to ask
        fail("no confirmation given; nothing was purged", "pass --yes to purge without asking")
    if not agreed:
        err.print("Nothing was purged.")
        raise typer.Exit(1)


@app.command()
def purge(
    instance_id: str | None = typer.Argument(
        None, help="The finished instance to delete. Omit it to purge by filter."
    ),
    recursive: Recursive = True,
    force: bool = typer.Option(
        False, "--force", help="Delete even if it has not finished (one instance only)."
    ),
    status: Statuses = None,
    older_than: str | None = typer.Option(
        None, "--older-than", help="Created longer ago than this: age (7d, 12h) or ISO time."
    ),
    since: Since = None,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    server: Server = DEFAULT_URL,
    token: Token = None,
    admin_token: AdminToken = None,
    data_dir: DataDir = Path(".tether"),
) -> None:
    """Delete finished instances and their histories for good: one by ID, or many by filter.

    Only finished instances (COMPLETED, FAILED, TERMINATED, CANCELED) are purged; --force
    deletes one unfinished instance. Examples: `tether workflow purge ID`,
    `tether workflow purge --status COMPLETED --older-than 7d`.
    """
    filtered = bool(status or older_than or since)
    if instance_id and filtered:
        fail("give an instance ID or filters, not both", code=USAGE)
    if not instance_id and not filtered:
        fail(
            "nothing to purge: give an instance ID, or filters",
            "e.g. `tether workflow purge ID` or "
            "`tether workflow purge --status COMPLETED --older-than 7d`",
            USAGE,
        )
    if instance_id:
        if not yes:
            children = " and its child workflows" if recursive else ""
            _confirm(f"Delete workflow '{instance_id}'{children} and its history for good?")
        with connect(server, token, admin_token, data_dir) as client:
            deleted = client.purge(instance_id, recursive=recursive, force=force)
        out.print(f"Purged {deleted} workflow instance(s).")
        return
    if force:
        fail("--force applies to one instance; a bulk purge only deletes finished ones", code=USAGE)
    statuses = [s.strip().upper().removeprefix("ORCHESTRATION_STATUS_") for s in status or []]
    unfinished = [s for s in statuses if s not in FINISHED]
    if unfinished:
        fail(
            f"only finished workflows can be purged; {', '.join(unfinished)} is not one of "
            f"{', '.join(FINISHED)}",
            "terminate running instances first with `tether workflow terminate ID`",
            USAGE,
        )
    created_to = parse_when(older_than, "--older-than")
    created_from = parse_when(since, "--since")
    with connect(server, token, admin_token, data_dir) as client:
        _purge_matching(
            client, statuses or list(FINISHED), created_from, created_to, recursive, yes
        )


def _purge_matching(
    client: Client,
    statuses: list[str],
    created_from: str | None,
    created_to: str | None,
    recursive: bool,
    yes: bool,
) -> None:
    """Purge one instance at a time, so the user sees progress and one bad apple (say, a running
    child) is reported and skipped instead of stopping the whole purge."""
    with err.status("Finding matching workflows..."):
        ids = [
            inst["instanceID"]
            for inst in client.list_all(
                statuses=statuses, created_from=created_from, created_to=created_to, limit=1000
            )
        ]
    if not ids:
        out.print("No finished workflow instances match; nothing to purge.")
        return
    scope = ", ".join(statuses)
    if created_to:
        scope += f", created before {when(created_to)} UTC"
    if created_from:
        scope += f", created at or after {when(created_from)} UTC"
    if not yes:
        _confirm(f"Delete {len(ids)} workflow instance(s) ({scope}) for good?")
    deleted = 0
    problems: list[str] = []
    columns = (TextColumn("Purging"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("purge", total=len(ids))
        for iid in ids:
            try:
                deleted += client.purge(iid, recursive=recursive)
            except ApiError as exc:
                # Gone already: purged as the child of an earlier match.
                if exc.code != "ERR_INSTANCE_ID_NOT_FOUND":
                    problems.append(f"{iid}: {exc.message}")
            progress.advance(task)
    out.print(f"Purged {deleted} workflow instance(s).")
    if problems:
        for line in problems[:10]:
            err.print(f"[yellow]skipped {escape(line)}[/]")
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        fail(f"{len(problems)} instance(s) could not be purged{more}")
