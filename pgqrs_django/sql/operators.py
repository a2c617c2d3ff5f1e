"""Operator-side statements (``PgqrsAdmin``): no lease check, the admin acts on any message of
the queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.utils import CursorWrapper

ADMIN_ARCHIVE = """
WITH done AS (
    DELETE FROM pgqrs_message WHERE queue_id = %s AND id = ANY(%s::bigint[]) RETURNING *
)
INSERT INTO pgqrs_archive
    (id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
     archived_at, outcome, duration, worker_name, error, error_class, result)
SELECT id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
       statement_timestamp(), %s, NULL, '', %s, '', NULL
FROM done
RETURNING id
"""


def archive_any(
    cursor: CursorWrapper, queue_id: int, ids: Sequence[int], outcome: str, error: str
) -> set[int]:
    cursor.execute(ADMIN_ARCHIVE, [queue_id, list(ids), outcome, error])
    return {row[0] for row in cursor.fetchall()}


# replay_dead(): the archived row goes back to the active table under its own id, as new.
REPLAY = """
WITH gone AS (
    DELETE FROM pgqrs_archive WHERE id = %s AND queue_id = %s AND outcome = ANY(%s)
    RETURNING *
)
INSERT INTO pgqrs_message AS m
    (id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, claimed_at,
     consumer_id, dedupe_key, last_error, last_error_class)
SELECT id, queue_id, payload, priority, enqueued_at, statement_timestamp(), 0, NULL, NULL,
       NULL, dedupe_key, error, error_class
FROM gone
RETURNING m.id, m.queue_id, m.payload, m.priority, m.enqueued_at, m.vt, m.read_ct,
          m.dequeued_at, m.claimed_at, m.consumer_id, m.dedupe_key, m.last_error,
          m.last_error_class
"""


def replay(
    cursor: CursorWrapper, queue_id: int, msg_id: int, outcomes: Sequence[str]
) -> list[tuple[Any, ...]]:
    cursor.execute(REPLAY, [msg_id, queue_id, list(outcomes)])
    return list(cursor.fetchall())
