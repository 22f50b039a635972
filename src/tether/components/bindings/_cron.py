"""Cron schedules as Dapr's cron binding reads them (robfig/cron with optional seconds).

Accepted: six fields `second minute hour day-of-month month day-of-week`, or the classic five
(seconds then default to 0); `@every <duration>` (`@every 15s`, `@every 1h30m`); and
`@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`. Fields take `*`,
`?` (same as `*`), numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and month or
weekday names (`JAN`, `MON`). Weekdays run 0-6 from Sunday (7 is Sunday too). As in cron, when
both day fields are restricted a day matches either one. Times are local to the given datetime's
timezone (UTC in Tether).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tether.resources.duration import parse_duration

_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
)}  # fmt: skip
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_MACROS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
# A schedule that matches nothing within this many years never fires (e.g. 30 February).
_HORIZON_YEARS = 5


@dataclass(frozen=True, slots=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool
    every: float | None = None

    def next_after(self, moment: dt.datetime) -> dt.datetime | None:
        """The first firing time strictly after `moment`; None if there is none."""
        if self.every is not None:
            return moment + dt.timedelta(seconds=self.every)
        t = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
        limit = moment + dt.timedelta(days=366 * _HORIZON_YEARS)
        while t <= limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
            else:
                return t
        return None

    def _day_matches(self, t: dt.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow


def parse(expression: str) -> Schedule:
    """Parse a schedule; `ValueError` naming the problem."""
    text = expression.strip()
    if text.startswith("@every"):
        seconds = parse_duration(text[len("@every") :].strip())
        if seconds <= 0:
            raise ValueError(f"@every needs a positive duration, got {text!r}")
        none: frozenset[int] = frozenset()
        return Schedule(none, none, none, none, none, none, True, True, every=seconds)
    text = _MACROS.get(text.lower(), text)
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(f"expected 5 or 6 fields, got {len(fields)} in {expression!r}")
    weekdays = _field(fields[5], 0, 7, _DAYS, "day of week")
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    return Schedule(
        seconds=_field(fields[0], 0, 59, {}, "second"),
        minutes=_field(fields[1], 0, 59, {}, "minute"),
        hours=_field(fields[2], 0, 23, {}, "hour"),
        days=_field(fields[3], 1, 31, {}, "day of month"),
        months=_field(fields[4], 1, 12, _MONTHS, "month"),
        weekdays=weekdays,
        any_day=fields[3] in ("*", "?"),
        any_weekday=fields[5] in ("*", "?"),
    )


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = _number(step_text, names, what) if step_text else 1
        if step < 1:
            raise ValueError(f"{what}: step must be at least 1 in {part!r}")
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = _number(a, names, what), _number(b, names, what)
        else:
            start = _number(body, names, what)
            end = high if step_text else start
        if not low <= start <= end <= high:
            raise ValueError(f"{what}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _number(text: str, names: dict[str, int], what: str) -> int:
    upper = text.strip().upper()
    if upper in names:
        return names[upper]
    if not upper.isdigit():
        raise ValueError(f"{what}: {text!r} is not a number")
    return int(upper)
