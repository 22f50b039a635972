"""The distributed lock contract (Dapr's lock API, alpha).

A lock is a resource id held by one owner until it is released or its expiry passes.

- `try_lock` never waits: it returns True when `owner` now holds the lock for
  `expiry_seconds`, and False when anyone (the same owner included) already holds it. It is not
  re-entrant and does not extend a held lock.
- `unlock` releases only the owner's own lock and says why it did not otherwise.
- An expired lock is free: `try_lock` takes it and `unlock` answers `LOCK_DOES_NOT_EXIST`.
- Backend failures raise `errors.Unavailable`; the runtime reports them as `ERR_TRY_LOCK` /
  `ERR_UNLOCK`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import IntEnum


class UnlockStatus(IntEnum):
    """Values of Dapr's `UnlockResponse.Status`."""

    SUCCESS = 0
    LOCK_DOES_NOT_EXIST = 1
    LOCK_BELONGS_TO_OTHERS = 2
    INTERNAL_ERROR = 3


class LockStore(ABC):
    def features(self) -> frozenset[str]:
        return frozenset()

    async def init(self) -> None:  # noqa: B027 - optional hook
        """Connect. Raises `ComponentInvalid` for bad metadata, `Unavailable` if unreachable."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Idempotent."""

    @abstractmethod
    async def try_lock(self, resource_id: str, owner: str, expiry_seconds: int) -> bool:
        """Take the lock if it is free; True when taken."""

    @abstractmethod
    async def unlock(self, resource_id: str, owner: str) -> UnlockStatus:
        """Release the owner's lock."""
