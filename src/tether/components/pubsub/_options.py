"""Typed reads of component metadata, failing with the component and key in the message."""

from __future__ import annotations

from tether import errors
from tether.resources.component import ComponentSpec
from tether.resources.duration import parse_duration


class Options:
    """Metadata of one component; every getter validates and names the culprit on failure."""

    def __init__(self, spec: ComponentSpec) -> None:
        self.spec = spec

    def _invalid(self, key: str, raw: str, expected: str) -> errors.PubSubComponentInvalid:
        where = f" ({self.spec.source})" if self.spec.source else ""
        return errors.PubSubComponentInvalid(
            f"pubsub component '{self.spec.name}'{where}: metadata {key}={raw!r} is not {expected}"
        )

    def text(self, key: str, default: str = "") -> str:
        value = self.spec.get(key)
        return default if value is None or value == "" else value

    def optional(self, key: str) -> str | None:
        value = self.spec.get(key)
        return value or None

    def duration(self, key: str, default: float) -> float:
        """A duration: Go style ("30s", "500ms") or a bare number of seconds."""
        raw = self.spec.get(key)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            pass
        else:
            if value < 0:
                raise self._invalid(key, raw, "a positive duration")
            return value
        try:
            value = parse_duration(raw)
        except ValueError:
            raise self._invalid(key, raw, "a duration such as 30s or 500ms") from None
        if value < 0:
            raise self._invalid(key, raw, "a positive duration")
        return value

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        raw = self.spec.get(key)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self._invalid(key, raw, "an integer") from None
        if value < minimum:
            raise self._invalid(key, raw, f"an integer >= {minimum}")
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
        raise self._invalid(key, raw, "true or false")

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value.lower() not in allowed:
            raise self._invalid(key, value, "one of " + ", ".join(allowed))
        return value.lower()
