"""Typed reads of a state component's metadata, naming the component and key on failure."""

from __future__ import annotations

import re

from tether import errors
from tether.components import _options

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class Options(_options.Options):
    error = errors.StateComponentInvalid
    label = "state component"

    def table(self, key: str, default: str) -> str:
        """A SQL table name (optionally `schema.table`), safe to splice into statements."""
        value = self.text(key, default)
        if not _TABLE.match(value):
            raise self.invalid(key, value, "a table name (letters, digits, _; optional schema.)")
        return value


def cleanup_interval(opts: Options) -> float:
    """Seconds between deletions of expired rows (Dapr: `cleanupInterval` for SQLite,
    `cleanupIntervalInSeconds` for PostgreSQL; either is accepted). 0 or less disables it."""
    key = "cleanupIntervalInSeconds" if opts.optional("cleanupIntervalInSeconds") else None
    return opts.seconds(key or "cleanupInterval", 3600.0)
