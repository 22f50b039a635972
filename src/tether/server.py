"""One Tether server process: the workflow engine, the gRPC and the HTTP listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
import uvicorn

from tether import admin
from tether.config import ServerConfig
from tether.datadir import DataDirLock
from tether.runtime.apps import Apps
from tether.runtime.callers import Callers
from tether.runtime.components import ComponentHost
from tether.runtime.context import Runtime
from tether.runtime.grpc.proxy import add_proxy
from tether.runtime.grpc.registry import serve_service
from tether.runtime.grpc.service import add_dapr_service
from tether.runtime.http.app import build_app
from tether.runtime.http.routes import all_routes
from tether.runtime.inputbindings import InputBindings
from tether.runtime.jobs import Scheduler, open_job_store
from tether.runtime.metrics import Metrics
from tether.runtime.pubsub.manager import PubSubManager
from tether.runtime.resiliency import Resiliencies
from tether.workflow.engine import Engine
from tether.workflow.protos import pb, pb_grpc
from tether.workflow.service import WorkflowService
from tether.workflow.sidecar import Sidecar
from tether.workflow.store import open_store

log = logging.getLogger("tether.server")


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        store = open_store(config.store_url, config.data_dir)
        metrics = Metrics()
        self.engine = Engine(store, metrics.registry)
        # Beyond loopback, a caller without a token is nobody once App IDs have tokens.
        callers = Callers(config.default_app_id, config.api_tokens, admin.is_loopback(config.host))
        apps = Apps(config, callers)
        job_store = open_job_store(config.store_url, config.data_dir)
        # Other replicas may schedule into a shared PostgreSQL store: look for their jobs often.
        poll = 5.0 if job_store.kind == "postgresql" else 60.0
        self.runtime = Runtime(
            config, callers, WorkflowService(self.engine), apps=apps,
            jobs=Scheduler(job_store, apps, poll, metrics=metrics.jobs),
            admin=_admin_access(config), resiliency=Resiliencies(metrics=metrics.resiliency),
            metrics=metrics,
        )  # fmt: skip
        self.components = ComponentHost(
            config.data_dir, list(config.resources_paths) or None, metrics=metrics.components
        )
        self.runtime.components = self.components
        # Attached before the host starts, so that the first load's input bindings start too.
        InputBindings(apps, self.runtime.resiliency).attach(self.components)
        self._grpc: grpc.aio.Server | None = None
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cfg = self.config
        await self.engine.start()
        self.components.on_resources(
            lambda found: self.runtime.resiliency.apply(found.resiliencies)
        )
        await self.runtime.apps.start()
        await self.runtime.jobs.start()
        # Before the listeners open, so the first request finds every component that loads.
        await self.components.start()
        # Subscriptions need the components and the apps; resource reloads and app changes
        # re-reconcile them (before replaced brokers are closed).
        pubsub = self.runtime.pubsub = PubSubManager(
            self.components, self.runtime.apps, self.runtime.resiliency,
            metrics=self.runtime.metrics.pubsub,
        )  # fmt: skip
        self.runtime.apps.on_change(pubsub.app_changed)
        self.components.on_change(lambda _change: pubsub.reconcile())
        await pubsub.start()
        limit = cfg.max_request_bytes
        self._grpc = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ]
        )
        serve_service(
            self._grpc, pb.DESCRIPTOR.services_by_name["TaskHubSidecarService"],
            Sidecar(self.runtime.workflows, self.runtime.callers.for_grpc),
            pb_grpc.TaskHubSidecarServiceServicer, self.runtime.metrics.api, "workflows",
        )  # fmt: skip
        add_dapr_service(self._grpc, self.runtime)
        add_proxy(self._grpc, self.runtime)  # last: it takes the methods no service serves
        self._grpc.add_insecure_port(f"{cfg.host}:{cfg.grpc_port}")
        await self._grpc.start()
        app = build_app(self.runtime, all_routes(self.runtime))
        uv_config = uvicorn.Config(
            app, host=cfg.host, port=cfg.http_port, log_config=None, access_log=False,
            lifespan="off", timeout_graceful_shutdown=2,
            # Nothing reads the client address, so X-Forwarded-* rewriting is only cost.
            proxy_headers=False, server_header=False,
        )  # fmt: skip
        self._http = uvicorn.Server(uv_config)
        self._http_task = asyncio.get_running_loop().create_task(self._http.serve())
        while not self._http.started:
            if self._http_task.done():
                await self._http_task
                raise OSError(f"HTTP listener on {cfg.host}:{cfg.http_port} did not start")
            await asyncio.sleep(0.01)
        self.runtime.ready = True
        log.info(
            "tether is ready",
            extra={"grpc": f"{cfg.host}:{cfg.grpc_port}", "http": f"{cfg.host}:{cfg.http_port}",
                   "store": self.engine.store.kind},
        )  # fmt: skip

    async def stop(self) -> None:
        self.runtime.ready = False
        if self._http is not None:
            self._http.should_exit = True
        if self._http_task is not None:
            with contextlib.suppress(Exception):
                await self._http_task
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
        if self.runtime.pubsub is not None:
            await self.runtime.pubsub.stop()
        await self.runtime.jobs.stop()
        await self.components.stop()
        await self.runtime.apps.stop()
        await self.engine.stop()
        log.info("tether stopped")


def _admin_access(cfg: ServerConfig) -> admin.Access:
    access = admin.for_server(cfg.host, cfg.admin_token, cfg.data_dir)
    if access.file is not None:
        log.warning(
            "listening beyond loopback with no admin token configured: the management API "
            "requires the token generated in %s (or set --admin-token / %s)",
            access.file.resolve(), admin.ENV,
        )  # fmt: skip
    elif access.token is not None:
        log.info("the management API requires the admin token")
    return access


async def serve(config: ServerConfig) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly. Raises `DataDirInUse` when another
    server runs on the same data directory."""
    with DataDirLock(config.data_dir):
        await _serve(config)


async def _serve(config: ServerConfig) -> None:
    server = Server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
