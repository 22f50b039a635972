"""Job schedules: Dapr's cron (seconds first), period strings and points in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tether.runtime.jobs.schedule import ScheduleError, parse_point, parse_schedule

T0 = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)  # a Saturday


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
    ],
)
def test_cron_times(spec: str, expected: list[str]) -> None:
    assert times(spec) == expected


def test_every() -> None:
    schedule = parse_schedule("@every 1m30s")
    assert schedule.next_after(T0) == T0 + timedelta(seconds=90)


@pytest.mark.parametrize(
    "spec",
    ["", "* * *", "* * * * * * *", "60 * * * * *", "* * 24 * * *", "*/0 * * * * *",
     "@every", "@every soon", "@every -1s", "@often", "0 0 0 30 2 *", "5-1 * * * * *"],
)  # fmt: skip
def test_bad_schedules(spec: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(spec).next_after(T0)


def test_points_in_time() -> None:
    assert parse_point("10s", T0) == T0 + timedelta(seconds=10)
    assert parse_point("1h30m", T0) == T0 + timedelta(minutes=90)
    assert parse_point("PT10S", T0) == T0 + timedelta(seconds=10)
    assert parse_point("P1DT2H", T0) == T0 + timedelta(days=1, hours=2)
    assert parse_point("2030-01-02T15:04:05Z", T0) == datetime(2030, 1, 2, 15, 4, 5, tzinfo=UTC)
    assert parse_point("2030-01-02T15:04:05+02:00", T0).hour == 13
    with pytest.raises(ScheduleError):
        parse_point("next tuesday", T0)
