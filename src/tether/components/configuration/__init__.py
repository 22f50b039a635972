"""Configuration stores: the contract in `base`, one module per backend."""

from __future__ import annotations

from tether.components import registry

#: Dapr component type -> "module:factory" taking a ComponentSpec.
BACKENDS: dict[str, str] = {
    "configuration.redis": "tether.components.configuration.redis:RedisConfigurationStore",
    "configuration.postgresql": (
        "tether.components.configuration.postgres:PostgresConfigurationStore"
    ),
}


def register() -> None:
    """Add the built-in configuration stores to the component registry (idempotent)."""
    for type_name, target in BACKENDS.items():
        registry.register(type_name, "v1", target)
    registry.register("configuration.postgres", "v1", BACKENDS["configuration.postgresql"])
