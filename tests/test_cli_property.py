"""Property: whatever arguments ``manage.py pgqrs`` gets, it answers with exit code 0, 1 or 2,
never a traceback, and a failure is exactly one line on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.models import Queue
from tests.cli_support import leaf_parsers, run_in_savepoint

# Everything the parser knows, plus values of every kind. Left out: --settings and
# --pythonpath (they change this test process), --traceback (it asks for tracebacks).
WORDS = sorted(
    {word for path in leaf_parsers() for word in path}
    | {
        option
        for parser in leaf_parsers().values()
        for action in parser._actions
        for option in action.option_strings
        if option not in {"--settings", "--pythonpath", "--traceback"}
    }
    | {"jobs", "dead", "w1", "nope", "json", "table", "default", "sqlite", "debug", "-"}
    | {"0", "1", "-1", "2", "1.5", "7d", "90s", "1h30m", "1e9", "abc", "inf", "NaN"}
    | {"{}", '{"a": 1}', "[1, 2]", "null", "{bad", "'", '"', "a b", "x;DROP TABLE pgqrs_queue;--"}
    | {"q" * 200, "9" * 30, ""}
)
PATHS = [list(path) for path in leaf_parsers()]
EXCLUDED = {"--settings", "--pythonpath", "--traceback", "--help", "--version"}
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
}


def values(action: Any) -> st.SearchStrategy[str]:
    if action.choices:
        return st.sampled_from([*action.choices, "bogus"])
    return st.sampled_from(VALUES.get(action.metavar, ["1", "jobs", "x"]))


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
    st.text(max_size=12).filter(lambda t: t not in {"--settings", "--pythonpath", "--traceback"}),
    st.integers(-(10**12), 10**12).map(str),
)
# Well-formed calls (to reach the API), real subcommands with arbitrary tokens, and anything.
WELL_FORMED = st.one_of([well_formed(path, parser) for path, parser in leaf_parsers().items()])
MIXED = st.tuples(st.sampled_from(PATHS), st.lists(token, max_size=6)).map(lambda t: t[0] + t[1])
ANYTHING = st.lists(token, max_size=8)
argv = st.integers(0, 9).flatmap(lambda n: WELL_FORMED if n < 6 else MIXED if n < 8 else ANYTHING)


@pytest.mark.django_db
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
    monkeypatch.chdir(tmp_path)  # --out PATH writes here
    if not Queue.objects.filter(name="dead").exists():
        PgqrsAdmin().create_queue("dead")
        PgqrsAdmin().register_worker(["jobs"], name="w1")
        Producer("jobs").batch_enqueue([{"n": i} for i in range(3)])
        Producer("dead").enqueue({"unserved": True})  # `worker health` fails on it
        consumer = Consumer("jobs")
        consumer.archive(consumer.dequeue())
    result = run_in_savepoint(*args)
    event(f"exit {result.code}")
    assert result.code in (0, 1, 2), result
    assert "Traceback" not in result.err and "Traceback" not in result.out
    if result.code == 0:
        assert result.err == "", result
    else:
        assert len(result.err_lines) == 1, result
        assert result.err.startswith("pgqrs: error: "), result
        assert "unexpected error" not in result.err, result
