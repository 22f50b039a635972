"""The App IDs this runtime serves: their tokens, app endpoints and channels.

Two sources: the default App ID of `tether dev --app-id X --app-port N` (from flags, for this run
only) and registrations made at runtime through `POST /v1.0-tether/apps` (or by `tether run`),
kept in `apps.db` in the data directory so that a restart serves them again. Each registration's
API token is registered with `Callers`, so the token authenticates as the App ID.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether import errors
from tether.config import AppConfig, HealthCheck, ServerConfig
from tether.runtime.appchannel import make_channel
from tether.runtime.callers import Callers
from tether.runtime.contracts import AppChannel

log = logging.getLogger("tether.apps")

_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SCHEMA = "CREATE TABLE IF NOT EXISTS apps (app_id TEXT PRIMARY KEY, doc TEXT NOT NULL)"


def validate_app_id(app_id: Any) -> str:
    if not isinstance(app_id, str) or not _APP_ID.match(app_id):
        raise errors.AppInvalid(
            f"invalid App ID {app_id!r}: use letters, digits, '.', '_' and '-' (at most 128), "
            "starting with a letter or digit"
        )
    return app_id


def to_doc(cfg: AppConfig) -> dict[str, Any]:
    """The stored (and management API) form of a registration, in Dapr's spelling."""
    doc: dict[str, Any] = {"appID": cfg.app_id, "appProtocol": cfg.protocol}
    if cfg.port is not None:
        doc["appPort"] = cfg.port
        doc["appChannelAddress"] = cfg.address
    if cfg.max_body_bytes is not None:
        doc["maxBodySize"] = cfg.max_body_bytes
    if cfg.health is not None:
        doc["appHealthCheck"] = {
            "path": cfg.health.path,
            "probeIntervalSeconds": cfg.health.interval,
            "probeTimeoutMilliseconds": round(cfg.health.timeout * 1000),
            "threshold": cfg.health.threshold,
        }
    return doc


def _number(doc: dict[str, Any], key: str, default: float, low: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise errors.AppInvalid(f"{key} must be a number of at least {low:g}, got {value!r}")
    return float(value)


def from_doc(doc: Any) -> AppConfig:
    """A registration from its JSON form (`POST /v1.0-tether/apps`); raises `AppInvalid`."""
    if not isinstance(doc, dict):
        raise errors.AppInvalid("expected a JSON object with at least appID")
    app_id = validate_app_id(doc.get("appID"))
    port = doc.get("appPort")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 < port < 65536):  # fmt: skip
        raise errors.AppInvalid(f"appPort must be a port number, got {port!r}")
    protocol = doc.get("appProtocol") or "http"
    if protocol not in ("http", "grpc"):
        raise errors.AppInvalid(f"appProtocol must be 'http' or 'grpc', got {protocol!r}")
    health = None
    check = doc.get("appHealthCheck")
    if check is True:
        health = HealthCheck()
    elif isinstance(check, dict):
        default = HealthCheck()
        health = HealthCheck(
            path=str(check.get("path") or default.path),
            interval=_number(check, "probeIntervalSeconds", default.interval, 0.01),
            timeout=_number(check, "probeTimeoutMilliseconds", default.timeout * 1000, 1) / 1000,
            threshold=int(_number(check, "threshold", default.threshold, 1)),
        )
    elif check not in (None, False):
        raise errors.AppInvalid("appHealthCheck must be true, false or an object")
    max_body = doc.get("maxBodySize")
    if max_body is not None and (isinstance(max_body, bool) or not isinstance(max_body, int)
                                 or max_body <= 0):  # fmt: skip
        raise errors.AppInvalid(f"maxBodySize must be a positive number of bytes, got {max_body!r}")
    for key in ("appToken", "apiToken", "appChannelAddress"):
        if doc.get(key) is not None and not isinstance(doc.get(key), str):
            raise errors.AppInvalid(f"{key} must be a string")
    return AppConfig(
        app_id=app_id,
        api_token=doc.get("apiToken") or None,
        port=port,
        protocol=protocol,
        address=doc.get("appChannelAddress") or "127.0.0.1",
        app_token=doc.get("appToken") or None,
        health=health,
        max_body_bytes=max_body,
    )


class _Db:
    """The `apps` table: one JSON document per App ID. Writes are rare; each is its own
    transaction on a short-lived connection, run off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        self.path.chmod(0o600)  # it holds API tokens
        return conn

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        conn = self._connect()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    async def load(self) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(self._run, "SELECT doc FROM apps ORDER BY app_id")
        return [json.loads(row[0]) for row in rows]

    async def save(self, app_id: str, doc: dict[str, Any]) -> None:
        sql = (
            "INSERT INTO apps (app_id, doc) VALUES (?, ?) "
            "ON CONFLICT (app_id) DO UPDATE SET doc = excluded.doc"
        )
        await asyncio.to_thread(self._run, sql, (app_id, json.dumps(doc)))

    async def delete(self, app_id: str) -> None:
        await asyncio.to_thread(self._run, "DELETE FROM apps WHERE app_id = ?", (app_id,))


class Apps:
    """The concrete `AppRegistry`."""

    def __init__(self, config: ServerConfig, callers: Callers) -> None:
        self._config = config
        self._callers = callers
        self._db = _Db(config.data_dir / "apps.db")
        self._apps: dict[str, AppConfig] = {}
        self._channels: dict[str, Any] = {}
        self._from_flags: set[str] = set()
        self._listeners: list[Callable[[str, bool], None]] = []

    # --- AppRegistry ---------------------------------------------------------------------------

    def channel(self, app_id: str) -> AppChannel | None:
        channel: AppChannel | None = self._channels.get(app_id)
        return channel

    def app_ids(self) -> list[str]:
        return sorted(self._apps)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        # httpx logs every request at INFO: the app channel's calls are not news.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
        for doc in await self._db.load():
            try:
                cfg = from_doc(doc)
            except errors.TetherError as exc:
                log.error("skipping a stored app registration: %s", exc.message)
                continue
            await self._install(cfg)
        if self._config.app is not None:
            self._from_flags.add(self._config.app.app_id)
            await self._install(self._config.app)

    async def stop(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()

    def on_change(self, listener: Callable[[str, bool], None]) -> None:
        """Call `listener(app_id, available)` when an app is (un)registered or its health
        changes: the job scheduler delivers what waited for it."""
        self._listeners.append(listener)

    def _notify(self, app_id: str, available: bool) -> None:
        for listener in self._listeners:
            listener(app_id, available)

    # --- registrations -------------------------------------------------------------------------

    def get(self, app_id: str) -> AppConfig | None:
        return self._apps.get(app_id)

    def registrations(self) -> list[AppConfig]:
        return [self._apps[k] for k in sorted(self._apps)]

    def from_flags(self, app_id: str) -> bool:
        return app_id in self._from_flags

    def max_body(self, app_id: str) -> int:
        cfg = self._apps.get(app_id)
        limit = self._config.max_request_bytes
        if cfg is not None and cfg.max_body_bytes is not None:
            return min(limit, cfg.max_body_bytes)
        return limit

    async def register(self, cfg: AppConfig) -> AppConfig:
        """Add or replace an App ID and persist it. Without an API token it keeps the one it
        had, or gets a new one. Returns the registration (with its token)."""
        if cfg.app_id in self._from_flags:
            raise errors.AppInvalid(f"App ID {cfg.app_id} is configured by flags on this server")
        old = self._apps.get(cfg.app_id)
        token = cfg.api_token or (old.api_token if old else None) or secrets.token_urlsafe(32)
        cfg = dataclasses.replace(cfg, api_token=token)
        await self._db.save(cfg.app_id, {**to_doc(cfg), "apiToken": token})
        await self._install(cfg)
        log.info("app %s registered", cfg.app_id, extra={"app_id": cfg.app_id})
        return cfg

    async def unregister(self, app_id: str) -> None:
        if app_id in self._from_flags:
            raise errors.AppInvalid(f"App ID {app_id} is configured by flags on this server")
        if app_id not in self._apps:
            raise errors.AppNotFound(f"App ID {app_id} is not registered")
        await self._db.delete(app_id)
        await self._uninstall(app_id)
        self._notify(app_id, False)
        log.info("app %s removed", app_id, extra={"app_id": app_id})

    async def _install(self, cfg: AppConfig) -> None:
        await self._uninstall(cfg.app_id)
        self._apps[cfg.app_id] = cfg
        if cfg.api_token:
            self._callers.register(cfg.api_token, cfg.app_id)
        if cfg.port is not None:
            channel = make_channel(cfg)
            channel.health.on_change(self._notify)
            channel.start()
            self._channels[cfg.app_id] = channel
        self._notify(cfg.app_id, True)

    async def _uninstall(self, app_id: str) -> None:
        old = self._apps.pop(app_id, None)
        if old is not None and old.api_token:
            self._callers.unregister(old.api_token)
        channel = self._channels.pop(app_id, None)
        if channel is not None:
            await channel.close()
