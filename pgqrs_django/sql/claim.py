"""The claim: lease the next visible messages of a queue in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.utils import CursorWrapper

from .rows import fast_timestamps

# The claim, in two pieces that ARCHIVE_AND_CLAIM reuses. The EXISTS is uncorrelated, so
# PostgreSQL evaluates it once (a one-time filter): a paused queue hands out nothing without a
# second round trip. %(skip)s: ids the claim must not take (see ARCHIVE_AND_CLAIM).
CLAIMABLE = """
claimable AS (
    SELECT id FROM pgqrs_message
    WHERE queue_id = %(queue)s AND vt <= statement_timestamp()
      AND id <> ALL(%(skip)s::bigint[])
      AND NOT EXISTS (SELECT 1 FROM pgqrs_queue WHERE id = %(queue)s AND paused)
    ORDER BY priority DESC, vt, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)"""
CLAIM_UPDATE = """
UPDATE pgqrs_message AS m
SET vt = statement_timestamp() + %(lock)s * interval '1 second',
    read_ct = m.read_ct + 1,
    claimed_at = statement_timestamp(),
    dequeued_at = COALESCE(m.dequeued_at, statement_timestamp()),
    consumer_id = %(worker)s
FROM claimable
WHERE m.id = claimable.id
RETURNING m.id, m.queue_id, m.payload, m.priority, m.enqueued_at, m.vt, m.read_ct,
          m.dequeued_at, m.claimed_at, m.consumer_id, m.dedupe_key, m.last_error,
          m.last_error_class
"""
CLAIM = "WITH" + CLAIMABLE + CLAIM_UPDATE


def claim_params(
    queue_id: int, limit: int, lock_seconds: float, worker_id: int | None, skip: list[int]
) -> dict[str, Any]:
    """The parameters of ``CLAIMABLE`` and ``CLAIM_UPDATE``."""
    return {
        "queue": queue_id,
        "skip": skip,
        "limit": limit,
        "lock": lock_seconds,
        "worker": worker_id,
    }


def in_claim_order(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """UPDATE ... RETURNING does not keep the CTE's order: restore priority order."""
    return sorted((tuple(row) for row in rows), key=lambda row: (-row[3], row[0]))


def claim(
    cursor: CursorWrapper, queue_id: int, limit: int, lock_seconds: float, worker_id: int | None
) -> list[tuple[Any, ...]]:
    """Lease up to ``limit`` visible messages, highest priority first, skipping locked rows."""
    fast_timestamps(cursor)
    cursor.execute(CLAIM, claim_params(queue_id, limit, lock_seconds, worker_id, []))
    return in_claim_order(cursor.fetchall())
