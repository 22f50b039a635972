"""Dapr's HTTP Jobs API: `POST|GET|DELETE /v1.0-alpha1/jobs/{name}` (and under /v1.0), and
`GET /v1.0-alpha1/jobs`, the caller's jobs (`{"jobs": [...]}`, gRPC's `ListJobs` over HTTP).

The body of a schedule is daprd's `JobHTTPRequest`: `{data, schedule, dueTime, repeats, ttl,
failurePolicy, overwrite}`, with `data` any JSON value (stored as a `google.protobuf.Value`, so
that the app gets that JSON back as the body of `POST /job/{name}`).
"""

from __future__ import annotations

import base64
from typing import Any

from dapr.proto.runtime.v1 import jobs_pb2
from google.protobuf import json_format, struct_pb2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tether import errors
from tether.runtime.appchannel import integral
from tether.runtime.context import Runtime
from tether.runtime.http.app import json_body, read_body

VERSIONS = ("v1.0-alpha1", "v1.0")


def _field(doc: dict[str, Any], camel: str, snake: str) -> Any:
    return doc.get(camel, doc.get(snake))


def job_from_json(name: str, doc: Any) -> tuple[jobs_pb2.Job, bool]:
    """(job, overwrite) from a schedule request body; raises a 400 for a malformed one."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise errors.BadRequest("the job must be a JSON object")
    if doc.get("name"):
        raise errors.JobNameInBody("Set the job name in the url only")
    job = jobs_pb2.Job(name=name)
    for key, camel, snake in (
        ("schedule", "schedule", "schedule"),
        ("due_time", "dueTime", "due_time"),
        ("ttl", "ttl", "ttl"),
    ):
        value = _field(doc, camel, snake)
        if value is not None:
            if not isinstance(value, str):
                raise errors.JobInvalid(f"failed to schedule job due to: {camel} must be a string")
            setattr(job, key, value)
    repeats = doc.get("repeats")
    if repeats is not None:
        if isinstance(repeats, bool) or not isinstance(repeats, int) or not 0 <= repeats < 2**32:
            raise errors.JobInvalid(
                "failed to schedule job due to: repeats must be a whole number of at least 0"
            )
        job.repeats = repeats
    if "data" in doc and doc["data"] is not None:
        value = struct_pb2.Value()
        json_format.ParseDict(doc["data"], value)
        job.data.Pack(value)
    policy = _field(doc, "failurePolicy", "failure_policy")
    if policy is not None:
        try:
            json_format.ParseDict(policy, job.failure_policy)
        except json_format.ParseError as exc:
            raise errors.JobInvalid(f"failed to schedule job due to: failurePolicy: {exc}") from exc
    overwrite = doc.get("overwrite", False)
    return job, bool(overwrite)


def job_to_json(job: jobs_pb2.Job) -> dict[str, Any]:
    out: dict[str, Any] = {"name": job.name}
    if job.HasField("schedule"):
        out["schedule"] = job.schedule
    if job.HasField("due_time"):
        out["dueTime"] = job.due_time
    if job.HasField("repeats"):
        out["repeats"] = job.repeats
    if job.HasField("ttl"):
        out["ttl"] = job.ttl
    if job.HasField("data") and (job.data.type_url or job.data.value):
        try:
            out["data"] = integral(json_format.MessageToDict(job.data))
        except (json_format.Error, TypeError, KeyError):
            # A payload type this server has no schema for: give the bytes back as they are.
            out["data"] = {
                "@type": job.data.type_url,
                "value": base64.b64encode(job.data.value).decode(),
            }
    if job.HasField("failure_policy"):
        out["failurePolicy"] = json_format.MessageToDict(job.failure_policy)
    return out


def job_routes(rt: Runtime) -> list[BaseRoute]:
    def caller(request: Request) -> str:
        return rt.callers.app_for_token(request.headers.get("dapr-api-token"))

    async def schedule(request: Request) -> Response:
        app_id = caller(request)
        raw = await read_body(request, rt.apps.max_body(app_id))
        try:
            doc = json_body(raw)
            job, overwrite = job_from_json(request.path_params["name"].strip(), doc)
        except json_format.ParseError as exc:
            raise errors.BadRequest(f"invalid job: {exc}") from exc
        await rt.jobs.schedule(app_id, job, overwrite)
        return Response(status_code=204)

    async def get(request: Request) -> Response:
        job = await rt.jobs.get(caller(request), request.path_params["name"])
        return JSONResponse(job_to_json(job))

    async def delete(request: Request) -> Response:
        await rt.jobs.delete(caller(request), request.path_params["name"])
        return Response(status_code=204)

    async def listing(request: Request) -> Response:
        jobs = await rt.jobs.list_jobs(caller(request))
        return JSONResponse({"jobs": [job_to_json(job) for job in jobs]})

    routes: list[BaseRoute] = []
    for version in VERSIONS:
        path = f"/{version}/jobs/{{name}}"
        routes += [
            Route(f"/{version}/jobs", listing, methods=["GET"]),
            Route(path, schedule, methods=["POST"]),
            Route(path, get, methods=["GET"]),
            Route(path, delete, methods=["DELETE"]),
        ]
    return routes
