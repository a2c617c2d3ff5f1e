"""The argument types of pgqrs_django.cli.types: one duration grammar for both commands."""

from __future__ import annotations

import argparse

import pytest

from pgqrs_django.cli.errors import UsageError
from pgqrs_django.cli.types import Duration, WholeNumber, parse_duration
from pgqrs_django.management.commands.pgqrs import Command as PgqrsCommand
from pgqrs_django.management.commands.pgqrs_worker import Command as WorkerCommand

DURATIONS = {
    "30": 30.0,
    "1.5": 1.5,
    ".5": 0.5,
    "30s": 30.0,
    "500ms": 0.5,
    "5m": 300.0,
    "1h": 3600.0,
    "7d": 604800.0,
    "2W": 1209600.0,
    "1h30m": 5400.0,
    "1m 30s": 90.0,
    " 90s ": 90.0,
}
NOT_DURATIONS = ["", "-1", "1h30", "nan", "inf", "1e3", "7 days", "soon", "5x", "1.5.2", "h"]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS.items())
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", NOT_DURATIONS)
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_both_commands_read_durations_with_the_same_grammar() -> None:
    """Every duration flag of pgqrs_worker takes what pgqrs's flags take, e.g. 30s, 5m, 1h."""
    pgqrs = PgqrsCommand().create_parser("manage.py", "pgqrs")
    worker = WorkerCommand().create_parser("manage.py", "pgqrs_worker")
    for text, seconds in DURATIONS.items():
        options = worker.parse_args(["--poll-interval", text, "--grace", text])
        assert (options.poll_interval, options.grace) == (seconds, seconds)
        if seconds >= 0.5:
            assert worker.parse_args(["--lock-time", text]).lock_time == seconds
        created = pgqrs.parse_args(["queue", "create", "q", "--visibility-timeout", text])
        assert created.visibility_timeout == seconds
    for text in NOT_DURATIONS:
        for parser, args in (
            (worker, ["--grace", text]),
            (pgqrs, ["worker", "purge", "--older-than", text]),
        ):
            with pytest.raises(UsageError, match="must be a number of seconds >= 0 or a number"):
                parser.parse_args(args)


def test_bounds_of_a_duration() -> None:
    lease = Duration(allow_zero=False, minimum=0.5)
    assert lease("1s") == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match="'0' must be a number of seconds > 0"):
        lease("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"'100ms' is under the minimum of 0\.5 s"):
        lease("100ms")
    with pytest.raises(argparse.ArgumentTypeError, match="or a number with a unit: 500ms, 90s"):
        lease("-1")


def test_whole_numbers() -> None:
    assert WholeNumber(1, 10)(" 7 ") == 7
    assert WholeNumber()("-5") == -5
    for number, text, message in [
        (WholeNumber(1, 10), "11", "11 is not between 1 and 10"),
        (WholeNumber(1), "0", "0 is under the minimum of 1"),
        (WholeNumber(), "1.5", "'1.5' is not a whole number"),
        (WholeNumber(), "x" * 100, "'x{40}' is not a whole number"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            number(text)
