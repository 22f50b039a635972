"""Cron schedules (`tether.resources.cron`), as the Dapr scheduler and cron binding read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tether.resources.cron import ScheduleError, parse_schedule

T0 = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)  # a Saturday
# Two seconds before a month ends, on a Wednesday: every field rolls over at once.
EDGE = datetime(2024, 1, 31, 23, 59, 58, tzinfo=UTC)


def times(spec: str, n: int = 3, start: datetime = T0) -> list[str]:
    schedule, out, t = parse_schedule(spec), [], start
    for _ in range(n):
        t = schedule.next_after(t)
        out.append(t.strftime("%Y-%m-%d %H:%M:%S"))
    return out


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0 30 * * * *", ["2026-03-14 15:30:00", "2026-03-14 16:30:00", "2026-03-14 17:30:00"]),
        ("*/20 * * * * *", ["2026-03-14 15:09:40", "2026-03-14 15:10:00", "2026-03-14 15:10:20"]),
        ("0 15 3 * * *", ["2026-03-15 03:15:00", "2026-03-16 03:15:00", "2026-03-17 03:15:00"]),
        (
            "0 0 9 * * MON-FRI",
            ["2026-03-16 09:00:00", "2026-03-17 09:00:00", "2026-03-18 09:00:00"],
        ),
        (
            "0 0 0 1 jan,jul *",
            ["2026-07-01 00:00:00", "2027-01-01 00:00:00", "2027-07-01 00:00:00"],
        ),
        ("5 * * * *", ["2026-03-14 16:05:00", "2026-03-14 17:05:00", "2026-03-14 18:05:00"]),
        ("@hourly", ["2026-03-14 16:00:00", "2026-03-14 17:00:00", "2026-03-14 18:00:00"]),
        ("@daily", ["2026-03-15 00:00:00", "2026-03-16 00:00:00", "2026-03-17 00:00:00"]),
        ("@weekly", ["2026-03-15 00:00:00", "2026-03-22 00:00:00", "2026-03-29 00:00:00"]),
        ("@monthly", ["2026-04-01 00:00:00", "2026-05-01 00:00:00", "2026-06-01 00:00:00"]),
        ("@yearly", ["2027-01-01 00:00:00", "2028-01-01 00:00:00", "2029-01-01 00:00:00"]),
        # Both day fields restricted: either may match (robfig/cron).
        ("0 0 0 13 * 0", ["2026-03-15 00:00:00", "2026-03-22 00:00:00", "2026-03-29 00:00:00"]),
        ("0 0 0 29 2 ?", ["2028-02-29 00:00:00", "2032-02-29 00:00:00", "2036-02-29 00:00:00"]),
        ("0 0 0 * * 7", ["2026-03-15 00:00:00", "2026-03-22 00:00:00", "2026-03-29 00:00:00"]),
        # robfig: `a/n` runs from a to the field's end, even when n is 1.
        ("50/1 * * * * *", ["2026-03-14 15:09:50", "2026-03-14 15:09:51", "2026-03-14 15:09:52"]),
        ("0 0 12 * 12 *", ["2026-12-01 12:00:00", "2026-12-02 12:00:00", "2026-12-03 12:00:00"]),
    ],
)
def test_cron_times(spec: str, expected: list[str]) -> None:
    assert times(spec) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("*/15 * * * * *", datetime(2024, 2, 1, 0, 0, 0, tzinfo=UTC)),
        ("0 * * * *", datetime(2024, 2, 1, 0, 0, 0, tzinfo=UTC)),
        ("30 0 9 * * MON-FRI", datetime(2024, 2, 1, 9, 0, 30, tzinfo=UTC)),
        ("0 0 0 1 MAR ?", datetime(2024, 3, 1, tzinfo=UTC)),
        ("0 0 12 29 2 *", datetime(2024, 2, 29, 12, tzinfo=UTC)),
        ("@hourly", datetime(2024, 2, 1, 0, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime(2024, 2, 4, tzinfo=UTC)),
        ("@every 90s", EDGE + timedelta(seconds=90)),
        ("0 0 0 * * 7", datetime(2024, 2, 4, tzinfo=UTC)),
    ],
)
def test_next_firing_across_a_month_end(spec: str, expected: datetime) -> None:
    assert parse_schedule(spec).next_after(EDGE) == expected


def test_every() -> None:
    schedule = parse_schedule("@every 1m30s")
    assert schedule.next_after(T0) == T0 + timedelta(seconds=90)
    # Fractions of a second are kept (robfig would round up to a second).
    assert parse_schedule("@every 0.05s").next_after(T0) == T0 + timedelta(milliseconds=50)


def test_times_are_utc() -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    assert parse_schedule("0 0 16 * * *").next_after(local) == datetime(2026, 3, 14, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    "spec",
    ["", "* * *", "* * * * * * *", "60 * * * * *", "61 * * * * *", "* * 24 * * *",
     "*/0 * * * * *", "x * * * *", "5-1 * * * * *", "*/x * * * * *", "² * * * * *",
     "@every", "@every soon", "@every 0s", "@every -1s", "@often"],
)  # fmt: skip
def test_bad_schedules(spec: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(spec)
    assert isinstance(caught.value, ValueError)  # callers that only know ValueError catch it
    assert str(caught.value).startswith(f"invalid schedule {spec!r}: ")
    assert caught.value.reason in str(caught.value)


def test_impossible_dates_never_fire() -> None:
    # It parses, as in robfig/cron; asking when it fires is what fails.
    schedule = parse_schedule("0 0 0 30 2 *")
    with pytest.raises(ScheduleError, match="no time in the next five years"):
        schedule.next_after(T0)
    with pytest.raises(ScheduleError):
        schedule.next_after(EDGE)
