"""`secretstores.local.env`: the runtime process' environment variables.

Metadata: `prefix` (only variables starting with it are secrets; the prefix is not part of the
secret's name). Like Dapr, variables that configure the runtime itself (`DAPR_*`,
`APP_API_TOKEN`, and Tether's own `TETHER_*`) are never served. Unlike daprd, which answers an
empty string, a variable that is not set is `SecretNotFound`: a component whose `secretKeyRef`
names a missing variable fails to load instead of connecting with an empty password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tether.components._options import Options
from tether.components.secretstores.base import SecretNotFound, SecretStore
from tether.resources.component import ComponentSpec

_HIDDEN_PREFIXES = ("DAPR_", "TETHER_")
_HIDDEN = frozenset({"APP_API_TOKEN"})


def _allowed(variable: str) -> bool:
    upper = variable.upper()
    return upper not in _HIDDEN and not upper.startswith(_HIDDEN_PREFIXES)


class EnvSecretStore(SecretStore):
    def __init__(self, spec: ComponentSpec) -> None:
        self._prefix = Options(spec).text("prefix")

    async def get(self, name: str, metadata: Mapping[str, str]) -> dict[str, str]:
        variable = self._prefix + name
        value = os.environ.get(variable) if _allowed(variable) else None
        if value is None:
            raise SecretNotFound(f"environment variable {variable} is not set")
        return {name: value}

    async def bulk_get(self, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for variable, value in os.environ.items():
            if not variable.startswith(self._prefix) or len(variable) <= len(self._prefix):
                continue
            if _allowed(variable):
                name = variable[len(self._prefix) :]
                found[name] = {name: value}
        return found
