"""The `Component` resource as written: metadata values may still be secret references.

`resolve_secrets` turns it into the `ComponentSpec` that component factories receive, with every
`secretKeyRef` replaced by the secret's value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tether.errors import ResourceInvalid
from tether.resources._fields import Node
from tether.resources.component import ComponentSpec

#: Reads one secret: (secret store name, secret name, key) -> value.
SecretLookup = Callable[[str, str, str], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """`secretKeyRef: {name, key}`: the value is key `key` of secret `name` in the secret store."""

    name: str
    #: Dapr defaults the key to the secret's name.
    key: str


@dataclass(frozen=True, slots=True)
class MetadataItem:
    """One `spec.metadata` entry: exactly one of a plain value or a secret reference."""

    name: str
    value: str = ""
    secret_ref: SecretKeyRef | None = None


@dataclass(frozen=True, slots=True)
class Component:
    """A `dapr.io/v1alpha1` Component."""

    name: str
    #: `spec.type`, e.g. `state.redis`.
    type: str
    version: str = "v1"
    metadata: tuple[MetadataItem, ...] = ()
    #: App IDs allowed to use it; empty means every App ID.
    scopes: tuple[str, ...] = ()
    #: `auth.secretStore`: where `secretKeyRef`s are looked up.
    secret_store: str | None = None
    #: `spec.ignoreErrors`: a failing init is logged instead of failing the runtime.
    ignore_errors: bool = False
    #: `spec.initTimeout` in seconds, when given.
    init_timeout: float | None = None
    #: Where it was defined ("components/redis.yaml").
    source: str = ""

    @property
    def has_secret_refs(self) -> bool:
        return any(item.secret_ref is not None for item in self.metadata)

    def spec(self) -> ComponentSpec:
        """The spec of a component without secret references (else use `resolve_secrets`)."""
        if self.has_secret_refs:
            raise ResourceInvalid(
                f"{self.source}: component '{self.name}' has secretKeyRef metadata; "
                "resolve it with resolve_secrets"
            )
        return self._spec({item.name: item.value for item in self.metadata})

    def _spec(self, metadata: dict[str, str]) -> ComponentSpec:
        return ComponentSpec(
            name=self.name,
            type=self.type,
            version=self.version,
            metadata=metadata,
            scopes=self.scopes,
            source=self.source,
        )


async def resolve_secrets(
    component: Component, lookup: SecretLookup, default_store: str | None = None
) -> ComponentSpec:
    """The component's `ComponentSpec` with each `secretKeyRef` replaced by the secret's value.

    References are read from `auth.secretStore`, else from `default_store`; with neither, a
    reference is a `ResourceInvalid` naming the field. Errors raised by `lookup` propagate.
    """
    store = component.secret_store or default_store
    metadata: dict[str, str] = {}
    for index, item in enumerate(component.metadata):
        ref = item.secret_ref
        if ref is None:
            metadata[item.name] = item.value
            continue
        if store is None:
            raise ResourceInvalid(
                f"{component.source}: spec.metadata[{index}].secretKeyRef: component "
                f"'{component.name}' names no secret store; set auth.secretStore"
            )
        metadata[item.name] = await lookup(store, ref.name, ref.key)
    return component._spec(metadata)


def parse_component(doc: Node, name: str) -> Component:
    spec = doc.require("spec")
    type_name = spec.require("type").string()
    if "." not in type_name:
        spec.require("type").fail(f"expected '<building block>.<name>', got {type_name!r}")
    version_node = spec.get("version")
    version = version_node.text() if version_node is not None else "v1"
    metadata: list[MetadataItem] = []
    seen: dict[str, int] = {}
    entries = spec.get("metadata")
    for index, entry in enumerate(entries.elements() if entries is not None else []):
        item = _metadata_item(entry)
        earlier = seen.setdefault(item.name.lower(), index)
        if earlier != index:
            entry.fail(f"duplicate metadata '{item.name}' (also spec.metadata[{earlier}])")
        metadata.append(item)
    auth = doc.get("auth")
    store_node = auth.get("secretStore") if auth is not None else None
    ignore = spec.get("ignoreErrors")
    timeout = spec.get("initTimeout")
    scopes = doc.get("scopes")
    return Component(
        name=name,
        type=type_name,
        version=version or "v1",
        metadata=tuple(metadata),
        scopes=scopes.strings() if scopes is not None else (),
        secret_store=store_node.string() if store_node is not None else None,
        ignore_errors=ignore.boolean() if ignore is not None else False,
        init_timeout=timeout.duration() if timeout is not None else None,
        source=doc.source,
    )


def _metadata_item(entry: Node) -> MetadataItem:
    name = entry.require("name").string()
    value = entry.get("value")
    ref_node = entry.get("secretKeyRef")
    if ref_node is None:
        return MetadataItem(name, value.text() if value is not None else "")
    if value is not None:
        entry.fail(f"metadata '{name}' has both 'value' and 'secretKeyRef'")
    secret = ref_node.require("name").string()
    key_node = ref_node.get("key")
    key = key_node.string() if key_node is not None else secret
    return MetadataItem(name, secret_ref=SecretKeyRef(secret, key))
