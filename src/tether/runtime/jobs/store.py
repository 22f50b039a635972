"""Where jobs live: one row per (App ID, job name), with the time of its next occurrence.

The store is what makes each occurrence fire once across restarts and replicas: a scheduler
*claims* an occurrence by moving `next_fire` on (or deleting the row after its last one) in one
conditional statement, `... WHERE app_id = ? AND name = ? AND generation = ? AND next_fire = ?`.
Only the claimer delivers. `generation` changes whenever the job is (re)scheduled, so a claim
based on an overwritten job's row fails even if the new one is due at the same instant.

Times are integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import abc
import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tether import errors

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job:
    app_id: str
    name: str
    #: As the caller wrote them, returned by get.
    schedule: str | None
    due_time: str | None
    repeats: int | None
    ttl: str | None
    #: A serialized `google.protobuf.Any`: what the app receives.
    data: bytes
    #: A serialized `dapr.proto.common.v1.JobFailurePolicy`, or empty for the default.
    failure_policy: bytes
    created_at: int
    #: When the next occurrence is due.
    next_fire: int
    #: When the job expires (its `ttl`), if ever.
    expires_at: int | None
    #: Occurrences claimed so far.
    fired: int
    generation: str


COLUMNS = (
    "app_id, name, schedule, due_time, repeats, ttl, data, failure_policy, created_at, "
    "next_fire, expires_at, fired, generation"
)


def row_to_job(row: Sequence[Any]) -> Job:
    values = list(row)
    values[6], values[7] = bytes(values[6]), bytes(values[7])
    return Job(*values)


class JobStore(abc.ABC):
    kind: str

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def put(self, job: Job, overwrite: bool) -> None:
        """Create the job, or replace it when `overwrite`; raises `JobExists` otherwise."""

    @abc.abstractmethod
    async def get(self, app_id: str, name: str) -> Job | None: ...

    @abc.abstractmethod
    async def delete(self, app_id: str, name: str) -> bool:
        """True if the job existed."""

    @abc.abstractmethod
    async def due(self, now: int, app_ids: Sequence[str], limit: int) -> list[Job]:
        """Jobs of `app_ids` whose next occurrence is at or before `now`, earliest first."""

    @abc.abstractmethod
    async def next_due(self, app_ids: Sequence[str]) -> int | None:
        """The earliest `next_fire` among the jobs of `app_ids`."""

    @abc.abstractmethod
    async def claim(self, job: Job, next_fire: int | None) -> bool:
        """Take the occurrence `job.next_fire`: move the job to `next_fire`, or delete it when
        None. False when another scheduler took it first or the job changed meanwhile."""


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    app_id TEXT NOT NULL, name TEXT NOT NULL, schedule TEXT, due_time TEXT, repeats INTEGER,
    ttl TEXT, data BLOB NOT NULL, failure_policy BLOB NOT NULL, created_at INTEGER NOT NULL,
    next_fire INTEGER NOT NULL, expires_at INTEGER, fired INTEGER NOT NULL,
    generation TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE INDEX IF NOT EXISTS ix_jobs_next_fire ON jobs (next_fire);
"""


class SqliteJobStore(JobStore):
    """One connection, used from worker threads in turn. Job traffic is light: a write per
    schedule, delete and occurrence."""

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
            conn.executescript(_SQLITE_SCHEMA)
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

    async def delete(self, app_id: str, name: str) -> bool:
        sql = "DELETE FROM jobs WHERE app_id = ? AND name = ?"
        count: int = await self._run(lambda c: c.execute(sql, (app_id, name)).rowcount)
        return count > 0

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

    async def claim(self, job: Job, next_fire: int | None) -> bool:
        key = (job.app_id, job.name, job.generation, job.next_fire)
        where = "WHERE app_id = ? AND name = ? AND generation = ? AND next_fire = ?"
        args: tuple[Any, ...]
        if next_fire is None:
            sql, args = f"DELETE FROM jobs {where}", key
        else:
            sql = f"UPDATE jobs SET next_fire = ?, fired = fired + 1 {where}"
            args = (next_fire, *key)
        count: int = await self._run(lambda c: c.execute(sql, args).rowcount)
        return count == 1


def open_job_store(url: str | None, data_dir: Path) -> JobStore:
    """The job store for the server's store URL: PostgreSQL when the workflow store is, else
    SQLite (`jobs.db` in the data directory; in memory for `memory://`)."""
    if url and (url.startswith(("postgresql://", "postgres://")) or "host=" in url):
        from tether.runtime.jobs.postgres import PostgresJobStore

        return PostgresJobStore(url)
    if url and url.startswith("memory:"):
        return SqliteJobStore(":memory:")
    return SqliteJobStore(data_dir / "jobs.db")
