"""The SQL floor: the least a queue can do per batch, hand-written with psycopg 3.

One prepared ``UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING`` claim and one prepared
``DELETE ... RETURNING`` per batch, on pgqrs's own table, no archive, no Django. pgqrs's
figures are compared with this.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

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


def _consume(url: str, queue_id: int, batch: int, go: Any, done: Any) -> None:
    import psycopg

    count = 0
    with psycopg.connect(url, autocommit=True) as conn:
        go.wait()
        while rows := conn.execute(CLAIM, (queue_id, batch), prepare=True).fetchall():
            conn.execute(DELETE, ([row[0] for row in rows],), prepare=True).fetchall()
            count += len(rows)
    done.put(count)


def drain(url: str, queue_id: int, batch: int, workers: int) -> tuple[float, int]:
    """Drain ``queue_id`` with ``workers`` processes; returns (seconds, messages)."""
    go = multiprocessing.Event()
    done: Any = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_consume, args=(url, queue_id, batch, go, done))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # let them connect
    started = time.perf_counter()
    go.set()
    total = sum(done.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    return elapsed, total
