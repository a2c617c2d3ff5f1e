"""The statements the product runs on the hot path are served by their indexes on a realistic
table: 100,000 messages, with the claimable ones last in the heap, so that a scan which
reads rows it does not return shows up in its filtered rows and its buffers.

Each statement is captured as the product executes it (``CaptureQueriesContext`` around the
public API) and then run again under ``EXPLAIN (ANALYZE, BUFFERS)`` in a rolled-back
transaction."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from pgqrs_django import Consumer, PgqrsAdmin
from pgqrs_django.models import Archive, Message, Queue, Worker
from tests.databases import pgqrs_connection
from tests.factories import WorkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

READY, DELAYED, LEASED, OTHERS = 50_000, 30_000, 10_000, 10_000
WORKERS = 200  # the leased messages' holders, 50 messages each


@contextmanager
def rolled_back() -> Iterator[Any]:
    """A cursor inside a savepoint that is rolled back at the end."""
    alias = pgqrs_connection().alias
    with transaction.atomic(using=alias), pgqrs_connection().cursor() as cursor:
        yield cursor
        transaction.set_rollback(True, using=alias)


def explain_analyze(cursor: Any, statement: str) -> dict[str, Any]:
    cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement)
    raw = cursor.fetchone()[0]
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def message_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes that read pgqrs_message itself or one of its indexes."""
    indexes = {"pgqrs_msg_claim_idx", "pgqrs_msg_consumer_idx", "pgqrs_message_pkey"}
    return [
        n
        for n in nodes(plan)
        if "Scan" in n["Node Type"]
        and (n.get("Relation Name") == "pgqrs_message" or n.get("Index Name") in indexes)
    ]


def blocks(node: dict[str, Any]) -> int:
    """Buffers the node (and its children) touched: hits plus reads."""
    return int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])


def table_pages() -> int:
    with pgqrs_connection().cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size('pgqrs_message') / current_setting('block_size')::int"
        )
        return int(cursor.fetchone()[0])


def assert_reads_only(scans: list[dict[str, Any]], rows: int) -> None:
    """Every read of pgqrs_message in the plan (``scans``) goes through an index, returns
    no more than the ``rows`` the statement acts on, throws no row away, and touches at most
    five buffers per row: a few index pages and the row's heap page. Reading past rows the
    statement does not act on (a sequential scan, a scan of the whole queue or of every
    leased row) breaks one of these on this table."""
    summary = [
        (s["Node Type"], s.get("Index Name"), s["Actual Rows"], s["Actual Loops"], blocks(s))
        for s in scans
    ]
    assert not [s for s in scans if s["Node Type"] == "Seq Scan"], summary
    for scan in scans:
        assert scan["Actual Rows"] * scan["Actual Loops"] <= rows, summary
        assert scan.get("Rows Removed by Filter", 0) == 0, summary
        assert scan.get("Rows Removed by Index Recheck", 0) == 0, summary
        assert blocks(scan) <= 5 * rows, summary
    # ... while the table is four times as many pages as that bound, or more.
    assert table_pages() > 4 * 5 * rows


@pytest.fixture
def big_table(admin: PgqrsAdmin) -> Queue:
    """100,000 messages: first 10k ready in 10 other queues, then in the target 30k delayed
    and 10k leased (by 200 live workers), and last the target's 50k ready ones."""
    target = admin.create_queue("target")
    others = [admin.create_queue(f"other{i}") for i in range(10)]
    workers = [WorkerFactory().pk for _ in range(WORKERS)]
    with pgqrs_connection().cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO pgqrs_message (queue_id, payload, priority, enqueued_at, vt, read_ct,
                                       last_error)
            SELECT (%s::bigint[])[1 + g %% 10], '{}'::jsonb, 0, now(), now(), 0, ''
            FROM generate_series(1, %s) AS g
            """,
            [[q.pk for q in others], OTHERS],
        )
        cursor.execute(
            """
            INSERT INTO pgqrs_message (queue_id, payload, priority, enqueued_at, vt, read_ct,
                                       claimed_at, consumer_id, last_error)
            SELECT %(queue)s, jsonb_build_object('n', g), g %% 3, now(),
                   CASE WHEN g <= %(delayed)s THEN now() + interval '1 hour'
                        WHEN g <= %(held)s THEN now() + interval '5 minutes'
                        ELSE now() - interval '1 minute' END,
                   CASE WHEN g > %(delayed)s AND g <= %(held)s THEN 1 ELSE 0 END,
                   CASE WHEN g > %(delayed)s AND g <= %(held)s THEN now() END,
                   CASE WHEN g > %(delayed)s AND g <= %(held)s
                        THEN (%(workers)s::bigint[])[1 + g %% %(n_workers)s] END,
                   ''
            FROM generate_series(1, %(total)s) AS g
            """,
            {
                "queue": target.pk,
                "delayed": DELAYED,
                "held": DELAYED + LEASED,
                "total": DELAYED + LEASED + READY,
                "workers": workers,
                "n_workers": WORKERS,
            },
        )
        cursor.execute("ANALYZE pgqrs_message")
        cursor.execute("ANALYZE pgqrs_worker")
    assert Message.objects.count() == OTHERS + DELAYED + LEASED + READY
    assert Message.objects.for_queue(target).ready().count() == READY
    # The claimable rows are not first in the table: every other row comes before them.
    first_ready = Message.objects.for_queue(target).ready().order_by("id").first()
    assert first_ready is not None and first_ready.pk > Message.objects.order_by("id")[0].pk
    assert Message.objects.filter(pk__lt=first_ready.pk).count() == OTHERS + DELAYED + LEASED
    return target


def test_the_claim_reads_its_batch_through_the_claim_index_and_little_else(
    big_table: Queue,
) -> None:
    consumer = Consumer("target")
    assert consumer.queue == big_table  # the one-time lookup, outside the capture
    with rolled_back(), CaptureQueriesContext(pgqrs_connection()) as ctx:
        claimed = consumer.dequeue_batch(50)
    assert len(claimed) == 50
    (claim,) = [q["sql"] for q in ctx.captured_queries if "SKIP LOCKED" in q["sql"]]
    with rolled_back() as cursor:
        plan = explain_analyze(cursor, claim)
    assert plan["Actual Rows"] == 50
    kinds = [n["Node Type"] for n in nodes(plan)]
    # The index delivers rows in claim order: no sort of the queue before the LIMIT.
    assert "Sort" not in kinds, kinds
    scans = message_scans(plan)
    (claim_scan,) = [s for s in scans if s.get("Index Name") == "pgqrs_msg_claim_idx"]
    assert claim_scan["Actual Rows"] == 50
    # The delayed and leased rows of the target (80% of its rows, and all before the ready
    # ones in the table) and the other queues' rows are never visited.
    assert_reads_only(scans, 50)


def test_reclaim_reaches_a_dead_workers_messages_through_the_consumer_index(
    big_table: Queue,
) -> None:
    """PgqrsAdmin.reclaim() marks a worker with a stale heartbeat stopped and releases the
    50 messages it held; replayed under EXPLAIN, the release touches those rows only."""
    dead = Worker.objects.order_by("pk").first()
    assert dead is not None
    Worker.objects.filter(pk=dead.pk).update(heartbeat_at=F("heartbeat_at") - dt.timedelta(days=1))
    held = Message.objects.filter(consumer=dead).count()
    assert held == LEASED // WORKERS
    with rolled_back(), CaptureQueriesContext(pgqrs_connection()) as ctx:
        result = PgqrsAdmin().reclaim()
    assert (result.workers, result.messages) == (1, held)
    statements = [
        q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    release = [s for s in statements if re.match(r'UPDATE\s+"?pgqrs_message"?\s', s)]
    assert len(release) == 1, statements
    with rolled_back() as cursor:
        # The statements before it (finding and stopping the stale worker) run as they did.
        for statement in statements[: statements.index(release[0])]:
            cursor.execute(statement)
        plan = explain_analyze(cursor, release[0])
    scans = message_scans(plan)
    assert "pgqrs_msg_consumer_idx" in {s.get("Index Name") for s in scans}, scans
    # The other 199 workers' 9,950 leased rows are never visited.
    assert_reads_only(scans, held)


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
