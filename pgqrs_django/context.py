"""What a running handler may ask about its own job: :func:`current_job`.

The worker sets the context around each handler call, in the thread (sync handlers) or the
asyncio task (async handlers) that runs it, with a :class:`contextvars.ContextVar`; so code
called from a handler, including ORM calls through ``sync_to_async``, sees the same job::

    import pgqrs_django

    @pgqrs_django.handler("reports")
    def build_report(message):
        job = pgqrs_django.current_job()
        if job.attempt > 1:
            ...  # a redelivery: look for work the previous attempt left behind
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

from .exceptions import NoCurrentJob
from .models import Message


@dataclasses.dataclass
class JobContext:
    """The job a handler is running."""

    #: The message being processed (as claimed: payload, id, deliveries so far...).
    message: Message
    #: The name of its queue.
    queue: str
    #: The name of the worker running it ("" outside ``pgqrs_worker``).
    worker: str = ""

    @property
    def attempt(self) -> int:
        """This delivery's number: 1 for the first, 2 for the first retry..."""
        return self.message.read_ct


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "pgqrs_current_job", default=None
)


def current_job() -> JobContext:
    """The job the calling handler is running; :class:`~pgqrs_django.exceptions.NoCurrentJob`
    when called outside a handler run by the worker."""
    job = _current.get()
    if job is None:
        raise NoCurrentJob("current_job() is only available inside a handler run by the worker")
    return job


@contextlib.contextmanager
def running(job: JobContext) -> Iterator[JobContext]:
    """Make ``job`` the current job for the duration of the block (the worker's side)."""
    token = _current.set(job)
    try:
        yield job
    finally:
        _current.reset(token)
