"""Secret stores: the contract in `base`, one module per backend."""

from __future__ import annotations

from tether.components import registry

#: Dapr component type -> "module:factory" taking a ComponentSpec.
BACKENDS: dict[str, str] = {
    "secretstores.local.env": "tether.components.secretstores.env:EnvSecretStore",
    "secretstores.local.file": "tether.components.secretstores.file:FileSecretStore",
}


def register() -> None:
    """Add the built-in secret stores to the component registry (idempotent)."""
    for type_name, target in BACKENDS.items():
        registry.register(type_name, "v1", target)
