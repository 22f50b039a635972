"""The binding contracts: output bindings the app invokes, input bindings that emit events.

A binding component may be either or both (a class may subclass both ABCs).

**Output.** `invoke(operation, data, metadata)` performs one operation from `operations()` and
returns a `BindingResponse`. An operation the binding does not have, a request it cannot use and
a failing target all raise `BindingFailed`, which may carry response metadata (an HTTP status,
say) that the runtime still passes back to the caller.

**Input.** The runtime calls `start(handler)` once after `init`; from then on the binding calls
`await handler(event)` for each event, one at a time, and the handler returns True when the app
accepted it. What a refusal means is the binding's business (a queue would redeliver; a
schedule just moves on). `close()` stops emitting; the binding must not call the handler after
`close()` returned. Events are delivered at most once unless a backend says otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

#: Capability names daprd lists in the metadata API for bindings.
INPUT_BINDING = "INPUT_BINDING"
OUTPUT_BINDING = "OUTPUT_BINDING"


@dataclass(frozen=True, slots=True)
class BindingResponse:
    data: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BindingEvent:
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)


#: Receives one input event; True when the app accepted it.
InputHandler = Callable[[BindingEvent], Awaitable[bool]]


class BindingFailed(Exception):
    """An output operation failed; `metadata` is whatever the target still answered."""

    def __init__(self, message: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})


class _Lifecycle:
    async def init(self) -> None:
        """Connect or validate. Raises `ComponentInvalid` for bad metadata."""

    async def close(self) -> None:
        """Release resources and stop emitting. Idempotent."""


class OutputBinding(_Lifecycle, ABC):
    @abstractmethod
    def operations(self) -> frozenset[str]:
        """The operation names `invoke` accepts."""

    @abstractmethod
    async def invoke(
        self, operation: str, data: bytes, metadata: Mapping[str, str]
    ) -> BindingResponse:
        """Perform one operation; `BindingFailed` when it did not succeed."""


class InputBinding(_Lifecycle, ABC):
    @abstractmethod
    async def start(self, handler: InputHandler) -> None:
        """Begin emitting events to `handler` (returns at once; emitting runs in the background)."""


def capabilities(component: object) -> list[str]:
    """`INPUT_BINDING` and/or `OUTPUT_BINDING`, as daprd reports a binding component."""
    caps = []
    if isinstance(component, InputBinding):
        caps.append(INPUT_BINDING)
    if isinstance(component, OutputBinding):
        caps.append(OUTPUT_BINDING)
    return caps


def unsupported(name: str, operation: str, supported: frozenset[str]) -> BindingFailed:
    return BindingFailed(
        f"binding {name} does not support operation {operation!r} "
        f"(supported: {', '.join(sorted(supported))})"
    )
