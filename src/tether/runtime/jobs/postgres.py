"""PostgreSQL job store: the same table and claims as SQLite, shared by every replica."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether import errors
from tether.runtime.jobs.store import COLUMNS, Job, JobStore, row_to_job
from tether.workflow.store.postgres import _driver, _redact, connect_args

_TABLE = "tether_jobs"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    app_id TEXT NOT NULL, name TEXT NOT NULL, schedule TEXT, due_time TEXT, repeats INTEGER,
    ttl TEXT, data BYTEA NOT NULL, failure_policy BYTEA NOT NULL, created_at BIGINT NOT NULL,
    next_fire BIGINT NOT NULL, expires_at BIGINT, fired INTEGER NOT NULL,
    generation TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE INDEX IF NOT EXISTS {_TABLE}_next_fire ON {_TABLE} (next_fire);
"""
# Replicas starting together take turns creating the table (catalog races otherwise).
_SCHEMA_LOCK = 0x7465746865720002


class PostgresJobStore(JobStore):
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self._url = url
        self._connect = connect_args(url)
        self._pool: Any = None

    async def open(self) -> None:
        asyncpg = _driver()
        try:
            self._pool = await asyncpg.create_pool(min_size=1, max_size=4, **self._connect)
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                await conn.execute(_SCHEMA)
        except Exception as exc:
            raise errors.JobStoreFailed(
                f"cannot open the job store at {_redact(self._url)}: {exc}"
            ) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _call(self, method: str, sql: str, *args: Any) -> Any:
        if self._pool is None:
            raise errors.JobStoreFailed("the job store is not open")
        asyncpg = _driver()
        try:
            return await getattr(self._pool, method)(sql, *args)
        except asyncpg.UniqueViolationError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise errors.JobStoreFailed(f"job store: {exc}") from exc

    async def put(self, job: Job, overwrite: bool) -> None:
        marks = ", ".join(f"${i}" for i in range(1, 14))
        sql = f"INSERT INTO {_TABLE} ({COLUMNS}) VALUES ({marks})"
        if overwrite:
            cols = [c.strip() for c in COLUMNS.split(",")][2:]
            sql += " ON CONFLICT (app_id, name) DO UPDATE SET " + ", ".join(
                f"{c} = EXCLUDED.{c}" for c in cols
            )
        try:
            await self._call(
                "execute", sql, job.app_id, job.name, job.schedule, job.due_time, job.repeats,
                job.ttl, job.data, job.failure_policy, job.created_at, job.next_fire,
                job.expires_at, job.fired, job.generation,
            )  # fmt: skip
        except _driver().UniqueViolationError as exc:
            raise errors.JobExists(
                f"job {job.name} already exists: delete it first, or schedule with overwrite"
            ) from exc

    async def get(self, app_id: str, name: str) -> Job | None:
        sql = f"SELECT {COLUMNS} FROM {_TABLE} WHERE app_id = $1 AND name = $2"
        row = await self._call("fetchrow", sql, app_id, name)
        return row_to_job(tuple(row)) if row is not None else None

    async def delete(self, app_id: str, name: str) -> bool:
        sql = f"DELETE FROM {_TABLE} WHERE app_id = $1 AND name = $2"
        status = await self._call("execute", sql, app_id, name)
        return bool(status != "DELETE 0")

    async def due(self, now: int, app_ids: Sequence[str], limit: int) -> list[Job]:
        if not app_ids:
            return []
        sql = (
            f"SELECT {COLUMNS} FROM {_TABLE} WHERE next_fire <= $1 AND app_id = ANY($2::text[]) "
            "ORDER BY next_fire LIMIT $3"
        )
        rows = await self._call("fetch", sql, now, list(app_ids), limit)
        return [row_to_job(tuple(r)) for r in rows]

    async def next_due(self, app_ids: Sequence[str]) -> int | None:
        if not app_ids:
            return None
        sql = f"SELECT MIN(next_fire) FROM {_TABLE} WHERE app_id = ANY($1::text[])"
        value = await self._call("fetchval", sql, list(app_ids))
        return int(value) if value is not None else None

    async def claim(self, job: Job, next_fire: int | None) -> bool:
        where = "WHERE app_id = $1 AND name = $2 AND generation = $3 AND next_fire = $4"
        key = (job.app_id, job.name, job.generation, job.next_fire)
        if next_fire is None:
            status = await self._call("execute", f"DELETE FROM {_TABLE} {where}", *key)
        else:
            sql = f"UPDATE {_TABLE} SET next_fire = $5, fired = fired + 1 {where}"
            status = await self._call("execute", sql, *key, next_fire)
        return bool(status.endswith(" 1"))
