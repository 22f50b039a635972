"""SQLite job store: `jobs.db` in the data directory, owned by one server process.

Because one process owns the file, leases left by an earlier run of it are released when the
store opens: its interrupted deliveries are redelivered at once instead of after the lease.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    app_id TEXT NOT NULL, name TEXT NOT NULL, schedule TEXT, due_time TEXT, repeats INTEGER,
    ttl TEXT, data BLOB NOT NULL, failure_policy BLOB NOT NULL, created_at INTEGER NOT NULL,
    next_fire INTEGER NOT NULL, expires_at INTEGER, fired INTEGER NOT NULL,
    generation TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE INDEX IF NOT EXISTS ix_jobs_next_fire ON jobs (next_fire);
CREATE TABLE IF NOT EXISTS job_deliveries (
    app_id TEXT NOT NULL, name TEXT NOT NULL, generation TEXT NOT NULL,
    fire_at INTEGER NOT NULL, data BLOB NOT NULL, failure_policy BLOB NOT NULL,
    attempts INTEGER NOT NULL, owner TEXT NOT NULL, lease_until INTEGER NOT NULL,
    PRIMARY KEY (app_id, name, generation, fire_at)
);
CREATE INDEX IF NOT EXISTS ix_job_deliveries_lease ON job_deliveries (lease_until);
"""
_KEY = "app_id = ? AND name = ? AND generation = ? AND fire_at = ?"


def _key(d: Delivery) -> tuple[str, str, str, int]:
    return (d.app_id, d.name, d.generation, d.fire_at)


def _prefix_match(prefix: str) -> tuple[str, tuple[Any, ...]]:
    # substr rather than LIKE: names may hold % and _.
    return "substr(name, 1, ?) = ?", (len(prefix), prefix)


class SqliteJobStore(JobStore):
    """One connection, used from worker threads in turn. Job traffic is light: a few writes
    per schedule, delete and occurrence."""

    kind = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            if str(self._path) != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute("UPDATE job_deliveries SET lease_until = 0")
            return conn

        try:
            self._conn = await asyncio.to_thread(connect)
        except sqlite3.Error as exc:
            raise errors.JobStoreFailed(
                f"cannot open the job store at {self._path}: {exc}"
            ) from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise errors.JobStoreFailed("the job store is not open")

        def locked() -> T:
            with self._lock:
                return fn(conn)

        try:
            return await asyncio.to_thread(locked)
        except sqlite3.Error as exc:
            raise errors.JobStoreFailed(f"job store: {exc}") from exc

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def atomic(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._run(atomic)

    async def put(self, job: Job, overwrite: bool) -> None:
        values = (
            job.app_id, job.name, job.schedule, job.due_time, job.repeats, job.ttl, job.data,
            job.failure_policy, job.created_at, job.next_fire, job.expires_at, job.fired,
            job.generation,
        )  # fmt: skip
        verb = "INSERT OR REPLACE" if overwrite else "INSERT"

        def put(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(f"{verb} INTO jobs ({COLUMNS}) VALUES ({', '.join('?' * 13)})", values)
            except sqlite3.IntegrityError as exc:
                raise errors.JobExists(
                    f"job {job.name} already exists: delete it first, or schedule with overwrite"
                ) from exc

        await self._run(put)

    async def get(self, app_id: str, name: str) -> Job | None:
        sql = f"SELECT {COLUMNS} FROM jobs WHERE app_id = ? AND name = ?"
        row = await self._run(lambda c: c.execute(sql, (app_id, name)).fetchone())
        return row_to_job(row) if row is not None else None

    async def list_jobs(self, app_id: str | None) -> list[Job]:
        sql = f"SELECT {COLUMNS} FROM jobs WHERE ? IS NULL OR app_id = ? ORDER BY app_id, name"
        rows = await self._run(lambda c: c.execute(sql, (app_id, app_id)).fetchall())
        return [row_to_job(r) for r in rows]

    async def deliveries(self, app_id: str | None) -> list[Delivery]:
        sql = (
            f"SELECT {DELIVERY_COLUMNS} FROM job_deliveries WHERE ? IS NULL OR app_id = ? "
            "ORDER BY fire_at"
        )
        rows = await self._run(lambda c: c.execute(sql, (app_id, app_id)).fetchall())
        return [row_to_delivery(r) for r in rows]

    async def _delete_where(self, app_id: str, match: str, args: tuple[Any, ...]) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            where = f"WHERE app_id = ? AND {match}"
            conn.execute(f"DELETE FROM job_deliveries {where}", (app_id, *args))
            count: int = conn.execute(f"DELETE FROM jobs {where}", (app_id, *args)).rowcount
            return count

        return await self._transaction(delete)

    async def delete(self, app_id: str, name: str) -> bool:
        return await self._delete_where(app_id, "name = ?", (name,)) > 0

    async def delete_prefix(self, app_id: str, prefix: str) -> int:
        match, args = _prefix_match(prefix)
        return await self._delete_where(app_id, match, args)

    async def due(self, now: int, app_ids: Sequence[str], limit: int) -> list[Job]:
        if not app_ids:
            return []
        marks = ", ".join("?" * len(app_ids))
        sql = (
            f"SELECT {COLUMNS} FROM jobs WHERE next_fire <= ? AND app_id IN ({marks}) "
            "ORDER BY next_fire LIMIT ?"
        )
        rows = await self._run(lambda c: c.execute(sql, (now, *app_ids, limit)).fetchall())
        return [row_to_job(r) for r in rows]

    async def next_due(self, app_ids: Sequence[str]) -> int | None:
        if not app_ids:
            return None
        marks = ", ".join("?" * len(app_ids))
        sql = f"SELECT MIN(next_fire) FROM jobs WHERE app_id IN ({marks})"
        row = await self._run(lambda c: c.execute(sql, tuple(app_ids)).fetchone())
        return int(row[0]) if row and row[0] is not None else None

    async def claim(
        self, job: Job, next_fire: int | None, owner: str, lease_until: int
    ) -> Delivery | None:
        key = (job.app_id, job.name, job.generation, job.next_fire)
        where = "WHERE app_id = ? AND name = ? AND generation = ? AND next_fire = ?"
        args: tuple[Any, ...]
        if next_fire is None:
            sql, args = f"DELETE FROM jobs {where}", key
        else:
            sql = f"UPDATE jobs SET next_fire = ?, fired = fired + 1 {where}"
            args = (next_fire, *key)
        delivery = delivery_of(job, owner, lease_until)

        def claim(conn: sqlite3.Connection) -> bool:
            if conn.execute(sql, args).rowcount != 1:
                return False
            conn.execute(
                f"INSERT OR IGNORE INTO job_deliveries ({DELIVERY_COLUMNS}) "
                f"VALUES ({', '.join('?' * 9)})",
                (*_key(delivery), delivery.data, delivery.failure_policy, 0, owner, lease_until),
            )
            return True

        return delivery if await self._transaction(claim) else None

    async def expired(self, now: int, app_ids: Sequence[str], limit: int) -> list[Delivery]:
        if not app_ids:
            return []
        marks = ", ".join("?" * len(app_ids))
        sql = (
            f"SELECT {DELIVERY_COLUMNS} FROM job_deliveries WHERE lease_until <= ? "
            f"AND app_id IN ({marks}) ORDER BY fire_at LIMIT ?"
        )
        rows = await self._run(lambda c: c.execute(sql, (now, *app_ids, limit)).fetchall())
        return [row_to_delivery(r) for r in rows]

    async def take(self, delivery: Delivery, owner: str, lease_until: int) -> Delivery | None:
        sql = (
            f"UPDATE job_deliveries SET owner = ?, lease_until = ? WHERE {_KEY} "
            "AND owner = ? AND lease_until = ?"
        )
        args = (owner, lease_until, *_key(delivery), delivery.owner, delivery.lease_until)
        count: int = await self._run(lambda c: c.execute(sql, args).rowcount)
        if count != 1:
            return None
        return Delivery(
            delivery.app_id, delivery.name, delivery.generation, delivery.fire_at, delivery.data,
            delivery.failure_policy, delivery.attempts, owner, lease_until,
        )  # fmt: skip

    async def renew(self, owner: str, lease_until: int) -> int:
        sql = "UPDATE job_deliveries SET lease_until = ? WHERE owner = ?"
        count: int = await self._run(lambda c: c.execute(sql, (lease_until, owner)).rowcount)
        return count

    async def attempted(self, delivery: Delivery, attempts: int) -> bool:
        sql = f"UPDATE job_deliveries SET attempts = ? WHERE {_KEY} AND owner = ?"
        args = (attempts, *_key(delivery), delivery.owner)
        count: int = await self._run(lambda c: c.execute(sql, args).rowcount)
        return count == 1

    async def finish(self, delivery: Delivery) -> None:
        sql = f"DELETE FROM job_deliveries WHERE {_KEY} AND owner = ?"
        args = (*_key(delivery), delivery.owner)
        await self._run(lambda c: c.execute(sql, args))
