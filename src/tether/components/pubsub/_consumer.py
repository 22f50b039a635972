"""What every backend's subscription needs besides the broker calls: run handlers with bounded
concurrency, turn failures into RETRY, drop expired messages, and stop cleanly.

A backend feeds deliveries in with `Runner.submit(message, token)` and settles them in its
`settle(token, outcome)` callback; the token is whatever the broker needs to ack (a stream id, a
NATS message, a delivery tag).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from tether.components.pubsub.base import Handler, Message, Outcome, Subscription, is_expired

log = logging.getLogger("tether.pubsub")

T = TypeVar("T")

Settle = Callable[[T, Message, Outcome], Awaitable[None]]
Abandon = Callable[[T], Awaitable[None]]


async def deliver(handler: Handler, message: Message) -> Outcome:
    """Call `handler` once; expiry short-circuits to DROP, an exception becomes RETRY."""
    if is_expired(message.metadata):
        log.info("dropping expired message", extra={"topic": message.topic, "id": message.id})
        return Outcome.DROP
    try:
        outcome = await handler(message)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning(
            "pub/sub handler failed; the message will be redelivered",
            extra={"topic": message.topic, "id": message.id},
            exc_info=True,
        )
        return Outcome.RETRY
    if not isinstance(outcome, Outcome):
        log.warning("handler returned %r instead of an Outcome; retrying", outcome)
        return Outcome.RETRY
    return outcome


class Runner(Generic[T]):
    """Runs one subscription's handlers, at most `limit` at a time."""

    def __init__(
        self,
        handler: Handler,
        settle: Settle[T],
        *,
        limit: int,
        abandon: Abandon[T] | None = None,
    ) -> None:
        self._handler = handler
        self._settle = settle
        self._abandon = abandon
        self._limit = max(1, limit)
        self._tasks: dict[asyncio.Task[None], T] = {}
        self._freed = asyncio.Event()
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def free(self) -> int:
        return max(0, self._limit - len(self._tasks))

    def tokens(self) -> list[T]:
        """Tokens of deliveries whose handler is still running (for lease renewal)."""
        return list(self._tasks.values())

    async def capacity(self) -> int:
        """Wait until at least one more handler may start; returns how many may."""
        while self.free() == 0:
            self._freed.clear()
            await self._freed.wait()
        return self.free()

    def submit(self, message: Message, token: T) -> None:
        if self._stopped:
            return  # left unacknowledged on purpose: the broker redelivers it
        task = asyncio.create_task(self._run(message, token), name=f"pubsub:{message.topic}")
        self._tasks[task] = token
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._freed.set()

    async def _run(self, message: Message, token: T) -> None:
        try:
            outcome = await deliver(self._handler, message)
            await self._settle(token, message, outcome)
        except asyncio.CancelledError:
            if self._abandon is not None:
                try:
                    await self._abandon(token)
                except Exception:
                    log.debug("could not hand back an abandoned message", exc_info=True)
            raise
        except Exception:
            # Settling failed (connection lost): the broker still holds the message unacked and
            # will redeliver it, which at-least-once allows.
            log.warning("could not settle a pub/sub message", exc_info=True)

    async def stop(self, drain: float) -> None:
        """Refuse new work, let running handlers finish for `drain` seconds, cancel the rest."""
        self._stopped = True
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=drain) if drain > 0 else ((), set(tasks))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def close_all(subscriptions: Iterable[Subscription]) -> None:
    """Close subscriptions together, so shutdown waits one drain period rather than one each."""
    await asyncio.gather(*(s.close() for s in list(subscriptions)))


async def forever(step: Callable[[], Awaitable[None]], what: str, max_backoff: float = 5.0) -> None:
    """Run `step` repeatedly until cancelled; a failing step is logged and retried with backoff.

    Broker connections drop; a consumer loop must outlive that rather than die silently.
    """
    delay = 0.1
    task = asyncio.current_task()
    while True:
        try:
            await step()
            delay = 0.1
        except asyncio.CancelledError:
            raise
        except Exception:
            # Some drivers turn a cancellation that hits them mid-command into their own error
            # (redis-py does); looping on would make the task impossible to stop.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
            log.warning("%s failed; retrying in %.1fs", what, delay, exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
        if task is not None and task.cancelling():
            raise asyncio.CancelledError


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has ended."""
    if task is None or task.done():
        return
    task.cancel()
    while not task.done():
        await asyncio.wait({task}, timeout=1.0)
        if not task.done():
            task.cancel()  # a driver swallowed the first cancellation
    if not task.cancelled() and task.exception() is not None:
        log.debug("background task ended with an error", exc_info=task.exception())
