"""`bindings.cron`: an input binding that emits an event on a schedule.

Metadata: `schedule` (required; see `tether.resources.cron` for the syntax, e.g.
`@every 15s` or `*/10 * * * * *`), `direction` (ignored; Dapr uses it to skip the output side).

Each firing emits one event with empty data and metadata `timeZone: UTC` and `readTimeUTC`
(RFC 3339) to the handler given to `start`, and waits for it before scheduling the next one,
so a slow app skips firings rather than piling them up. A refused event is not retried: the
schedule just goes on. As an output binding it takes `delete`, which stops the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping

from tether.components._options import Options
from tether.components.bindings.base import (
    BindingEvent,
    BindingResponse,
    InputBinding,
    InputHandler,
    OutputBinding,
    unsupported,
)
from tether.resources.component import ComponentSpec
from tether.resources.cron import ScheduleError, parse_schedule

log = logging.getLogger("tether.bindings.cron")
_OPERATIONS = frozenset({"delete"})


class CronBinding(InputBinding, OutputBinding):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        raw = opts.required("schedule", "a cron expression or @every <duration>")
        try:
            self.schedule = parse_schedule(raw)
        except ScheduleError as exc:
            raise opts.invalid("schedule", raw, f"a schedule ({exc.reason})") from None
        self._name = spec.name
        self._task: asyncio.Task[None] | None = None

    def operations(self) -> frozenset[str]:
        return _OPERATIONS

    async def start(self, handler: InputHandler) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(handler), name=f"tether-cron-{self._name}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def invoke(
        self, operation: str, data: bytes, metadata: Mapping[str, str]
    ) -> BindingResponse:
        if operation not in _OPERATIONS:
            raise unsupported(self._name, operation, _OPERATIONS)
        await self.close()
        return BindingResponse()

    async def _run(self, handler: InputHandler) -> None:
        moment = dt.datetime.now(dt.UTC)
        while True:
            try:
                due = self.schedule.next_after(moment)
            except ScheduleError:
                log.warning("cron binding '%s': the schedule never fires again", self._name)
                return
            await asyncio.sleep(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds()))
            moment = due
            event = BindingEvent(
                b"", {"timeZone": "UTC", "readTimeUTC": due.isoformat().replace("+00:00", "Z")}
            )
            try:
                accepted = await handler(event)
            except Exception:
                log.exception("cron binding '%s': the event handler failed", self._name)
                accepted = False
            if not accepted:
                log.debug("cron binding '%s': event at %s was not accepted", self._name, due)
            # After a slow handler, skip the firings that already passed.
            moment = max(moment, dt.datetime.now(dt.UTC))
