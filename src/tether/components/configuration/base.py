"""The configuration store contract (Dapr's configuration API).

A configuration store holds items `key -> (value, version, metadata)` that something other than
the app writes; apps read them and subscribe to changes.

- `get(keys)` answers the items that exist among `keys` (all items when `keys` is empty);
  missing keys are simply absent.
- `subscribe(keys, handler)` starts watching and returns a subscription id at once. For every
  change the store calls `handler(id, items)` with the changed items; a deleted key arrives with
  an empty value and version. Changes that happen before `subscribe` returns may be missed.
  Handlers run on the event loop and must not block; a handler that raises is logged.
- `unsubscribe(id)` stops a subscription; False if the id is unknown.
- Backend failures raise `errors.Unavailable`.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("tether.configuration")


@dataclass(frozen=True, slots=True)
class ConfigItem:
    value: str
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


UpdateHandler = Callable[[str, dict[str, ConfigItem]], Awaitable[None]]


class ConfigurationStore(ABC):
    def features(self) -> frozenset[str]:
        return frozenset()

    async def init(self) -> None:  # noqa: B027 - optional hook
        """Connect. Raises `ComponentInvalid` for bad metadata, `Unavailable` if unreachable."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """End every subscription and release connections. Idempotent."""

    @abstractmethod
    async def get(self, keys: Sequence[str], metadata: Mapping[str, str]) -> dict[str, ConfigItem]:
        """The items among `keys` that exist (every item when `keys` is empty)."""

    @abstractmethod
    async def subscribe(
        self, keys: Sequence[str], metadata: Mapping[str, str], handler: UpdateHandler
    ) -> str:
        """Start delivering changes of `keys` (all keys when empty) to `handler`."""

    @abstractmethod
    async def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription; False when there is no such subscription."""


def new_subscription_id() -> str:
    return str(uuid.uuid4())


async def notify(
    handler: UpdateHandler, subscription_id: str, items: dict[str, ConfigItem]
) -> None:
    """Call a handler, logging (not raising) its failure: one bad consumer must not end a watch."""
    try:
        await handler(subscription_id, items)
    except Exception:
        log.exception("configuration update handler failed", extra={"id": subscription_id})
