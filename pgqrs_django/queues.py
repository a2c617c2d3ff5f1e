"""Looking up queue rows by name, with the errors callers expect (shared by every API class)."""

from __future__ import annotations

from django.db import ProgrammingError

from . import conf
from .exceptions import NotInstalled, QueueNotFound
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
