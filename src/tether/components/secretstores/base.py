"""The secret store contract.

A secret is a name mapping to one or more key/value strings. Single-valued stores answer
`{name: value}`; multi-valued ones (feature `MULTIPLE_KEY_VALUES_PER_SECRET`) may answer several
keys. Stores are read-only for the runtime.

- `get` raises `SecretNotFound` for a name the store does not hold, and `errors.Unavailable`
  when the backend cannot be reached; the runtime reports both as `ERR_SECRET_GET`.
- `bulk_get` answers every secret the store is willing to list.
- Request `metadata` is backend specific and may be ignored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

MULTIPLE_KEY_VALUES_PER_SECRET = "MULTIPLE_KEY_VALUES_PER_SECRET"


class SecretNotFound(LookupError):
    """The store has no secret of that name."""


class SecretStore(ABC):
    def features(self) -> frozenset[str]:
        """Dapr feature names this store has (none by default)."""
        return frozenset()

    async def init(self) -> None:  # noqa: B027 - optional hook
        """Open files or connections. Raises `ComponentInvalid` for bad metadata."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""

    @abstractmethod
    async def get(self, name: str, metadata: Mapping[str, str]) -> dict[str, str]:
        """The secret `name` as key/value pairs; `SecretNotFound` if absent."""

    @abstractmethod
    async def bulk_get(self, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """Every secret, by name."""
