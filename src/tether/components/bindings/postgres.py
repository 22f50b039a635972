"""`bindings.postgresql`: an output binding that runs SQL (`exec`, `query`, `close`).

Metadata: `connectionString` (alias `url`; a `postgresql://` URL or `host=... user=...`),
`maxConns` (5), `timeoutInSeconds` (20).

Request metadata: `sql` (required) and `params`, a JSON array bound to `$1, $2, ...`. JSON has
fewer types than SQL, so each parameter is converted to the type PostgreSQL expects for it
(`"42"` for an integer column, an ISO string for a timestamp, any JSON for a json column),
as Dapr's pgx driver does. `exec` answers metadata `rows-affected`; `query` answers the rows as
a JSON array of arrays (timestamps as RFC 3339 strings, bytea as base64, numerics as numbers).
Both also report `operation`, `sql`, `start-time`, `end-time` and `duration`. `close` closes
the connection pool; later calls fail until the component is reloaded.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tether.components._options import Options
from tether.components._postgres import HINT, connection
from tether.components.bindings.base import (
    BindingFailed,
    BindingResponse,
    OutputBinding,
    unsupported,
)
from tether.resources.component import ComponentSpec

if TYPE_CHECKING:
    import asyncpg

_OPERATIONS = frozenset({"exec", "query", "close"})
_INTS = frozenset({"int2", "int4", "int8", "oid"})
_FLOATS = frozenset({"float4", "float8"})
_JSONS = frozenset({"json", "jsonb"})
_TEXTS = frozenset({"text", "varchar", "bpchar", "name", "char"})


class PostgresBinding(OutputBinding):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        dsn = opts.optional("connectionString") or opts.optional("url")
        if not dsn:
            raise opts.missing("connectionString", HINT)
        self._connect = connection(opts, dsn)
        self._max_conns = opts.integer("maxConns", 5, minimum=1)
        self._timeout = opts.seconds("timeoutInSeconds", 20.0)
        self._name = spec.name
        self._pool: asyncpg.Pool | None = None
        self._closed = False

    def operations(self) -> frozenset[str]:
        return _OPERATIONS

    async def init(self) -> None:
        if self._pool is not None:
            return
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(
                **self._connect, min_size=1, max_size=self._max_conns, timeout=self._timeout
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise BindingFailed(
                f"binding {self._name}: cannot connect to PostgreSQL: {exc}"
            ) from exc

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def invoke(
        self, operation: str, data: bytes, metadata: Mapping[str, str]
    ) -> BindingResponse:
        import asyncpg

        if operation == "close":
            await self.close()
            return BindingResponse()
        if operation not in _OPERATIONS:
            raise unsupported(self._name, operation, _OPERATIONS)
        if self._pool is None or self._closed:
            raise BindingFailed(f"binding {self._name} is closed")
        sql = metadata.get("sql", "")
        if not sql:
            raise BindingFailed("required metadata not set: sql")
        params: list[Any] = []
        if metadata.get("params"):
            try:
                params = json.loads(metadata["params"])
            except ValueError as exc:
                raise BindingFailed(f"invalid metadata property params: {exc}") from exc
            if not isinstance(params, list):
                raise BindingFailed("invalid metadata property params: not a JSON array")
        started = dt.datetime.now(dt.UTC)
        meta = {"operation": operation, "sql": sql, "start-time": _rfc3339(started)}
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                if operation == "exec" and not params:
                    # Several statements are allowed without parameters (simple protocol).
                    status = await conn.execute(sql, timeout=self._timeout)
                    rows: list[Any] = []
                    json_cols: set[int] = set()
                else:
                    stmt = await conn.prepare(sql, timeout=self._timeout)
                    types = [t.name for t in stmt.get_parameters()]
                    if len(types) != len(params):
                        raise BindingFailed(
                            f"the SQL takes {len(types)} parameters, got {len(params)}"
                        )
                    args = [_coerce(v, t) for v, t in zip(params, types, strict=True)]
                    rows = await stmt.fetch(*args, timeout=self._timeout)
                    status = stmt.get_statusmsg() or ""
                    json_cols = {
                        i for i, a in enumerate(stmt.get_attributes()) if a.type.name in _JSONS
                    }
        except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise BindingFailed(f"error executing query: {exc}") from exc
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise BindingFailed(f"invalid metadata property params: {exc}") from exc
        body = b""
        if operation == "exec":
            last = status.rsplit(" ", 1)[-1]
            meta["rows-affected"] = last if last.isdigit() else "0"
        else:
            table = [
                [json.loads(v) if i in json_cols and v is not None else _json(v)
                 for i, v in enumerate(row.values())]
                for row in rows
            ]  # fmt: skip
            body = json.dumps(table).encode()
        ended = dt.datetime.now(dt.UTC)
        meta["end-time"] = _rfc3339(ended)
        meta["duration"] = f"{(ended - started).total_seconds() * 1000:.3f}ms"
        return BindingResponse(body, meta)


def _coerce(value: Any, pg_type: str) -> Any:
    """A JSON parameter as the Python value asyncpg needs for `pg_type`."""
    if value is None:
        return None
    if pg_type in _INTS:
        return int(value)
    if pg_type in _FLOATS:
        return float(value)
    if pg_type == "numeric":
        return decimal.Decimal(str(value))
    if pg_type == "bool":
        return (
            value if isinstance(value, bool) else str(value).strip().lower() in ("true", "t", "1")
        )
    if pg_type in ("json", "jsonb"):
        return value if isinstance(value, str) else json.dumps(value)
    if pg_type in ("timestamp", "timestamptz"):
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, dt.UTC)
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if pg_type == "timestamp":
            return parsed.replace(tzinfo=None)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if pg_type == "date":
        return dt.date.fromisoformat(str(value)[:10])
    if pg_type == "uuid":
        return uuid.UUID(str(value))
    if pg_type == "bytea":
        return value.encode() if isinstance(value, str) else bytes(value)
    if pg_type in _TEXTS:
        return value if isinstance(value, str) else json.dumps(value)
    return value


def _json(value: Any) -> Any:
    """A column value as Dapr's binding serialises it."""
    if isinstance(value, dt.datetime):
        return _rfc3339(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, str | int | float | bool | dict) or value is None:
        return value
    return str(value)


def _rfc3339(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
