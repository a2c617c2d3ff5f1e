"""The claim query is served by its index on a realistic table (EXPLAIN, 100k rows)."""

from __future__ import annotations

import json

import pytest

from pgqrs_django import PgqrsAdmin, sql
from pgqrs_django.models import Archive, Message, Queue
from tests.databases import pgqrs_connection

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _plan(statement: str, params: list[object]) -> dict:
    with pgqrs_connection().cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, params)
        raw = cursor.fetchone()[0]
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture
def big_table(admin: PgqrsAdmin) -> Queue:
    """100,000 messages over 11 queues: 50k ready, 30k delayed, 10k leased in the target."""
    target = admin.create_queue("target")
    others = [admin.create_queue(f"other{i}") for i in range(10)]
    with pgqrs_connection().cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO pgqrs_message (queue_id, payload, priority, enqueued_at, vt, read_ct,
                                       claimed_at, last_error)
            SELECT %s, jsonb_build_object('n', g), g %% 3, now(),
                   CASE WHEN g <= 50000 THEN now() - interval '1 minute'
                        WHEN g <= 80000 THEN now() + interval '1 hour'
                        ELSE now() + interval '5 minutes' END,
                   CASE WHEN g > 80000 THEN 1 ELSE 0 END,
                   CASE WHEN g > 80000 THEN now() END, ''
            FROM generate_series(1, 90000) AS g
            """,
            [target.pk],
        )
        cursor.execute(
            """
            INSERT INTO pgqrs_message (queue_id, payload, priority, enqueued_at, vt, read_ct,
                                       last_error)
            SELECT (%s::bigint[])[1 + g %% 10], '{}'::jsonb, 0, now(), now(), 0, ''
            FROM generate_series(1, 10000) AS g
            """,
            [[q.pk for q in others]],
        )
        cursor.execute("ANALYZE pgqrs_message")
    assert Message.objects.count() == 100_000
    return target


def _claim_params(queue: Queue) -> dict[str, object]:
    return {"queue": queue.pk, "skip": [], "limit": 50, "lock": 30.0, "worker": None}


def test_claim_uses_the_claim_index_not_a_scan(big_table: Queue) -> None:
    plan = _plan(sql.CLAIM, _claim_params(big_table))
    nodes = list(_nodes(plan))
    scans = [
        (n["Node Type"], n.get("Relation Name"), n.get("Index Name"))
        for n in nodes
        if "Scan" in n["Node Type"]
    ]
    assert ("Index Scan", "pgqrs_message", "pgqrs_msg_claim_idx") in scans, scans
    assert not any(t == "Seq Scan" and rel == "pgqrs_message" for t, rel, _ in scans), scans
    # The index delivers rows in claim order: no sort step before the LIMIT.
    assert not any(n["Node Type"] == "Sort" for n in nodes), [n["Node Type"] for n in nodes]


def test_claim_really_reads_few_index_entries(big_table: Queue) -> None:
    """EXPLAIN ANALYZE inside a rolled-back transaction: the claim touches ~batch rows."""
    from django.db import transaction

    with transaction.atomic(using=pgqrs_connection().alias), pgqrs_connection().cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + sql.CLAIM,
            _claim_params(big_table),
        )
        raw = cursor.fetchone()[0]
        transaction.set_rollback(True, using=pgqrs_connection().alias)
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    index_scans = [n for n in _nodes(plan) if n.get("Index Name") == "pgqrs_msg_claim_idx"]
    assert index_scans and index_scans[0]["Actual Rows"] == 50
    assert plan["Actual Rows"] == 50


def test_stale_worker_reclaim_uses_the_consumer_index(big_table: Queue) -> None:
    query = Message.objects.filter(consumer_id=123)
    plan = query.explain(format="json")
    assert "pgqrs_msg_consumer_idx" in plan


def test_archive_listing_per_queue_uses_its_index(big_table: Queue) -> None:
    with pgqrs_connection().cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO pgqrs_archive (id, queue_id, payload, priority, enqueued_at, vt, read_ct,
                                       archived_at, outcome, worker_name, error)
            SELECT g, %s, '{}'::jsonb, 0, now(), now(), 1, now() - g * interval '1 second',
                   'succeeded', '', ''
            FROM generate_series(1, 100000) AS g
            """,
            [big_table.pk],
        )
        cursor.execute("ANALYZE pgqrs_archive")
    query = Archive.objects.filter(queue=big_table).order_by("-archived_at")[:50]
    assert "pgqrs_arch_queue_time_idx" in query.explain()
