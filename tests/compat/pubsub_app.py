"""A pub/sub subscriber written the way Dapr users write one: FastAPI + `dapr.ext.fastapi`.

    python tests/compat/pubsub_app.py PORT CONFIG.json

CONFIG holds what to subscribe to and how to answer:

    {"subscriptions": [{"pubsub", "topic", "route"?, "mode", "deadLetterTopic"?, "metadata"?}],
     "routes": [{"path", "mode"}],          # plain routes, for declarative subscriptions
     "bulk_routes": [{"path", "mode"}]}     # routes that receive bulk deliveries

Modes: `success`, `empty` (200 with no body), `drop`, `retry` (always), `retry:N` (RETRY the
first N deliveries of each event, then SUCCESS), `error:N` (HTTP 500 the first N times),
`slow:S` (sleep S seconds, then SUCCESS). Every delivery is recorded; `GET /received` returns
them in arrival order; `POST /health/fail` and `/health/ok` flip what `/healthz` answers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import uvicorn
from dapr.ext.fastapi import DaprApp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

app = FastAPI()
dapr_app = DaprApp(app)
received: list[dict[str, Any]] = []
attempts: Counter[str] = Counter()
lock = threading.Lock()


def _record(path: str, body: Any, request: Request) -> int:
    """Store one delivery; returns how many times this (path, event id) was seen."""
    event_id = body.get("id", "") if isinstance(body, dict) else ""
    with lock:
        received.append(
            {
                "path": path,
                "event": body,
                "content_type": request.headers.get("content-type", ""),
                "pubsubname": request.headers.get("pubsubname", ""),
                "traceparent": request.headers.get("traceparent", ""),
            }
        )
        attempts[f"{path}|{event_id}"] += 1
        return attempts[f"{path}|{event_id}"]


async def _answer(mode: str, seen: int) -> Response:
    name, _, arg = mode.partition(":")
    if name == "success":
        return JSONResponse({"status": "SUCCESS"})
    if name == "empty":
        return Response(status_code=200)
    if name == "drop":
        return JSONResponse({"status": "DROP"})
    if name == "retry":
        if not arg or seen <= int(arg):
            return JSONResponse({"status": "RETRY"})
        return JSONResponse({"status": "SUCCESS"})
    if name == "error":
        if seen <= int(arg):
            return Response("boom", status_code=500)
        return JSONResponse({"status": "SUCCESS"})
    if name == "slow":
        await asyncio.sleep(float(arg))
        return JSONResponse({"status": "SUCCESS"})
    raise ValueError(f"unknown mode {mode!r}")


def _single(path: str, mode: str) -> Any:
    async def handler(request: Request) -> Response:
        body = json.loads(await request.body() or b"null")
        return await _answer(mode, _record(path, body, request))

    return handler


def _bulk(path: str, mode: str) -> Any:
    async def handler(request: Request) -> Response:
        body = json.loads(await request.body())
        statuses = []
        for entry in body.get("entries", []):
            seen = _record(path, {**entry, "id": entry.get("entryId"), "bulk": body}, request)
            answer = await _answer(mode, seen)
            status = json.loads(answer.body or b"{}").get("status", "SUCCESS")
            statuses.append({"entryId": entry["entryId"], "status": status})
        return JSONResponse({"statuses": statuses})

    return handler


def configure(config: dict[str, Any]) -> None:
    for sub in config.get("subscriptions", []):
        route = sub.get("route") or f"/events/{sub['pubsub']}/{sub['topic']}"
        dapr_app.subscribe(
            pubsub=sub["pubsub"],
            topic=sub["topic"],
            route=route,
            metadata=sub.get("metadata", {}),
            dead_letter_topic=sub.get("deadLetterTopic"),
        )(_single(route, sub.get("mode", "success")))
    for spec in config.get("routes", []):
        app.add_api_route(spec["path"], _single(spec["path"], spec["mode"]), methods=["POST"])
    for spec in config.get("bulk_routes", []):
        app.add_api_route(spec["path"], _bulk(spec["path"], spec["mode"]), methods=["POST"])


@app.get("/received")
def get_received() -> list[dict[str, Any]]:
    with lock:
        return list(received)


health = {"ok": True}


@app.get("/healthz")
def healthz() -> Response:
    return JSONResponse({"ok": health["ok"]}, status_code=200 if health["ok"] else 503)


@app.post("/health/{state}")
def set_health(state: str) -> dict[str, bool]:
    """Make the health check fail (`fail`) or pass (`ok`) from now on."""
    health["ok"] = state == "ok"
    return health


if __name__ == "__main__":
    port, config_path = int(sys.argv[1]), Path(sys.argv[2])
    configure(json.loads(config_path.read_text()))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
