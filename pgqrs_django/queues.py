"""Looking up queue rows by name, with the errors callers expect (shared by every API class)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import InterfaceError, OperationalError, ProgrammingError, connections

from . import conf
from .exceptions import DatabaseUnavailable, NotInstalled, QueueNotFound
from .models import Queue
from .validation import validate_queue_name


def resolve(queue: Queue | str, using: str | None = None) -> Queue:
    """The Queue row for a name (validated) or a Queue instance (returned as is).

    Raises InvalidQueueName, QueueNotFound, or NotInstalled when the tables are missing.
    """
    if isinstance(queue, Queue):
        return queue
    name = validate_queue_name(queue)
    try:
        return Queue.objects.using(using or conf.database()).get(name=name)
    except Queue.DoesNotExist:
        raise QueueNotFound(name) from None
    except ProgrammingError as exc:
        if "does not exist" in str(exc):
            raise NotInstalled(
                "the pgqrs tables do not exist: run `manage.py migrate` "
                "(or `manage.py pgqrs install`)"
            ) from exc
        raise


class QueueRef:
    """A queue named now and looked up on first use, then cached.

    Producers and consumers hold one, so they can be built where no query may run (at import
    time, or in an async view) and still fail early on an invalid name.
    """

    def __init__(self, queue: Queue | str, using: str) -> None:
        self.name = queue.name if isinstance(queue, Queue) else validate_queue_name(queue)
        self.using = using
        self._row = queue if isinstance(queue, Queue) else None

    def get(self) -> Queue:
        if self._row is None:
            self._row = resolve(self.name, self.using)
        return self._row


@contextlib.contextmanager
def unavailable_as_error(using: str) -> Iterator[None]:
    """Turn a lost or refused database connection into :class:`DatabaseUnavailable`.

    An ``OperationalError`` or ``InterfaceError`` counts as "unavailable" when the connection
    is gone or no longer answers (other operational errors, such as a statement timeout,
    pass through unchanged). Outside a transaction the broken connection is closed, so the
    next call reconnects: a long-running producer recovers once the database is back.
    """
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        wrapper = connections[using]
        if wrapper.connection is not None and wrapper.is_usable():
            raise
        if not wrapper.in_atomic_block:
            with contextlib.suppress(Exception):
                wrapper.close()
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(using, detail) from exc
