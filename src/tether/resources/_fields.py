"""Typed reads of a parsed YAML document that name the file and field path when they fail."""

from __future__ import annotations

import json
from typing import NoReturn

from tether.errors import ResourceInvalid
from tether.resources.duration import parse_duration


def kind_of(value: object) -> str:
    """What a YAML value is, in words for an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else type(value).__name__


class Node:
    """One value in a document with where it came from: `source` (file) and `path` (field)."""

    __slots__ = ("path", "source", "value")

    def __init__(self, value: object, path: str, source: str) -> None:
        self.value = value
        self.path = path
        self.source = source

    def fail(self, message: str) -> NoReturn:
        where = f"{self.source}: {self.path}" if self.path else self.source
        raise ResourceInvalid(f"{where}: {message}")

    def _sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    # --- structure --------------------------------------------------------------------------

    def mapping(self) -> dict[str, object]:
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, got {kind_of(self.value)}")
        return self.value

    def get(self, key: str) -> Node | None:
        """The child at `key`, or None when it is absent or null."""
        value = self.mapping().get(key)
        return None if value is None else Node(value, self._sub(key), self.source)

    def require(self, key: str) -> Node:
        node = self.get(key)
        if node is None:
            self.fail(f"missing '{key}'")
        return node

    def items(self) -> list[tuple[str, Node]]:
        """A mapping's entries; keys must be strings."""
        out = []
        for key, value in self.mapping().items():
            if not isinstance(key, str):
                self.fail(f"keys must be strings, got {key!r}")
            out.append((key, Node(value, self._sub(key), self.source)))
        return out

    def elements(self) -> list[Node]:
        if not isinstance(self.value, list):
            self.fail(f"expected a list, got {kind_of(self.value)}")
        return [Node(v, f"{self.path}[{i}]", self.source) for i, v in enumerate(self.value)]

    # --- scalars ----------------------------------------------------------------------------

    def string(self) -> str:
        """A non-empty string; numbers are not silently turned into names."""
        if not isinstance(self.value, str):
            self.fail(f"expected a string, got {kind_of(self.value)}")
        if not self.value.strip():
            self.fail("must not be empty")
        return self.value

    def text(self) -> str:
        """Any scalar as Dapr stringifies metadata: `true`, `6379`; mappings and lists as JSON."""
        value = self.value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, dict | list):
            return json.dumps(value, separators=(",", ":"), default=str)
        if value is None:
            return ""
        return str(value)  # dates and times YAML parsed for us

    def integer(self, minimum: int | None = None) -> int:
        value = self.value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected an integer, got {kind_of(self.value)}")
        if minimum is not None and value < minimum:
            self.fail(f"must be at least {minimum}, got {value}")
        return value

    def boolean(self) -> bool:
        value = self.value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.fail(f"expected true or false, got {kind_of(value)}")
        return value

    def duration(self) -> float:
        """Seconds in a Go duration ("5s", "1m30s"); a bare number is milliseconds, as in Dapr."""
        value = self.value
        if isinstance(value, bool):
            self.fail("expected a duration like 5s, got a boolean")
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            seconds = int(value) / 1000
        elif isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                self.fail(str(exc))
        else:
            self.fail(f"expected a duration like 5s, got {kind_of(value)}")
        if seconds < 0:
            self.fail(f"duration must not be negative, got {value!r}")
        return seconds

    def choice(self, *allowed: str) -> str:
        """A string from `allowed`, compared case-insensitively, returned as spelled there."""
        text = self.string()
        for option in allowed:
            if text.lower() == option.lower():
                return option
        self.fail(f"expected one of {', '.join(allowed)}, got {text!r}")

    def strings(self) -> tuple[str, ...]:
        """A list of non-empty strings (scopes, HTTP verbs)."""
        return tuple(node.string() for node in self.elements())
