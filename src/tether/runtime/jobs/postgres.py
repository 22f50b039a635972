"""PostgreSQL job store: the same tables, claims and leases as SQLite, shared by every replica.

Unlike SQLite, several runtimes share these tables, so a delivery left by a runtime that died is
redelivered only once its lease has run out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether import errors
from tether.runtime.jobs.store import (
    COLUMNS,
    DELIVERY_COLUMNS,
    Delivery,
    Job,
    JobStore,
    delivery_of,
    row_to_delivery,
    row_to_job,
)
from tether.workflow.store.postgres import _driver, _redact, connect_args

_TABLE = "tether_jobs"
_DELIVERIES = "tether_job_deliveries"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    app_id TEXT NOT NULL, name TEXT NOT NULL, schedule TEXT, due_time TEXT, repeats INTEGER,
    ttl TEXT, data BYTEA NOT NULL, failure_policy BYTEA NOT NULL, created_at BIGINT NOT NULL,
    next_fire BIGINT NOT NULL, expires_at BIGINT, fired INTEGER NOT NULL,
    generation TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE INDEX IF NOT EXISTS {_TABLE}_next_fire ON {_TABLE} (next_fire);
CREATE TABLE IF NOT EXISTS {_DELIVERIES} (
    app_id TEXT NOT NULL, name TEXT NOT NULL, generation TEXT NOT NULL,
    fire_at BIGINT NOT NULL, data BYTEA NOT NULL, failure_policy BYTEA NOT NULL,
    attempts INTEGER NOT NULL, owner TEXT NOT NULL, lease_until BIGINT NOT NULL,
    PRIMARY KEY (app_id, name, generation, fire_at)
);
CREATE INDEX IF NOT EXISTS {_DELIVERIES}_lease ON {_DELIVERIES} (lease_until);
CREATE INDEX IF NOT EXISTS {_DELIVERIES}_owner ON {_DELIVERIES} (owner);
"""
# Replicas starting together take turns creating the tables (catalog races otherwise).
_SCHEMA_LOCK = 0x7465746865720002
_KEY = "app_id = $1 AND name = $2 AND generation = $3 AND fire_at = $4"


def _key(d: Delivery) -> tuple[str, str, str, int]:
    return (d.app_id, d.name, d.generation, d.fire_at)


def _affected(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


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

    async def list_jobs(self, app_id: str | None) -> list[Job]:
        sql = (
            f"SELECT {COLUMNS} FROM {_TABLE} WHERE $1::text IS NULL OR app_id = $1 "
            "ORDER BY app_id, name"
        )
        rows = await self._call("fetch", sql, app_id)
        return [row_to_job(tuple(r)) for r in rows]

    async def deliveries(self, app_id: str | None) -> list[Delivery]:
        sql = (
            f"SELECT {DELIVERY_COLUMNS} FROM {_DELIVERIES} WHERE $1::text IS NULL OR app_id = $1 "
            "ORDER BY fire_at"
        )
        rows = await self._call("fetch", sql, app_id)
        return [row_to_delivery(tuple(r)) for r in rows]

    async def _delete_where(self, app_id: str, match: str, arg: str) -> int:
        # One statement: the deliveries go with their jobs or not at all.
        sql = (
            f"WITH gone AS (DELETE FROM {_DELIVERIES} WHERE app_id = $1 AND {match}) "
            f"DELETE FROM {_TABLE} WHERE app_id = $1 AND {match}"
        )
        return _affected(await self._call("execute", sql, app_id, arg))

    async def delete(self, app_id: str, name: str) -> bool:
        return await self._delete_where(app_id, "name = $2", name) > 0

    async def delete_prefix(self, app_id: str, prefix: str) -> int:
        return await self._delete_where(app_id, "starts_with(name, $2)", prefix)

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

    async def claim(
        self, job: Job, next_fire: int | None, owner: str, lease_until: int
    ) -> Delivery | None:
        where = "app_id = $1 AND name = $2 AND generation = $3 AND next_fire = $4"
        if next_fire is None:
            move = f"DELETE FROM {_TABLE} WHERE {where} RETURNING 1"
        else:
            move = (
                f"UPDATE {_TABLE} SET next_fire = $9, fired = fired + 1 WHERE {where} RETURNING 1"
            )
        # The insert happens only when the move matched a row: one statement, one transaction.
        sql = (
            f"WITH moved AS ({move}) INSERT INTO {_DELIVERIES} ({DELIVERY_COLUMNS}) "
            "SELECT $1, $2, $3, $4, $5, $6, 0, $7, $8 FROM moved "
            "ON CONFLICT DO NOTHING RETURNING 1"
        )
        delivery = delivery_of(job, owner, lease_until)
        args: list[Any] = [*_key(delivery), job.data, job.failure_policy, owner, lease_until]
        if next_fire is not None:
            args.append(next_fire)
        claimed = await self._call("fetchval", sql, *args)
        return delivery if claimed is not None else None

    async def expired(self, now: int, app_ids: Sequence[str], limit: int) -> list[Delivery]:
        if not app_ids:
            return []
        sql = (
            f"SELECT {DELIVERY_COLUMNS} FROM {_DELIVERIES} WHERE lease_until <= $1 "
            "AND app_id = ANY($2::text[]) ORDER BY fire_at LIMIT $3"
        )
        rows = await self._call("fetch", sql, now, list(app_ids), limit)
        return [row_to_delivery(tuple(r)) for r in rows]

    async def take(self, delivery: Delivery, owner: str, lease_until: int) -> Delivery | None:
        sql = (
            f"UPDATE {_DELIVERIES} SET owner = $5, lease_until = $6 WHERE {_KEY} "
            "AND owner = $7 AND lease_until = $8"
        )
        status = await self._call(
            "execute", sql, *_key(delivery), owner, lease_until, delivery.owner,
            delivery.lease_until,
        )  # fmt: skip
        if _affected(status) != 1:
            return None
        return Delivery(
            delivery.app_id, delivery.name, delivery.generation, delivery.fire_at, delivery.data,
            delivery.failure_policy, delivery.attempts, owner, lease_until,
        )  # fmt: skip

    async def renew(self, owner: str, lease_until: int) -> int:
        sql = f"UPDATE {_DELIVERIES} SET lease_until = $1 WHERE owner = $2"
        return _affected(await self._call("execute", sql, lease_until, owner))

    async def attempted(self, delivery: Delivery, attempts: int) -> bool:
        sql = f"UPDATE {_DELIVERIES} SET attempts = $5 WHERE {_KEY} AND owner = $6"
        status = await self._call("execute", sql, *_key(delivery), attempts, delivery.owner)
        return _affected(status) == 1

    async def finish(self, delivery: Delivery) -> None:
        sql = f"DELETE FROM {_DELIVERIES} WHERE {_KEY} AND owner = $5"
        await self._call("execute", sql, *_key(delivery), delivery.owner)
