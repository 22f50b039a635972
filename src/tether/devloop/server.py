"""The Tether server `tether run` talks to: one already running, or a `tether dev` it starts.

Also the client for the server's app registry (`/v1.0-tether/apps`), which turns an App ID into
the API token its process authenticates with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from tether import admin
from tether.devloop.output import Output
from tether.devloop.supervisor import Child, ProcessSpec, StartError, start

APPS = "/v1.0-tether/apps"
HEALTH = "/v1.0/healthz"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ServerError(Exception):
    """The server could not be found, started or used; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where apps reach the server."""

    http_url: str
    grpc_port: int

    @property
    def host(self) -> str:
        return urlsplit(self.http_url).hostname or "127.0.0.1"

    @property
    def http_port(self) -> int:
        parts = urlsplit(self.http_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def grpc_endpoint(self) -> str:
        # The SDKs read an https:// gRPC endpoint as "use TLS", a bare host:port as plaintext.
        host = f"[{self.host}]" if ":" in self.host else self.host
        secure = urlsplit(self.http_url).scheme == "https"
        return f"{'https://' if secure else ''}{host}:{self.grpc_port}"

    @property
    def is_loopback(self) -> bool:
        return self.host in _LOOPBACK


async def healthy(http: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await http.get(url.rstrip("/") + HEALTH, timeout=1.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 204


@dataclass(frozen=True, slots=True)
class DevServerOptions:
    endpoint: Endpoint
    data_dir: Path
    resources: tuple[Path, ...] = ()
    #: Relay the server's log lines as `[tether dev]`; otherwise they go to a file in data_dir.
    show_logs: bool = False
    start_timeout: float = 30.0
    #: The admin token the server is to require; None: none (the server is on loopback).
    admin_token: str | None = None


class DevServer:
    """A `tether dev` child process."""

    def __init__(self, options: DevServerOptions, child: Child, log_path: Path | None) -> None:
        self.options = options
        self.child = child
        self.log_path = log_path

    @classmethod
    async def start(
        cls, options: DevServerOptions, http: httpx.AsyncClient, out: Output
    ) -> DevServer:
        """Start `tether dev` on the endpoint's ports and wait until it answers its health check."""
        ep = options.endpoint
        options.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "tether", "dev",
            "--host", ep.host,
            "--http-port", str(ep.http_port),
            "--grpc-port", str(ep.grpc_port),
            "--data-dir", str(options.data_dir),
        ]  # fmt: skip
        for folder in options.resources:
            argv += ["--resources", str(folder)]
        log_path = None if options.show_logs else options.data_dir / "dev-server.log"
        spec = ProcessSpec("tether dev", tuple(argv), Path.cwd(), _server_env(options.admin_token))
        out.info(f"starting dev server on :{ep.http_port} (gRPC :{ep.grpc_port})…")
        log = log_path.open("ab") if log_path is not None else None
        try:
            child = await start(spec, out, log)
        except StartError as exc:
            raise ServerError(f"cannot start tether dev: {exc}") from exc
        finally:
            if log is not None:
                log.close()  # the child has its own copy of the descriptor
        server = cls(options, child, log_path)
        try:
            await server._wait_ready(http)
        except BaseException:
            # Interrupted or failed while starting: never leave a server behind.
            await server.stop(grace=5.0)
            raise
        out.ok(f"dev server ready on :{ep.http_port}", f"(gRPC :{ep.grpc_port}, pid {child.pid})")
        return server

    async def _wait_ready(self, http: httpx.AsyncClient) -> None:
        ep, child = self.options.endpoint, self.child
        deadline = time.monotonic() + self.options.start_timeout
        while not await healthy(http, ep.http_url):
            if not child.running:
                code = await child.wait()
                raise ServerError(
                    f"tether dev exited with code {code} before it was ready{self.log_tail()}\n"
                    f"If port {ep.http_port} or {ep.grpc_port} is taken, pick others with "
                    "--http-port/--grpc-port."
                )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"tether dev did not answer on {ep.http_url} within "
                    f"{self.options.start_timeout:g}s{self.log_tail()}"
                )
            await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"; its log ({self.log_path}) ends with:\n" + "\n".join(tail) if tail else ""

    async def stop(self, grace: float = 10.0) -> bool:
        return await self.child.stop(grace)


def _server_env(admin_token: str | None) -> dict[str, str]:
    # The server's logs should arrive as they are written, not when a buffer fills.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # In the environment rather than argv, where every local user could read it with `ps`.
    env.pop(admin.ENV, None)
    if admin_token:
        env[admin.ENV] = admin_token
    return env


class AppsClient:
    """`/v1.0-tether/apps`: register an App ID (getting its API token) and remove it again."""

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, admin_token: str | None = None
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._headers = admin.headers(admin_token)

    async def register(
        self,
        app_id: str,
        app_port: int | None,
        app_protocol: str,
        api_token: str | None = None,
        app_token: str | None = None,
    ) -> str:
        """Register `app_id` and return its API token (the server makes one unless given)."""
        body: dict[str, Any] = {"appID": app_id, "appProtocol": app_protocol}
        if app_port is not None:
            body["appPort"] = app_port
        if api_token:
            body["apiToken"] = api_token
        if app_token:
            body["appToken"] = app_token
        response = await self._call("POST", APPS, body)
        try:
            token = response.json()["apiToken"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(f"registering {app_id}: the server's answer has no apiToken") from exc
        if not isinstance(token, str) or not token:
            raise ServerError(f"registering {app_id}: the server returned an empty apiToken")
        return token

    async def registered(self) -> set[str]:
        """The App IDs registered now; empty if the server cannot say."""
        try:
            apps = (await self._call("GET", APPS, None)).json()["apps"]
            return {app["appID"] for app in apps}
        except (ServerError, ValueError, KeyError, TypeError):
            return set()

    async def deregister(self, app_id: str) -> None:
        await self._call("DELETE", f"{APPS}/{quote(app_id, safe='')}", None, missing_ok=True)

    async def refresh(self, app_id: str) -> None:
        """Ask the server to read the app's subscriptions again; best effort (older servers
        lack the endpoint and read them on their own schedule)."""
        with contextlib.suppress(ServerError):
            await self._call("POST", f"{APPS}/{quote(app_id, safe='')}/subscriptions/refresh", None)

    async def _call(
        self, method: str, path: str, body: Any, missing_ok: bool = False
    ) -> httpx.Response:
        url = self.base_url + path
        try:
            response = await self.http.request(
                method, url, json=body, headers=self._headers, timeout=10.0
            )
        except httpx.HTTPError as exc:
            raise ServerError(f"{method} {url}: {exc or type(exc).__name__}") from exc
        if response.is_success or (missing_ok and response.status_code == 404):
            return response
        try:
            detail = response.json()
            message = f"{detail.get('errorCode', response.status_code)}: {detail.get('message')}"
        except (ValueError, AttributeError):
            message = f"HTTP {response.status_code}"
            if response.status_code in (404, 405):
                message += " (this server has no app registry: is it an older Tether?)"
        raise ServerError(f"{method} {url}: {message}")
