"""PostgreSQL connections from Dapr's usual component metadata: `connectionString` (a
`postgresql://` URL or the `host=... user=...` keyword form) and `timeoutInSeconds` (20). The
driver is imported only when a pool is made (`pip install 'tether[postgres]'`)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tether import errors
from tether.components._options import Options

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("tether.components.postgres")
HINT = "a postgresql:// URL or host=... user=..."
_KEYWORD = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^'\s]*)(?:\s+|$)")
_POOL_KEYS = {"pool_max_conns", "pool_min_conns", "pool_max_conn_lifetime",
              "pool_max_conn_idle_time", "pool_health_check_period"}  # fmt: skip
_CONNECT_KEYS = {"host", "port", "user", "password", "database", "dbname", "sslmode",
                 "connect_timeout", "application_name"}  # fmt: skip


def connect_args(dsn: str) -> dict[str, Any]:
    """asyncpg `connect` arguments from a URL or a libpq/pgx keyword string.

    pgx pool settings (`pool_max_conns=...`) are dropped; other unknown keywords are logged and
    ignored.
    """
    text = dsn.strip()
    if text.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(text)
        kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in _POOL_KEYS]
        return {"dsn": urlunsplit(parts._replace(query=urlencode(kept)))}
    args: dict[str, Any] = {}
    pos = 0
    while pos < len(text):
        match = _KEYWORD.match(text, pos)
        if match is None:
            raise ValueError(f"cannot parse connection string near {text[pos : pos + 20]!r}")
        key, raw = match.group(1).lower(), match.group(2)
        value = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith("'") else raw
        pos = match.end()
        if key in _POOL_KEYS:
            continue
        if key not in _CONNECT_KEYS:
            log.warning("ignoring connection string keyword %r", key)
            continue
        if key == "dbname":
            key = "database"
        if key == "port":
            args["port"] = int(value)
        elif key == "sslmode":
            args["ssl"] = value
        elif key == "connect_timeout":
            args["timeout"] = float(value)
        elif key == "application_name":
            args["server_settings"] = {"application_name": value}
        else:
            args[key] = value
    return args


def connection(opts: Options, dsn: str | None = None) -> dict[str, Any]:
    """The driver's connect arguments from `connectionString` (or `dsn`, read by the caller under
    another name); the string itself never appears in an error: it may hold a password."""
    if dsn is None:
        dsn = opts.required("connectionString", HINT)
    try:
        return connect_args(dsn)
    except ValueError as exc:
        raise opts.invalid("connectionString", "(hidden)", f"valid: {exc}") from None


async def open_pool(
    connect: dict[str, Any], timeout: float, what: str, max_size: int = 5
) -> asyncpg.Pool:
    """A pool, or `errors.Unavailable` naming `what` when the server cannot be reached."""
    import asyncpg

    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            **connect, min_size=1, max_size=max_size, timeout=timeout
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise errors.Unavailable(f"{what}: cannot connect to PostgreSQL: {exc}") from exc
    return pool
