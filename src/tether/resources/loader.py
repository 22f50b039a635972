"""Loads a folder of Dapr resource YAML into a `ResourceSet`.

Like `daprd --resources-path`: every `*.yaml`/`*.yml` directly in the folder (not in subfolders;
hidden files are skipped), each possibly holding several `---`-separated documents. Documents of
kinds Tether does not serve, and non-Dapr documents, are skipped with a warning. Anything wrong in
a document Tether does serve is a `ResourceInvalid` that names the file and the field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tether.errors import ResourceInvalid
from tether.resources._fields import Node
from tether.resources.component_resource import Component, parse_component
from tether.resources.configuration import Configuration, parse_configuration
from tether.resources.resiliency import Resiliency, parse_resiliency
from tether.resources.subscription import Subscription, parse_subscription

log = logging.getLogger("tether.resources")

_SUFFIXES = (".yaml", ".yml")
_GROUP = "dapr.io/"
# kind -> (accepted apiVersions, parser)
_KINDS: dict[str, tuple[frozenset[str], Callable[[Node, str], Any]]] = {
    "Component": (frozenset({"dapr.io/v1alpha1"}), parse_component),
    "Subscription": (frozenset({"dapr.io/v2alpha1", "dapr.io/v1alpha1"}), parse_subscription),
    "Resiliency": (frozenset({"dapr.io/v1alpha1"}), parse_resiliency),
    "Configuration": (frozenset({"dapr.io/v1alpha1"}), parse_configuration),
}
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class ResourceSet:
    """Every resource found, in file order; names are unique within each kind."""

    components: tuple[Component, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    resiliencies: tuple[Resiliency, ...] = ()
    configurations: tuple[Configuration, ...] = ()
    #: One line per skipped document ("file: kind 'X' is not served; skipped").
    warnings: tuple[str, ...] = ()

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def configuration(self, name: str) -> Configuration | None:
        return next((c for c in self.configurations if c.name == name), None)

    def same_resources(self, other: ResourceSet) -> bool:
        """Equal apart from warnings: nothing a runtime would act on has changed."""
        return (
            self.components == other.components
            and self.subscriptions == other.subscriptions
            and self.resiliencies == other.resiliencies
            and self.configurations == other.configurations
        )


def resource_files(paths: Path | str | Sequence[Path | str]) -> list[tuple[Path, str]]:
    """(file, name used in messages) for every resource file under `paths`, in load order.

    A folder contributes its YAML files, named `<folder>/<file>`; a file stands for itself.
    """
    found: list[tuple[Path, str]] = []
    for entry in [paths] if isinstance(paths, str | Path) else paths:
        path = Path(entry)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix in _SUFFIXES and not child.name.startswith(".") and child.is_file():
                    found.append((child, f"{path.name}/{child.name}"))
        elif path.is_file():
            found.append((path, str(entry)))
        else:
            raise ResourceInvalid(f"{entry}: no such file or folder")
    return found


def load(paths: Path | str | Sequence[Path | str]) -> ResourceSet:
    """Load every resource under `paths` (folders or files). Raises `ResourceInvalid`."""
    kinds: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
    warnings: list[str] = []
    where: dict[tuple[str, str], str] = {}
    for path, display in resource_files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ResourceInvalid(f"{display}: cannot read: {exc}") from exc
        for kind, resource in parse_text(text, display, warnings):
            name = resource.name
            first = where.setdefault((kind, name), resource.source)
            if first != resource.source:
                raise ResourceInvalid(
                    f"{resource.source}: {kind} '{name}' is already defined in {first}"
                )
            kinds[kind].append(resource)
    for line in warnings:
        log.warning(line)
    return ResourceSet(
        components=tuple(kinds["Component"]),
        subscriptions=tuple(kinds["Subscription"]),
        resiliencies=tuple(kinds["Resiliency"]),
        configurations=tuple(kinds["Configuration"]),
        warnings=tuple(warnings),
    )


def parse_text(text: str, source: str, warnings: list[str]) -> list[tuple[str, Any]]:
    """(kind, resource) for each served document in a YAML text; skipped ones go to `warnings`."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise ResourceInvalid(f"{source}: {at}invalid YAML: {problem}") from exc
    parsed: list[tuple[str, Any]] = []
    for number, document in enumerate(documents, start=1):
        name = f"{source}#{number}" if len(documents) > 1 else source
        result = parse_document(document, name, warnings)
        if result is not None:
            parsed.append(result)
    return parsed


def parse_document(document: object, source: str, warnings: list[str]) -> tuple[str, Any] | None:
    """Parse one document; None (and a line in `warnings`) when its kind is not served."""
    root = Node(document, "", source)
    if not isinstance(document, dict):
        root.fail("expected a resource (a mapping with apiVersion, kind, metadata, spec)")
    api_version = root.require("apiVersion").string()
    kind = root.require("kind").string()
    if not api_version.startswith(_GROUP):
        warnings.append(f"{source}: {api_version} {kind} is not a Dapr resource; skipped")
        return None
    if kind not in _KINDS:
        served = ", ".join(_KINDS)
        warnings.append(f"{source}: kind '{kind}' is not served (only {served}); skipped")
        return None
    versions, parse = _KINDS[kind]
    if api_version not in versions:
        root.require("apiVersion").fail(
            f"{kind} must be {' or '.join(sorted(versions, reverse=True))}, got {api_version!r}"
        )
    name = root.require("metadata").require("name").string()
    return kind, parse(root, name)
