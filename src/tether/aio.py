"""Small asyncio helpers shared across the server."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("tether")


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("operation finished after its caller left", exc_info=task.exception())


def uncancellable(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Awaitable[R]]:
    """Run the operation to its end even when the caller is cancelled.

    A gRPC or HTTP handler is cancelled when its client disconnects. An operation that commits
    and then updates memory must not stop between the two: the commit would be durable while
    the engine never acts on it (an activity never dispatched, an event never delivered).
    """

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        task = asyncio.ensure_future(fn(*args, **kwargs))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    return wrapper
