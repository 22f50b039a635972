"""`state.sqlite`: one SQLite file, the embedded default.

Metadata: `connectionString` (a file path, a `file:` URI or `:memory:`; default
`<tetherDataDir>/state/<component name>.db`), `tableName` (`state`), `busyTimeout` (how long to
wait for another process's write lock; 5s), `cleanupInterval` (how often expired rows are
deleted; 1h, 0 disables), `ttlInSeconds` (default TTL).

One thread owns the connection, so operations are serialized in this process; every write is
one `BEGIN IMMEDIATE` transaction, so they are also atomic against other processes sharing the
file. JSON values are stored as TEXT (queryable with `json_extract`), others as BLOB: both come
back byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tether import errors
from tether.components.state import query as q
from tether.components.state._options import Options, cleanup_interval
from tether.components.state.base import (
    DATA_DIR,
    DeleteOp,
    EtagClock,
    Feature,
    Op,
    QueryResult,
    StateItem,
    StateStore,
    check,
    component_ttl,
    expiry,
    json_text,
)
from tether.resources.component import ComponentSpec

T = TypeVar("T")
_CHUNK = 500


class SqliteStateStore(StateStore):
    def __init__(self, spec: ComponentSpec) -> None:
        super().__init__(component_ttl(spec))
        opts = Options(spec)
        self._target = opts.text("connectionString") or str(
            Path(opts.text(DATA_DIR, ".tether")) / "state" / f"{spec.name}.db"
        )
        table = opts.table("tableName", "state")
        if "." in table:
            raise opts.invalid("tableName", table, "a table name without a schema")
        self._table = f'"{table}"'
        self._index = f'"{table}_expires"'
        self._busy_ms = int(opts.seconds("busyTimeout", 5.0) * 1000)
        self._cleanup_every = cleanup_interval(opts)
        self._clock = EtagClock()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._cleanup: asyncio.Task[None] | None = None

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL, Feature.QUERY_API})

    # --- plumbing ---------------------------------------------------------------------------

    async def init(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tether-state-sqlite")
        try:
            self._conn = await self._run(self._connect)
        except Exception:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        if self._cleanup_every > 0:
            self._cleanup = asyncio.create_task(self._clean_forever(), name="tether-state-cleanup")

    async def close(self) -> None:
        task, self._cleanup = self._cleanup, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        executor, self._executor = self._executor, None
        if executor is None:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        uri = self._target.startswith("file:")
        try:
            if not uri and self._target != ":memory:":
                Path(self._target).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._target, isolation_level=None, check_same_thread=False, uri=uri
            )
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(
                f"""
                CREATE TABLE IF NOT EXISTS {self._table} (
                    key TEXT NOT NULL PRIMARY KEY,
                    value BLOB NOT NULL,
                    etag INTEGER NOT NULL,
                    expires_at REAL,
                    updated_at REAL NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS {self._index} ON {self._table} (expires_at)
                    WHERE expires_at IS NOT NULL;
                """
            )
        except (sqlite3.Error, OSError) as exc:
            raise errors.StateStoreFailed(
                f"cannot open SQLite state store at {self._target}: {exc}"
            ) from exc
        return conn

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise errors.StateStoreFailed("the SQLite state store is not initialised")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise errors.StateStoreFailed(f"SQLite state store error: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise errors.StateStoreFailed("the SQLite state store is not initialised")
        return self._conn

    async def _clean_forever(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_every)
            with contextlib.suppress(errors.StateStoreFailed):
                await self.delete_expired()

    async def delete_expired(self) -> int:
        """Remove expired rows now; returns how many."""

        def run() -> int:
            sql = f"DELETE FROM {self._table} WHERE expires_at IS NOT NULL AND expires_at <= ?"
            return self._db().execute(sql, (time.time(),)).rowcount

        return await self._run(run)

    # --- reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> StateItem | None:
        return (await self.bulk_get([key]))[0]

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        def run() -> dict[str, StateItem]:
            found: dict[str, StateItem] = {}
            now = time.time()
            for start in range(0, len(keys), _CHUNK):
                chunk = list(dict.fromkeys(keys[start : start + _CHUNK]))
                marks = ",".join("?" * len(chunk))
                rows = self._db().execute(
                    f"SELECT key, value, etag, expires_at FROM {self._table} "
                    f"WHERE key IN ({marks}) AND (expires_at IS NULL OR expires_at > ?)",
                    (*chunk, now),
                )
                for row in rows:
                    found[row[0]] = _item(row)
            return found

        found = await self._run(run)
        return [found.get(key) for key in keys]

    # --- writes -----------------------------------------------------------------------------

    async def _write(self, ops: Sequence[Op]) -> list[str | None]:
        return await self._run(lambda: self._apply(ops))

    def _apply(self, ops: Sequence[Op]) -> list[str | None]:
        conn = self._db()
        now = time.time()
        etags: list[str | None] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                row = conn.execute(
                    f"SELECT etag, expires_at FROM {self._table} WHERE key = ?", (op.key,)
                ).fetchone()
                live = row is not None and (row[1] is None or row[1] > now)
                current = str(row[0]) if live else None
                check(op, current)
                if isinstance(op, DeleteOp):
                    conn.execute(f"DELETE FROM {self._table} WHERE key = ?", (op.key,))
                    etags.append(None)
                    continue
                etag = self._clock.next(row[0] if row is not None else 0)
                text = json_text(op.value)
                conn.execute(
                    f"INSERT INTO {self._table} (key, value, etag, expires_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "value = excluded.value, etag = excluded.etag, "
                    "expires_at = excluded.expires_at, updated_at = excluded.updated_at",
                    (op.key, text if text is not None else op.value, etag,
                     expiry(op.ttl_seconds, now), now),
                )  # fmt: skip
                etags.append(str(etag))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return etags

    # --- query ------------------------------------------------------------------------------

    async def query(self, query: q.Query, key_prefix: str = "") -> QueryResult:
        offset = query.offset
        params: list[Any] = [time.time()]
        where = "typeof(value) = 'text' AND (expires_at IS NULL OR expires_at > ?)"
        if key_prefix:
            where += " AND substr(key, 1, length(?)) = ?"
            params += [key_prefix, key_prefix]
        if query.filter is not None:
            where += " AND " + _filter(query.filter, params)
        order = []
        for sort in query.sort:
            path = _path(sort.path)
            desc = " DESC" if sort.descending else ""
            order.append(f"json_type(value, ?) IS NULL, json_extract(value, ?){desc}")
            params += [path, path]
        order.append("key")
        sql = f"SELECT key, value, etag, expires_at FROM {self._table} WHERE {where} "
        sql += f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?"
        params += [query.limit + 1 if query.limit else -1, offset]

        def run() -> list[StateItem]:
            return [_item(row) for row in self._db().execute(sql, params)]

        items = await self._run(run)
        more = bool(query.limit) and len(items) > query.limit
        items = items[: query.limit] if query.limit else items
        return QueryResult(items, query.next_token(len(items), more))


def _item(row: tuple[Any, ...]) -> StateItem:
    value = row[1].encode("utf-8") if isinstance(row[1], str) else bytes(row[1])
    return StateItem(row[0], value, str(row[2]), row[3])


def _path(parts: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{part}"' for part in parts)


_TYPES = {
    "number": "json_type(value, ?) IN ('integer', 'real')",
    "string": "json_type(value, ?) = 'text'",
    "true": "json_type(value, ?) = 'true'",
    "false": "json_type(value, ?) = 'false'",
    "null": "json_type(value, ?) = 'null'",
    "array": "json_type(value, ?) = 'array'",
    "object": "json_type(value, ?) = 'object'",
}
_OPS = {"GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return q.json_type(value)


def _equal(path: str, value: object, params: list[Any]) -> str:
    kind = _kind(value)
    params.append(path)
    if kind in ("number", "string"):
        params += [path, value]
        return f"({_TYPES[kind]} AND json_extract(value, ?) = ?)"
    if kind in ("array", "object"):
        params += [path, q.canonical_json(value)]
        return f"({_TYPES[kind]} AND json(json_extract(value, ?)) = json(?))"
    return f"({_TYPES[kind]})"


def _filter(flt: q.Filter, params: list[Any]) -> str:
    if isinstance(flt, q.And | q.Or):
        joiner = " AND " if isinstance(flt, q.And) else " OR "
        return "(" + joiner.join(_filter(f, params) for f in flt.filters) + ")"
    path = _path(flt.path)
    if isinstance(flt, q.In):
        return "(" + " OR ".join(_equal(path, v, params) for v in flt.values) + ")"
    if flt.op == "EQ":
        return _equal(path, flt.value, params)
    if flt.op == "NEQ":
        return f"(NOT coalesce({_equal(path, flt.value, params)}, 0))"
    kind = _kind(flt.value)
    if kind not in ("number", "string"):
        return "(0)"
    params += [path, path, flt.value]
    return f"({_TYPES[kind]} AND json_extract(value, ?) {_OPS[flt.op]} ?)"
