"""The SQL floor: the least a queue can do, hand-written with psycopg 3 on pgqrs's own tables.

Drain: one prepared ``UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING`` claim and one prepared
``DELETE ... RETURNING`` per batch, no archive, no Django. Enqueue: one multi-row
``INSERT ... VALUES (...), (...) RETURNING id`` per batch. pgqrs's figures are compared with
these.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

CLAIM = """
WITH c AS (
    SELECT id FROM pgqrs_message WHERE queue_id = %s AND vt <= now()
    ORDER BY priority DESC, vt, id LIMIT %s FOR UPDATE SKIP LOCKED
)
UPDATE pgqrs_message AS m SET vt = now() + interval '60 seconds', read_ct = m.read_ct + 1,
    claimed_at = now()
FROM c WHERE m.id = c.id
RETURNING m.id, m.payload, m.read_ct
"""
DELETE = "DELETE FROM pgqrs_message WHERE id = ANY(%s) RETURNING id"
ROW = sql.SQL("(%s, %s, 0, now(), now(), 0, '')")


def prepare(conn: psycopg.Connection[Any]) -> None:
    """What pgqrs's worker sets on its session too (see WorkerRuntime._prepare_session)."""
    conn.execute("SET enable_bitmapscan = off")


def consume(
    conn: psycopg.Connection[Any], queue_id: int, batch: int, handle: Callable[[Any], None]
) -> int:
    """Claim, handle and delete batches until the queue is empty; returns the count."""
    count = 0
    while rows := conn.execute(CLAIM, (queue_id, batch), prepare=True).fetchall():
        for row in rows:
            handle(row)
        conn.execute(DELETE, ([row[0] for row in rows],), prepare=True).fetchall()
        count += len(rows)
    return count


def insert(url: str, queue_id: int, size: int, calls: int) -> float:
    """Messages per second of ``calls`` multi-row INSERTs of ``size`` rows (autocommit)."""
    statement = sql.SQL(
        "INSERT INTO pgqrs_message (queue_id, payload, priority, enqueued_at, vt, read_ct, "
        "last_error) VALUES {} RETURNING id"
    ).format(sql.SQL(", ").join([ROW] * size))
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        for call in range(calls):
            params: list[Any] = []
            for i in range(size):
                params += [queue_id, Jsonb({"n": call * size + i})]
            conn.execute(statement, params, prepare=True).fetchall()
        return calls * size / (time.perf_counter() - started)
