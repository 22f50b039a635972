"""Every HTTP route the runtime serves, one list per building block."""

from __future__ import annotations

from starlette.routing import BaseRoute

from tether.runtime.context import Runtime
from tether.runtime.http.apps import app_routes
from tether.runtime.http.bindings import binding_routes
from tether.runtime.http.configuration import configuration_routes
from tether.runtime.http.invoke import AppIdHeaderRoute, invoke_routes
from tether.runtime.http.jobs import job_routes
from tether.runtime.http.lock import lock_routes
from tether.runtime.http.manage import manage_routes
from tether.runtime.http.manage_jobs import manage_job_routes
from tether.runtime.http.pubsub import pubsub_routes
from tether.runtime.http.secrets import secret_routes
from tether.runtime.http.state import state_routes
from tether.runtime.http.workflows import workflow_routes


def all_routes(rt: Runtime) -> list[BaseRoute]:
    return [
        *workflow_routes(rt),
        *manage_routes(rt),
        *manage_job_routes(rt),
        *invoke_routes(rt),
        *job_routes(rt),
        *app_routes(rt),
        *state_routes(rt),
        *secret_routes(rt),
        *configuration_routes(rt),
        *lock_routes(rt),
        *binding_routes(rt),
        *pubsub_routes(rt),
        # Last: invocation by `dapr-app-id` header takes only what no route above matches.
        AppIdHeaderRoute(rt),
    ]
