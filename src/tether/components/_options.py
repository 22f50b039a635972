"""Typed reads of a component's metadata, naming the component and key when a value is wrong.

One reader for every building block; a block that reports its own error code subclasses it and
sets `error` and `label` (see `state._options`, `pubsub._options`).
"""

from __future__ import annotations

from tether import errors
from tether.resources.component import ComponentSpec
from tether.resources.duration import parse_duration


class Options:
    #: The error every failed read raises, and how messages name the component.
    error: type[errors.TetherError] = errors.ComponentInvalid
    label: str = "component"

    def __init__(self, spec: ComponentSpec) -> None:
        self.spec = spec

    def _where(self) -> str:
        where = f" ({self.spec.source})" if self.spec.source else ""
        return f"{self.label} '{self.spec.name}'{where}"

    def invalid(self, key: str, raw: str, expected: str) -> errors.TetherError:
        return self.error(f"{self._where()}: metadata {key}={raw!r} is not {expected}")

    def missing(self, key: str, what: str) -> errors.TetherError:
        return self.error(f"{self._where()}: metadata '{key}' is required ({what})")

    def text(self, key: str, default: str = "") -> str:
        value = self.spec.get(key)
        return default if value is None or value == "" else value

    def optional(self, key: str) -> str | None:
        return self.spec.get(key) or None

    def required(self, key: str, what: str) -> str:
        value = self.spec.get(key)
        if not value:
            raise self.missing(key, what)
        return value

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
        if lowered in ("true", "1", "yes", "on", "y"):
            return True
        if lowered in ("false", "0", "no", "off", "n"):
            return False
        raise self.invalid(key, raw, "true or false")

    def seconds(self, key: str, default: float) -> float:
        """A duration: Go style ("1h", "30s") or a bare number of seconds."""
        raw = self.spec.get(key)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            try:
                value = parse_duration(raw)
            except ValueError:
                raise self.invalid(key, raw, "a duration such as 1h or 30s") from None
        if value < 0:
            raise self.invalid(key, raw, "a positive duration")
        return value

    # Pub/sub components name this "duration"; it is the same read.
    duration = seconds

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value.lower() not in allowed:
            raise self.invalid(key, value, "one of " + ", ".join(allowed))
        return value.lower()
