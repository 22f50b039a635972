"""The component host: builds the components a resources folder defines, serves them by name and
scope, and keeps them in step with the folder while the server runs.

Lifecycle of one component: its `secretKeyRef`s are resolved through the secret stores (which
are built first), the registry's factory builds it from the resolved `ComponentSpec`, and its
`init()` runs under `spec.initTimeout` (default 10 s). A component that fails any step is logged
with its file and the reason and left out; the others load regardless, and the server starts.

Hot reload: the `ResourceWatcher` polls the folder. On a change, new and changed components are
built first and swapped in only once `init()` succeeded; then removed ones are closed. A
component whose definition did not change (after secret resolution) keeps its instance, so a
reload never interrupts it. A changed component whose new version fails keeps serving the
previous one (and the failure is logged), like a broken file keeps the previous resources.

Built-in defaults: unless the folder defines a component of the same name, `tether dev` serves
`statestore` (`state.sqlite`) and `pubsub` (`pubsub.sqlite`), both in the data directory, so the
Dapr quickstarts run against a bare server. Every component's metadata gets `tetherDataDir` (the
server's data directory) for SQLite-backed components to default their files under.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tether import errors
from tether.components import registry
from tether.resources.component import ComponentSpec
from tether.resources.component_resource import Component, resolve_secrets
from tether.resources.loader import ResourceSet, parse_text, resource_files
from tether.resources.subscription import Subscription
from tether.resources.watch import ResourceWatcher
from tether.runtime.metrics import ComponentMetrics

log = logging.getLogger("tether.components")

DATA_DIR_KEY = "tetherDataDir"
DEFAULT_INIT_TIMEOUT = 10.0
BUILTIN_SOURCE = "(built-in default)"
DEFAULTS: tuple[Component, ...] = (
    Component(name="statestore", type="state.sqlite", source=BUILTIN_SOURCE),
    Component(name="pubsub", type="pubsub.sqlite", source=BUILTIN_SOURCE),
)
#: Building blocks built before all others, in this order.
_FIRST = ("secretstores",)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A live component: what it was built from and the instance serving it."""

    resource: Component
    spec: ComponentSpec
    instance: Any


@dataclass(frozen=True, slots=True)
class Change:
    """What one reload did; `updated` components appear with their new instance."""

    added: tuple[Loaded, ...] = ()
    updated: tuple[Loaded, ...] = ()
    removed: tuple[Loaded, ...] = ()


Listener = Callable[[Change], Awaitable[None]]


def register_builtin_types() -> None:
    """Register every building block's built-in backends (idempotent)."""
    from tether.components import bindings, configuration, lock, pubsub, secretstores, state

    for package in (state, pubsub, secretstores, configuration, lock, bindings):
        package.register()


def capabilities(kind: str, instance: object) -> list[str]:
    """What the metadata API lists for a component: its features, or its binding directions."""
    if kind == "bindings":
        from tether.components.bindings.base import capabilities as binding_capabilities

        return binding_capabilities(instance)
    features = getattr(instance, "features", None)
    if features is None:
        return []
    try:
        return sorted(str(f) for f in features())
    except Exception:  # a component must not break the metadata endpoint
        return []


class NoComponents:
    """The host of a runtime that has no components (tests, tools)."""

    def find(self, kind: str, name: str, app_id: str) -> Any | None:
        return None

    def specs(self, app_id: str | None = None) -> list[ComponentSpec]:
        return []

    def subscriptions(self, app_id: str) -> list[Subscription]:
        return []


class ComponentHost:
    """Live components by name; implements `tether.runtime.contracts.ComponentHost`."""

    def __init__(
        self,
        data_dir: Path,
        resources: Path | Sequence[Path] | None = None,
        *,
        defaults: bool = True,
        poll_interval: float = 1.0,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
        metrics: ComponentMetrics | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._metrics = metrics or ComponentMetrics()
        self._resources = resources
        self._defaults = defaults
        self._poll_interval = poll_interval
        self._init_timeout = init_timeout
        self._live: dict[str, Loaded] = {}
        self._subscriptions: tuple[Subscription, ...] = ()
        self._listeners: list[Listener] = []
        self._resource_listeners: list[Callable[[ResourceSet], None]] = []
        self._watcher: ResourceWatcher | None = None
        self._lock = asyncio.Lock()
        #: The last failure of each component that is not (or not in its latest form) serving.
        self.failures: dict[str, str] = {}

    # --- ComponentHost protocol -------------------------------------------------------------

    def find(self, kind: str, name: str, app_id: str) -> Any | None:
        loaded = self._live.get(name)
        if loaded is None or loaded.spec.kind != kind or not loaded.spec.allows(app_id):
            return None
        return loaded.instance

    def specs(self, app_id: str | None = None) -> list[ComponentSpec]:
        return [
            loaded.spec
            for loaded in self._live.values()
            if app_id is None or loaded.spec.allows(app_id)
        ]

    def subscriptions(self, app_id: str) -> list[Subscription]:
        return [s for s in self._subscriptions if not s.scopes or app_id in s.scopes]

    # --- lifecycle --------------------------------------------------------------------------

    def on_change(self, listener: Listener) -> None:
        """Call `listener` after every reload that changed components or subscriptions (input
        bindings and pub/sub use it to follow them)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        register_builtin_types()
        resources = ResourceSet()
        if self._resources is not None:
            self._watcher = ResourceWatcher(
                self._resources, self.apply, self._poll_interval, loader=load_tolerant
            )
            resources = await self._watcher.start()
        await self.apply(resources)

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
            self._watcher = None
        async with self._lock:
            live, self._live = list(self._live.values()), {}
        await asyncio.gather(*(_close(loaded) for loaded in live))

    def on_resources(self, listener: Callable[[ResourceSet], None]) -> None:
        """Call `listener` with every resource set loaded, at start and on each reload (the
        resiliency policies follow the folder this way)."""
        self._resource_listeners.append(listener)

    async def apply(self, resources: ResourceSet) -> None:
        """Make the live components match `resources` (plus the built-in defaults)."""
        for follow in self._resource_listeners:
            follow(resources)
        async with self._lock:
            subscriptions_changed = self._subscriptions != resources.subscriptions
            self._subscriptions = resources.subscriptions
            wanted = list(resources.components)
            if self._defaults:
                named = {c.name for c in wanted}
                wanted += [c for c in DEFAULTS if c.name not in named]
            names = {c.name for c in wanted}
            for name in list(self.failures):
                if name not in names:
                    del self.failures[name]
            added: list[Loaded] = []
            updated: list[tuple[Loaded, Loaded]] = []
            first = [c for c in wanted if c.type.split(".", 1)[0] in _FIRST]
            rest = [c for c in wanted if c.type.split(".", 1)[0] not in _FIRST]
            for batch in (first, rest):
                built = await asyncio.gather(*(self._build_if_changed(c) for c in batch))
                for loaded in built:
                    if loaded is None:
                        continue
                    previous = self._live.get(loaded.spec.name)
                    self._live[loaded.spec.name] = loaded
                    if previous is None:
                        added.append(loaded)
                    else:
                        updated.append((previous, loaded))
            removed = [self._live.pop(n) for n in list(self._live) if n not in names]
            for loaded in added:
                log.info("component loaded", extra=_describe(loaded.spec))
            for _, loaded in updated:
                log.info("component reloaded", extra=_describe(loaded.spec))
                self._metrics.reloads.labels(loaded.spec.type).inc()
            for loaded in removed:
                log.info("component removed", extra=_describe(loaded.spec))
        change = Change(tuple(added), tuple(new for _, new in updated), tuple(removed))
        if added or updated or removed or subscriptions_changed:
            for listener in self._listeners:
                try:
                    await listener(change)
                except Exception:
                    log.exception("component change listener failed")
        await asyncio.gather(*(_close(old) for old in [*removed, *(o for o, _ in updated)]))

    async def _build_if_changed(self, resource: Component) -> Loaded | None:
        """The new `Loaded` for `resource`, or None when it is unchanged or failed to build."""
        where = f"component '{resource.name}' ({resource.source or 'unknown file'})"
        try:
            spec = await resolve_secrets(resource, self._secret)
        except (errors.TetherError, LookupError) as exc:
            self._failed(resource, where, f"secretKeyRef not resolved: {_reason(exc)}")
            return None
        metadata = dict(spec.metadata)
        metadata.setdefault(DATA_DIR_KEY, str(self._data_dir))
        spec = replace(spec, metadata=metadata)
        current = self._live.get(resource.name)
        if current is not None and current.spec == spec:
            self.failures.pop(resource.name, None)
            return None
        try:
            _check_key_prefix(spec)
            instance = registry.build(spec)
        except Exception as exc:
            self._failed(resource, where, _reason(exc))
            return None
        timeout = resource.init_timeout or self._init_timeout
        try:
            init = getattr(instance, "init", None)
            if init is not None:
                await asyncio.wait_for(init(), timeout)
        except Exception as exc:
            reason = f"init did not finish in {timeout:g}s" if isinstance(
                exc, asyncio.TimeoutError
            ) else _reason(exc)  # fmt: skip
            await _close(Loaded(resource, spec, instance))
            self._failed(resource, where, f"init failed: {reason}")
            return None
        self.failures.pop(resource.name, None)
        return Loaded(resource, spec, instance)

    def _failed(self, resource: Component, where: str, reason: str) -> None:
        kept = " (the previous version keeps serving)" if resource.name in self._live else ""
        log.error("%s is not loaded: %s%s", where, reason, kept)
        self.failures[resource.name] = reason
        self._metrics.failures.labels(resource.type).inc()

    async def _secret(self, store: str, name: str, key: str) -> str:
        loaded = self._live.get(store)
        if loaded is None or loaded.spec.kind != "secretstores":
            raise errors.ResourceInvalid(f"secret store '{store}' is not loaded")
        values = await loaded.instance.get(name, {})
        if key not in values:
            raise errors.ResourceInvalid(f"secret '{name}' in store '{store}' has no key '{key}'")
        return str(values[key])


def load_tolerant(paths: Path | str | Sequence[Path | str]) -> ResourceSet:
    """Like `loader.load`, but a broken file is logged (with file and field) and skipped, so the
    rest of the folder still loads. A document that repeats an earlier name is skipped too."""
    try:
        files = resource_files(paths)
    except errors.ResourceInvalid as exc:
        log.error("resources not loaded: %s", exc.message)
        return ResourceSet()
    found: dict[str, list[Any]] = {"Component": [], "Subscription": [], "Resiliency": [],
                                   "Configuration": []}  # fmt: skip
    warnings: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for path, display in files:
        try:
            parsed = parse_text(path.read_text(encoding="utf-8"), display, warnings)
        except (OSError, UnicodeDecodeError) as exc:
            log.error("%s: cannot read: %s; skipped", display, exc)
            continue
        except errors.ResourceInvalid as exc:
            log.error("%s; the file is skipped", exc.message)
            continue
        for kind, resource in parsed:
            first = seen.setdefault((kind, resource.name), resource.source)
            if first != resource.source:
                log.error(
                    "%s: %s '%s' is already defined in %s; skipped",
                    resource.source, kind, resource.name, first,
                )  # fmt: skip
                continue
            found.setdefault(kind, []).append(resource)
    for line in warnings:
        log.warning(line)
    return ResourceSet(
        components=tuple(found["Component"]),
        subscriptions=tuple(found["Subscription"]),
        resiliencies=tuple(found["Resiliency"]),
        configurations=tuple(found["Configuration"]),
        warnings=tuple(warnings),
    )


def _check_key_prefix(spec: ComponentSpec) -> None:
    prefix = spec.get("keyPrefix")
    if spec.kind in ("state", "lock") and prefix and "||" in prefix:
        raise errors.ComponentInvalid(f"metadata keyPrefix={prefix!r} must not contain '||'")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, errors.TetherError):
        return exc.message
    return str(exc) or type(exc).__name__


def _describe(spec: ComponentSpec) -> dict[str, str]:
    return {"component": spec.name, "type": f"{spec.type}/{spec.version}", "file": spec.source}


async def _close(loaded: Loaded) -> None:
    close = getattr(loaded.instance, "close", None)
    if close is None:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(close(), 10.0)
