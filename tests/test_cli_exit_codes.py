"""Exit code 1 means only "the database is unreachable or refused"; a bug exits 70.

A database error that is not about reaching the database (a ProgrammingError, DataError,
IntegrityError...) is a bug: input is refused before any SQL runs, so SQL that PostgreSQL
rejects is never the input's fault, and it must not pass for an outage (issue 19). The
refusals here are PostgreSQL's own: a read-only session and a role without privileges.
tests/test_cli_errors.py covers servers that are down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from django.db import DataError, IntegrityError, ProgrammingError, connections

from pgqrs_django import conf
from pgqrs_django.cli.errors import INTERNAL
from pgqrs_django.management.commands.pgqrs import Command
from pgqrs_django.models import Queue
from tests.cli_support import database_alias, run_cli, run_in_savepoint


class Buggy(Command):
    """``manage.py pgqrs`` whose subcommands all run one statement PostgreSQL rejects, as a
    bug would: what reaches the command is PostgreSQL's own error, through Django."""

    sql: ClassVar[str]

    def handle(self, *args: Any, **options: Any) -> None:
        with connections[conf.database()].cursor() as cursor:
            cursor.execute(self.sql)


BUGS: dict[str, tuple[str, type[Exception]]] = {
    "unknown-table": ("SELECT * FROM pgqrs_no_such_table", ProgrammingError),
    "unknown-column": ("SELECT no_such_column FROM pgqrs_queue", ProgrammingError),
    "syntax": ("SELEC 1", ProgrammingError),
    "division-by-zero": ("SELECT 1 / 0", DataError),
    "out-of-range": ("SELECT 2147483647::int + 1", DataError),
    "unique-violation": (
        "CREATE TEMP TABLE twice (n int PRIMARY KEY); INSERT INTO twice VALUES (1), (1)",
        IntegrityError,
    ),
}


def buggy(sql: str) -> type[Command]:
    return type("BuggyCommand", (Buggy,), {"sql": sql})


@pytest.mark.django_db
@pytest.mark.parametrize(("sql", "error"), BUGS.values(), ids=BUGS.keys())
def test_sql_that_postgresql_rejects_is_an_unexpected_error(
    sql: str, error: type[Exception]
) -> None:
    result = run_in_savepoint("stats", command=buggy(sql))
    assert result.code == INTERNAL == 70, result
    (line,) = result.err_lines
    assert line.startswith(f"pgqrs: unexpected error: {error.__name__}: "), line
    assert line.endswith("(a bug: run again with --traceback for details)")
    assert "Traceback" not in result.err and result.out == ""


@pytest.mark.django_db
def test_traceback_shows_the_bug_when_asked() -> None:
    sql, error = BUGS["unknown-table"]
    with pytest.raises(error, match="pgqrs_no_such_table"):
        run_in_savepoint("stats", "--traceback", command=buggy(sql))


@pytest.fixture
def committed(django_db_blocker: Any) -> Iterator[None]:
    """Database access without a test transaction: a role made here must be visible to the
    connection of another alias. Nothing the tests below run is allowed to write."""
    with django_db_blocker.unblock():
        yield


def test_a_read_only_session_refuses_and_exits_1(committed: None) -> None:
    read_only = {"options": "-c default_transaction_read_only=on"}
    with database_alias("read-only", OPTIONS=read_only) as alias:
        result = run_cli("queue", "create", "never", "--database", alias)
    assert result.code == 1, result
    (line,) = result.err_lines
    assert line.startswith("pgqrs: error: cannot use database 'read-only': "), line
    assert "cannot execute INSERT in a read-only transaction" in line
    assert not Queue.objects.using(conf.database()).filter(name="never").exists()


@pytest.fixture
def role_without_privileges(committed: None) -> Iterator[str]:
    """A login role that may connect to the test database and read none of its tables
    (named after that database: roles are shared by every database of the server)."""
    role = f"{connections[conf.database()].settings_dict['NAME']}_no_privileges"
    with connections[conf.database()].cursor() as cursor:
        cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
        cursor.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        with connections[conf.database()].cursor() as cursor:
            cursor.execute(f'DROP ROLE "{role}"')


def test_a_role_without_privileges_is_refused_and_exits_1(role_without_privileges: str) -> None:
    with database_alias("no-privileges", USER=role_without_privileges, PASSWORD="") as alias:
        result = run_cli("queue", "list", "--database", alias)
    assert result.code == 1, result
    (line,) = result.err_lines
    assert line.startswith("pgqrs: error: cannot use database 'no-privileges': "), line
    assert "permission denied for table pgqrs_queue" in line
