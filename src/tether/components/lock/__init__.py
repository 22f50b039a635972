"""Distributed lock stores: the contract in `base`, one module per backend."""

from __future__ import annotations

from tether.components import registry

#: Dapr component type -> "module:factory" taking a ComponentSpec.
BACKENDS: dict[str, str] = {
    "lock.redis": "tether.components.lock.redis:RedisLockStore",
    "lock.postgresql": "tether.components.lock.postgres:PostgresLockStore",
}


def register() -> None:
    """Add the built-in lock stores to the component registry (idempotent)."""
    for type_name, target in BACKENDS.items():
        registry.register(type_name, "v1", target)
