"""Cron expressions for periodic jobs, evaluated in UTC.

Five fields, ``minute hour day-of-month month day-of-week``, as in crontab(5); a sixth field
in front, ``second``, gives per-second schedules. Each field is ``*``, a number, a range
``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n`` (from ``a`` to the end), or a comma-separated list
of those. Months and weekdays also take English abbreviations (``jan``, ``mon``); weekday 0
and 7 are Sunday. When both day-of-month and day-of-week are restricted, a day matching
either one matches (as in cron).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from .exceptions import InvalidInput

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

#: (name, lowest, highest, names for lowest..) of each field, seconds first.
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i for i, name in enumerate(_MONTHS, 1)}),
    ("day of week", 0, 7, {name: i for i, name in enumerate(_DAYS)}),
]
#: Longest search for a matching time: beyond it an expression never matches (``30 2 31 2 *``).
_HORIZON = dt.timedelta(days=366 * 5)


def _number(text: str, names: dict[str, int], field: str, expr: str) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit():
        raise InvalidInput(f"cron expression {expr!r}: {text!r} is not a valid {field}")
    return int(text)


def _parse_field(text: str, index: int, expr: str) -> tuple[frozenset[int], bool]:
    """The values a field allows, and whether it is ``*`` (unrestricted)."""
    field, low, high, names = _FIELDS[index]
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidInput(f"cron expression {expr!r}: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, names, field, expr), _number(last, names, field, expr)
        else:
            start = _number(base, names, field, expr)
            end = high if slash else start
        if not low <= start <= end <= high:
            raise InvalidInput(
                f"cron expression {expr!r}: {part!r} is outside {low}-{high} for the {field}"
            )
        values.update(range(start, end + 1, step))
    if index == 5 and 7 in values:  # Sunday is 0 and 7
        values = (values - {7}) | {0}
    return frozenset(values), text == "*"


@dataclasses.dataclass(frozen=True)
class Cron:
    """A parsed cron expression; :meth:`latest` and :meth:`next_after` find its ticks."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse 5 fields (or 6, seconds first); raises InvalidInput on a bad expression."""
        if not isinstance(expression, str):
            raise InvalidInput(f"a cron expression must be a string, not {expression!r}")
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise InvalidInput(
                f"cron expression {expression!r} must have 5 fields "
                "(minute hour day-of-month month day-of-week), or 6 with seconds first"
            )
        if len(fields) == 5:
            fields = ["0", *fields]
        parsed = [_parse_field(text, i, expression) for i, text in enumerate(fields)]
        (seconds, minutes, hours, days, months, weekdays) = (values for values, _ in parsed)
        return cls(
            expression,
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day=parsed[3][1],
            any_weekday=parsed[5][1],
        )

    @property
    def resolution(self) -> dt.timedelta:
        """The smallest distance between two ticks: a second or a minute."""
        return dt.timedelta(seconds=1 if len(self.expression.split()) == 6 else 60)

    def _day_matches(self, day: dt.datetime) -> bool:
        by_date = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def matches(self, when: dt.datetime) -> bool:
        """Whether ``when`` (seconds included, fractions ignored) is a tick."""
        when = _utc(when)
        return (
            when.month in self.months
            and self._day_matches(when)
            and when.hour in self.hours
            and when.minute in self.minutes
            and when.second in self.seconds
        )

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first tick strictly after ``when`` (UTC)."""
        start = _utc(when).replace(microsecond=0)
        t = start + dt.timedelta(seconds=1)
        while t - start <= _HORIZON:
            if t.month not in self.months:
                t = (t.replace(day=1) + dt.timedelta(days=32)).replace(
                    day=1, hour=0, minute=0, second=0
                )
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                later = [m for m in self.minutes if m > t.minute]
                t = (
                    t.replace(minute=min(later), second=0)
                    if later
                    else (t.replace(minute=0, second=0) + dt.timedelta(hours=1))
                )
            elif t.second not in self.seconds:
                later = [s for s in self.seconds if s > t.second]
                t = (
                    t.replace(second=min(later))
                    if later
                    else (t.replace(second=0) + dt.timedelta(minutes=1))
                )
            else:
                return t
        raise InvalidInput(f"cron expression {self.expression!r} never matches")

    def latest(self, when: dt.datetime) -> dt.datetime:
        """The last tick at or before ``when`` (UTC)."""
        end = _utc(when).replace(microsecond=0)
        t = end
        second = dt.timedelta(seconds=1)
        while end - t <= _HORIZON:
            if t.month not in self.months:
                t = t.replace(day=1, hour=0, minute=0, second=0) - second
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) - second
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) - second
            elif t.minute not in self.minutes:
                earlier = [m for m in self.minutes if m < t.minute]
                t = (
                    t.replace(minute=max(earlier), second=59)
                    if earlier
                    else (t.replace(minute=0, second=0) - second)
                )
            elif t.second not in self.seconds:
                earlier = [s for s in self.seconds if s < t.second]
                t = t.replace(second=max(earlier)) if earlier else t.replace(second=0) - second
            else:
                return t
        raise InvalidInput(f"cron expression {self.expression!r} never matches")


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise InvalidInput("cron times must be timezone-aware")
    return when.astimezone(dt.UTC)
