"""`lock.postgresql`: one row per held lock in a PostgreSQL table.

Metadata: `connectionString` (a `postgresql://` URL or the `host=... user=...` keyword form),
`tableName` (`tether_locks`), `timeoutInSeconds` (20), `cleanupIntervalInSeconds` (3600; rows of
expired locks are deleted then, 0 disables).

Expiry is judged by the database clock, so runtimes with skewed clocks agree. Taking a lock is one
`INSERT ... ON CONFLICT DO UPDATE ... WHERE expired` statement and unlocking one `DELETE`, so any
number of runtimes may share the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING, Any

from tether import errors
from tether.components._options import Options
from tether.components._postgres import connection, open_pool
from tether.components.lock.base import LockStore, UnlockStatus
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    import asyncpg

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class PostgresLockStore(LockStore):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        self._connect = connection(opts)
        table = opts.text("tableName", "tether_locks")
        if not _TABLE.match(table):
            raise opts.invalid("tableName", table, "a table name (letters, digits, _)")
        self._table = ".".join(f'"{p}"' for p in table.split("."))
        self._timeout = opts.seconds("timeoutInSeconds", 20.0)
        self._cleanup_every = opts.seconds("cleanupIntervalInSeconds", 3600.0)
        self._name = spec.name
        self._pool: asyncpg.Pool | None = None
        self._cleanup: asyncio.Task[None] | None = None

    async def init(self) -> None:
        if self._pool is not None:
            return
        pool = await open_pool(self._connect, self._timeout, f"lock store '{self._name}'")
        try:
            await pool.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (resource_id TEXT PRIMARY KEY, "
                "owner TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
            )
        except Exception:
            await pool.close()
            raise
        self._pool = pool
        if self._cleanup_every > 0:
            self._cleanup = asyncio.create_task(self._clean_forever(), name="tether-lock-cleanup")

    async def close(self) -> None:
        task, self._cleanup = self._cleanup, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _run(self, sql: str, *args: Any) -> Any:
        import asyncpg

        if self._pool is None:
            raise errors.Unavailable(f"lock store '{self._name}' is not initialised")
        try:
            return await self._pool.fetchval(sql, *args, timeout=self._timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise errors.Unavailable(f"PostgreSQL lock error: {exc}") from exc

    async def _clean_forever(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_every)
            with contextlib.suppress(errors.Unavailable):
                await self._run(f"DELETE FROM {self._table} WHERE expires_at <= now()")

    async def try_lock(self, resource_id: str, owner: str, expiry_seconds: int) -> bool:
        taken = await self._run(
            f"INSERT INTO {self._table} AS t (resource_id, owner, expires_at) "
            "VALUES ($1, $2, now() + make_interval(secs => $3)) "
            "ON CONFLICT (resource_id) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at WHERE t.expires_at <= now() "
            "RETURNING true",
            resource_id, owner, float(expiry_seconds),
        )  # fmt: skip
        return bool(taken)

    async def unlock(self, resource_id: str, owner: str) -> UnlockStatus:
        # One statement decides and deletes: the CTE reads the live row, the DELETE removes it
        # only if it is the caller's.
        status = await self._run(
            f"WITH live AS (SELECT owner FROM {self._table} "
            "WHERE resource_id = $1 AND expires_at > now() FOR UPDATE), "
            f"gone AS (DELETE FROM {self._table} t USING live "
            "WHERE t.resource_id = $1 AND live.owner = $2 RETURNING 1) "
            "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM live) THEN 1 "
            "WHEN EXISTS (SELECT 1 FROM gone) THEN 0 ELSE 2 END",
            resource_id, owner,
        )  # fmt: skip
        return UnlockStatus(int(status))
