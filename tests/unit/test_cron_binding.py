"""The cron input binding (its schedule syntax is tested in test_cron.py)."""

from __future__ import annotations

import asyncio

import pytest

from tether import errors
from tether.components.bindings.base import BindingEvent, capabilities
from tether.components.bindings.cron import CronBinding
from tether.resources.component import ComponentSpec


def test_bad_schedule_metadata_is_a_component_error() -> None:
    with pytest.raises(errors.ComponentInvalid, match="schedule") as caught:
        CronBinding(ComponentSpec("tick", "bindings.cron", metadata={"schedule": "nope"}))
    assert "expected '@every <duration>'" in caught.value.message


async def test_the_binding_emits_events_until_closed() -> None:
    binding = CronBinding(
        ComponentSpec("tick", "bindings.cron", metadata={"schedule": "@every 0.05s"})
    )
    assert capabilities(binding) == ["INPUT_BINDING", "OUTPUT_BINDING"]
    events: list[BindingEvent] = []

    async def handler(event: BindingEvent) -> bool:
        events.append(event)
        return True

    await binding.init()
    await binding.start(handler)
    for _ in range(100):
        if len(events) >= 3:
            break
        await asyncio.sleep(0.02)
    await binding.close()
    count = len(events)
    assert count >= 3
    assert events[0].metadata["timeZone"] == "UTC" and events[0].metadata["readTimeUTC"]
    await asyncio.sleep(0.15)
    assert len(events) == count


async def test_a_schedule_that_never_fires_stops_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    binding = CronBinding(
        ComponentSpec("feb30", "bindings.cron", metadata={"schedule": "0 0 0 30 2 *"})
    )
    events: list[BindingEvent] = []

    async def handler(event: BindingEvent) -> bool:
        events.append(event)
        return True

    await binding.start(handler)
    for _ in range(100):
        if "never fires again" in caplog.text:
            break
        await asyncio.sleep(0.01)
    await binding.close()
    assert "cron binding 'feb30': the schedule never fires again" in caplog.text
    assert events == []
