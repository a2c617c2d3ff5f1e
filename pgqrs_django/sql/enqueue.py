"""Enqueueing: the batch insert, and message ids reserved before their row exists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from django.db.backends.utils import CursorWrapper

from .rows import fast_timestamps

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
