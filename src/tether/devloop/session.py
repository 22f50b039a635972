"""One `tether run`: find or start the server, register the apps, run them, tear it all down.

The order of teardown matters and is the same however the session ends (an app failed, every
app exited, Ctrl-C or SIGTERM, an error while starting): apps are stopped first, their App IDs
removed from the server, and the dev server stopped last, and only if this session started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx

from tether import admin
from tether.devloop.output import Output
from tether.devloop.runfile import AppSpec
from tether.devloop.server import (
    AppsClient,
    DevServer,
    DevServerOptions,
    Endpoint,
    ServerError,
    healthy,
)
from tether.devloop.supervisor import Child, ProcessSpec, StartError, start

#: `tether run`'s own failure (no server, registration refused), as opposed to an app's.
FAILED = 1
NOT_STARTED = 127  # a command that cannot be started, as a shell reports it


@dataclass(frozen=True, slots=True)
class RunPlan:
    apps: tuple[AppSpec, ...]
    #: The server to use. None: http://127.0.0.1:<http_port>, started if nothing answers there.
    server_url: str | None = None
    #: HTTP port of the server to find or start, when no server_url is given.
    http_port: int = 3500
    #: gRPC port of that server (the apps are told it; a started server listens on it).
    grpc_port: int = 50001
    #: Data directory of a server this session starts, or of a running one on this machine
    #: (whose generated admin token is read from it).
    data_dir: Path = Path(".tether")
    #: Resource folders for a server this session starts.
    resources: tuple[Path, ...] = ()
    #: Seconds an app gets between SIGTERM and SIGKILL.
    grace: float = 5.0
    #: Print the started server's log lines instead of writing them to data_dir.
    server_logs: bool = False
    #: Remarks about the run file (ignored or unknown fields), printed first.
    notes: tuple[str, ...] = ()
    #: The server's admin token (`--admin-token`, TETHER_ADMIN_TOKEN); a server this session
    #: starts requires it. None: the one in data_dir, if the server is on this machine.
    admin_token: str | None = None


def app_env(app: AppSpec, endpoint: Endpoint, token: str) -> dict[str, str]:
    """The app's environment: ours, then what points an SDK at Tether, then the app's own."""
    injected = {
        "DAPR_HTTP_ENDPOINT": endpoint.http_url,
        "DAPR_GRPC_ENDPOINT": endpoint.grpc_endpoint,
        "DAPR_API_TOKEN": token,
        "DAPR_HTTP_PORT": str(endpoint.http_port),
        "DAPR_GRPC_PORT": str(endpoint.grpc_port),
        "APP_ID": app.app_id,
        "APP_PROTOCOL": app.app_protocol,
    }
    if app.app_port is not None:
        injected["APP_PORT"] = str(app.app_port)
    # Unbuffered so a Python app's lines show up as it prints them, not when it exits; a value
    # the user set wins. The app's own env wins over everything, as with `dapr run`.
    env = {"PYTHONUNBUFFERED": "1", **os.environ, **injected, **app.env}
    if admin.ENV not in app.env:
        # The admin token is tether run's, not the apps': an app holding it could manage
        # every other App ID.
        env.pop(admin.ENV, None)
    return env


class Session:
    def __init__(self, plan: RunPlan, out: Output) -> None:
        self.plan = plan
        self.out = out
        self.stop_requested = asyncio.Event()
        self.server: DevServer | None = None
        self.admin_token: str | None = None
        self.registered: list[str] = []
        self.children: list[Child] = []
        self._startup: asyncio.Task[None] | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._signals = 0
        self._killed = False
        for app in plan.apps:  # up front, so that every prefix has the same width from the start
            out.add_source(app.app_id)
        url = plan.server_url or f"http://127.0.0.1:{plan.http_port}"
        self.endpoint = Endpoint(url.rstrip("/"), plan.grpc_port)

    def interrupt(self, sig: int) -> None:
        """First signal: stop cleanly. Second: kill the apps now. Third: the dev server too.

        The dev server is spared by the second one so that it can still take the App IDs'
        deregistration: killed, it would restore them from its data directory next time.
        """
        name = signal.Signals(sig).name
        self._signals += 1
        if self._signals == 1:
            self.out.info(f"{name}: stopping (send it again to kill the apps at once)…")
            self.stop_requested.set()
            if self._startup is not None and not self._startup.done():
                self._startup.cancel()
            return
        if self._signals == 2:
            self.out.warn(f"{name} again: killing the apps")
            self._killed = True
            for child in self.children:
                child.signal(signal.SIGKILL)
            return
        if self.server is not None:
            self.out.warn(f"{name} again: killing the dev server")
            self.server.child.signal(signal.SIGKILL)

    async def run(self) -> int:
        """Run the plan to its end; the exit code of `tether run`."""
        async with httpx.AsyncClient() as http:
            try:
                self._startup = asyncio.create_task(self._start(http))
                try:
                    await self._startup
                except asyncio.CancelledError:
                    if not self.stop_requested.is_set():
                        raise
                    return 0
                except ServerError as exc:
                    self.out.error(str(exc))
                    return FAILED
                except StartError as exc:
                    self.out.error(str(exc))
                    return NOT_STARTED
                return await self._supervise()
            finally:
                await self._shutdown(http)

    async def _start(self, http: httpx.AsyncClient) -> None:
        plan, out, endpoint = self.plan, self.out, self.endpoint
        for note in plan.notes:
            out.warn(note)
        if await healthy(http, endpoint.http_url):
            where = f"(gRPC :{endpoint.grpc_port})"
            out.ok(f"using the Tether server at {endpoint.http_url}", where)
            if plan.resources:
                out.warn(
                    "that server keeps the resources it was started with; "
                    f"{', '.join(map(str, plan.resources))} not loaded. Stop it to have "
                    "tether run start one with them."
                )
        elif plan.server_url is not None and not endpoint.is_loopback:
            raise ServerError(
                f"no Tether server answers at {endpoint.http_url}; start one there, or leave "
                "out --server (and TETHER_URL) to have tether run start one here"
            )
        else:
            options = DevServerOptions(
                endpoint, plan.data_dir, plan.resources, plan.server_logs,
                admin_token=plan.admin_token,
            )  # fmt: skip
            self.server = await DevServer.start(options, http, out)
        # Read once the server is up: a server on this machine writes its token as it starts.
        self.admin_token = admin.for_client(plan.admin_token, endpoint.http_url, plan.data_dir)
        apps_api = self._apps_api(http)
        tokens: dict[str, str] = {}
        already = await apps_api.registered()
        for app in plan.apps:
            if app.app_id in already:
                out.warn(
                    f"App ID {app.app_id} was already registered (by another tether run, or one "
                    "that did not finish): this run replaces it, and removes it when it ends"
                )
            # Recorded before the call: if we are interrupted mid-request the server may
            # have registered it anyway, and deregistering an unknown App ID is harmless.
            self.registered.append(app.app_id)
            token = await apps_api.register(
                app.app_id,
                app.app_port,
                app.app_protocol,
                api_token=app.env.get("DAPR_API_TOKEN"),
                app_token=app.env.get("APP_API_TOKEN"),
            )
            tokens[app.app_id] = token
            out.ok(f"registered app {app.app_id}", f"(token …{token[-4:]})")
        for app in plan.apps:
            taken = app.app_port is not None and await _listening(app.app_port)
            if taken:
                out.warn(
                    f"port {app.app_port} is already in use: {app.app_id} may fail to listen, "
                    "or Tether's calls may reach another process"
                )
            env = app_env(app, endpoint, tokens[app.app_id])
            spec = ProcessSpec(app.app_id, app.command, app.app_dir, env)
            try:
                child = await start(spec, out)
            except StartError as exc:
                raise StartError(f"{app.app_id}: {exc}") from exc
            self.children.append(child)
            shown = shlex.join(app.command).replace("\n", "\\n")
            shown = shown if len(shown) <= 100 else shown[:99] + "…"
            out.info(f"started {app.app_id}: {shown}", f"(pid {child.pid})")
            if app.app_port is not None and not taken:
                self._watchers.append(
                    asyncio.create_task(self._announce(child, http, app.app_port))
                )

    def _apps_api(self, http: httpx.AsyncClient) -> AppsClient:
        return AppsClient(http, self.endpoint.http_url, self.admin_token)

    async def _supervise(self) -> int:
        """Wait for the apps; the first failure ends the session with that app's exit code."""
        waits = {asyncio.create_task(child.wait()): child for child in self.children}
        stop = asyncio.create_task(self.stop_requested.wait())
        code = 0
        try:
            while waits and not code:
                done, _ = await asyncio.wait([*waits, stop], return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    break
                for task in done:
                    child = waits.pop(task)
                    result = task.result()
                    if child.stopping:
                        continue
                    if result == 0:
                        self.out.info(f"{child.spec.name} exited (code 0)")
                    else:
                        self.out.error(f"{child.spec.name} exited with code {result}")
                        code = code or result
            if code and waits:
                self.out.info("stopping the other apps")
        finally:
            stop.cancel()
            for task in waits:
                task.cancel()
        return code

    async def _shutdown(self, http: httpx.AsyncClient) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        running = [child for child in self.children if child.running]
        if running:
            names = ", ".join(child.spec.name for child in running)
            self.out.info(f"stopping {names}…")
        # Every child, exited or not: stop() also sweeps what an exited app left in its group.
        outcomes = await asyncio.gather(*(child.stop(self.plan.grace) for child in self.children))
        for child, graceful in zip(self.children, outcomes, strict=True):
            child.close()
            if child in running:
                if graceful and not self._killed:
                    self.out.info(f"stopped {child.spec.name}")
                else:
                    grace = "" if self._killed else f" within {self.plan.grace:g}s"
                    self.out.warn(f"{child.spec.name} did not stop{grace}; killed")
        if self.registered:
            apps_api = self._apps_api(http)
            removed = []
            for app_id in self.registered:
                try:
                    await apps_api.deregister(app_id)
                    removed.append(app_id)
                except ServerError as exc:
                    self.out.warn(f"could not deregister {app_id}: {exc}")
            if removed:
                self.out.info(f"deregistered {', '.join(removed)}")
        if self.server is not None:
            graceful = await self.server.stop()
            self.out.info("stopped dev server" if graceful else "dev server did not stop; killed")

    async def _announce(self, child: Child, http: httpx.AsyncClient, port: int) -> None:
        """Say when the app starts listening, and have the server read its subscriptions now
        rather than at its next retry, so that its first events are not published into a gap."""
        while child.running:
            if await _listening(port):
                self.out.ok(f"{child.spec.name} is listening on :{port}")
                await self._apps_api(http).refresh(child.spec.name)
                return
            await asyncio.sleep(0.2)


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def run(plan: RunPlan, out: Output) -> int:
    """Run `plan` with SIGINT and SIGTERM handled; returns the exit code."""
    session = Session(plan, out)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, session.interrupt, sig)
    try:
        return await session.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
