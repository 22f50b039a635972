"""The indexed router answers every request exactly as Starlette's own router does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from tether.runtime.http.router import IndexedRouter, static_prefix


def _routes() -> list[BaseRoute]:
    def named(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return PlainTextResponse(f"{name} {dict(request.path_params)}")

        return endpoint

    return [
        Route("/v1.0/healthz", named("health"), methods=["GET"]),
        Route("/v1.0/state/{store}", named("save"), methods=["POST"]),
        Route("/v1.0/state/{store}/bulk", named("bulk"), methods=["POST"]),
        Route("/v1.0/state/{store}/{key}", named("get"), methods=["GET"]),
        Route("/v1.0/{anything}/x", named("v1-param"), methods=["GET"]),
        Route("/metrics", named("metrics"), methods=["GET"]),
        Route("/{first}/state/{key}", named("param-first"), methods=["PUT"]),
        Route("/v1.0-alpha1/jobs/{name}", named("job"), methods=["GET", "DELETE"]),
    ]


REQUESTS = [
    ("GET", "/v1.0/healthz"),
    ("POST", "/v1.0/healthz"),  # 405
    ("GET", "/v1.0/healthz/"),  # slash redirect
    ("POST", "/v1.0/state/s"),
    ("POST", "/v1.0/state/s/bulk"),
    ("GET", "/v1.0/state/s/bulk"),  # get, with key "bulk"
    ("GET", "/v1.0/state/s/k"),
    ("DELETE", "/v1.0/state/s/k"),  # 405
    ("GET", "/v1.0/state/x"),  # 405 via save
    ("GET", "/v1.0/other/x"),
    ("GET", "/v1.0/state/x/y/z"),  # 404
    ("PUT", "/v1.0/state/k"),  # param-first
    ("PUT", "/zzz/state/k"),
    ("GET", "/metrics"),
    ("GET", "/metrics/"),
    ("GET", "/"),
    ("GET", "//v1.0/healthz"),
    ("DELETE", "/v1.0-alpha1/jobs/a%2Fb"),
    ("HEAD", "/v1.0-alpha1/jobs/n"),
    ("GET", "/nowhere"),
]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
async def test_same_answer_as_starlette(method: str, path: str) -> None:
    plain = Starlette(routes=_routes())
    indexed = Starlette(routes=_routes())
    indexed.router = IndexedRouter(_routes())
    answers = []
    for app in (plain, indexed):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.request(method, path)
            answers.append((r.status_code, r.text, r.headers.get("location")))
    assert answers[0] == answers[1]


def test_static_prefix() -> None:
    assert static_prefix("/v1.0/state/{store}/{key}") == ("v1.0", "state")
    assert static_prefix("/v1.0/healthz/outbound") == ("v1.0", "healthz")
    assert static_prefix("/metrics") == ("metrics",)
    assert static_prefix("/{first}/state") == ()
    assert static_prefix("/job/{name}") == ("job",)


def test_only_routes_with_the_paths_prefix_are_tried() -> None:
    router = IndexedRouter(_routes())
    tried = [getattr(r, "path", "") for r in router.candidates("/v1.0/state/s/k")]
    assert tried == [
        "/v1.0/state/{store}",
        "/v1.0/state/{store}/bulk",
        "/v1.0/state/{store}/{key}",
        "/v1.0/{anything}/x",
        "/{first}/state/{key}",
    ]
