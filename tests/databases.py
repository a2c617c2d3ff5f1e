"""The pgqrs database in tests: ``default``, or the second alias under ``make test-queue-db``."""

from __future__ import annotations

import datetime as dt

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from pgqrs_django import conf


def pgqrs_connection() -> BaseDatabaseWrapper:
    """The connection pgqrs queries run on (``PGQRS["DATABASE"]``)."""
    return connections[conf.database()]


def server_now() -> dt.datetime:
    """The pgqrs database server's clock, which leases, delays and ages are measured by:
    two readings bracket a statement's ``statement_timestamp()`` exactly."""
    with pgqrs_connection().cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


class SqliteHoldsNothing:
    """Test router: the ``sqlite`` alias of tests/settings.py exists only for the system-check
    tests and never holds tables. Saying so keeps Django's model checks (which, from Django
    6.1, ask every database that may hold a model whether it supports JSONField) off it when
    a test runs a management command with its checks."""

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        return False if db == "sqlite" else None
