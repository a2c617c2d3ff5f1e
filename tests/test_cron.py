"""The cron parser of periodic jobs: documented examples, errors, and a property test of
``next_after``/``latest`` against a minute-by-minute (or second-by-second) scan."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgqrs_django.cron import Cron
from pgqrs_django.exceptions import InvalidInput

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", "2026-01-01 10:03:10", "2026-01-01 10:05:00"),
        ("*/5 * * * *", "2026-01-01 10:05:00", "2026-01-01 10:10:00"),
        ("0 3 * * *", "2026-01-01 03:00:01", "2026-01-02 03:00:00"),
        ("30 9 * * mon-fri", "2026-01-02 10:00:00", "2026-01-05 09:30:00"),  # Fri -> Mon
        ("0 0 1 */3 *", "2026-02-10 00:00:00", "2026-04-01 00:00:00"),
        ("0 0 29 feb *", "2026-01-01 00:00:00", "2028-02-29 00:00:00"),
        ("0 12 13 * 5", "2026-01-01 00:00:00", "2026-01-02 12:00:00"),  # 13th or a Friday
        ("15,45 8-10/2 * * 7", "2026-01-03 23:00:00", "2026-01-04 08:15:00"),  # Sunday = 7
        ("*/20 * * * * *", "2026-01-01 00:00:41", "2026-01-01 00:01:00"),  # seconds first
        ("5/20 * * * *", "2026-01-01 00:46:00", "2026-01-01 01:05:00"),
        ("59 23 31 dec *", "2026-12-31 23:59:00", "2027-12-31 23:59:00"),
    ],
)
def test_next_after(expression: str, after: str, expected: str) -> None:
    cron = Cron.parse(expression)
    nxt = cron.next_after(at(after))
    assert nxt == at(expected)
    assert cron.latest(nxt) == nxt and cron.latest(nxt - dt.timedelta(seconds=1)) < nxt


def test_latest_and_time_zones() -> None:
    cron = Cron.parse("0 * * * *")
    assert cron.latest(at("2026-03-01 10:59:59")) == at("2026-03-01 10:00:00")
    paris = dt.timezone(dt.timedelta(hours=1))
    assert cron.latest(dt.datetime(2026, 3, 1, 12, 30, tzinfo=paris)) == at("2026-03-01 11:00")
    assert Cron.parse("0 0 1 1 *").latest(at("2026-06-01 00:00")) == at("2026-01-01 00:00")
    assert cron.resolution == dt.timedelta(minutes=1)
    assert Cron.parse("* * * * * *").resolution == dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "must have 5 fields"),
        ("* * * * * * *", "must have 5 fields"),
        ("60 * * * *", "outside 0-59 for the minute"),
        ("* 24 * * *", "outside 0-23 for the hour"),
        ("* * 0 * *", "outside 1-31 for the day of month"),
        ("* * * 13 *", "outside 1-12 for the month"),
        ("* * * * 8", "outside 0-7 for the day of week"),
        ("*/0 * * * *", "bad step"),
        ("*/x * * * *", "bad step"),
        ("5-1 * * * *", "outside"),
        ("a * * * *", "'a' is not a valid minute"),
        ("* * * smarch *", "not a valid month"),
        ("1,,2 * * * *", "not a valid minute"),
    ],
)
def test_bad_expressions_are_one_clear_error(expression: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Cron.parse(expression)


def test_an_expression_that_never_matches() -> None:
    with pytest.raises(InvalidInput, match="never matches"):
        Cron.parse("0 0 31 2 *").next_after(at("2026-01-01 00:00"))
    with pytest.raises(InvalidInput, match="timezone-aware"):
        Cron.parse("* * * * *").latest(dt.datetime(2026, 1, 1))


# Choices whose ticks are at most weeks apart, so the scan below stays short.
FIELD_CHOICES = [
    ["*", "*/7", "0", "15,45", "10-20", "7/20", "59"],
    ["*", "*/6", "3", "9-17", "0,12", "23"],
    ["*", "1", "*/10", "15-20"],
    ["*", "*/2", "jan-jun"],
    ["*", "1-5", "0", "sat,sun", "7", "3/2"],
]


@settings(max_examples=80, deadline=None)
@given(
    fields=st.tuples(*(st.sampled_from(choices) for choices in FIELD_CHOICES)),
    seconds=st.sampled_from([None, "*/15", "0", "59"]),
    when=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)),
)
def test_next_and_latest_agree_with_a_scan(
    fields: tuple[str, ...], seconds: str | None, when: dt.datetime
) -> None:
    if seconds is not None:  # per-second schedules: keep the scan within a day
        fields = (*fields[:2], "*", "*", "*")
    expression = " ".join(fields if seconds is None else (seconds, *fields))
    cron = Cron.parse(expression)
    when = when.replace(tzinfo=UTC)
    nxt, last = cron.next_after(when), cron.latest(when)
    assert last <= when < nxt and cron.matches(nxt) and cron.matches(last)
    # Nothing matches in between: scan every tick-aligned time (last is aligned), skipping
    # whole hours whose month, day or hour matches() rejects whatever the minute.
    t = last + cron.resolution
    while t < nxt:
        if not (t.month in cron.months and t.hour in cron.hours and cron._day_matches(t)):
            t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
            continue
        assert not cron.matches(t), f"{expression}: {t} matches between {last} and {nxt}"
        t += cron.resolution
