"""Settling held messages: archive (alone or with the next claim), delete, release, extend,
and recording a failure (retry later, dead-letter queue). Each acts only under its lease."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.backends.utils import CursorWrapper

from .claim import CLAIM_UPDATE, CLAIMABLE, claim_params, in_claim_order
from .rows import fast_timestamps

Leases = Sequence[tuple[int, int]]

# Holder-only statements (ARCHIVE, DELETE, RELEASE, EXTEND) all match the lease with HELD,
# on %(ids)s / %(tokens)s arrays (unnested as t) and %(queue)s, and return the ids they acted
# on. The queue check is written "(...) IS TRUE" so it can never become an index condition:
# rows are found by primary key. (Right after a burst of inserts, stale statistics make the
# queue look nearly empty, and the planner would otherwise scan the whole queue through the
# claim index on every archive.)
HELD = """
WHERE m.id = t.id AND m.read_ct = t.token AND m.claimed_at IS NOT NULL
      AND (m.queue_id = %(queue)s) IS TRUE
"""
# The lease arrays as rows, for the statements that need nothing else per message.
LEASES = "unnest(%(ids)s::bigint[], %(tokens)s::int[]) AS t(id, token)"


def _lease_params(queue_id: int, leases: Leases) -> dict[str, Any]:
    return {"ids": [i for i, _ in leases], "tokens": [t for _, t in leases], "queue": queue_id}


def _held(
    cursor: CursorWrapper, statement: str, queue_id: int, leases: Leases, **params: Any
) -> set[int]:
    cursor.execute(statement, {**_lease_params(queue_id, leases), **params})
    return {row[0] for row in cursor.fetchall()}


# Archiving, in two pieces that ARCHIVE_AND_CLAIM reuses: delete the held rows (lease
# checked) and insert them into the archive.
DELETE_HELD = (
    """
done AS (
    DELETE FROM pgqrs_message AS m
    USING unnest(%(ids)s::bigint[], %(tokens)s::int[], %(results)s::jsonb[],
                 %(durations)s::float8[])
          AS t(id, token, result, duration)"""  # noqa: S608 (constant pieces)
    + HELD
    + """    RETURNING m.*, t.result AS result, t.duration AS duration
)"""
)
INSERT_ARCHIVE = """
INSERT INTO pgqrs_archive
    (id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
     archived_at, outcome, duration, worker_name, error, error_class, result)
SELECT id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
       statement_timestamp(), %(outcome)s,
       COALESCE(duration, EXTRACT(EPOCH FROM statement_timestamp() - claimed_at)::float8),
       %(worker_name)s, %(error)s, %(error_class)s, result
FROM done
RETURNING id
"""
ARCHIVE = "WITH" + DELETE_HELD + INSERT_ARCHIVE


@dataclass(frozen=True)
class ArchiveRecord:
    """What ``INSERT_ARCHIVE`` records for the messages it moves (``results`` and
    ``durations``: one per lease, in order, or None for none; ``error_class``: the dotted
    path of the exception ``error`` comes from, if any)."""

    outcome: str
    worker_name: str
    error: str = ""
    error_class: str = ""
    results: Sequence[str | None] | None = None
    durations: Sequence[float | None] | None = None

    def params(self, count: int) -> dict[str, Any]:
        """The parameters of ``DELETE_HELD`` and ``INSERT_ARCHIVE`` for ``count`` leases
        (the lease arrays apart)."""
        none = [None] * count
        return {
            "results": none if self.results is None else list(self.results),
            "durations": none if self.durations is None else list(self.durations),
            "outcome": self.outcome,
            "worker_name": self.worker_name,
            "error": self.error,
            "error_class": self.error_class,
        }


def archive_held(
    cursor: CursorWrapper, queue_id: int, leases: Leases, record: ArchiveRecord
) -> set[int]:
    """Move held messages to the archive in one statement; returns the ids moved."""
    return _held(cursor, ARCHIVE, queue_id, leases, **record.params(len(leases)))


# The worker's hot path: archive what finished and claim the next batch in one statement, so
# one round trip and one commit (one WAL flush) serve both. The claim skips the rows being
# archived (a lease that just ran out could otherwise be archived and re-claimed by the same
# statement). The first column carries the archived ids; a claim that found nothing still
# yields one row (NULL message columns) to carry them. Built once, at import, from the
# constant pieces above and claim.py's: no value is ever formatted into it.
ARCHIVE_AND_CLAIM = (
    "WITH"  # noqa: S608
    + DELETE_HELD
    + ", archived AS ("
    + INSERT_ARCHIVE
    + "),"
    + CLAIMABLE
    + ", claimed AS ("
    + CLAIM_UPDATE
    + """)
SELECT a.ids, c.*
FROM (SELECT array_agg(id) AS ids FROM archived) AS a LEFT JOIN claimed AS c ON true
"""
)


def archive_and_claim(
    cursor: CursorWrapper,
    queue_id: int,
    leases: Leases,
    *,
    worker_name: str,
    results: Sequence[str | None],
    durations: Sequence[float | None],
    limit: int,
    lock_seconds: float,
    worker_id: int | None,
) -> tuple[set[int], list[tuple[Any, ...]]]:
    """Archive held messages as succeeded and lease up to ``limit`` more, in one statement.
    Returns the archived ids and the claimed rows (``MESSAGE_COLUMNS``, priority order)."""
    fast_timestamps(cursor)
    record = ArchiveRecord("succeeded", worker_name, results=results, durations=durations)
    archived = record.params(len(leases))
    skip = [i for i, _ in leases]
    claimed = claim_params(queue_id, limit, lock_seconds, worker_id, skip)
    cursor.execute(ARCHIVE_AND_CLAIM, {**_lease_params(queue_id, leases), **archived, **claimed})
    rows = cursor.fetchall()
    done = set(rows[0][0] or ()) if rows else set()
    return done, in_claim_order([row[1:] for row in rows if row[1] is not None])


DELETE = "\nDELETE FROM pgqrs_message AS m\nUSING " + LEASES + HELD + "RETURNING m.id\n"


def delete_held(cursor: CursorWrapper, queue_id: int, leases: Leases) -> set[int]:
    return _held(cursor, DELETE, queue_id, leases)


RELEASE = (
    """
UPDATE pgqrs_message AS m
SET vt = statement_timestamp(), claimed_at = NULL, consumer_id = NULL
FROM """
    + LEASES
    + HELD
    + "RETURNING m.id\n"
)


def release_held(cursor: CursorWrapper, queue_id: int, leases: Leases) -> set[int]:
    """Give held messages back: claimable at once."""
    return _held(cursor, RELEASE, queue_id, leases)


EXTEND = (
    """
UPDATE pgqrs_message AS m
SET vt = GREATEST(m.vt, statement_timestamp()) + %(seconds)s * interval '1 second'
FROM """
    + LEASES
    + HELD
    + "RETURNING m.id\n"
)


def extend_held(cursor: CursorWrapper, queue_id: int, leases: Leases, seconds: float) -> set[int]:
    """Push the lease end of held messages ``seconds`` further."""
    return _held(cursor, EXTEND, queue_id, leases, seconds=seconds)


# fail(): lock the held row and read the queue's policy in one go.
LOCK_FOR_FAIL = """
SELECT m.read_ct, q.max_attempts, q.dead_letter_queue_id
FROM pgqrs_message AS m JOIN pgqrs_queue AS q ON q.id = m.queue_id
WHERE m.id = %s AND m.read_ct = %s AND m.claimed_at IS NOT NULL AND (m.queue_id = %s) IS TRUE
FOR UPDATE OF m
"""

RETRY_LATER = """
UPDATE pgqrs_message
SET vt = statement_timestamp() + %s * interval '1 second',
    claimed_at = NULL, consumer_id = NULL, last_error = %s, last_error_class = %s
WHERE id = %s
"""

# The dead-letter queue gets the same row (same id) as a fresh message. Its dedupe_key is kept
# unless the dead-letter queue already holds an active message with that key.
MOVE_TO_DEAD_LETTER_QUEUE = """
UPDATE pgqrs_message AS m
SET queue_id = %s, vt = statement_timestamp(), read_ct = 0, claimed_at = NULL,
    consumer_id = NULL, dequeued_at = NULL, last_error = %s, last_error_class = %s,
    dedupe_key = CASE WHEN EXISTS (
        SELECT 1 FROM pgqrs_message AS o
        WHERE o.queue_id = %s AND o.dedupe_key = m.dedupe_key) THEN NULL ELSE m.dedupe_key END
WHERE m.id = %s
"""


def lock_for_fail(
    cursor: CursorWrapper, queue_id: int, msg_id: int, token: int
) -> tuple[int, int, int | None] | None:
    cursor.execute(LOCK_FOR_FAIL, [msg_id, token, queue_id])
    row = cursor.fetchone()
    return None if row is None else (row[0], row[1], row[2])


def retry_later(
    cursor: CursorWrapper, msg_id: int, delay: float, error: str, error_class: str
) -> None:
    cursor.execute(RETRY_LATER, [delay, error, error_class, msg_id])


def move_to_dead_letter_queue(
    cursor: CursorWrapper, msg_id: int, dlq_id: int, error: str, error_class: str
) -> None:
    cursor.execute(MOVE_TO_DEAD_LETTER_QUEUE, [dlq_id, error, error_class, dlq_id, msg_id])
