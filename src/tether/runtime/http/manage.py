"""Tether's management API for workflows, under /v1.0-tether/workflows.

Dapr's workflow API addresses one instance whose ID the caller already knows. Operators also need
to find instances, read their histories, rerun them and clean up; this is that API, and what
`tether workflow` talks to.

Payloads (inputs, outputs, custom status, event data) are stored as the JSON text the SDK wrote;
they are returned decoded, so a client sees JSON values rather than strings of JSON. Text that is
not JSON is returned as a plain string.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.json_format import MessageToDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import errors
from tether.runtime.context import Runtime
from tether.runtime.http.app import json_body, read_body
from tether.workflow import events as ev
from tether.workflow.model import (
    STATUS_NAMES,
    TERMINAL,
    Instance,
    InstanceQuery,
    status_from_name,
    utcnow,
    validate_instance_id,
)
from tether.workflow.protos import pb
from tether.workflow.rerun import RerunRequest
from tether.workflow.service import MAX_PAGE, StartRequest

PREFIX = "/v1.0-tether/workflows"
DEFAULT_PAGE = 100
FINISHED_NAMES = ", ".join(STATUS_NAMES[s] for s in sorted(TERMINAL))
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Event fields that only matter to the protocol (tracing, attestation, rerun bookkeeping).
_NOISE = frozenset(
    {
        "parentTraceContext",
        "attestation",
        "signerCertificate",
        "taskExecutionId",
        "workflowSpanID",
        "historyPropagationScope",
        "rerunParentInstanceInfo",
        "retryParentInstanceInfo",
        "tags",
        "router",
    }
)
_TIMER_ORIGINS = ("createTimer", "externalEvent", "activityRetry", "childWorkflowRetry")
_PAYLOADS = frozenset({"input", "result"})
# Some events carry something other than an input in their `input` field.
_INPUT_MEANS = {
    "executionTerminated": "output",
    "executionSuspended": "reason",
    "executionResumed": "reason",
}


# --- JSON views ------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def failure_json(raw: bytes, stack: bool = True) -> dict[str, Any]:
    details = pb.TaskFailureDetails()
    details.ParseFromString(raw)
    return _failure(MessageToDict(details), stack)


def _failure(d: dict[str, Any], stack: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": d.get("errorType", ""), "message": d.get("errorMessage", "")}
    if stack and d.get("stackTrace"):
        out["stackTrace"] = d["stackTrace"]
    if d.get("isNonRetriable"):
        out["nonRetriable"] = True
    if d.get("innerFailure"):
        out["inner"] = _failure(d["innerFailure"], stack)
    return out


def instance_json(inst: Instance, payloads: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "instanceID": inst.instance_id,
        "name": inst.name,
        "status": STATUS_NAMES.get(inst.status, str(inst.status)),
        "createdAt": iso(inst.created_at),
        "lastUpdatedAt": iso(inst.updated_at),
        "completedAt": iso(inst.completed_at),
        "parentInstanceID": inst.parent_id,
        "customStatus": payload(inst.custom_status),
        "appID": inst.app_id,
    }
    if inst.scheduled_start is not None:
        out["scheduledStartAt"] = iso(inst.scheduled_start)
    if payloads:
        out["input"] = payload(inst.input)
        out["output"] = payload(inst.output)
    if inst.failure:
        # Stack traces can be long; a listing shows them only when payloads are asked for.
        out["failure"] = failure_json(inst.failure, stack=payloads)
    return out


def event_json(index: int, event: ev.Event) -> dict[str, Any]:
    kind = ev.kind(event)
    details: dict[str, Any] = {}
    if kind != "None":
        # Fields without presence (ints, bools) are printed even at their default: a
        # taskScheduledId of 0 is the first task, not a missing one.
        raw = MessageToDict(getattr(event, kind), always_print_fields_with_no_presence=True)
        details = _readable(raw)
        if kind in _INPUT_MEANS and "input" in details:
            details[_INPUT_MEANS[kind]] = details.pop("input")
    return {
        "index": index,
        "eventId": event.eventId,
        "type": kind,
        "timestamp": iso(event.timestamp.ToDatetime(tzinfo=UTC)),
        "details": details,
    }


def _readable(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _NOISE or value in ("", [], None):
            continue
        if key in _PAYLOADS:
            out[key] = payload(value)
        elif key == "failureDetails":
            out["failure"] = _failure(value)
        elif key == "workflowStatus":
            out["status"] = str(value).removeprefix("ORCHESTRATION_STATUS_")
        elif key == "workflowInstance":  # its execution ID is bookkeeping, not for people
            out["instanceId"] = value.get("instanceId")
        elif key == "parentInstance":
            parent = {
                "instanceId": value.get("workflowInstance", {}).get("instanceId"),
                "name": value.get("name"),
                "taskScheduledId": value.get("taskScheduledId"),
            }
            out["parent"] = {k: v for k, v in parent.items() if v not in (None, "")}
        elif key == "scheduledStartTimestamp":
            out["scheduledStartAt"] = value
        elif key in _TIMER_ORIGINS:
            out["origin"] = key
            out.update({f"origin{k[0].upper()}{k[1:]}": v for k, v in value.items() if v})
        elif key == "version" and isinstance(value, dict):
            continue  # the worker's patch bookkeeping; not something to read
        elif value != {}:
            out[key] = value
    return out


# --- request parsing -------------------------------------------------------------------------


def parse_time(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise errors.BadRequest(
            f"{what} must be an ISO 8601 time such as 2024-05-01T12:00:00Z, got '{value}'"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_age(value: str, what: str) -> datetime:
    """A cutoff time: `7d`, `12h`, `30m`, `45s`, `2w` ago, or an ISO 8601 time."""
    match = _DURATION.match(value)
    if match:
        return utcnow() - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    try:
        return parse_time(value, what)
    except errors.BadRequest:
        raise errors.BadRequest(
            f"{what} must be an age such as 7d, 12h, 30m, 45s or 2w, or an ISO 8601 time, "
            f"got '{value}'"
        ) from None


def parse_bool(value: str | None, what: str, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise errors.BadRequest(f"{what} must be true or false, got '{value}'")


def parse_statuses(values: list[str]) -> tuple[int, ...]:
    names = [n for v in values for n in v.split(",") if n.strip()]
    return tuple(dict.fromkeys(status_from_name(n) for n in names))


def encode(value: Any, what: str) -> str | None:
    """A JSON value as the text the SDKs store; an absent or null value is no payload."""
    if value is None:
        return None
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise errors.BadRequest(f"{what} cannot be encoded as JSON: {exc}") from exc


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.BadRequest(f"'{key}' must be a string")
    return value


# --- routes ----------------------------------------------------------------------------------


def manage_routes(rt: Runtime) -> list[BaseRoute]:
    svc = rt.workflows
    limit = rt.config.max_request_bytes

    def owner(request: Request, body: dict[str, Any]) -> str:
        """The App ID a workflow started here belongs to: `appID` in the body, else the one of
        the `dapr-api-token` presented, else the server's default App ID. Who may call at all is
        the admin gate's business (`admin.py`), not the token's."""
        named = _optional_str(body, "appID")
        if named:
            return named
        token = request.headers.get("dapr-api-token")
        return rt.callers.app_for_token(token) if token else rt.callers.default_app_id

    def instance_id(request: Request) -> str:
        return validate_instance_id(request.path_params["id"])

    async def body_object(request: Request) -> dict[str, Any]:
        body = json_body(await read_body(request, limit))
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise errors.BadRequest("the request body must be a JSON object")
        return body

    async def summary(iid: str) -> Response:
        inst = await svc.get(iid)
        if inst is None:  # purged between the operation and this read
            raise errors.InstanceNotFound(iid)
        return JSONResponse(instance_json(inst, payloads=False))

    async def list_instances(request: Request) -> Response:
        q = request.query_params
        raw_limit = q.get("limit", str(DEFAULT_PAGE))
        if not raw_limit.isdigit() or not 0 < int(raw_limit) <= MAX_PAGE:
            raise errors.BadRequest(
                f"limit must be a whole number from 1 to {MAX_PAGE}, got '{raw_limit}'"
            )
        created_from, created_to = q.get("createdFrom"), q.get("createdTo")
        query = InstanceQuery(
            statuses=parse_statuses(q.getlist("status")),
            name=q.get("name") or None,
            created_from=parse_time(created_from, "createdFrom") if created_from else None,
            created_to=parse_time(created_to, "createdTo") if created_to else None,
            limit=int(raw_limit),
            cursor=q.get("cursor") or None,
        )
        payloads = parse_bool(q.get("payloads"), "payloads", False)
        page = await svc.list_instances(query)
        return JSONResponse(
            {
                "instances": [instance_json(i, payloads) for i in page.instances],
                "cursor": page.cursor,
            }
        )

    async def get(request: Request) -> Response:
        iid = instance_id(request)
        inst = await svc.get(iid)
        if inst is None:
            raise errors.InstanceNotFound(iid)
        return JSONResponse(instance_json(inst, payloads=True))

    async def history(request: Request) -> Response:
        events = await svc.history(instance_id(request))
        return JSONResponse({"events": [event_json(i, e) for i, e in enumerate(events)]})

    async def start(request: Request) -> Response:
        body = await body_object(request)
        app_id = owner(request, body)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise errors.WorkflowNameMissing("'name' (the workflow to start) is required")
        start_at = _optional_str(body, "startAt")
        iid = await svc.start(
            StartRequest(
                name=name,
                instance_id=_optional_str(body, "instanceID"),
                input=encode(body.get("input"), "input"),
                scheduled_start=parse_time(start_at, "startAt") if start_at else None,
                app_id=app_id,
            )
        )
        return JSONResponse({"instanceID": iid}, status_code=202)

    async def raise_event(request: Request) -> Response:
        iid = instance_id(request)
        data = json_body(await read_body(request, limit))
        await svc.raise_event(iid, request.path_params["event"], encode(data, "event data"))
        return await summary(iid)

    async def suspend(request: Request) -> Response:
        iid = instance_id(request)
        await svc.suspend(iid, _optional_str(await body_object(request), "reason"))
        return await summary(iid)

    async def resume(request: Request) -> Response:
        iid = instance_id(request)
        await svc.resume(iid, _optional_str(await body_object(request), "reason"))
        return await summary(iid)

    async def terminate(request: Request) -> Response:
        iid = instance_id(request)
        body = await body_object(request)
        recursive = body.get("recursive", True)
        if not isinstance(recursive, bool):
            raise errors.BadRequest("'recursive' must be true or false")
        await svc.terminate(iid, encode(body.get("output"), "output"), recursive)
        return await summary(iid)

    async def purge(request: Request) -> Response:
        iid = instance_id(request)
        q = request.query_params
        recursive = parse_bool(q.get("recursive"), "recursive", True)
        force = parse_bool(q.get("force"), "force", False)
        # The service treats a missing instance as nothing to do; a caller naming one wants to
        # know it was not there.
        if await svc.get(iid) is None:
            raise errors.InstanceNotFound(iid)
        return JSONResponse({"deleted": await svc.purge(iid, recursive=recursive, force=force)})

    async def purge_bulk(request: Request) -> Response:
        body = await body_object(request)
        raw_status = body.get("status", [])
        if isinstance(raw_status, str):
            raw_status = [raw_status]
        if not isinstance(raw_status, list) or not all(isinstance(s, str) for s in raw_status):
            raise errors.BadRequest("'status' must be a list of status names")
        statuses = parse_statuses(raw_status)
        running = [STATUS_NAMES[s] for s in statuses if s not in TERMINAL]
        if running:
            raise errors.BadRequest(
                f"only finished workflows can be purged ({FINISHED_NAMES}); "
                f"{', '.join(running)} is not finished: terminate those instances first"
            )
        older_than = _optional_str(body, "olderThan")
        created_from = _optional_str(body, "createdFrom")
        if not (statuses or older_than or created_from):
            # An empty filter would delete every finished workflow; make that explicit.
            raise errors.BadRequest(
                "give at least one filter: 'status' (any of "
                f"{FINISHED_NAMES}), 'olderThan' (e.g. 7d) or 'createdFrom'"
            )
        deleted = await svc.purge_where(
            statuses,
            parse_time(created_from, "createdFrom") if created_from else None,
            parse_age(older_than, "olderThan") if older_than else None,
        )
        return JSONResponse({"deleted": deleted})

    async def rerun(request: Request) -> Response:
        iid = instance_id(request)
        body = await body_object(request)
        event_id = body.get("fromEvent")
        if not isinstance(event_id, int) or isinstance(event_id, bool) or event_id < 0:
            raise errors.BadRequest(
                "'fromEvent' must be the event ID (a whole number) of an activity, timer or "
                "child workflow start, as shown by `tether workflow history`"
            )
        new_id = _optional_str(body, "newInstanceID")
        new_iid = await svc.rerun(
            RerunRequest(
                source_id=iid,
                event_id=event_id,
                new_id=validate_instance_id(new_id) if new_id else None,
                # Replaces the input of the step rerun; `"input": null` clears it.
                input=encode(body.get("input"), "input"),
                overwrite_input="input" in body,
            )
        )
        return JSONResponse({"instanceID": new_iid}, status_code=202)

    one = f"{PREFIX}/{{id}}"
    return [
        Route(PREFIX, list_instances, methods=["GET"]),
        Route(PREFIX, start, methods=["POST"]),
        Route(f"{PREFIX}/purge", purge_bulk, methods=["POST"]),
        Route(one, get, methods=["GET"]),
        Route(one, purge, methods=["DELETE"]),
        Route(f"{one}/history", history, methods=["GET"]),
        Route(f"{one}/events/{{event}}", raise_event, methods=["POST"]),
        Route(f"{one}/suspend", suspend, methods=["POST"]),
        Route(f"{one}/resume", resume, methods=["POST"]),
        Route(f"{one}/terminate", terminate, methods=["POST"]),
        Route(f"{one}/rerun", rerun, methods=["POST"]),
    ]
