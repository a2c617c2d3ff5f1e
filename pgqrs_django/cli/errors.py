"""Exit codes and the one mapping from an exception to an exit code and a line of text.

0 success; 1 the database is unreachable or refused the work (or a check the command runs,
``verify`` or ``worker health``, failed); 2 the caller's input or configuration is wrong;
70 an unexpected error, which is a bug (``EX_SOFTWARE`` of sysexits.h, as Celery uses).
A database error that is neither "unreachable" nor "refused" (a ``ProgrammingError``,
``IntegrityError``, ``DataError``...) is a bug too: input must be refused before SQL runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.db import DatabaseError, InterfaceError, OperationalError

from pgqrs_django import exceptions
from pgqrs_django.exceptions import NotInstalled, PgqrsError

OPERATIONAL = 1
USAGE = 2
INTERNAL = 70
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader went away (`... | head`)

#: Error lines longer than this are cut (a 10,000-character name must not flood the terminal).
MAX_ERROR_CHARS = 500

#: SQLSTATEs that mean "the server refused": no privilege on a table, a read-only server or
#: transaction. Connection failures, timeouts and the like are OperationalErrors already.
REFUSED_SQLSTATES = {"42501", "25006"}
UNDEFINED_TABLE = "42P01"
_RELATION = re.compile(r'relation "(?:[^"]+\.)?([^"]+)" does not exist')


class UsageError(CommandError):
    """A usage or input error: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, returncode=USAGE)


def one_line(text: object, *, with_type: bool = False) -> str:
    """``text`` (or an exception, ``with_type`` prefixing its class) on one line, cut to
    ``MAX_ERROR_CHARS``."""
    return exceptions.one_line(text, limit=MAX_ERROR_CHARS, with_type=with_type)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (psycopg 3 ``sqlstate``, psycopg2 ``pgcode``)."""
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


def pgqrs_tables() -> set[str]:
    """The tables of the pgqrs models (many-to-many tables included)."""
    app = apps.get_containing_app_config("pgqrs_django")
    models = app.get_models(include_auto_created=True) if app is not None else []
    return {model._meta.db_table for model in models}


def missing_pgqrs_table(exc: DatabaseError) -> bool:
    """Whether ``exc`` says a pgqrs table does not exist (not installed, not a SQL bug)."""
    if sqlstate(exc) != UNDEFINED_TABLE:
        return False
    match = _RELATION.search(str(exc))
    return match is not None and match.group(1) in pgqrs_tables()


def command_error(exc: BaseException, database: Callable[[], str]) -> CommandError | None:
    """The CommandError (one line and exit code) for an exception a command raised, or None
    for an unexpected one: a bug, which the caller reports as such. ``database`` gives the
    alias the message names (asked only for database errors: reading it may fail too)."""
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, NotInstalled) or (
        isinstance(exc, DatabaseError) and missing_pgqrs_table(exc)
    ):
        return CommandError(
            f"the pgqrs tables do not exist on database {database()!r}: "
            "run `manage.py pgqrs install` (or `manage.py migrate`)",
            returncode=OPERATIONAL,
        )
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DatabaseError) and sqlstate(exc) in REFUSED_SQLSTATES
    ):
        return CommandError(
            f"cannot use database {database()!r}: {one_line(exc)}", returncode=OPERATIONAL
        )
    if isinstance(exc, DatabaseError):
        return None  # SQL the input reached and PostgreSQL rejected: a bug
    if isinstance(exc, PgqrsError | ImproperlyConfigured):
        # Every error a caller can cause is a PgqrsError (exceptions.py); settings too.
        return CommandError(one_line(exc), returncode=USAGE)
    return None
