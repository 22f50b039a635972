"""Small asyncio helpers shared across the server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

R = TypeVar("R")


async def settle(aw: Awaitable[R]) -> R:
    """Await `aw` to its end even if the calling task is cancelled meanwhile.

    A gRPC or HTTP handler is cancelled when its client disconnects. A commit must not be
    abandoned halfway through the operation that issued it: the commit would be durable while
    the engine never acted on it (an activity never dispatched, an event never delivered).
    Everything an operation does after its commit is synchronous, so once this returns the
    operation completes; the cancellation has done its job of telling us the caller left.
    """
    fut = asyncio.ensure_future(aw)
    task = asyncio.current_task()
    while True:
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if fut.cancelled() or task is None:
                raise
            task.uncancel()
