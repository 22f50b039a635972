"""HTTP requests in the API metrics: route templates, never raw paths, with the status sent."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fixtures.prometheus import Exposition, parse
from tether import errors
from tether.admin import Access
from tether.runtime.http.app import build_app
from tether.runtime.http.metrics import building_block
from tether.runtime.metrics import Metrics


async def _get_key(request: Request) -> Response:
    if request.path_params["key"] == "missing":
        raise errors.NotFound("no such key")
    if request.path_params["key"] == "boom":
        raise RuntimeError("a bug")
    return Response(b"v")


async def _requests(*calls: tuple[str, str, dict[str, str]]) -> Exposition:
    rt = SimpleNamespace(admin=Access(token="s3cret"), metrics=Metrics(), ready=True)
    routes = [Route("/v1.0/state/{store}/{key:path}", _get_key, methods=["GET"])]
    app = build_app(rt, routes)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for method, path, headers in calls:
            await client.request(method, path, headers=headers)
    return parse(rt.metrics.registry.render())


async def test_requests_are_counted_by_route_template_and_status() -> None:
    got = await _requests(
        ("GET", "/v1.0/state/s/a/b", {}),
        ("GET", "/v1.0/state/other/c", {}),
        ("GET", "/v1.0/state/s/missing", {}),
        ("GET", "/v1.0/state/s/boom", {}),
        ("DELETE", "/v1.0/state/s/k", {}),
        ("GET", "/v1.0/healthz", {}),
    )
    route = "GET /v1.0/state/{store}/{key}"
    state = {"transport": "http", "api": "state"}
    assert got.get("tether_api_requests_total", **state, route=route, status="200") == 2
    assert got.get("tether_api_requests_total", **state, route=route, status="404") == 1
    assert got.get("tether_api_requests_total", **state, route=route, status="500") == 1
    # A method the route does not take: Starlette answers 405 through the route.
    delete = "DELETE /v1.0/state/{store}/{key}"
    assert got.get("tether_api_requests_total", **state, route=delete, status="405") == 1
    health = {"transport": "http", "api": "health", "route": "GET /v1.0/healthz"}
    assert got.get("tether_api_requests_total", **health, status="204") == 1
    assert got.get("tether_api_request_duration_seconds_count", **state, route=route,
                   status="200") == 2  # fmt: skip
    assert all("/s/" not in s["route"] for s in got.series("tether_api_requests_total"))


async def test_unrouted_and_refused_requests_count_without_their_paths() -> None:
    got = await _requests(
        ("GET", "/nowhere/1", {}),
        ("GET", "/nowhere/2", {}),
        ("GET", "/v1.0-tether/apps", {}),
        ("GET", "/v1.0-tether/apps", {"authorization": "Bearer wrong"}),
        ("BREW", "/v1.0/state/s/k", {}),
    )
    unrouted = {"transport": "http", "route": "(unrouted)"}
    assert got.get("tether_api_requests_total", **unrouted, api="other", status="404") == 2
    assert got.get("tether_api_requests_total", **unrouted, api="management", status="401") == 2
    other = "OTHER /v1.0/state/{store}/{key}"
    assert got.total("tether_api_requests_total", route=other, status="405") == 1


def test_building_blocks_come_from_a_fixed_table() -> None:
    assert building_block("/v1.0/publish/{pubsub}/{topic}") == "pubsub"
    assert building_block("/v1.0-alpha1/jobs/{name}") == "jobs"
    assert building_block("/v1.0-beta1/workflows/{component}/{id}") == "workflows"
    assert building_block("/v1.0-alpha1/unlock/{store}") == "lock"
    assert building_block("/v1.0-tether/apps/{app_id}") == "management"
    assert building_block("/metrics") == "metrics"
    assert building_block("/v1.0/whatever-an-app-sends") == "other"
    assert building_block("/") == "other"
