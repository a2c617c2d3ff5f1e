"""Migration 0003 sets autovacuum storage parameters on the message table (docs/operations.md)."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
def test_the_message_table_has_its_autovacuum_settings() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'pgqrs_message'")
        options = dict(option.split("=", 1) for option in cursor.fetchone()[0])
    assert options == {
        "autovacuum_vacuum_scale_factor": "0.01",
        "autovacuum_vacuum_threshold": "1000",
        "autovacuum_vacuum_insert_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.02",
        "autovacuum_vacuum_cost_delay": "1",
        "fillfactor": "80",
    }
