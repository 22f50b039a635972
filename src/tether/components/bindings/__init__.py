"""Bindings: the input and output contracts in `base`, one module per backend."""

from __future__ import annotations

from tether.components import registry

#: Dapr component type -> "module:factory" taking a ComponentSpec.
BACKENDS: dict[str, str] = {
    "bindings.http": "tether.components.bindings.http:HttpBinding",
    "bindings.postgresql": "tether.components.bindings.postgres:PostgresBinding",
    "bindings.redis": "tether.components.bindings.redis:RedisBinding",
    "bindings.cron": "tether.components.bindings.cron:CronBinding",
}


def register() -> None:
    """Add the built-in bindings to the component registry (idempotent)."""
    for type_name, target in BACKENDS.items():
        registry.register(type_name, "v1", target)
    registry.register("bindings.postgres", "v1", BACKENDS["bindings.postgresql"])
