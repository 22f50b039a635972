"""The Dapr configuration API, transport-neutral.

Subscriptions are the store's own; the transports keep the streams or app deliveries that
consume them and unsubscribe when those end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tether import errors
from tether.components.configuration.base import ConfigItem, ConfigurationStore, UpdateHandler
from tether.runtime.contracts import ComponentHost


def item_json(item: ConfigItem) -> dict[str, object]:
    """An item as daprd writes it in JSON."""
    return {"value": item.value, "version": item.version, "metadata": dict(item.metadata)}


class ConfigurationApi:
    def __init__(self, components: ComponentHost) -> None:
        self._components = components

    def store(self, app_id: str, name: str) -> ConfigurationStore:
        if not any(s.kind == "configuration" for s in self._components.specs(app_id)):
            raise errors.ConfigurationStoresNotConfigured("configuration stores not configured")
        store = self._components.find("configuration", name, app_id)
        if store is None:
            raise errors.ConfigurationStoreNotFound(f"configuration store {name} not found")
        return store  # type: ignore[no-any-return]

    async def get(
        self, app_id: str, store_name: str, keys: Sequence[str], metadata: Mapping[str, str]
    ) -> dict[str, ConfigItem]:
        store = self.store(app_id, store_name)
        try:
            return await store.get(keys, metadata)
        except errors.TetherError as exc:
            raise errors.ConfigurationGetFailed(
                f"failed to get {list(keys)} from Configuration store {store_name}: {exc.message}"
            ) from exc

    async def subscribe(
        self,
        app_id: str,
        store_name: str,
        keys: Sequence[str],
        metadata: Mapping[str, str],
        handler: UpdateHandler,
    ) -> tuple[ConfigurationStore, str]:
        store = self.store(app_id, store_name)
        try:
            return store, await store.subscribe(sorted(keys), metadata, handler)
        except errors.BadRequest:
            raise
        except errors.TetherError as exc:
            raise errors.ConfigurationSubscribeFailed(
                f"failed to subscribe {list(keys)} from Configuration store {store_name}: "
                f"{exc.message}"
            ) from exc

    async def unsubscribe(self, app_id: str, store_name: str, subscription_id: str) -> None:
        store = self.store(app_id, store_name)
        try:
            found = await store.unsubscribe(subscription_id)
        except errors.TetherError as exc:
            found, reason = False, exc.message
        else:
            reason = "subscription does not exist"
        if not found:
            raise errors.ConfigurationUnsubscribeFailed(
                f"failed to unsubscribe to configuration request {subscription_id}: {reason}"
            )
