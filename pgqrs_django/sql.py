"""The hot-path statements, in raw SQL next to the models they serve.

Why not the ORM here: each of these must be one round trip and one atomic statement.
``select_for_update(skip_locked=True)`` followed by ``update()`` is two round trips and needs an
explicit transaction; a batch insert with ``ON CONFLICT ... DO NOTHING RETURNING`` over a partial
unique index, and "delete these rows and insert them into the archive", cannot be said in the
ORM at all. Everything else (metrics, queues, workers, admin) uses the ORM.

Every value travels as a bound parameter; every statement is a constant string (none is
built by formatting), and each statement returning messages lists ``MESSAGE_COLUMNS``.

Leases: every claim increments ``read_ct``; a consumer remembers the ``read_ct`` it got and
passes it back as its lease token. A row matches only while ``read_ct`` still equals the token
and ``claimed_at`` is set, so once another consumer claims the message (or an operator releases
it) the old holder's archive/delete/fail/extend match nothing and report False.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from django.db.backends.utils import CursorWrapper
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from psycopg.pq import Format

from .models import Message

#: Column order of ``Message._meta.concrete_fields``, so rows map straight onto ``from_db``.
MESSAGE_COLUMNS = (
    "id",
    "queue_id",
    "payload",
    "priority",
    "enqueued_at",
    "vt",
    "read_ct",
    "dequeued_at",
    "claimed_at",
    "consumer_id",
    "dedupe_key",
    "last_error",
)
_PAYLOAD_INDEX = MESSAGE_COLUMNS.index("payload")
_FIELD_NAMES = [f.attname for f in Message._meta.concrete_fields]


@functools.cache
def _iso_timestamptz_loader(base: type[Any]) -> type[Any]:
    class IsoTimestamptzLoader(base):
        """Django's timestamptz loader, with PostgreSQL's ISO output parsed by the C
        ``datetime.fromisoformat`` (several times faster than psycopg's Python parser that
        Django's loader extends); anything else goes to Django's loader."""

        def load(self, data: Any) -> Any:
            try:
                value = dt.datetime.fromisoformat(bytes(data).decode())
            except ValueError:
                return super().load(data)
            # What Django's loader does: the text is in the session time zone, which
            # Django keeps equal to the loader's.
            return value.replace(tzinfo=self.timezone)

    return IsoTimestamptzLoader


def fast_timestamps(cursor: CursorWrapper) -> None:
    """Load this cursor's timestamptz columns faster (same values as Django's loader).

    Statements returning many messages spend most of their client time parsing their four
    timestamps; this cursor-local loader cuts that several-fold."""
    raw = cursor.cursor
    adapters = getattr(raw, "adapters", None)
    if adapters is None:  # not psycopg 3
        return
    oid = adapters.types["timestamptz"].oid
    base = adapters.get_loader(oid, Format.TEXT)
    if base is not None and issubclass(base, BaseTzLoader):
        adapters.register_loader(oid, _iso_timestamptz_loader(base))


def rows_to_messages(rows: Sequence[Sequence[Any]], alias: str) -> list[Message]:
    """Build Message instances from rows in ``MESSAGE_COLUMNS`` order."""
    messages = []
    for row in rows:
        values = list(row)
        payload = values[_PAYLOAD_INDEX]
        # Django registers a text loader for jsonb; JSONField decodes it the same way.
        if isinstance(payload, str):
            values[_PAYLOAD_INDEX] = json.loads(payload)
        messages.append(_message(alias, values))
    return messages


def _message(alias: str, values: list[Any]) -> Message:
    """``Message.from_db(alias, fields, values)``, without the per-field descriptor calls of
    ``Model.__init__`` (a third of a claim's client time) when no init signal receiver
    could notice the difference."""
    if pre_init.has_listeners(Message) or post_init.has_listeners(Message):
        return Message.from_db(alias, _FIELD_NAMES, values)
    message = Message.__new__(Message)
    message.__dict__.update(zip(_FIELD_NAMES, values, strict=True))
    state = message._state = ModelState()
    state.adding = False
    state.db = alias
    return message


def new_message(alias: str, **values: Any) -> Message:
    """A Message instance for a row just inserted (unset columns take their defaults)."""
    defaults = {
        "read_ct": 0,
        "dequeued_at": None,
        "claimed_at": None,
        "consumer_id": None,
        "dedupe_key": None,
        "last_error": "",
    }
    merged = {**defaults, **values}
    return _message(alias, [merged[name] for name in _FIELD_NAMES])


# Payloads travel as one JSON array (one quoted string), not as an array parameter per
# column: quoting one string is far cheaper than quoting thousands of array elements. The
# statement returns one row of arrays, so the client parses two timestamps per batch instead
# of two per message.
INSERT = """
WITH inserted AS (
    INSERT INTO pgqrs_message AS m
        (queue_id, payload, priority, enqueued_at, vt, read_ct, dedupe_key, last_error)
    SELECT %(queue)s, t.payload, %(priority)s, statement_timestamp(),
           COALESCE(%(at)s::timestamptz,
                    statement_timestamp() + %(delay)s * interval '1 second'),
           0, (%(keys)s::text[])[t.ord], ''
    FROM jsonb_array_elements(%(payloads)s::jsonb) WITH ORDINALITY AS t(payload, ord)
    ORDER BY t.ord
    ON CONFLICT (queue_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING m.id, m.dedupe_key, m.enqueued_at, m.vt
)
SELECT COALESCE(array_agg(id ORDER BY id), '{}'), array_agg(dedupe_key ORDER BY id),
       min(enqueued_at), min(vt)
FROM inserted
"""


class Inserted(NamedTuple):
    """What INSERT returns: ids (ascending, i.e. input order) and their dedupe keys, and the
    enqueued_at and vt shared by the whole batch."""

    ids: list[int]
    keys: list[str | None]
    enqueued_at: dt.datetime | None
    vt: dt.datetime | None


def insert(
    cursor: CursorWrapper,
    queue_id: int,
    payloads_json: str,
    *,
    priority: int,
    delay: float,
    at: dt.datetime | None,
    dedupe_keys: Sequence[str | None] | None,
) -> Inserted:
    """Insert a batch (``payloads_json`` is a JSON array) in one statement; messages whose
    dedupe_key is taken by an active message are skipped."""
    fast_timestamps(cursor)
    cursor.execute(
        INSERT,
        {
            "queue": queue_id,
            "payloads": payloads_json,
            "priority": priority,
            "delay": delay,
            "at": at,
            "keys": list(dedupe_keys) if dedupe_keys is not None else None,
        },
    )
    ids, keys, enqueued_at, vt = cursor.fetchone()
    return Inserted(list(ids), list(keys or []), enqueued_at, vt)


# A message id taken from the table's identity sequence before the row exists (the Django
# Tasks backend hands it out as the result id and inserts the row when the transaction
# commits). Sequences ignore rollbacks: an id reserved by a rolled-back transaction is skipped.
RESERVE_MESSAGE_ID = "SELECT nextval(pg_get_serial_sequence('pgqrs_message', 'id'))"


def reserve_message_id(cursor: CursorWrapper) -> int:
    """A fresh message id, for a row inserted later with that id."""
    cursor.execute(RESERVE_MESSAGE_ID)
    return int(cursor.fetchone()[0])


# The claim, in two pieces that ARCHIVE_AND_CLAIM reuses. The EXISTS is uncorrelated, so
# PostgreSQL evaluates it once (a one-time filter): a paused queue hands out nothing without a
# second round trip. %(skip)s: ids the claim must not take (see ARCHIVE_AND_CLAIM).
_CLAIMABLE = """
claimable AS (
    SELECT id FROM pgqrs_message
    WHERE queue_id = %(queue)s AND vt <= statement_timestamp()
      AND id <> ALL(%(skip)s::bigint[])
      AND NOT EXISTS (SELECT 1 FROM pgqrs_queue WHERE id = %(queue)s AND paused)
    ORDER BY priority DESC, vt, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)"""
_CLAIM_UPDATE = """
UPDATE pgqrs_message AS m
SET vt = statement_timestamp() + %(lock)s * interval '1 second',
    read_ct = m.read_ct + 1,
    claimed_at = statement_timestamp(),
    dequeued_at = COALESCE(m.dequeued_at, statement_timestamp()),
    consumer_id = %(worker)s
FROM claimable
WHERE m.id = claimable.id
RETURNING m.id, m.queue_id, m.payload, m.priority, m.enqueued_at, m.vt, m.read_ct,
          m.dequeued_at, m.claimed_at, m.consumer_id, m.dedupe_key, m.last_error
"""
CLAIM = "WITH" + _CLAIMABLE + _CLAIM_UPDATE


def claim(
    cursor: CursorWrapper, queue_id: int, limit: int, lock_seconds: float, worker_id: int | None
) -> list[tuple[Any, ...]]:
    """Lease up to ``limit`` visible messages, highest priority first, skipping locked rows."""
    fast_timestamps(cursor)
    cursor.execute(
        CLAIM,
        {"queue": queue_id, "skip": [], "limit": limit, "lock": lock_seconds, "worker": worker_id},
    )
    # UPDATE ... RETURNING does not keep the CTE's order; restore priority order.
    return sorted(cursor.fetchall(), key=lambda row: (-row[3], row[0]))


# Holder-only statements (ARCHIVE, DELETE, RELEASE, EXTEND) all match the lease the same way,
# on %(ids)s / %(tokens)s arrays and %(queue)s, and return the ids they acted on. The queue
# check is written "(...) IS TRUE" so it can never become an index condition: rows are found
# by primary key. (Right after a burst of inserts, stale statistics make the queue look
# nearly empty, and the planner would otherwise scan the whole queue through the claim
# index on every archive.)


def _held(
    cursor: CursorWrapper,
    statement: str,
    queue_id: int,
    leases: Sequence[tuple[int, int]],
    **params: Any,
) -> set[int]:
    cursor.execute(
        statement,
        {
            "ids": [i for i, _ in leases],
            "tokens": [t for _, t in leases],
            "queue": queue_id,
            **params,
        },
    )
    return {row[0] for row in cursor.fetchall()}


# Archiving, in two pieces that ARCHIVE_AND_CLAIM reuses: delete the held rows (lease
# checked) and insert them into the archive.
_DELETE_HELD = """
done AS (
    DELETE FROM pgqrs_message AS m
    USING unnest(%(ids)s::bigint[], %(tokens)s::int[], %(results)s::jsonb[],
                 %(durations)s::float8[])
          AS t(id, token, result, duration)
    WHERE m.id = t.id AND m.read_ct = t.token AND m.claimed_at IS NOT NULL
          AND (m.queue_id = %(queue)s) IS TRUE
    RETURNING m.*, t.result AS result, t.duration AS duration
)"""
_INSERT_ARCHIVE = """
INSERT INTO pgqrs_archive
    (id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
     archived_at, outcome, duration, worker_name, error, result)
SELECT id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
       statement_timestamp(), %(outcome)s,
       COALESCE(duration, EXTRACT(EPOCH FROM statement_timestamp() - claimed_at)::float8),
       %(worker_name)s, %(error)s, result
FROM done
RETURNING id
"""
ARCHIVE = "WITH" + _DELETE_HELD + _INSERT_ARCHIVE


def archive_held(
    cursor: CursorWrapper,
    queue_id: int,
    leases: Sequence[tuple[int, int]],
    *,
    outcome: str,
    worker_name: str,
    error: str = "",
    results: Sequence[str | None] | None = None,
    durations: Sequence[float | None] | None = None,
) -> set[int]:
    """Move held messages to the archive in one statement; returns the ids moved."""
    none = [None] * len(leases)
    return _held(
        cursor,
        ARCHIVE,
        queue_id,
        leases,
        results=none if results is None else list(results),
        durations=none if durations is None else list(durations),
        outcome=outcome,
        worker_name=worker_name,
        error=error,
    )


# The worker's hot path: archive what finished and claim the next batch in one statement, so
# one round trip and one commit (one WAL flush) serve both. The claim skips the rows being
# archived (a lease that just ran out could otherwise be archived and re-claimed by the same
# statement). The first column carries the archived ids; a claim that found nothing still
# yields one row (NULL message columns) to carry them. Built once, at import, from the
# constant pieces above: no value is ever formatted into it.
ARCHIVE_AND_CLAIM = (
    "WITH"  # noqa: S608
    + _DELETE_HELD
    + ", archived AS ("
    + _INSERT_ARCHIVE
    + "),"
    + _CLAIMABLE
    + ", claimed AS ("
    + _CLAIM_UPDATE
    + """)
SELECT a.ids, c.*
FROM (SELECT array_agg(id) AS ids FROM archived) AS a LEFT JOIN claimed AS c ON true
"""
)


def archive_and_claim(
    cursor: CursorWrapper,
    queue_id: int,
    leases: Sequence[tuple[int, int]],
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
    cursor.execute(
        ARCHIVE_AND_CLAIM,
        {
            "ids": [i for i, _ in leases],
            "tokens": [t for _, t in leases],
            "results": list(results),
            "durations": list(durations),
            "queue": queue_id,
            "outcome": "succeeded",
            "worker_name": worker_name,
            "error": "",
            "skip": [i for i, _ in leases],
            "limit": limit,
            "lock": lock_seconds,
            "worker": worker_id,
        },
    )
    rows = cursor.fetchall()
    archived = set(rows[0][0] or ()) if rows else set()
    claimed = [row[1:] for row in rows if row[1] is not None]
    return archived, sorted(claimed, key=lambda row: (-row[3], row[0]))


DELETE = """
DELETE FROM pgqrs_message AS m
USING unnest(%(ids)s::bigint[], %(tokens)s::int[]) AS t(id, token)
WHERE m.id = t.id AND m.read_ct = t.token AND m.claimed_at IS NOT NULL
      AND (m.queue_id = %(queue)s) IS TRUE
RETURNING m.id
"""


def delete_held(
    cursor: CursorWrapper, queue_id: int, leases: Sequence[tuple[int, int]]
) -> set[int]:
    return _held(cursor, DELETE, queue_id, leases)


RELEASE = """
UPDATE pgqrs_message AS m
SET vt = statement_timestamp(), claimed_at = NULL, consumer_id = NULL
FROM unnest(%(ids)s::bigint[], %(tokens)s::int[]) AS t(id, token)
WHERE m.id = t.id AND m.read_ct = t.token AND m.claimed_at IS NOT NULL
      AND (m.queue_id = %(queue)s) IS TRUE
RETURNING m.id
"""


def release_held(
    cursor: CursorWrapper, queue_id: int, leases: Sequence[tuple[int, int]]
) -> set[int]:
    """Give held messages back: claimable at once."""
    return _held(cursor, RELEASE, queue_id, leases)


EXTEND = """
UPDATE pgqrs_message AS m
SET vt = GREATEST(m.vt, statement_timestamp()) + %(seconds)s * interval '1 second'
FROM unnest(%(ids)s::bigint[], %(tokens)s::int[]) AS t(id, token)
WHERE m.id = t.id AND m.read_ct = t.token AND m.claimed_at IS NOT NULL
      AND (m.queue_id = %(queue)s) IS TRUE
RETURNING m.id
"""


def extend_held(
    cursor: CursorWrapper, queue_id: int, leases: Sequence[tuple[int, int]], seconds: float
) -> set[int]:
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
    claimed_at = NULL, consumer_id = NULL, last_error = %s
WHERE id = %s
"""

# The dead-letter queue gets the same row (same id) as a fresh message. Its dedupe_key is kept
# unless the dead-letter queue already holds an active message with that key.
MOVE_TO_DEAD_LETTER_QUEUE = """
UPDATE pgqrs_message AS m
SET queue_id = %s, vt = statement_timestamp(), read_ct = 0, claimed_at = NULL,
    consumer_id = NULL, dequeued_at = NULL, last_error = %s,
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


def retry_later(cursor: CursorWrapper, msg_id: int, delay: float, error: str) -> None:
    cursor.execute(RETRY_LATER, [delay, error, msg_id])


def move_to_dead_letter_queue(cursor: CursorWrapper, msg_id: int, dlq_id: int, error: str) -> None:
    cursor.execute(MOVE_TO_DEAD_LETTER_QUEUE, [dlq_id, error, dlq_id, msg_id])


# Operator-side statements: no lease check (the admin acts on any message of the queue).
ADMIN_ARCHIVE = """
WITH done AS (
    DELETE FROM pgqrs_message WHERE queue_id = %s AND id = ANY(%s::bigint[]) RETURNING *
)
INSERT INTO pgqrs_archive
    (id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
     archived_at, outcome, duration, worker_name, error, result)
SELECT id, queue_id, payload, priority, enqueued_at, vt, read_ct, dequeued_at, dedupe_key,
       statement_timestamp(), %s, NULL, '', %s, NULL
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
     consumer_id, dedupe_key, last_error)
SELECT id, queue_id, payload, priority, enqueued_at, statement_timestamp(), 0, NULL, NULL,
       NULL, dedupe_key, error
FROM gone
RETURNING m.id, m.queue_id, m.payload, m.priority, m.enqueued_at, m.vt, m.read_ct,
          m.dequeued_at, m.claimed_at, m.consumer_id, m.dedupe_key, m.last_error
"""


def replay(
    cursor: CursorWrapper, queue_id: int, msg_id: int, outcomes: Sequence[str]
) -> list[tuple[Any, ...]]:
    cursor.execute(REPLAY, [msg_id, queue_id, list(outcomes)])
    return list(cursor.fetchall())
