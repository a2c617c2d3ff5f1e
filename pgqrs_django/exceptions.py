"""Exceptions raised by the pgqrs_django API.

Every error a caller can cause derives from :class:`PgqrsError`; the ones caused by bad input
also derive from :class:`ValueError`, so generic input handling catches them too.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError


class PgqrsError(Exception):
    """Base class of every pgqrs_django error."""


class InvalidInput(PgqrsError, ValueError):
    """An argument is out of range or of the wrong kind (negative delay, zero batch size...)."""


class InvalidQueueName(InvalidInput):
    """A queue name is empty, too long or contains characters outside ``[A-Za-z0-9_.-]``."""


class InvalidSetting(InvalidInput, ImproperlyConfigured):
    """A ``PGQRS`` setting or ``PGQRS_*`` environment variable has a value of the wrong kind;
    the message names the key or variable and the value. Also Django's
    ``ImproperlyConfigured``, and an input error (exit code 2) for the commands."""


class PayloadError(InvalidInput):
    """A payload cannot be stored as a JSON document."""


class PayloadNotSerializable(PayloadError):
    """The payload is not JSON-serialisable (or holds NaN, Infinity or a NUL character)."""


class PayloadTooLarge(PayloadError):
    """The serialised payload is larger than ``MAX_PAYLOAD_BYTES``."""


class PayloadTooDeep(PayloadError):
    """The payload nests deeper than ``MAX_PAYLOAD_DEPTH``."""


class NoCurrentJob(PgqrsError, LookupError):
    """``current_job()`` was called outside a handler run by the worker."""


class QueueNotFound(PgqrsError, LookupError):
    """No queue with that name exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"queue {name!r} does not exist")
        self.name = name


class QueueAlreadyExists(PgqrsError):
    """A queue with that name exists already."""

    def __init__(self, name: str) -> None:
        super().__init__(f"queue {name!r} already exists")
        self.name = name


class MessageNotFound(PgqrsError, LookupError):
    """No message (active or archived, as asked) with that id exists in the queue."""

    def __init__(self, queue: str, msg_id: int, *, archived: bool = False) -> None:
        where = "archive of queue" if archived else "queue"
        super().__init__(f"message {msg_id} not found in {where} {queue!r}")
        self.queue = queue
        self.msg_id = msg_id


class WorkerNotFound(PgqrsError, LookupError):
    """No worker with that id or name exists."""

    def __init__(self, ref: object) -> None:
        super().__init__(f"worker {ref!r} does not exist")
        self.ref = ref


class DuplicateMessage(PgqrsError):
    """An active message with the same dedupe_key exists in the queue already."""

    def __init__(self, queue: str, dedupe_key: str) -> None:
        super().__init__(
            f"queue {queue!r} already holds an active message with dedupe_key {dedupe_key!r}"
        )
        self.queue = queue
        self.dedupe_key = dedupe_key


class RateLimitExceeded(PgqrsError):
    """A non-blocking producer ran out of rate-limit tokens."""


class NotInstalled(PgqrsError):
    """The pgqrs tables are missing: run ``manage.py migrate`` (or ``manage.py pgqrs install``)."""


class DatabaseUnavailable(PgqrsError, OperationalError):
    """The database cannot be reached: stopped, restarting, or the connection broke.

    Raised by :class:`~pgqrs_django.producer.Producer` methods instead of the driver's error,
    so callers can tell "try again later" from a bug. It is also a Django
    :class:`~django.db.OperationalError`, so code that already catches that keeps working.
    The call did not complete: retry it once the database is back (the next call reconnects
    by itself). A connection that breaks exactly while a commit is being acknowledged leaves
    it unknown whether the message was stored: enqueue with a ``dedupe_key`` when a retry
    must not add a second copy.
    """

    def __init__(self, alias: str, detail: str) -> None:
        super().__init__(f"database {alias!r} is unavailable: {detail}")
        self.alias = alias


def one_line(value: object, *, limit: int | None = None, with_type: bool = False) -> str:
    """``value`` (text or an exception) on one line, whitespace runs collapsed.

    An exception with no text shows its class name; ``with_type`` always prefixes it
    (``KeyError: 'x'``); ``limit`` cuts the line to that many characters, ending in "…"."""
    line = " ".join(str(value).split())
    if isinstance(value, BaseException) and (with_type or not line):
        line = f"{type(value).__name__}: {line}" if line else type(value).__name__
    if limit is not None and len(line) > limit:
        line = line[: limit - 1] + "…"
    return line
