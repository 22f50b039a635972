"""The components part of Dapr's metadata document (`GET /v1.0/metadata`, `GetMetadata`)."""

from __future__ import annotations

from typing import Any

from tether.runtime.components import capabilities
from tether.runtime.contracts import ComponentHost


def component_entries(components: ComponentHost, app_id: str) -> list[dict[str, Any]]:
    """`{name, type, version, capabilities}` of each component `app_id` may use."""
    entries = []
    for spec in sorted(components.specs(app_id), key=lambda s: s.name):
        instance = components.find(spec.kind, spec.name, app_id)
        entries.append(
            {
                "name": spec.name,
                "type": spec.type,
                "version": spec.version,
                "capabilities": capabilities(spec.kind, instance) if instance else [],
            }
        )
    return entries
