"""Throwaway PostgreSQL databases, so no run inherits another's rows."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _execute(admin_url: str, sql: str) -> None:
    # psql needs no Python driver; psycopg is the fallback because the dbos
    # extra brings it along anyway.
    psql = shutil.which("psql")
    if psql is not None:
        subprocess.run(
            [psql, admin_url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return
    try:
        import psycopg
    except ImportError as exc:
        raise RuntimeError(
            "need psql on PATH or psycopg installed to create the throwaway database"
        ) from exc
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.encode())


@contextlib.contextmanager
def throwaway_database(admin_url: str, name: str) -> Iterator[str]:
    """Create database ``name`` (dropping any leftover first), yield its URL,
    drop it afterwards."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"refusing unsafe database name {name!r}")
    # FORCE ends sessions a crashed earlier run may have left behind.
    drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    _execute(admin_url, drop)
    _execute(admin_url, f"CREATE DATABASE {name}")
    try:
        yield with_database(admin_url, name)
    finally:
        _execute(admin_url, drop)
