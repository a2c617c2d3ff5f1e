"""The pgqrs database in tests: ``default``, or the second alias under ``make test-queue-db``."""

from __future__ import annotations

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from pgqrs_django import conf


def pgqrs_connection() -> BaseDatabaseWrapper:
    """The connection pgqrs queries run on (``PGQRS["DATABASE"]``)."""
    return connections[conf.database()]
