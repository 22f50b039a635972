"""The Dapr output bindings API, transport-neutral."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tether import errors
from tether.components.bindings.base import BindingFailed, OutputBinding
from tether.runtime.contracts import ComponentHost


@dataclass(frozen=True, slots=True)
class BindingResult:
    data: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)


class BindingInvokeFailed(errors.BindingInvokeFailed):
    """`ERR_INVOKE_OUTPUT_BINDING`, with the metadata the target answered despite failing."""

    def __init__(self, message: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.metadata = dict(metadata or {})


class BindingsApi:
    def __init__(self, components: ComponentHost) -> None:
        self._components = components

    async def invoke(
        self,
        app_id: str,
        name: str,
        operation: str,
        data: bytes,
        metadata: Mapping[str, str],
    ) -> BindingResult:
        binding = self._components.find("bindings", name, app_id)
        if not isinstance(binding, OutputBinding):
            raise BindingInvokeFailed(
                f"error invoking output binding {name}: couldn't find output binding {name}"
            )
        if operation not in binding.operations():
            raise BindingInvokeFailed(
                f"error invoking output binding {name}: binding {name} does not support "
                f"operation {operation}. supported operations: "
                + " ".join(sorted(binding.operations()))
            )
        try:
            response = await binding.invoke(operation, data, metadata)
        except BindingFailed as exc:
            raise BindingInvokeFailed(
                f"error invoking output binding {name}: {exc.message}", exc.metadata
            ) from exc
        except errors.TetherError as exc:
            raise BindingInvokeFailed(
                f"error invoking output binding {name}: {exc.message}"
            ) from exc
        return BindingResult(response.data, response.metadata)
