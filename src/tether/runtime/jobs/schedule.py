"""Job schedules as Dapr writes them, and the times they name. All times are UTC.

- `schedule`: a cron schedule or `@every <duration>`, parsed by `tether.resources.cron` (shared
  with the cron binding; its names are re-exported here for the scheduler).
- Points in time (`dueTime`, `ttl`): RFC 3339, a Go duration from now (`10s`), or an ISO 8601
  duration (`PT10S`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tether.resources.cron import Schedule, ScheduleError, parse_schedule
from tether.resources.duration import parse_duration

_ISO_DURATION = re.compile(
    r"^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def parse_point(text: str, now: datetime) -> datetime:
    """A `dueTime`/`ttl`: RFC 3339, or a Go or ISO 8601 duration from `now`."""
    spec = text.strip()
    iso = _ISO_DURATION.match(spec)
    if iso is not None and spec != "P":
        weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        return now + timedelta(
            weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds
        )
    try:
        return now + timedelta(seconds=parse_duration(spec))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(spec)
    except ValueError as exc:
        raise ScheduleError(
            text,
            "use RFC 3339 (2030-01-02T15:04:05Z), a duration such as '10s' or '1h30m', or an "
            "ISO 8601 duration such as 'PT10S'",
            "time",
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


__all__ = ["Schedule", "ScheduleError", "parse_point", "parse_schedule"]
