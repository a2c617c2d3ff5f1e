"""Property: whatever arguments ``manage.py pgqrs`` gets, it answers with exit code 0, 1 or 2,
never a traceback unless ``--traceback`` asks for one, and a failure is exactly one line on
stderr. Exit 1 is for a database that is unreachable or refused; the database here is up, so
the only exit-1 lines allowed are the checks that fail by design (``worker health`` sees an
unserved queue). A bug (exit 70: a ProgrammingError, IntegrityError, DataError... that input
reached) fails the test.

The run is seeded (``PGQRS_CLI_SEED``, default below), so a failure replays: run the test
again with the seed it prints. Set another seed to explore other argument lists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError
from hypothesis import HealthCheck, event, given, note, seed, settings
from hypothesis import strategies as st

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.models import Queue
from tests.cli_support import Result, leaf_parsers, run_in_savepoint

#: The seed of the run; printed with a failure.
SEED = int(os.environ.get("PGQRS_CLI_SEED", "20250131"))

# Everything the parser knows (Django's standard flags included), plus values of every kind.
# --help is left out: it prints the help and exits 0, which says nothing.
WORDS = sorted(
    {word for path in leaf_parsers() for word in path}
    | {
        option
        for parser in leaf_parsers().values()
        for action in parser._actions
        for option in action.option_strings
        if option not in {"-h", "--help"}
    }
    | {"jobs", "dead", "w1", "nope", "json", "table", "default", "sqlite", "debug", "-"}
    | {"0", "1", "-1", "2", "1.5", "7d", "90s", "1h30m", "1e9", "abc", "inf", "NaN"}
    | {"{}", '{"a": 1}', "[1, 2]", "null", "{bad", "'", '"', "a b", "x;DROP TABLE pgqrs_queue;--"}
    | {"q" * 200, "9" * 30, ""}
    | {"tests.settings", "does.not.exist", "/no/such/dir", "3", "9"}
)
PATHS = [list(path) for path in leaf_parsers()]
EXCLUDED = {"--help"}
# Values a subcommand is likely to accept, by metavar, to get past the parser most of the time.
VALUES = {
    "QUEUE": ["jobs", "dead", "nope", "new-q"],
    "NAME": ["jobs", "new-q", "other.q"],
    "ID": ["1", "2", "3", "999999", "-1"],
    "JSON": ["{}", '{"a": 1}', "[1]", "null", "{bad"],
    "WORKER": ["w1", "1", "nobody"],
    "DURATION": ["0", "1", "5s", "7d", "1h30m", "-1", "x"],
    "N": ["1", "2", "10", "0", "-1"],
    "P": ["0", "5", "-5", "x"],
    "ALIAS": ["default", "sqlite", "nope"],
    "PATH": ["out.json", "-", "/no/such/dir/x"],
    "KEY": ["k1", "k2", ""],
    # Django's flags: the settings module of these tests, or one that does not exist (the
    # command only records it: manage.py reads --settings before it loads any command).
    "SETTINGS": ["tests.settings", "does.not.exist"],
    "PYTHONPATH": [".", "/no/such/dir"],
}


def values(action: Any) -> st.SearchStrategy[str]:
    if action.choices:
        return st.sampled_from([*action.choices, "bogus"])
    return st.sampled_from(VALUES.get(action.metavar or action.dest.upper(), ["1", "jobs", "x"]))


def well_formed(path: tuple[str, ...], parser: Any) -> st.SearchStrategy[list[str]]:
    """The subcommand, values for its positionals, then some of its options with values."""
    positionals = [a for a in parser._actions if not a.option_strings]
    flags = [
        a for a in parser._actions if a.option_strings and not EXCLUDED & set(a.option_strings)
    ]

    def option(action: Any) -> st.SearchStrategy[list[str]]:
        name = st.sampled_from(action.option_strings)
        if action.nargs == 0:
            return name.map(lambda n: [n])
        return st.tuples(name, values(action)).map(list)

    return st.tuples(
        st.tuples(*(values(a) for a in positionals)),
        st.lists(st.sampled_from(flags).flatmap(option), max_size=3),
    ).map(lambda t: [*path, *t[0], *(word for pair in t[1] for word in pair)])


token = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.integers(-(10**12), 10**12).map(str),
)
# Django's standard flags, written before or after the subcommand.
DJANGO_FLAGS = st.lists(
    st.sampled_from(
        [
            ["--traceback"],
            ["-v", "2"],
            ["--verbosity", "0"],
            ["-v", "9"],
            ["--settings", "tests.settings"],
            ["--settings=does.not.exist"],
            ["--pythonpath", "."],
            ["--no-color"],
            ["--force-color"],
            ["--version"],
        ]
    ),
    min_size=1,
    max_size=3,
).map(lambda flags: [word for flag in flags for word in flag])
# Well-formed calls (to reach the API), the same with Django's flags, real subcommands with
# arbitrary tokens, and anything.
WELL_FORMED = st.one_of([well_formed(path, parser) for path, parser in leaf_parsers().items()])
WITH_DJANGO_FLAGS = st.tuples(WELL_FORMED, DJANGO_FLAGS, st.booleans()).map(
    lambda t: t[1] + t[0] if t[2] else t[0] + t[1]
)
MIXED = st.tuples(st.sampled_from(PATHS), st.lists(token, max_size=6)).map(lambda t: t[0] + t[1])
ANYTHING = st.lists(token, max_size=8)
argv = st.sampled_from([WELL_FORMED] * 4 + [WITH_DJANGO_FLAGS] * 2 + [MIXED] * 2 + [ANYTHING] * 2)
argv = argv.flatmap(lambda strategy: strategy)


SETTINGS_MODULE = os.environ["DJANGO_SETTINGS_MODULE"]
SYS_PATH = list(sys.path)

#: What a subcommand may fail with, exit code 1, while the database is up: a health check
#: that fails by design, and (under `make test-queue-db`, whose `default` alias holds no
#: pgqrs tables) what `--database default` finds there.
DESIGNED_FAILURES = (
    "pgqrs: error: unhealthy: ",
    "pgqrs: error: verify found ",
    "pgqrs: error: the pgqrs tables do not exist on database 'default': ",
)


def run(args: list[str]) -> tuple[Result | None, CommandError | None]:
    """The result of ``manage.py pgqrs args``, or the CommandError it raised: with
    ``--traceback`` an error is raised for Python to print, as by Django's own commands.
    Anything else raised fails the test."""
    try:
        return run_in_savepoint(*args), None
    except CommandError as exc:
        if "--traceback" not in args:
            raise
        return None, exc


@pytest.mark.django_db
@seed(SEED)
@settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=argv)
def test_any_arguments_give_0_1_or_2_and_never_a_traceback(
    args: list[str], queue: Queue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note(f"seed {SEED} (PGQRS_CLI_SEED={SEED} replays this run)")
    monkeypatch.chdir(tmp_path)  # --out PATH writes here
    # --settings and --pythonpath change the environment and sys.path, as in manage.py:
    # each example starts from the test process's own.
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    monkeypatch.setattr(sys, "path", list(SYS_PATH))
    if not Queue.objects.filter(name="dead").exists():
        PgqrsAdmin().create_queue("dead")
        PgqrsAdmin().register_worker(["jobs"], name="w1")
        Producer("jobs").batch_enqueue([{"n": i} for i in range(3)])
        Producer("dead").enqueue({"unserved": True})  # `worker health` fails on it
        consumer = Consumer("jobs")
        consumer.archive(consumer.dequeue())
    result, raised = run(args)
    if raised is not None:  # --traceback, and the command failed: Python prints it
        event("--traceback: raised CommandError")
        return
    assert result is not None
    event(f"exit {result.code}")
    assert result.code in (0, 1, 2), result
    assert "Traceback" not in result.err and "Traceback" not in result.out
    if result.code == 0:
        assert result.err == "", result
        return
    assert len(result.err_lines) == 1, result
    assert result.err.startswith("pgqrs: error: "), result
    if result.code == 1:
        assert result.err.startswith(DESIGNED_FAILURES), result
