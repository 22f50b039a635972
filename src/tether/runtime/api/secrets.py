"""The Dapr secrets API, transport-neutral."""

from __future__ import annotations

from collections.abc import Mapping

from tether import errors
from tether.components.secretstores.base import SecretNotFound, SecretStore
from tether.runtime.contracts import ComponentHost


class SecretsApi:
    def __init__(self, components: ComponentHost) -> None:
        self._components = components

    def _store(self, app_id: str, name: str) -> SecretStore:
        if not any(s.kind == "secretstores" for s in self._components.specs(app_id)):
            raise errors.SecretStoresNotConfigured("secret store is not configured")
        store = self._components.find("secretstores", name, app_id)
        if store is None:
            raise errors.SecretStoreNotFound(f"failed finding secret store with key {name}")
        return store  # type: ignore[no-any-return]

    async def get(
        self, app_id: str, store_name: str, name: str, metadata: Mapping[str, str]
    ) -> dict[str, str]:
        store = self._store(app_id, store_name)
        try:
            return await store.get(name, metadata)
        except (SecretNotFound, errors.TetherError) as exc:
            raise errors.SecretGetFailed(
                f"failed getting secret with key {name} from secret store {store_name}: "
                f"{getattr(exc, 'message', None) or exc}"
            ) from exc

    async def bulk_get(
        self, app_id: str, store_name: str, metadata: Mapping[str, str]
    ) -> dict[str, dict[str, str]]:
        store = self._store(app_id, store_name)
        try:
            return await store.bulk_get(metadata)
        except errors.TetherError as exc:
            raise errors.SecretGetFailed(
                f"failed getting secrets from secret store {store_name}: {exc.message}"
            ) from exc
