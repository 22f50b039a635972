"""SQLite workflow store: the embedded default.

One thread owns the connection. Writes queue up while a transaction is being committed and are
then applied together, each in its own savepoint, under a single commit (group commit): the cost
of a durable commit is shared by every batch that arrived meanwhile, and a failing batch is rolled
back alone. WAL with `synchronous=NORMAL` survives a killed process; pass `?synchronous=FULL` in
the URL to also survive power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether import errors
from tether.workflow.model import (
    Activity,
    InboxItem,
    Instance,
    InstancePage,
    InstanceQuery,
    decode_cursor,
    encode_cursor,
)
from tether.workflow.store.base import Batch, Recovery, WorkflowStore
from tether.workflow.store.sqlcodec import INSTANCE_COLUMNS, from_micros, row_to_instance, to_micros

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status INTEGER NOT NULL,
    execution_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    input TEXT, output TEXT, custom_status TEXT, failure BLOB,
    parent_id TEXT, parent_task_id INTEGER, parent_execution_id TEXT,
    scheduled_start INTEGER, completed_at INTEGER, version TEXT,
    app_id TEXT NOT NULL DEFAULT '',
    turn INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_instances_created ON instances (created_at, instance_id);
CREATE INDEX IF NOT EXISTS ix_instances_status ON instances (status, created_at);
CREATE INDEX IF NOT EXISTS ix_instances_name ON instances (name, created_at);
CREATE INDEX IF NOT EXISTS ix_instances_parent ON instances (parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL, idx INTEGER NOT NULL, event BLOB NOT NULL,
    PRIMARY KEY (instance_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL, prio INTEGER NOT NULL, visible_at INTEGER, event BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_inbox_instance ON inbox (instance_id, prio, seq);
CREATE TABLE IF NOT EXISTS activities (
    instance_id TEXT NOT NULL, execution_id TEXT NOT NULL, task_id INTEGER NOT NULL,
    request BLOB NOT NULL,
    PRIMARY KEY (instance_id, execution_id, task_id)
) WITHOUT ROWID;
"""

_CHECKPOINT_SECONDS = 1.0
_BUSY_GIVE_UP = 30.0
log = logging.getLogger("tether.workflow")
_Job = tuple[bool, Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]


class SqliteStore(WorkflowStore):
    kind = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Job] = []
        self._flush_scheduled = False
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        self._busy_since: float | None = None

    # --- plumbing ---------------------------------------------------------------------------
    #
    # Statements run on the event loop's own thread. A WAL commit with synchronous=NORMAL is a
    # write into the OS cache (tens of microseconds); handing it to a thread cost more than that
    # in wake-ups and GIL hand-offs. Writes submitted during one loop iteration are flushed
    # together in one transaction (group commit); the fsync-heavy WAL checkpoints run on a
    # separate thread and connection so they never stall the loop.

    async def open(self) -> None:
        if self._conn is not None:
            return
        if str(self._path) != ":memory:":
            self._path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        try:
            self._conn = self._connect()
        except Exception as exc:
            raise errors.StoreError(f"cannot open SQLite store at {self._path}: {exc}") from exc
        if str(self._path) != ":memory:":
            self._stop.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="tether-sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()

    async def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        if self._pending:
            self._flush()
        self._conn = None
        self._stop.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

    def _submit(self, write: bool, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        if self._loop is None or self._conn is None:
            raise errors.StoreError("the workflow store is not open")
        fut: asyncio.Future[Any] = self._loop.create_future()
        if not write:
            # No transaction is ever open between loop iterations, so a read sees exactly what
            # has been committed.
            _resolve(self._execute(self._conn, [(False, fn, fut)]))
            return fut
        self._pending.append((True, fn, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        jobs, self._pending = self._pending, []
        if not jobs:
            return
        if self._conn is None:
            err = errors.StoreError("the workflow store is closed")
            _resolve([(fut, None, err) for _, _, fut in jobs])
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._busy(jobs, exc)
            return
        self._busy_since = None
        _resolve(self._execute(self._conn, jobs))

    def _busy(self, jobs: list[_Job], exc: sqlite3.OperationalError) -> None:
        """Another process holds the write lock: wait without blocking the loop, then retry."""
        assert self._loop is not None
        now = self._loop.time()
        if self._busy_since is None:
            self._busy_since = now
            log.warning("workflow store is locked by another process; retrying")
        if now - self._busy_since > _BUSY_GIVE_UP:
            self._busy_since = None
            err = errors.StoreError(
                f"the SQLite file {self._path} stayed locked by another process for "
                f"{_BUSY_GIVE_UP:.0f}s ({exc}); close other programs that write to it"
            )
            _resolve([(fut, None, err) for _, _, fut in jobs])
            return
        self._pending[:0] = jobs
        self._flush_scheduled = True
        self._loop.call_later(0.01, self._flush)

    def _connect(self) -> sqlite3.Connection:
        # timeout=0: a lock held elsewhere must never block the event loop (see `_busy`).
        conn = sqlite3.connect(
            str(self._path), isolation_level=None, check_same_thread=False, timeout=0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-65536")
        if str(self._path) != ":memory:":
            conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.executescript(_SCHEMA)
        return conn

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(_CHECKPOINT_SECONDS):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _execute(
        self, conn: sqlite3.Connection, jobs: list[_Job]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """Run jobs; for writes the caller has already begun the transaction."""
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        writes = [j for j in jobs if j[0]]
        if len(writes) == 1 and len(jobs) == 1:
            return self._execute_alone(conn, jobs[0])
        for write, fn, fut in jobs:
            try:
                if write:
                    conn.execute("SAVEPOINT b")
                    try:
                        value = fn(conn)
                    except BaseException:
                        conn.execute("ROLLBACK TO b")
                        conn.execute("RELEASE b")
                        raise
                    conn.execute("RELEASE b")
                else:
                    value = fn(conn)
                results.append((fut, value, None))
            except errors.TetherError as exc:
                results.append((fut, None, exc))
            except Exception as exc:
                results.append((fut, None, errors.StoreError(f"workflow store error: {exc}")))
        if writes:
            try:
                conn.execute("COMMIT")
            except Exception as exc:
                conn.execute("ROLLBACK")
                err = errors.StoreError(f"workflow store commit failed: {exc}")
                failed = {id(w[2]) for w in writes}
                results = [(f, v, err if id(f) in failed else e) for f, v, e in results]
        return results

    def _execute_alone(
        self, conn: sqlite3.Connection, job: _Job
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """One write in its transaction needs no savepoint: a failure rolls back everything."""
        _, fn, fut = job
        try:
            value = fn(conn)
            conn.execute("COMMIT")
            return [(fut, value, None)]
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, errors.TetherError):
                return [(fut, None, exc)]
            return [(fut, None, errors.StoreError(f"workflow store error: {exc}"))]

    # --- writes -----------------------------------------------------------------------------

    async def commit(self, batch: Batch) -> None:
        await self._submit(True, lambda conn: _apply(conn, batch))

    # --- reads ------------------------------------------------------------------------------

    async def get_instance(self, instance_id: str) -> Instance | None:
        def run(conn: sqlite3.Connection) -> Instance | None:
            row = conn.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone()
            return row_to_instance(row) if row else None

        result: Instance | None = await self._submit(False, run)
        return result

    async def get_history(self, instance_id: str) -> list[bytes]:
        def run(conn: sqlite3.Connection) -> list[bytes]:
            rows = conn.execute(
                "SELECT event FROM history WHERE instance_id = ? ORDER BY idx", (instance_id,)
            )
            return [bytes(r[0]) for r in rows]

        result: list[bytes] = await self._submit(False, run)
        return result

    async def get_inbox(self, instance_id: str) -> list[InboxItem]:
        def run(conn: sqlite3.Connection) -> list[InboxItem]:
            rows = conn.execute(
                "SELECT seq, event, visible_at, prio FROM inbox WHERE instance_id = ? "
                "ORDER BY prio, seq",
                (instance_id,),
            )
            return [InboxItem(r[0], bytes(r[1]), from_micros(r[2]), r[3]) for r in rows]

        result: list[InboxItem] = await self._submit(False, run)
        return result

    async def get_activities(self, instance_id: str) -> list[Activity]:
        def run(conn: sqlite3.Connection) -> list[Activity]:
            rows = conn.execute(
                "SELECT instance_id, execution_id, task_id, request FROM activities "
                "WHERE instance_id = ?",
                (instance_id,),
            )
            return [Activity(r[0], r[1], r[2], bytes(r[3])) for r in rows]

        result: list[Activity] = await self._submit(False, run)
        return result

    async def list_instances(self, query: InstanceQuery) -> InstancePage:
        def run(conn: sqlite3.Connection) -> InstancePage:
            where: list[str] = []
            args: list[Any] = []
            if query.statuses:
                where.append(f"status IN ({','.join('?' * len(query.statuses))})")
                args.extend(query.statuses)
            if query.name is not None:
                where.append("name = ?")
                args.append(query.name)
            if query.created_from is not None:
                where.append("created_at >= ?")
                args.append(to_micros(query.created_from))
            if query.created_to is not None:
                where.append("created_at < ?")
                args.append(to_micros(query.created_to))
            if query.parent_id is not None:
                where.append("parent_id = ?")
                args.append(query.parent_id)
            if query.cursor:
                ts, iid = decode_cursor(query.cursor)
                where.append("(created_at < ? OR (created_at = ? AND instance_id < ?))")
                args.extend([to_micros(ts), to_micros(ts), iid])
            sql = f"SELECT {INSTANCE_COLUMNS} FROM instances"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY created_at DESC, instance_id DESC LIMIT ?"
            args.append(query.limit + 1)
            rows = [row_to_instance(r) for r in conn.execute(sql, args)]
            page = rows[: query.limit]
            cursor = encode_cursor(page[-1]) if len(rows) > query.limit else None
            return InstancePage(page, cursor)

        result: InstancePage = await self._submit(False, run)
        return result

    async def children(self, instance_id: str) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT instance_id FROM instances WHERE parent_id = ?", (instance_id,)
            )
            return [r[0] for r in rows]

        result: list[str] = await self._submit(False, run)
        return result

    async def recover(self) -> Recovery:
        def run(conn: sqlite3.Connection) -> Recovery:
            rec = Recovery()
            rows = conn.execute(
                "SELECT instance_id, MAX(visible_at IS NULL), MIN(visible_at) FROM inbox "
                "GROUP BY instance_id"
            )
            for iid, any_now, due in rows:
                rec.inbox_due[iid] = None if any_now else from_micros(due)
            for r in conn.execute(
                "SELECT instance_id, execution_id, task_id, request FROM activities"
            ):
                rec.activities.append(Activity(r[0], r[1], r[2], bytes(r[3])))
            return rec

        result: Recovery = await self._submit(False, run)
        return result


def _resolve(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, exc in results:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


def _drop(conn: sqlite3.Connection, iid: str) -> None:
    for table in ("instances", "history", "inbox", "activities"):
        conn.execute(f"DELETE FROM {table} WHERE instance_id = ?", (iid,))


def _insert_inbox(conn: sqlite3.Connection, iid: str, item: InboxItem) -> None:
    cur = conn.execute(
        "INSERT INTO inbox (instance_id, prio, visible_at, event) VALUES (?, ?, ?, ?)",
        (iid, item.prio, to_micros(item.visible_at), item.event),
    )
    item.seq = int(cur.lastrowid or 0)


def _instance_params(inst: Instance, turn: int) -> tuple[Any, ...]:
    return (
        inst.instance_id, inst.name, inst.status, inst.execution_id,
        to_micros(inst.created_at), to_micros(inst.updated_at), inst.input, inst.output,
        inst.custom_status, inst.failure, inst.parent_id, inst.parent_task_id,
        inst.parent_execution_id, to_micros(inst.scheduled_start), to_micros(inst.completed_at),
        inst.version, inst.app_id, turn,
    )  # fmt: skip


_UPSERT = (
    f"INSERT OR REPLACE INTO instances ({INSTANCE_COLUMNS}) "
    f"VALUES ({','.join('?' * len(INSTANCE_COLUMNS.split(',')))})"
)


# The turn counter is the fence: the row is written only if no one else wrote it meanwhile.
_FENCED_UPDATE = (
    "UPDATE instances SET "
    + ", ".join(f"{c.strip()} = ?" for c in INSTANCE_COLUMNS.split(",")[1:])
    + " WHERE instance_id = ? AND turn = ?"
)


def _apply(conn: sqlite3.Connection, batch: Batch) -> None:
    for iid in batch.purge:
        _drop(conn, iid)
    for new in batch.creates:
        iid = new.instance.instance_id
        row = conn.execute("SELECT status FROM instances WHERE instance_id = ?", (iid,)).fetchone()
        if row is not None:
            old = Instance(iid, "", row[0], "", new.instance.created_at, new.instance.created_at)
            if not (old.terminal and new.replace_terminal):
                raise errors.InstanceAlreadyExists(iid)
            _drop(conn, iid)
        conn.execute(_UPSERT, _instance_params(new.instance, new.instance.turn))
        for item in new.inbox:
            _insert_inbox(conn, iid, item)
    for inst in batch.instances:
        expected = batch.expect_turn.get(inst.instance_id)
        if expected is not None:
            params = _instance_params(inst, expected + 1)
            cur = conn.execute(_FENCED_UPDATE, (*params[1:], inst.instance_id, expected))
            if cur.rowcount != 1:
                raise errors.StaleTurn(f"instance '{inst.instance_id}' changed under this turn")
        else:
            conn.execute(_UPSERT, _instance_params(inst, inst.turn))
    for iid in batch.history_reset:
        conn.execute("DELETE FROM history WHERE instance_id = ?", (iid,))
    for iid, first, events in batch.history_append:
        conn.execute("DELETE FROM history WHERE instance_id = ? AND idx >= ?", (iid, first))
        conn.executemany(
            "INSERT INTO history (instance_id, idx, event) VALUES (?, ?, ?)",
            [(iid, first + i, ev) for i, ev in enumerate(events)],
        )
    for iid in batch.inbox_clear:
        conn.execute("DELETE FROM inbox WHERE instance_id = ?", (iid,))
    for _iid, seqs in batch.inbox_remove:
        conn.executemany("DELETE FROM inbox WHERE seq = ?", [(s,) for s in seqs])
    for iid, item in batch.inbox_add:
        _insert_inbox(conn, iid, item)
    for iid in batch.activities_clear:
        conn.execute("DELETE FROM activities WHERE instance_id = ?", (iid,))
    if batch.activities_remove:
        conn.executemany(
            "DELETE FROM activities WHERE instance_id = ? AND execution_id = ? AND task_id = ?",
            batch.activities_remove,
        )
    if batch.activities_add:
        conn.executemany(
            "INSERT OR REPLACE INTO activities (instance_id, execution_id, task_id, request) "
            "VALUES (?, ?, ?, ?)",
            [(a.instance_id, a.execution_id, a.task_id, a.request) for a in batch.activities_add],
        )
