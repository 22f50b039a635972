"""`state.postgresql`: a table in PostgreSQL, through asyncpg (`pip install 'tether[postgres]'`).

Metadata: `connectionString` (a `postgresql://` URL or the keyword form Dapr users write,
`host=... port=... user=... password=... database=...` with `dbname=` accepted too),
`tableName` (`state`, optionally `schema.table`), `maxConns` (10), `timeoutInSeconds` (20),
`cleanupIntervalInSeconds` (3600, 0 disables), `ttlInSeconds` (default TTL).

Layout (Tether's own, not Dapr's): `key TEXT PRIMARY KEY, value BYTEA` (exact bytes), `doc JSONB`
(the value again when it is JSON: what queries read), `etag BIGINT` from a sequence (unique across
replicas and never reused), `expires_at TIMESTAMPTZ`. Every check-and-write is one statement
(first-write is `INSERT ... ON CONFLICT`), and a transaction is one database transaction, so any
number of runtimes may share the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tether import errors
from tether.components._postgres import HINT, connection
from tether.components.state import query as q
from tether.components.state._options import Options, cleanup_interval
from tether.components.state.base import (
    Concurrency,
    DeleteOp,
    Feature,
    Op,
    QueryResult,
    StateItem,
    StateStore,
    component_ttl,
    json_text,
    mismatch,
)
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("tether.state.postgres")
T = TypeVar("T")


class PostgresStateStore(StateStore):
    def __init__(self, spec: ComponentSpec) -> None:
        super().__init__(component_ttl(spec))
        opts = Options(spec)
        dsn = opts.text("connectionString")
        if not dsn:
            raise opts.invalid("connectionString", "", f"set ({HINT})")
        self._connect = connection(opts, dsn)
        table = opts.table("tableName", "state")
        schema, _, name = table.rpartition(".")
        self._table_name = table
        self._table = ".".join(f'"{p}"' for p in table.split("."))
        self._index = f'"{name}_expires"'
        self._seq = f"{schema + '.' if schema else ''}{name}_etag_seq"
        self._max_conns = opts.integer("maxConns", 10, minimum=1)
        self._timeout = opts.seconds("timeoutInSeconds", 20.0)
        self._cleanup_every = cleanup_interval(opts)
        self._pool: asyncpg.Pool | None = None
        self._cleanup: asyncio.Task[None] | None = None
        self._sql = self._statements()

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL, Feature.QUERY_API})

    def _statements(self) -> dict[str, str]:
        t, seq, live = self._table, self._seq, "(expires_at IS NULL OR expires_at > now())"
        values = "$2, $3::jsonb, nextval('" + seq + "'), now() + $4::int * interval '1 second'"
        upsert = (
            f"INSERT INTO {t} AS t (key, value, doc, etag, expires_at) VALUES ($1, {values}) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, doc = EXCLUDED.doc, "
            "etag = EXCLUDED.etag, expires_at = EXCLUDED.expires_at, updated_at = now()"
        )
        return {
            "get": f"SELECT key, value, etag, expires_at FROM {t} "
            f"WHERE key = ANY($1::text[]) AND {live}",
            "upsert": upsert + " RETURNING etag",
            "insert": upsert + " WHERE t.expires_at <= now() RETURNING etag",
            "update": f"UPDATE {t} SET value = $2, doc = $3::jsonb, etag = nextval('{seq}'), "
            "expires_at = now() + $4::int * interval '1 second', updated_at = now() "
            f"WHERE key = $1 AND etag = $5 AND {live} RETURNING etag",
            "delete": f"DELETE FROM {t} WHERE key = $1",
            "delete_etag": f"DELETE FROM {t} WHERE key = $1 AND etag = $2 AND {live}",
            "expired": f"DELETE FROM {t} WHERE expires_at <= now()",
        }

    # --- plumbing ---------------------------------------------------------------------------

    async def init(self) -> None:
        if self._pool is not None:
            return
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(
                min_size=1,
                max_size=self._max_conns,
                command_timeout=self._timeout,
                **self._connect,
            )
            await self._migrate()
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            await self.close()
            raise errors.StateStoreFailed(
                f"cannot initialise PostgreSQL state store: {exc}"
            ) from exc
        except BaseException:
            await self.close()
            raise
        if self._cleanup_every > 0:
            self._cleanup = asyncio.create_task(self._clean_forever(), name="tether-state-cleanup")

    async def _migrate(self) -> None:
        assert self._pool is not None
        async with self._pool.acquire() as conn, conn.transaction():
            # Replicas starting together would race on CREATE ... IF NOT EXISTS.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('tether-state:' || $1))", self._table_name
            )
            await conn.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {self._table} (
                    key TEXT NOT NULL PRIMARY KEY,
                    value BYTEA NOT NULL,
                    doc JSONB,
                    etag BIGINT NOT NULL,
                    expires_at TIMESTAMPTZ,
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """
            )
            columns = await conn.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) "
                "AND attnum > 0 AND NOT attisdropped",
                self._table,
            )
            missing = {"key", "value", "doc", "etag", "expires_at"}
            missing -= {r["attname"] for r in columns}
            if missing:
                raise errors.StateComponentInvalid(
                    f"table {self._table_name} exists but was not created by Tether (it lacks "
                    f"{', '.join(sorted(missing))}; a Dapr table?): choose another tableName"
                )
            await conn.execute(
                f"""
                CREATE INDEX IF NOT EXISTS {self._index} ON {self._table} (expires_at)
                    WHERE expires_at IS NOT NULL;
                CREATE SEQUENCE IF NOT EXISTS {self._seq};
                """
            )

    async def close(self) -> None:
        task, self._cleanup = self._cleanup, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        import asyncpg

        if self._pool is None:
            raise errors.StateStoreFailed("the PostgreSQL state store is not initialised")
        try:
            async with self._pool.acquire() as conn:
                return await fn(conn)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise errors.StateStoreFailed(f"PostgreSQL state store error: {exc}") from exc

    async def _clean_forever(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_every)
            with contextlib.suppress(errors.StateStoreFailed):
                await self.delete_expired()

    async def delete_expired(self) -> int:
        """Remove expired rows now; returns how many."""
        status: str = await self._run(lambda conn: conn.execute(self._sql["expired"]))
        return int(status.rsplit(" ", 1)[-1])

    # --- reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> StateItem | None:
        return (await self.bulk_get([key]))[0]

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        rows = await self._run(lambda conn: conn.fetch(self._sql["get"], list(set(keys))))
        found = {row["key"]: _item(row) for row in rows}
        return [found.get(key) for key in keys]

    # --- writes -----------------------------------------------------------------------------

    async def _write(self, ops: Sequence[Op]) -> list[str | None]:
        async def run(conn: asyncpg.Connection) -> list[str | None]:
            if len(ops) == 1:
                return [await self._apply(conn, ops[0])]
            async with conn.transaction():
                return [await self._apply(conn, op) for op in ops]

        return await self._run(run)

    async def _apply(self, conn: asyncpg.Connection, op: Op) -> str | None:
        if isinstance(op, DeleteOp):
            if op.etag is None:
                await conn.execute(self._sql["delete"], op.key)
                return None
            status = await conn.execute(self._sql["delete_etag"], op.key, int(op.etag))
            if status != "DELETE 1":
                raise mismatch(op)
            return None
        args = (op.key, op.value, json_text(op.value), op.ttl_seconds)
        if op.etag is not None:
            etag = await conn.fetchval(self._sql["update"], *args, int(op.etag))
        elif op.concurrency is Concurrency.FIRST_WRITE:
            etag = await conn.fetchval(self._sql["insert"], *args)
        else:
            etag = await conn.fetchval(self._sql["upsert"], *args)
        if etag is None:
            raise mismatch(op)
        return str(etag)

    # --- query ------------------------------------------------------------------------------

    async def query(self, query: q.Query, key_prefix: str = "") -> QueryResult:
        offset = query.offset
        params: list[Any] = []
        where = ["doc IS NOT NULL", "(expires_at IS NULL OR expires_at > now())"]
        if key_prefix:
            params.append(key_prefix)
            where.append(f"starts_with(key, ${len(params)})")
        if query.filter is not None:
            where.append(_Compiler(params).filter(query.filter))
        order = []
        for sort in query.sort:
            params.append(list(sort.path))
            field = f"(doc #> ${len(params)}::text[])"
            desc = " DESC" if sort.descending else ""
            # Strings in code point order whatever the database's collation, like the others.
            text = f"(CASE WHEN jsonb_typeof({field}) = 'string' THEN {field} #>> '{{}}' END)"
            order.append(f'{field} IS NULL, {text} COLLATE "C"{desc}, {field}{desc}')
        order.append("key")
        params += [query.limit + 1 if query.limit else None, offset]
        sql = (
            f"SELECT key, value, etag, expires_at FROM {self._table} WHERE {' AND '.join(where)} "
            f"ORDER BY {', '.join(order)} LIMIT ${len(params) - 1}::bigint OFFSET ${len(params)}"
        )
        rows = await self._run(lambda conn: conn.fetch(sql, *params))
        items = [_item(row) for row in rows]
        more = bool(query.limit) and len(items) > query.limit
        items = items[: query.limit] if query.limit else items
        return QueryResult(items, query.next_token(len(items), more))


def _item(row: Any) -> StateItem:
    expires = row["expires_at"]
    return StateItem(
        row["key"], bytes(row["value"]), str(row["etag"]), expires.timestamp() if expires else None
    )


class _Compiler:
    """A filter as SQL over `doc`, appending its parameters to `params`."""

    def __init__(self, params: list[Any]) -> None:
        self.params = params

    def _param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def filter(self, flt: q.Filter) -> str:
        if isinstance(flt, q.And | q.Or):
            joiner = " AND " if isinstance(flt, q.And) else " OR "
            return "(" + joiner.join(self.filter(f) for f in flt.filters) + ")"
        field = f"(doc #> {self._param(list(flt.path))}::text[])"
        if isinstance(flt, q.In):
            values = [json.dumps(v) for v in flt.values]
            return f"({field} = ANY({self._param(values)}::jsonb[]))"
        if flt.op == "EQ":
            return f"({field} = {self._param(json.dumps(flt.value))}::jsonb)"
        if flt.op == "NEQ":
            return f"({field} IS DISTINCT FROM {self._param(json.dumps(flt.value))}::jsonb)"
        op = {"GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}[flt.op]
        kind = q.json_type(flt.value)
        text = field.replace("#>", "#>>", 1)
        if kind == "number":
            value = self._param(json.dumps(flt.value))
            return (
                f"(CASE WHEN jsonb_typeof({field}) = 'number' "
                f"THEN {text}::numeric {op} {value}::numeric ELSE false END)"
            )
        if kind == "string":
            value = self._param(flt.value)
            return (
                f"(CASE WHEN jsonb_typeof({field}) = 'string' "
                f'THEN {text} COLLATE "C" {op} {value}::text ELSE false END)'
            )
        return "false"
