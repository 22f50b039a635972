"""Hot reload: notice edits to the resource files and hand the new `ResourceSet` to a callback.

Polling, with no dependency: every `interval` seconds the watcher takes a snapshot (path, mtime,
size) of the resource files; when it differs, it reloads. A reload that fails (a half-written or
broken file) is logged and the previous good set stays in force; the next edit is tried again.
The callback runs only when the resources actually changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from tether.errors import ResourceInvalid
from tether.resources.loader import ResourceSet, load, resource_files

log = logging.getLogger("tether.resources")

OnChange = Callable[[ResourceSet], Awaitable[None]]
Snapshot = frozenset[tuple[str, int, int]]
#: Loads a resources folder (default: `loader.load`, which fails on the first broken file).
Loader = Callable[[Path | str | Sequence[Path | str]], ResourceSet]


def snapshot(paths: Path | str | Sequence[Path | str]) -> Snapshot:
    """What the watcher compares: each resource file's path, mtime (ns) and size."""
    entries: set[tuple[str, int, int]] = set()
    try:
        files = resource_files(paths)
    except ResourceInvalid:
        return frozenset()
    for path, _ in files:
        try:
            st = path.stat()
        except OSError:
            continue  # deleted between listing and stat: the next poll sees it gone
        entries.add((str(path), st.st_mtime_ns, st.st_size))
    return frozenset(entries)


class ResourceWatcher:
    """Reloads `paths` when their files change and calls `on_change` with each new good set."""

    def __init__(
        self,
        paths: Path | str | Sequence[Path | str],
        on_change: OnChange,
        interval: float = 1.0,
        loader: Loader = load,
    ) -> None:
        self._paths = paths
        self._on_change = on_change
        self._interval = interval
        # Swappable so that a host can skip broken files instead of keeping the whole old set.
        self._load = loader
        self._snapshot: Snapshot = frozenset()
        self._current = ResourceSet()
        self._task: asyncio.Task[None] | None = None
        #: The message of the last failed reload; None once a reload succeeds.
        self.last_error: str | None = None

    @property
    def current(self) -> ResourceSet:
        """The last set that loaded without error."""
        return self._current

    async def start(self) -> ResourceSet:
        """Load once (a broken folder raises `ResourceInvalid` here) and start polling."""
        self._snapshot = await asyncio.to_thread(snapshot, self._paths)
        self._current = await asyncio.to_thread(self._load, self._paths)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tether-resource-watch")
        return self._current

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def poll(self) -> bool:
        """Check once; True when a changed set was loaded and handed to the callback."""
        taken = await asyncio.to_thread(snapshot, self._paths)
        if taken == self._snapshot:
            return False
        self._snapshot = taken
        try:
            loaded = await asyncio.to_thread(self._load, self._paths)
        except ResourceInvalid as exc:
            self.last_error = exc.message
            log.error("resources not reloaded, keeping the previous ones: %s", exc.message)
            return False
        self.last_error = None
        if loaded.same_resources(self._current):
            self._current = loaded
            return False
        self._current = loaded
        log.info(
            "resources reloaded",
            extra={
                "components": len(loaded.components),
                "subscriptions": len(loaded.subscriptions),
            },
        )
        try:
            await self._on_change(loaded)
        except Exception:
            log.exception("resource change callback failed")
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.poll()
            except Exception:  # never let one bad poll end hot reload
                log.exception("resource watcher poll failed")
