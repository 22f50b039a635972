"""Every HTTP route the runtime serves, one list per building block."""

from __future__ import annotations

from starlette.routing import BaseRoute

from tether.runtime.context import Runtime
from tether.runtime.http.manage import manage_routes
from tether.runtime.http.workflows import workflow_routes


def all_routes(rt: Runtime) -> list[BaseRoute]:
    return [*workflow_routes(rt), *manage_routes(rt)]
