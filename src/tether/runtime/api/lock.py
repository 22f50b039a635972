"""The Dapr distributed lock API (alpha), transport-neutral.

Resource ids reach the store prefixed as daprd prefixes them (component metadata `keyPrefix`):
`lock||<appid>||<id>` by default, `lock||<store>||<id>` for `name`, `lock||<id>` for `none`.
"""

from __future__ import annotations

from tether import errors
from tether.components.lock.base import LockStore, UnlockStatus
from tether.resources.component import ComponentSpec
from tether.runtime.contracts import ComponentHost

SEPARATOR = "||"


class LockApi:
    def __init__(self, components: ComponentHost) -> None:
        self._components = components

    def _store(
        self, app_id: str, name: str, resource_id: str, owner: str
    ) -> tuple[LockStore, ComponentSpec]:
        specs = [s for s in self._components.specs(app_id) if s.kind == "lock"]
        if not specs:
            raise errors.LockStoresNotConfigured("lock store is not configured")
        if not resource_id:
            raise errors.BadRequest(f"ResourceId is empty in lock store {name}")
        if not owner:
            raise errors.BadRequest(f"LockOwner is empty in lock store {name}")
        spec = next((s for s in specs if s.name == name), None)
        store = self._components.find("lock", name, app_id)
        if spec is None or store is None:
            raise errors.LockStoreNotFound(f"lock store {name} not found")
        return store, spec

    @staticmethod
    def _key(spec: ComponentSpec, app_id: str, resource_id: str) -> str:
        if SEPARATOR in resource_id:
            raise errors.BadRequest(f"input key/keyPrefix '{resource_id}' can't contain '||'")
        strategy = (spec.get("keyPrefix") or "appid").lower()
        if strategy == "none" or (strategy == "appid" and not app_id):
            return f"lock||{resource_id}"
        if strategy == "name":
            return f"lock||{spec.name}||{resource_id}"
        prefix = app_id if strategy == "appid" else strategy
        return f"lock||{prefix}||{resource_id}"

    async def try_lock(
        self, app_id: str, store_name: str, resource_id: str, owner: str, expiry_seconds: int
    ) -> bool:
        if expiry_seconds <= 0:
            raise errors.BadRequest(f"ExpiryInSeconds is not positive in lock store {store_name}")
        store, spec = self._store(app_id, store_name, resource_id, owner)
        key = self._key(spec, app_id, resource_id)
        try:
            return await store.try_lock(key, owner, expiry_seconds)
        except errors.TetherError as exc:
            raise errors.TryLockFailed(f"failed to try acquiring lock: {exc.message}") from exc

    async def unlock(
        self, app_id: str, store_name: str, resource_id: str, owner: str
    ) -> UnlockStatus:
        store, spec = self._store(app_id, store_name, resource_id, owner)
        key = self._key(spec, app_id, resource_id)
        try:
            return await store.unlock(key, owner)
        except errors.TetherError as exc:
            raise errors.UnlockFailed(f"failed to release lock: {exc.message}") from exc
