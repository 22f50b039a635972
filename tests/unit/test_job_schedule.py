"""Jobs' points in time (`dueTime`, `ttl`); their cron schedules are tested in test_cron.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tether.runtime.jobs.schedule import ScheduleError, parse_point

T0 = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)  # a Saturday


def test_points_in_time() -> None:
    assert parse_point("10s", T0) == T0 + timedelta(seconds=10)
    assert parse_point("1h30m", T0) == T0 + timedelta(minutes=90)
    assert parse_point("PT10S", T0) == T0 + timedelta(seconds=10)
    assert parse_point("P1DT2H", T0) == T0 + timedelta(days=1, hours=2)
    assert parse_point("2030-01-02T15:04:05Z", T0) == datetime(2030, 1, 2, 15, 4, 5, tzinfo=UTC)
    assert parse_point("2030-01-02T15:04:05+02:00", T0).hour == 13
    with pytest.raises(ScheduleError, match="invalid time 'next tuesday'"):
        parse_point("next tuesday", T0)


def test_the_shared_parser_is_what_jobs_use() -> None:
    from tether.resources import cron
    from tether.runtime.jobs import schedule

    assert schedule.parse_schedule is cron.parse_schedule
    assert schedule.ScheduleError is cron.ScheduleError
