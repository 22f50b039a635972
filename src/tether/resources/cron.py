"""Cron schedules as Dapr reads them (robfig/cron with optional seconds), for jobs and bindings.

- Six fields, seconds first: `second minute hour day-of-month month day-of-week` (`0 30 * * * *`:
  every hour on the half hour), as the Dapr scheduler and cron binding read them; or the
  classic five, minutes first, at second 0.
- `@every <Go duration>` (`@every 15s`, `@every 1h30m`), and `@yearly`/`@annually`, `@monthly`,
  `@weekly`, `@daily`/`@midnight`, `@hourly`.

Fields take `*`, `?` (same as `*`), numbers, ranges `a-b`, steps `*/n`, `a-b/n` and `a/n` (`a`
to the field's end), lists `a,b`, and month or weekday names in any case (`JAN`, `mon`).
Weekdays run 0-6 from Sunday; 7 is Sunday too. Day of month and day of week combine as in
robfig/cron: when both are restricted, a day matching either one is enough.

Times are UTC. Unlike robfig, `@every` keeps fractions of a second: a binding firing every 50ms
is how tests watch it fire without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tether.resources.duration import parse_duration

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (name, low, high, names) per field, seconds first.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}), ("minute", 0, 59, {}), ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS),
)  # fmt: skip
_MACROS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
# A schedule that never matches (30 February) must not spin: search at most this far ahead.
_HORIZON = timedelta(days=366 * 5)


class ScheduleError(ValueError):
    """A schedule that cannot be parsed, or that names no time; the message names the problem."""

    def __init__(self, text: str, reason: str, what: str = "schedule") -> None:
        super().__init__(f"invalid {what} {text!r}: {reason}")
        #: What is wrong, without the schedule's text (for callers that already quote it).
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Schedule:
    #: The schedule as written.
    text: str
    #: The interval of an `@every` schedule; None for cron.
    every: timedelta | None = None
    #: The values each cron field allows, seconds first (weekday 7 already folded into 0).
    fields: tuple[frozenset[int], ...] = ()
    #: Whether day of month / day of week were left open (`*` or `?`).
    dom_any: bool = True
    dow_any: bool = True

    def next_after(self, after: datetime) -> datetime:
        """The first time strictly after `after` (an aware datetime) that the schedule names.

        Raises `ScheduleError` when it names none in the next five years (30 February).
        """
        if self.every is not None:
            return after + self.every
        sec, minute, hour, _dom, month, _dow = self.fields
        t = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + _HORIZON
        while t < limit:
            if t.month not in month:
                year, next_month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=next_month, day=1, hour=0, minute=0, second=0)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in hour:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in minute:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in sec:
                t += timedelta(seconds=1)
            else:
                return t
        raise ScheduleError(self.text, "it names no time in the next five years")

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
        try:
            seconds = parse_duration(spec[len("@every") :].strip())
        except ValueError as exc:
            raise ScheduleError(text, str(exc)) from None
        if seconds <= 0:
            raise ScheduleError(text, "the interval must be positive")
        return Schedule(spec, every=timedelta(seconds=seconds))
    parts = _MACROS.get(spec.lower(), spec).split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise ScheduleError(
            text,
            "expected '@every <duration>', @hourly/@daily/..., or cron with 6 fields "
            "(second minute hour day-of-month month day-of-week) or 5",
        )
    try:
        fields = tuple(_field(part, *_FIELDS[i]) for i, part in enumerate(parts))
    except ValueError as exc:
        raise ScheduleError(text, str(exc)) from None
    return Schedule(
        spec, fields=fields, dom_any=parts[3] in ("*", "?"), dow_any=parts[5] in ("*", "?")
    )


def _field(text: str, what: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not _digits(step_text) or int(step_text) == 0:
                raise ValueError(f"{what}: the step in {part!r} must be a whole number above 0")
            step = int(step_text)
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = _value(a, names, what), _value(b, names, what)
        else:
            start = _value(body, names, what)
            # robfig: `a/n` runs from a to the field's end, whatever n is.
            end = high if slash else start
        if not low <= start <= end <= high:
            raise ValueError(f"{what}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if what == "day of week" and 7 in values:
        values = (values - {7}) | {0}  # both 0 and 7 are Sunday
    return frozenset(values)


def _value(text: str, names: dict[str, int], what: str) -> int:
    lowered = text.strip().lower()
    if lowered in names:
        return names[lowered]
    if not _digits(lowered):
        raise ValueError(f"{what}: {text!r} is not a number")
    return int(lowered)


def _digits(text: str) -> bool:
    # str.isdigit alone takes superscripts and other scripts' digits, which int() refuses.
    return text.isascii() and text.isdigit()


__all__ = ["Schedule", "ScheduleError", "parse_schedule"]
