"""`configuration.postgresql`: items are rows of a table, changes arrive by LISTEN/NOTIFY.

Metadata: `connectionString` (a `postgresql://` URL or `host=... user=...`), `table`
(`configuration`), `notifyChannel` (alias `pgNotifyChannel`; default `<table>_changes`; a
subscription may name another in its request metadata `pgNotifyChannel`), `createTable` (true),
`timeoutInSeconds` (20).

The table is Dapr's: `key, value, version, metadata JSON`, possibly several rows per key, of
which the highest numeric version wins. With `createTable` Tether creates the table if it is
missing, and a trigger that notifies `notifyChannel` on every insert, update and delete (its
payload names the key and the listener reads the row again, so values of any size work). Tables
set up for daprd, with its documented trigger that sends whole rows, work as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether import errors
from tether.components._options import Options
from tether.components._postgres import connection, open_pool
from tether.components.configuration.base import (
    ConfigItem,
    ConfigurationStore,
    UpdateHandler,
    new_subscription_id,
    notify,
)
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("tether.configuration.postgres")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RECONNECT_SECONDS = 1.0


@dataclass(slots=True)
class _Subscription:
    keys: frozenset[str]
    channel: str
    handler: UpdateHandler


class PostgresConfigurationStore(ConfigurationStore):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        self._connect = connection(opts)
        self._table = opts.text("table", "configuration").lower()
        if not _NAME.match(self._table):
            raise opts.invalid("table", self._table, "a table name (lower case, digits, _)")
        channel = opts.optional("notifyChannel") or opts.optional("pgNotifyChannel")
        self._channel = (channel or f"{self._table}_changes").lower()
        if not _NAME.match(self._channel):
            raise opts.invalid("notifyChannel", self._channel, "a channel name (a-z, 0-9, _)")
        self._create = opts.flag("createTable", True)
        self._timeout = opts.seconds("timeoutInSeconds", 20.0)
        self._name = spec.name
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._listening: set[str] = set()
        self._subs: dict[str, _Subscription] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def init(self) -> None:
        if self._pool is not None:
            return
        pool = await open_pool(self._connect, self._timeout, f"configuration store '{self._name}'")
        try:
            if self._create:
                await self._create_table(pool)
            elif not await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", self._table):
                raise errors.ComponentInvalid(
                    f"configuration store '{self._name}': table '{self._table}' does not exist"
                )
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _create_table(self, pool: asyncpg.Pool) -> None:
        table, fn, trigger = self._table, f"{self._table}_notify", f"{self._table}_notify"
        async with pool.acquire() as conn, conn.transaction():
            # Serialise set-up between runtimes sharing the database.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"tether:{table}")
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{table}" (key VARCHAR NOT NULL, '
                "value VARCHAR NOT NULL, version VARCHAR NOT NULL, metadata JSON)"
            )
            await conn.execute(
                f'CREATE OR REPLACE FUNCTION "{fn}"() RETURNS trigger AS $$ '
                "DECLARE k text; BEGIN "
                "IF TG_OP = 'DELETE' THEN k := OLD.key; ELSE k := NEW.key; END IF; "
                f"PERFORM pg_notify('{self._channel}', json_build_object('table', TG_TABLE_NAME, "
                "'action', TG_OP, 'data', json_build_object('key', k))::text); "
                "RETURN NULL; END $$ LANGUAGE plpgsql"
            )
            exists = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = $1 "
                "AND tgrelid = to_regclass($2))",
                trigger, table,
            )  # fmt: skip
            if not exists:
                await conn.execute(
                    f'CREATE TRIGGER "{trigger}" AFTER INSERT OR UPDATE OR DELETE ON "{table}" '
                    f'FOR EACH ROW EXECUTE FUNCTION "{fn}"()'
                )

    async def close(self) -> None:
        self._subs.clear()
        for task in [self._supervisor, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._supervisor = None
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise errors.Unavailable(f"configuration store '{self._name}' is not initialised")
        return self._pool

    async def get(self, keys: Sequence[str], metadata: Mapping[str, str]) -> dict[str, ConfigItem]:
        import asyncpg

        sql = f'SELECT key, value, version, metadata FROM "{self._table}"'
        args: list[Any] = []
        if keys:
            sql += " WHERE key = ANY($1::varchar[])"
            args.append(list(keys))
        try:
            rows = await self._db().fetch(sql, *args, timeout=self._timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise errors.Unavailable(f"PostgreSQL configuration error: {exc}") from exc
        best: dict[str, tuple[int, ConfigItem]] = {}
        for row in rows:
            item = ConfigItem(row["value"], row["version"], _metadata(row["metadata"]))
            rank = int(item.version) if item.version.isdigit() else -1
            if row["key"] not in best or rank > best[row["key"]][0]:
                best[row["key"]] = (rank, item)
        return {key: item for key, (_, item) in best.items()}

    # --- subscriptions ----------------------------------------------------------------------

    async def subscribe(
        self, keys: Sequence[str], metadata: Mapping[str, str], handler: UpdateHandler
    ) -> str:
        requested = next((v for k, v in metadata.items() if k.lower() == "pgnotifychannel"), "")
        channel = (requested or self._channel).lower()
        if not _NAME.match(channel):
            raise errors.BadRequest(f"invalid pgNotifyChannel {channel!r}: use a-z, 0-9 and _")
        sub_id = new_subscription_id()
        self._subs[sub_id] = _Subscription(frozenset(keys), channel, handler)
        try:
            await self._listen(channel)
        except BaseException:
            self._subs.pop(sub_id, None)
            raise
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="tether-config-pg")
        return sub_id

    async def unsubscribe(self, subscription_id: str) -> bool:
        return self._subs.pop(subscription_id, None) is not None

    async def _listen(self, channel: str) -> None:
        import asyncpg

        try:
            if self._listener is None or self._listener.is_closed():
                self._listener = await asyncpg.connect(**self._connect, timeout=self._timeout)
                self._listening = set()
            if channel not in self._listening:
                await self._listener.add_listener(channel, self._notified)
                self._listening.add(channel)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise errors.Unavailable(f"cannot LISTEN on PostgreSQL: {exc}") from exc

    async def _supervise(self) -> None:
        """Re-open the listening connection when it drops (changes made meanwhile are missed)."""
        while True:
            await asyncio.sleep(_RECONNECT_SECONDS)
            if self._listener is not None and not self._listener.is_closed():
                continue
            with contextlib.suppress(errors.Unavailable):
                for channel in {s.channel for s in self._subs.values()}:
                    await self._listen(channel)

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        task = asyncio.get_running_loop().create_task(self._dispatch(channel, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, channel: str, payload: str) -> None:
        try:
            doc = json.loads(payload)
            data = doc["data"]
            key = str(data["key"])
            action = str(doc.get("action", "")).upper()
        except (ValueError, KeyError, TypeError):
            log.warning("configuration store '%s': unreadable notification %r", self._name, payload)
            return
        targets = [
            (sid, s)
            for sid, s in list(self._subs.items())
            if s.channel == channel and (not s.keys or key in s.keys)
        ]
        if not targets:
            return
        if action == "DELETE":
            item = (await self._read(key)).get(key, ConfigItem(""))
        elif "value" in data:
            item = ConfigItem(
                str(data["value"]), str(data.get("version") or ""), _metadata(data.get("metadata"))
            )
        else:
            item = (await self._read(key)).get(key, ConfigItem(""))
        for sid, sub in targets:
            await notify(sub.handler, sid, {key: item})

    async def _read(self, key: str) -> dict[str, ConfigItem]:
        try:
            return await self.get([key], {})
        except errors.Unavailable as exc:
            log.warning("configuration store '%s': cannot read %s: %s", self._name, key, exc)
            return {}


def _metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    doc = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(doc, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}
