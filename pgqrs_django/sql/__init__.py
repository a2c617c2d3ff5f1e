"""The hot-path statements, in raw SQL next to the models they serve.

``from pgqrs_django import sql`` is the one way in: the statements live in ``enqueue``,
``claim``, ``settle`` (everything a lease holder does) and ``operators`` (``PgqrsAdmin``), and
``rows`` turns what they return into Message instances.

Why not the ORM here: each of these must be one round trip and one atomic statement.
``select_for_update(skip_locked=True)`` followed by ``update()`` is two round trips and needs an
explicit transaction; a batch insert with ``ON CONFLICT ... DO NOTHING RETURNING`` over a partial
unique index, and "delete these rows and insert them into the archive", cannot be said in the
ORM at all. Everything else (metrics, queues, workers, admin) uses the ORM.

Every value travels as a bound parameter; every statement is a constant string (none is
built by formatting), and each statement returning messages lists ``MESSAGE_COLUMNS``
(:func:`rows_to_messages` makes Messages of those rows).

The claim and the archive are written as named pieces (``CLAIMABLE``, ``CLAIM_UPDATE``,
``DELETE_HELD``, ``INSERT_ARCHIVE``) that ``CLAIM``, ``ARCHIVE`` and ``ARCHIVE_AND_CLAIM``
join, so a rule added to a piece (which messages may be claimed, what archiving records)
reaches every statement that uses it; their parameters are built in one place each
(``claim.claim_params``, ``settle.ArchiveRecord``).

Leases: every claim increments ``read_ct``; a consumer remembers the ``read_ct`` it got and
passes it back as its lease token. A row matches only while ``read_ct`` still equals the token
and ``claimed_at`` is set, so once another consumer claims the message (or an operator releases
it) the old holder's archive/delete/fail/extend match nothing and report False.
"""

from .claim import CLAIM, claim
from .enqueue import INSERT, RESERVE_MESSAGE_ID, Inserted, insert, reserve_message_id
from .operators import ADMIN_ARCHIVE, REPLAY, archive_any, replay
from .rows import MESSAGE_COLUMNS, new_message, rows_to_messages
from .settle import (
    ARCHIVE,
    ARCHIVE_AND_CLAIM,
    DELETE,
    EXTEND,
    LOCK_FOR_FAIL,
    MOVE_TO_DEAD_LETTER_QUEUE,
    RELEASE,
    RETRY_LATER,
    ArchiveRecord,
    archive_and_claim,
    archive_held,
    delete_held,
    extend_held,
    lock_for_fail,
    move_to_dead_letter_queue,
    release_held,
    retry_later,
)

__all__ = [
    "ADMIN_ARCHIVE",
    "ARCHIVE",
    "ARCHIVE_AND_CLAIM",
    "CLAIM",
    "DELETE",
    "EXTEND",
    "INSERT",
    "LOCK_FOR_FAIL",
    "MESSAGE_COLUMNS",
    "MOVE_TO_DEAD_LETTER_QUEUE",
    "RELEASE",
    "REPLAY",
    "RESERVE_MESSAGE_ID",
    "RETRY_LATER",
    "ArchiveRecord",
    "Inserted",
    "archive_and_claim",
    "archive_any",
    "archive_held",
    "claim",
    "delete_held",
    "extend_held",
    "insert",
    "lock_for_fail",
    "move_to_dead_letter_queue",
    "new_message",
    "release_held",
    "replay",
    "reserve_message_id",
    "retry_later",
    "rows_to_messages",
]
