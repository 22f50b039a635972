"""Durable timers' wake-up clock.

Timers themselves are inbox rows with a `visible_at`; this only remembers when to look at which
instance again, so nothing polls. One sleeping task serves every timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Callable
from datetime import datetime

from tether.workflow.model import utcnow


class TimerWheel:
    def __init__(self, wake: Callable[[str], None]) -> None:
        self._wake = wake
        self._heap: list[tuple[datetime, str]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tether-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def add(self, due: datetime, instance_id: str) -> None:
        heapq.heappush(self._heap, (due, instance_id))
        if self._heap[0][1] == instance_id:
            self._changed.set()

    def __len__(self) -> int:
        return len(self._heap)

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            now = utcnow()
            while self._heap and self._heap[0][0] <= now:
                _, iid = heapq.heappop(self._heap)
                self._wake(iid)
            timeout = (self._heap[0][0] - now).total_seconds() if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
