"""Typed reads of a state component's metadata, naming the component and key on failure."""

from __future__ import annotations

import re

from tether import errors
from tether.resources.component import ComponentSpec
from tether.resources.duration import parse_duration

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class Options:
    def __init__(self, spec: ComponentSpec) -> None:
        self.spec = spec

    def invalid(self, key: str, raw: str, expected: str) -> errors.StateComponentInvalid:
        where = f" ({self.spec.source})" if self.spec.source else ""
        return errors.StateComponentInvalid(
            f"state component '{self.spec.name}'{where}: metadata {key}={raw!r} is not {expected}"
        )

    def text(self, key: str, default: str = "") -> str:
        value = self.spec.get(key)
        return default if value is None or value == "" else value

    def optional(self, key: str) -> str | None:
        return self.spec.get(key) or None

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        raw = self.spec.get(key)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.invalid(key, raw, "an integer") from None
        if value < minimum:
            raise self.invalid(key, raw, f"an integer >= {minimum}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        raw = self.spec.get(key)
        if not raw:
            return default
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise self.invalid(key, raw, "true or false")

    def seconds(self, key: str, default: float) -> float:
        """A duration: Go style ("1h", "30s") or a bare number of seconds."""
        raw = self.spec.get(key)
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            pass
        try:
            value = parse_duration(raw)
        except ValueError:
            raise self.invalid(key, raw, "a duration such as 1h or 30s") from None
        if value < 0:
            raise self.invalid(key, raw, "a positive duration")
        return value

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
