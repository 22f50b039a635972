"""Job schedules as Dapr writes them, and the times they name. All times are UTC.

- `@every <Go duration>` (`@every 1m30s`), and `@yearly`/`@annually`, `@monthly`, `@weekly`,
  `@daily`/`@midnight`, `@hourly`.
- Cron with six fields, seconds first (`0 30 * * * *`: every hour on the half hour), as the Dapr
  scheduler reads them, or the classic five (minutes first, at second 0). Fields take `*`, `?`,
  numbers, ranges `a-b`, steps `*/n` `a-b/n` `a/n`, lists `a,b`, and month and weekday names.
  Day of month and day of week combine as in robfig/cron: when both are restricted, either
  matching is enough.
- Points in time (`dueTime`, `ttl`): RFC 3339, a Go duration from now (`10s`), or an ISO 8601
  duration (`PT10S`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tether.resources.duration import parse_duration

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (low, high, names) per field, seconds first.
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}), (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 7, _DAYS),
)  # fmt: skip
_PREDEFINED = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_ISO_DURATION = re.compile(
    r"^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
# A schedule that never matches (Feb 30) must not spin: search at most this far ahead.
_HORIZON = timedelta(days=366 * 5)


class ScheduleError(ValueError):
    pass


def _field(text: str, index: int) -> frozenset[int]:
    low, high, names = _FIELDS[index]
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"bad step in {text!r}")
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, _, b = part.partition("-")
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleError(f"{text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if index == 5 and 7 in values:
        values = (values - {7}) | {0}  # both 0 and 7 are Sunday
    return frozenset(values)


def _value(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ScheduleError(f"{text!r} is not a number")
    return int(text)


@dataclass(frozen=True, slots=True)
class Schedule:
    text: str
    every: timedelta | None = None
    fields: tuple[frozenset[int], ...] = ()
    #: Whether day of month / day of week were left open (`*` or `?`).
    dom_any: bool = True
    dow_any: bool = True

    def next_after(self, after: datetime) -> datetime:
        """The first time strictly after `after` that the schedule names."""
        if self.every is not None:
            return after + self.every
        sec, minute, hour, _dom, month, _dow = self.fields
        t = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + _HORIZON
        while t < limit:
            if t.month not in month:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(
                    day=1
                )
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in hour:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in minute:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in sec:
                t += timedelta(seconds=1)
                continue
            return t
        raise ScheduleError(f"schedule {self.text!r} names no time in the next five years")

    def _day_matches(self, t: datetime) -> bool:
        dom_ok = t.day in self.fields[3]
        dow_ok = (t.isoweekday() % 7) in self.fields[5]
        if self.dom_any or self.dow_any:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def parse_schedule(text: str) -> Schedule:
    """Raises `ScheduleError` with a message fit for the caller."""
    spec = text.strip()
    if spec.startswith("@every"):
        rest = spec[len("@every") :].strip()
        try:
            seconds = parse_duration(rest)
        except ValueError as exc:
            raise ScheduleError(f"invalid schedule {text!r}: {exc}") from exc
        if seconds <= 0:
            raise ScheduleError(f"invalid schedule {text!r}: the interval must be positive")
        return Schedule(spec, every=timedelta(seconds=seconds))
    cron = _PREDEFINED.get(spec.lower(), spec)
    parts = cron.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise ScheduleError(
            f"invalid schedule {text!r}: expected '@every <duration>', @hourly/@daily/..., or "
            "cron with 6 fields (second minute hour day-of-month month day-of-week) or 5"
        )
    try:
        fields = tuple(_field(part, i) for i, part in enumerate(parts))
    except ScheduleError as exc:
        raise ScheduleError(f"invalid schedule {text!r}: {exc}") from exc
    return Schedule(
        spec, fields=fields, dom_any=parts[3] in ("*", "?"), dow_any=parts[5] in ("*", "?")
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
            f"invalid time {text!r}: use RFC 3339 (2030-01-02T15:04:05Z), a duration such as "
            "'10s' or '1h30m', or an ISO 8601 duration such as 'PT10S'"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
