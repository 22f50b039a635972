"""`secretstores.local.file`: secrets from one JSON file, read when the component loads.

Metadata: `secretsFile` (required; a relative path is taken from the runtime's working
directory, as daprd does), `nestedSeparator` (":"), `multiValued` (false).

Single-valued (the default): nested objects and arrays are flattened, so
`{"db": {"password": "x"}, "hosts": ["a"]}` holds the secrets `db:password` and `hosts:0`, each
`{name: value}`. Multi-valued: each top-level key is one secret; a nested object becomes its
key/value pairs (flattened below that level), a string stays `{name: value}`. Edit the file and
touch the component's YAML (or restart) to reload it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tether import errors
from tether.components._options import Options
from tether.components.secretstores.base import (
    MULTIPLE_KEY_VALUES_PER_SECRET,
    SecretNotFound,
    SecretStore,
)
from tether.resources.component import ComponentSpec


class FileSecretStore(SecretStore):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        self._opts = opts
        self._path = Path(opts.required("secretsFile", "the JSON file holding the secrets"))
        self._separator = opts.text("nestedSeparator", ":")
        self._multi = opts.flag("multiValued", False)
        self._secrets: dict[str, dict[str, str]] = {}

    def features(self) -> frozenset[str]:
        return frozenset({MULTIPLE_KEY_VALUES_PER_SECRET}) if self._multi else frozenset()

    async def init(self) -> None:
        doc = await asyncio.to_thread(self._read)
        if self._multi:
            secrets: dict[str, dict[str, str]] = {}
            for name, value in doc.items():
                if isinstance(value, dict):
                    secrets[name] = self._flatten(value)
                else:
                    secrets[name] = {name: _text(value)}
            self._secrets = secrets
        else:
            self._secrets = {k: {k: v} for k, v in self._flatten(doc).items()}

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self._path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise self._opts.invalid("secretsFile", str(self._path), f"readable ({exc})") from exc
        except ValueError as exc:
            raise self._opts.invalid("secretsFile", str(self._path), f"valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise self._opts.invalid("secretsFile", str(self._path), "a JSON object")
        return doc

    def _flatten(self, node: Any, path: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        if isinstance(node, dict | list):
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                name = f"{path}{self._separator}{key}" if path else str(key)
                for k, v in self._flatten(child, name).items():
                    if k in out:
                        raise errors.ComponentInvalid(f"{self._path}: duplicate secret '{k}'")
                    out[k] = v
        else:
            out[path] = _text(node)
        return out

    async def get(self, name: str, metadata: Mapping[str, str]) -> dict[str, str]:
        secret = self._secrets.get(name)
        if secret is None:
            raise SecretNotFound(f"secret {name} not found")
        return dict(secret)

    async def bulk_get(self, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        return {name: dict(values) for name, values in self._secrets.items()}


def _text(value: Any) -> str:
    """A leaf as Dapr prints it: JSON scalars in their JSON spelling, strings as they are."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)
