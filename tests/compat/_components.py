"""Helpers for suites that run `tether dev` with a folder of component YAML."""

from __future__ import annotations

from pathlib import Path

import yaml


def component(
    name: str,
    type_name: str,
    metadata: dict[str, object] | None = None,
    *,
    scopes: list[str] | None = None,
    secret_store: str | None = None,
) -> dict[str, object]:
    """A Component document; a metadata value given as `{"secretKeyRef": ...}` stays one."""
    items = []
    for key, value in (metadata or {}).items():
        if isinstance(value, dict):
            items.append({"name": key, **value})
        else:
            items.append({"name": key, "value": str(value)})
    doc: dict[str, object] = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": type_name, "version": "v1", "metadata": items},
    }
    if scopes:
        doc["scopes"] = scopes
    if secret_store:
        doc["auth"] = {"secretStore": secret_store}
    return doc


def write_components(folder: Path, filename: str, *docs: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    return path
