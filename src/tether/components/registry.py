"""Maps a component type and version (`state.redis`, `v1`) to the factory that builds it.

Backends register lazily by module path, so optional drivers are imported only when a component
of that type is actually defined.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tether import errors
from tether.resources.component import ComponentSpec

Factory = Callable[[ComponentSpec], Any]

# (type, version) -> "module:attribute" of a factory taking a ComponentSpec.
_BUILTIN: dict[tuple[str, str], str] = {}
_LOADED: dict[tuple[str, str], Factory] = {}


class ComponentTypeUnknown(errors.TetherError):
    code = "ERR_COMPONENT_TYPE_UNKNOWN"
    http_status = 400


def register(type_name: str, version: str, target: str | Factory) -> None:
    """Register `target` ("pkg.module:factory" or a callable) for a type and version."""
    key = (type_name, version)
    if isinstance(target, str):
        _BUILTIN[key] = target
        _LOADED.pop(key, None)
    else:
        _LOADED[key] = target


def known_types() -> list[tuple[str, str]]:
    return sorted(set(_BUILTIN) | set(_LOADED))


def factory_for(spec: ComponentSpec) -> Factory:
    key = (spec.type, spec.version or "v1")
    if key in _LOADED:
        return _LOADED[key]
    target = _BUILTIN.get(key)
    if target is None:
        kinds = ", ".join(f"{t}/{v}" for t, v in known_types() if t.startswith(spec.kind + "."))
        raise ComponentTypeUnknown(
            f"{spec.source or 'component'} '{spec.name}': type '{spec.type}' version "
            f"'{spec.version}' is not supported; known {spec.kind} types: {kinds or 'none'}"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ComponentTypeUnknown(
            f"component '{spec.name}' of type '{spec.type}' needs an optional driver that is "
            f"not installed ({exc.name}); install it with `pip install 'tether[{spec.kind}]'`"
        ) from exc
    built: Factory = getattr(module, attr)
    _LOADED[key] = built
    return built


def build(spec: ComponentSpec) -> Any:
    return factory_for(spec)(spec)
