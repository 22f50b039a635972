"""An HTTP app for the invocation and jobs suites: FastAPI with the SDK's `dapr.ext.fastapi`.

Run as `python -m tests.compat.invoke_http_app PORT`. Its routes report what reached them, so the
tests can check what the runtime sent; `APP_TOKEN` (env) makes `/secure` demand that token.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from typing import Any

import uvicorn
from dapr.ext.fastapi import DaprApp
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

app = FastAPI()
dapr_app = DaprApp(app)
calls: Counter[str] = Counter()
jobs: list[dict[str, Any]] = []
ticks: list[dict[str, str]] = []
health = {"ok": True}


@app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def echo(request: Request, rest: str) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": rest,
            "query": request.url.query,
            "headers": dict(request.headers),
            "body": body.decode(errors="replace"),
        },
        headers={"x-echo": "yes"},
    )


@app.post("/status/{code}")
async def status(code: int, request: Request) -> Response:
    return Response(await request.body(), status_code=code, media_type="text/plain")


@app.post("/flaky/{key}/{failures}")
async def flaky(key: str, failures: int) -> Response:
    """Fails the first `failures` calls for `key` with 500, then succeeds."""
    calls[key] += 1
    if calls[key] <= failures:
        return Response(f"failure {calls[key]}", status_code=500)
    return JSONResponse({"calls": calls[key]})


@app.get("/calls/{key}")
async def count(key: str) -> Response:
    return JSONResponse({"calls": calls[key]})


@app.post("/slow/{seconds}")
async def slow(seconds: float) -> Response:
    await asyncio.sleep(seconds)
    return JSONResponse({"slept": seconds})


@app.get("/healthz")
async def healthz() -> Response:
    return Response(status_code=200 if health["ok"] else 500)


@app.post("/health/{ok}")
async def set_health(ok: int) -> Response:
    health["ok"] = bool(ok)
    return Response(status_code=204)


@app.get("/secure")
async def secure(request: Request) -> Response:
    expected = os.environ.get("APP_TOKEN")
    if expected and request.headers.get("dapr-api-token") != expected:
        return Response("wrong app token", status_code=401)
    return JSONResponse({"token": request.headers.get("dapr-api-token")})


@app.post("/job/{name}")
async def job(name: str, request: Request) -> Response:
    body = await request.body()
    first = not any(j["name"] == name for j in jobs)
    jobs.append({"name": name, "body": body.decode(errors="replace")})
    if name.startswith("stall-") and first:
        # Holds the first delivery open, so that a test can kill the runtime mid-delivery.
        await asyncio.sleep(120)
    return Response(status_code=200)


@app.post("/ticker")
async def ticker(request: Request) -> Response:
    """The `ticker` input binding (a `bindings.cron` component)."""
    ticks.append(dict(request.headers))
    return Response(status_code=200)


@app.get("/ticks")
async def ticks_received() -> Response:
    return JSONResponse(ticks)


@app.get("/jobs-received")
async def jobs_received() -> Response:
    return JSONResponse(jobs)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
