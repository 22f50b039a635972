"""Calls from the runtime into an app over HTTP, and the health monitor both channels share.

The HTTP channel follows daprd's (dapr/dapr pkg/channel/http): invocations pass the verb, path,
query, headers and body through and hand back the app's status, headers and raw body; pub/sub
events are POSTed as CloudEvents and answered SUCCESS/RETRY/DROP, bulk batches as Dapr's bulk
JSON answered with a status per entry; input bindings are probed with OPTIONS before use; jobs
arrive as `POST /job/<name>`. The app token, when the App ID has one, is sent as `dapr-api-token`
on every call.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from google.protobuf import any_pb2, json_format, struct_pb2

from tether import errors
from tether.config import AppConfig, HealthCheck
from tether.runtime.contracts import PROTOBUF_CONTENT_TYPE, AppResponse, BulkBatch

log = logging.getLogger("tether.appchannel")

TOKEN_HEADER = "dapr-api-token"
# Headers that describe one hop, not the message: never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    }
)  # fmt: skip
# The runtime's own HTTP server sets these on the answer to the caller.
_NOT_RETURNED = HOP_BY_HOP | {"date", "server"}
SUCCESS, RETRY, DROP = "SUCCESS", "RETRY", "DROP"
_VALUE_TYPE = "type.googleapis.com/google.protobuf.Value"


class HealthMonitor:
    """Probes an app on an interval; `healthy` turns False after `threshold` failed probes in a
    row and True again on the first probe that passes.

    Like daprd, an app with health checks starts unhealthy: nothing is delivered to it until a
    probe has passed. Without health checks it is always healthy.
    """

    def __init__(
        self,
        app_id: str,
        settings: HealthCheck | None,
        probe: Callable[[float], Awaitable[bool]],
    ) -> None:
        self.app_id = app_id
        self.settings = settings
        self._probe = probe
        self.healthy = settings is None
        self._failures = settings.threshold if settings is not None else 0
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[str, bool], None]] = []

    def on_change(self, listener: Callable[[str, bool], None]) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        if self.settings is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(self.settings), name=f"health:{self.app_id}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, settings: HealthCheck) -> None:
        while True:
            try:
                ok = await asyncio.wait_for(self._probe(settings.timeout), settings.timeout)
            except Exception:
                ok = False
            self._failures = 0 if ok else self._failures + 1
            healthy = ok or (self.healthy and self._failures < settings.threshold)
            if healthy != self.healthy:
                self.healthy = healthy
                log.warning(
                    "app %s is %s", self.app_id, "healthy" if healthy else "unhealthy",
                    extra={"app_id": self.app_id},
                )  # fmt: skip
                for listener in self._listeners:
                    listener(self.app_id, healthy)
            await asyncio.sleep(settings.interval)


def event_status(status_code: int, body: bytes) -> str:
    """daprd's reading of an HTTP subscriber's answer (pkg/runtime/subscription)."""
    if 200 <= status_code <= 299:
        try:
            answer = json.loads(body) if body.strip() else None
        except ValueError:
            return SUCCESS  # daprd skips the status check when the body is not JSON
        status = answer.get("status", "") if isinstance(answer, dict) else ""
        status = str(status).upper() if status is not None else ""
        if status in ("", SUCCESS):
            return SUCCESS
        if status in (RETRY, DROP):
            return status
        log.warning("unknown pub/sub status %r from the app: retrying", status)
        return RETRY
    if status_code == 404:
        log.warning("the app answered 404 to a pub/sub event: dropping it")
        return DROP
    return RETRY


def _status_word(status: Any) -> str:
    """One entry's status in a bulk answer; anything unknown is a retry, as in daprd."""
    if status is None or status == "":
        return SUCCESS
    word = str(status).upper()
    return word if word in (SUCCESS, RETRY, DROP) else RETRY


def bulk_statuses(status_code: int, body: bytes, ids: list[str]) -> dict[str, str]:
    """daprd's reading of an HTTP subscriber's answer to a bulk delivery, per entry id."""
    if status_code == 404:
        return dict.fromkeys(ids, DROP)
    if not 200 <= status_code < 300:
        return dict.fromkeys(ids, RETRY)
    try:
        parsed = json.loads(body) if body.strip() else None
    except ValueError:
        parsed = None
    statuses = parsed.get("statuses") if isinstance(parsed, dict) else None
    if not isinstance(statuses, list):
        # An answer without statuses acknowledges the whole batch, like an empty 2xx does for
        # a single event.
        return dict.fromkeys(ids, SUCCESS)
    found = {s.get("entryId"): _status_word(s.get("status")) for s in statuses
             if isinstance(s, dict)}  # fmt: skip
    # An entry the app did not mention was not processed: it is retried.
    return {i: found.get(i, RETRY) for i in ids}


def integral(value: Any) -> Any:
    """JSON from a `google.protobuf.Value` as Go writes it: whole numbers without `.0`."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def job_body(data: Any) -> bytes:
    """What daprd POSTs for a job: the JSON of a `google.protobuf.Value` payload (what the HTTP
    API stores), else the raw bytes of the `Any`."""
    if not isinstance(data, any_pb2.Any):
        return json.dumps(data).encode() if data is not None else b""
    if data.type_url == _VALUE_TYPE:
        value = struct_pb2.Value()
        data.Unpack(value)
        if value.WhichOneof("kind") is None:
            return b""
        plain = integral(json_format.MessageToDict(value))
        return json.dumps(plain, separators=(",", ":")).encode()
    return bytes(data.value).strip()


class HealthChecked(abc.ABC):
    """What both channel kinds share: a health monitor that gates deliveries, and its
    lifecycle. Subclasses set `self.health` and close their own transport in `_close`."""

    health: HealthMonitor

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    def start(self) -> None:
        self.health.start()

    async def close(self) -> None:
        await self.health.stop()
        await self._close()

    @abc.abstractmethod
    async def _close(self) -> None:
        """Close the transport into the app."""


class HttpAppChannel(HealthChecked):
    """An app reached over HTTP on `http://<address>:<port>`."""

    routes_optional = False

    def __init__(self, cfg: AppConfig) -> None:
        self.app_id = cfg.app_id
        self.config = cfg
        self.base = f"http://{cfg.address}:{cfg.port}"
        self._client = httpx.AsyncClient(
            base_url=self.base,
            timeout=httpx.Timeout(None),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        # Invocations forward the caller's own headers; httpx's defaults would add to them.
        for name in list(self._client.headers):
            del self._client.headers[name]
        self.health = HealthMonitor(cfg.app_id, cfg.health, self._probe)
        self._bindings: dict[str, bool] = {}

    async def _close(self) -> None:
        await self._client.aclose()

    def _headers(self, headers: Mapping[str, str] | None = None) -> dict[str, str]:
        out = {k: v for k, v in (headers or {}).items() if k.lower() not in HOP_BY_HOP}
        out.pop(TOKEN_HEADER, None)
        if self.config.app_token:
            out[TOKEN_HEADER] = self.config.app_token
        return out

    async def _probe(self, timeout: float) -> bool:
        path = "/" + (self.config.health.path if self.config.health else "healthz").lstrip("/")
        response = await self._client.get(path, headers=self._headers(), timeout=timeout)
        return 200 <= response.status_code < 300

    async def _send(
        self,
        verb: str,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        query: str = "",
        timeout: float | None = None,
    ) -> AppResponse:
        url = "/" + path.lstrip("/")
        if query:
            url += "?" + query
        request = self._client.build_request(
            verb, url, content=body, headers=self._headers(headers),
            timeout=httpx.Timeout(timeout),
        )  # fmt: skip
        try:
            response = await self._client.send(request, stream=True)
            try:
                # Raw bytes: the content-encoding header goes back to the caller unchanged.
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise errors.InvokeTimedOut(self.app_id, f"the app did not answer: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise errors.DirectInvokeFailed(
                self.app_id, f"cannot reach the app at {self.base}: {exc!r}"
            ) from exc
        out_headers = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_RETURNED}
        return AppResponse(
            status=response.status_code,
            body=raw,
            headers=out_headers,
            content_type=response.headers.get("content-type", ""),
        )

    async def invoke(
        self,
        method: str,
        verb: str,
        body: bytes,
        headers: Mapping[str, str],
        query: str = "",
        timeout: float | None = None,
        type_url: str = "",
    ) -> AppResponse:
        if type_url:  # a gRPC caller's packed protobuf message, as daprd labels it
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            headers["content-type"] = PROTOBUF_CONTENT_TYPE
        return await self._send(verb.upper() or "POST", method, body, headers, query, timeout)

    async def subscriptions(self) -> list[dict[str, Any]]:
        response = await self._send("GET", "/dapr/subscribe", b"", {})
        if response.status == 404 or not response.body.strip():
            return []
        if response.status >= 300:
            raise errors.DirectInvokeFailed(
                self.app_id, f"GET /dapr/subscribe answered {response.status}"
            )
        try:
            subs = json.loads(response.body)
        except ValueError as exc:
            raise errors.DirectInvokeFailed(
                self.app_id, f"GET /dapr/subscribe did not answer JSON: {exc}"
            ) from exc
        return [s for s in subs if isinstance(s, dict)] if isinstance(subs, list) else []

    async def deliver_event(
        self, route: str, envelope: Mapping[str, Any], raw: bytes, headers: Mapping[str, str]
    ) -> str:
        sent = {**headers, "content-type": "application/cloudevents+json"}
        body = raw or json.dumps(dict(envelope)).encode()
        try:
            response = await self._send("POST", route, body, sent)
        except errors.TetherError as exc:
            log.warning("pub/sub delivery to %s failed: %s", self.app_id, exc.message)
            return RETRY
        return event_status(response.status, response.body)

    async def deliver_bulk(self, batch: BulkBatch, headers: Mapping[str, str]) -> dict[str, str]:
        entries = []
        for entry in batch.entries:
            if batch.raw:
                event: Any = entry.event.get("data_base64", "")
                content_type = "application/octet-stream"
            else:
                event, content_type = dict(entry.event), "application/cloudevents+json"
            entries.append({"entryId": entry.entry_id, "event": event,
                            "contentType": content_type, "metadata": {}})  # fmt: skip
        body = {
            "id": batch.id,
            "type": batch.type,
            "topic": batch.topic,
            "pubsubname": batch.pubsub,
            "metadata": {},
            "entries": entries,
        }
        sent = {**headers, "content-type": "application/json"}
        response = await self._send("POST", batch.path, json.dumps(body).encode(), sent)
        return bulk_statuses(response.status, response.body, [e.entry_id for e in batch.entries])

    async def binding_subscribed(self, name: str) -> bool:
        """Whether the app has a route for input binding `name` (daprd probes with OPTIONS;
        anything but 404 counts, 405 included)."""
        known = self._bindings.get(name)
        if known is None:
            try:
                response = await self._send("OPTIONS", name, b"", {})
            except errors.TetherError:
                return False  # not cached: the app may just not be up yet
            known = self._bindings[name] = response.status != 404
        return known

    async def deliver_binding(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        if not await self.binding_subscribed(name):
            return False
        headers = {"content-type": "application/json", **metadata}
        try:
            response = await self._send("POST", name, data, headers)
        except errors.TetherError as exc:
            log.warning("binding %s delivery to %s failed: %s", name, self.app_id, exc.message)
            return False
        return 200 <= response.status < 300

    async def deliver_job(self, name: str, data: Any) -> bool:
        headers = {"content-type": "application/json"}
        try:
            response = await self._send("POST", f"/job/{name.lstrip('/')}", job_body(data),
                                        headers)  # fmt: skip
        except errors.TetherError as exc:
            log.warning("job %s delivery to %s failed: %s", name, self.app_id, exc.message)
            return False
        if response.status == 404:
            # daprd counts this as delivered so that the job is not triggered again.
            log.error("app %s has no route for job %s (404)", self.app_id, name)
            return True
        return 200 <= response.status < 300


def make_channel(cfg: AppConfig) -> Any:
    """The channel for an App ID's endpoint: HTTP or gRPC by `cfg.protocol`."""
    if cfg.protocol == "grpc":
        from tether.runtime.appchannel_grpc import GrpcAppChannel

        return GrpcAppChannel(cfg)
    return HttpAppChannel(cfg)
