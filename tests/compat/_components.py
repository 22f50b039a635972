"""Helpers for suites that run `tether dev` with a folder of component YAML."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from dapr.clients import DaprClient

from tests.fixtures.tether import TetherProcess


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


@contextmanager
def dapr_client(server: TetherProcess) -> Iterator[DaprClient]:
    """The official SDK's client, pointed at `server` the way an app's environment would."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in server.env().items():
            mp.setenv(key, value)
        client = DaprClient(address=server.grpc_address)
        try:
            yield client
        finally:
            client.close()


@contextmanager
def http_client(server: TetherProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=10) as client:
        yield client
