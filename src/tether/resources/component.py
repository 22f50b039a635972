"""The `Component` resource, as the runtime consumes it once loaded and validated."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """A loaded `dapr.io/v1alpha1` Component with its metadata resolved to plain strings.

    `secretKeyRef` entries are resolved before a spec reaches a factory, so components never
    see references.
    """

    #: metadata.name: what apps call it (`/v1.0/state/{name}`).
    name: str
    #: spec.type, e.g. `state.redis`.
    type: str
    #: spec.version, e.g. `v1`.
    version: str = "v1"
    metadata: dict[str, str] = field(default_factory=dict)
    #: App IDs allowed to use it; empty means every App ID.
    scopes: tuple[str, ...] = ()
    #: Where it was defined, for error messages ("components/redis.yaml").
    source: str = ""

    @property
    def kind(self) -> str:
        """The building block: `state`, `pubsub`, `bindings`, ..."""
        return self.type.split(".", 1)[0]

    def allows(self, app_id: str) -> bool:
        return not self.scopes or app_id in self.scopes

    def get(self, key: str, default: str | None = None) -> str | None:
        """Metadata lookup; Dapr metadata keys are case-insensitive."""
        if key in self.metadata:
            return self.metadata[key]
        lowered = key.lower()
        for k, v in self.metadata.items():
            if k.lower() == lowered:
                return v
        return default
