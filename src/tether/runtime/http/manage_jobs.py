"""Tether's management API for jobs, under /v1.0-tether/jobs: what operators need to see and
clean up across App IDs, which Dapr's Jobs API (one App ID's own jobs, by name) does not give.

- `GET /v1.0-tether/jobs[?appID=ID]`: `{jobs: [...], deliveries: [...]}`. A job shows its schedule
  as written, when it next fires, how often it has fired and when it expires; a delivery is an
  occurrence that has fired but that its app has not yet taken: its attempts so far, and which
  runtime holds it until when.
- `DELETE /v1.0-tether/jobs/{appID}/{name}`: delete the job and its undelivered occurrences.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import errors
from tether.runtime.context import Runtime
from tether.runtime.http.jobs import job_to_json
from tether.runtime.jobs.scheduler import to_proto
from tether.runtime.jobs.store import Delivery, Job

PREFIX = "/v1.0-tether/jobs"


def _iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    at = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return at.isoformat().replace("+00:00", "Z")


def job_json(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {"appID": job.app_id, **job_to_json(to_proto(job))}
    out.update(
        createdAt=_iso(job.created_at),
        nextFireAt=_iso(job.next_fire),
        expiresAt=_iso(job.expires_at),
        fired=job.fired,
    )
    return out


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "appID": delivery.app_id,
        "name": delivery.name,
        "dueAt": _iso(delivery.fire_at),
        "attempts": delivery.attempts,
        "owner": delivery.owner,
        "leaseUntil": _iso(delivery.lease_until),
    }


def manage_job_routes(rt: Runtime) -> list[BaseRoute]:
    async def listing(request: Request) -> Response:
        app_id = request.query_params.get("appID") or None
        store = rt.jobs.store
        jobs = await store.list_jobs(app_id)
        deliveries = await store.deliveries(app_id)
        return JSONResponse(
            {
                "jobs": [job_json(j) for j in jobs],
                "deliveries": [delivery_json(d) for d in deliveries],
            }
        )

    async def remove(request: Request) -> Response:
        app_id, name = request.path_params["app_id"], request.path_params["name"]
        store = rt.jobs.store
        # A one-shot job is gone once it fired; its occurrence may still be on its way.
        pending = any(d.name == name for d in await store.deliveries(app_id))
        if not pending and await store.get(app_id, name) is None:
            raise errors.JobNotFound(f"job {name} of app {app_id} not found")
        await rt.jobs.delete(app_id, name)
        return Response(status_code=204)

    return [
        Route(PREFIX, listing, methods=["GET"]),
        Route(PREFIX + "/{app_id}/{name:path}", remove, methods=["DELETE"]),
    ]
