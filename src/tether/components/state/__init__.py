"""State stores: the contract in `base`, one module per backend.

Backends are registered by module path, so a store's driver is imported only when a component
of its type is defined.
"""

from __future__ import annotations

from tether.components import registry

#: Dapr component type -> "module:factory" taking a ComponentSpec.
BACKENDS: dict[str, str] = {
    "state.in-memory": "tether.components.state.memory:MemoryStateStore",
    "state.sqlite": "tether.components.state.sqlite:SqliteStateStore",
    "state.postgresql": "tether.components.state.postgres:PostgresStateStore",
    "state.redis": "tether.components.state.redis:RedisStateStore",
}


def register() -> None:
    """Add the built-in state stores to the component registry (idempotent)."""
    for type_name, target in BACKENDS.items():
        registry.register(type_name, "v1", target)
    # Dapr's PostgreSQL store also exists as v2; Tether's table layout is its own in both cases.
    registry.register("state.postgresql", "v2", BACKENDS["state.postgresql"])
