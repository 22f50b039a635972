"""The cron schedule parser and the cron input binding."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from tether import errors
from tether.components.bindings import _cron
from tether.components.bindings.base import BindingEvent, capabilities
from tether.components.bindings.cron import CronBinding
from tether.resources.component import ComponentSpec

T0 = dt.datetime(2024, 1, 31, 23, 59, 58, tzinfo=dt.UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/15 * * * * *", dt.datetime(2024, 2, 1, 0, 0, 0, tzinfo=dt.UTC)),
        ("0 * * * *", dt.datetime(2024, 2, 1, 0, 0, 0, tzinfo=dt.UTC)),
        ("30 0 9 * * MON-FRI", dt.datetime(2024, 2, 1, 9, 0, 30, tzinfo=dt.UTC)),
        ("0 0 0 1 MAR ?", dt.datetime(2024, 3, 1, tzinfo=dt.UTC)),
        ("0 0 12 29 2 *", dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC)),
        ("@hourly", dt.datetime(2024, 2, 1, 0, 0, 0, tzinfo=dt.UTC)),
        ("@weekly", dt.datetime(2024, 2, 4, tzinfo=dt.UTC)),
        ("@every 90s", T0 + dt.timedelta(seconds=90)),
        ("0 0 0 * * 7", dt.datetime(2024, 2, 4, tzinfo=dt.UTC)),
    ],
)
def test_next_firing(expression: str, expected: dt.datetime) -> None:
    assert _cron.parse(expression).next_after(T0) == expected


def test_impossible_dates_never_fire() -> None:
    assert _cron.parse("0 0 0 30 2 *").next_after(T0) is None


@pytest.mark.parametrize(
    "bad", ["", "* * *", "61 * * * * *", "*/0 * * * * *", "x * * * *", "@every soon", "@every 0s"]
)
def test_bad_schedules(bad: str) -> None:
    with pytest.raises(ValueError):
        _cron.parse(bad)


def test_bad_schedule_metadata_is_a_component_error() -> None:
    with pytest.raises(errors.ComponentInvalid, match="schedule"):
        CronBinding(ComponentSpec("tick", "bindings.cron", metadata={"schedule": "nope"}))


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
