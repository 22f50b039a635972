"""Temporal workflow and activity definitions, kept apart from the runner.

Temporal's sandbox re-imports the module that defines a workflow for every
run, so this module imports nothing beyond what the workflows need; the
runner's subprocess and socket imports would otherwise be re-imported (and
policed) on every workflow task.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

# Bounds each activity attempt; a no-op that needs longer means the worker is
# wedged, and Temporal then retries instead of hanging the benchmark.
ACTIVITY_TIMEOUT = timedelta(seconds=60)


# async so the worker runs it on its event loop: a sync activity would need an
# explicit thread pool, which is not the default shape of a Temporal app.
@activity.defn
async def noop() -> None:
    return None


@workflow.defn
class Sequential:
    @workflow.run
    async def run(self, steps: int) -> int:
        for _ in range(steps):
            await workflow.execute_activity(noop, start_to_close_timeout=ACTIVITY_TIMEOUT)
        return steps


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, width: int) -> int:
        await asyncio.gather(
            *(
                workflow.execute_activity(noop, start_to_close_timeout=ACTIVITY_TIMEOUT)
                for _ in range(width)
            )
        )
        return width
