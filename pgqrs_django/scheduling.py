"""Periodic jobs: cron schedules that ``pgqrs_worker`` enqueues, once per tick.

In an installed app's ``jobs.py``::

    import pgqrs_django

    @pgqrs_django.periodic("*/5 * * * *", queue="reports", payload={"kind": "hourly"})
    def build_report(message):
        ...  # the handler of "reports"; runs every five minutes

The decorated function becomes the handler of ``queue`` (as with ``@handler``); at each tick
of the cron expression (:mod:`pgqrs_django.cron`, UTC) a worker enqueues ``payload`` on
``queue``. :func:`schedule` registers a schedule without a handler.

Exactly once per tick, across any number of workers: each schedule has a
:class:`~pgqrs_django.models.Schedule` row holding the last tick enqueued. A worker that sees
a tick due moves ``last_tick`` forward with one compare-and-set ``UPDATE ... WHERE last_tick
< tick`` and enqueues the message in the same transaction. PostgreSQL's row lock makes a
second worker wait for the first one's commit and then match nothing; if the enqueue fails,
the update rolls back with it and the tick is tried again.

Missed ticks: when no worker ran for a while, only the latest missed tick is enqueued (once),
not every tick in between. A schedule seen for the first time starts with the next tick.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction
from django.db.models.functions import Now

from . import registry
from .cron import Cron
from .exceptions import DuplicateMessage, InvalidInput, QueueNotFound
from .models import Message, Schedule
from .producer import Producer
from .validation import priority as check_priority
from .validation import serialize_payload, validate_queue_name

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class PeriodicJob:
    """A registered schedule: enqueue ``payload`` on ``queue`` at every tick of ``cron``."""

    name: str
    cron: Cron
    queue: str
    payload: Any
    priority: int

    def dedupe_key(self, tick: dt.datetime) -> str:
        """The enqueued message's dedupe key: the schedule and its tick."""
        return f"{self.name}@{tick.isoformat()}"


_jobs: dict[str, PeriodicJob] = {}
_lock = threading.Lock()


def schedule(
    name: str, cron: str, *, queue: str, payload: Any = None, priority: int = 0
) -> PeriodicJob:
    """Register a schedule named ``name`` (unique): at every tick of ``cron`` a worker
    enqueues ``payload`` (default ``{}``) on ``queue`` with ``priority``. Registering the same
    schedule again (a module imported twice) is harmless; another one with the same name is
    an error."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput(f"a schedule name must be 1-200 characters, not {name!r}")
    job = PeriodicJob(
        name,
        Cron.parse(cron),
        validate_queue_name(queue),
        {} if payload is None else payload,
        check_priority(priority),
    )
    serialize_payload(job.payload)  # fail at registration, not at the first tick
    with _lock:
        old = _jobs.get(name)
        if old is not None and old != job:
            raise InvalidInput(f"a different schedule named {name!r} is already registered")
        _jobs[name] = job
    return job


def periodic(
    cron: str, *, queue: str, payload: Any = None, priority: int = 0, name: str | None = None
) -> Callable[[F], F]:
    """Decorator: make the function the handler of ``queue`` and enqueue ``payload`` there at
    every tick of ``cron``. The schedule is named after the function's dotted path unless
    ``name`` is given."""
    Cron.parse(cron)
    validate_queue_name(queue)

    def decorate(func: F) -> F:
        handler = registry.register(queue, func)
        schedule(name or handler.path, cron, queue=queue, payload=payload, priority=priority)
        return func

    return decorate


def unschedule(name: str) -> PeriodicJob | None:
    """Forget the schedule ``name`` (returns it, or None). Its database row stays."""
    with _lock:
        return _jobs.pop(name, None)


def registered() -> dict[str, PeriodicJob]:
    """Every registered schedule, by name."""
    with _lock:
        return dict(_jobs)


def enqueue_tick(job: PeriodicJob, tick: dt.datetime, using: str) -> Message | None:
    """Enqueue ``job``'s message for ``tick`` unless some worker already did (or a later
    tick): the message, or None. Raises QueueNotFound, and database errors, with nothing
    changed."""
    with transaction.atomic(using=using):
        rows = Schedule.objects.using(using)
        if not rows.filter(name=job.name, last_tick__lt=tick).update(
            last_tick=tick, cron=job.cron.expression, queue_name=job.queue, updated_at=Now()
        ):
            return None
        try:
            msg = Producer(job.queue, using=using).enqueue(
                job.payload, priority=job.priority, dedupe_key=job.dedupe_key(tick)
            )
        except DuplicateMessage:
            return None  # the tick's message is still queued (its row was reset meanwhile)
        rows.filter(name=job.name).update(last_message_id=msg.id)
    return msg


class Scheduler:
    """A worker's side of the schedules: which are due, and enqueueing them.

    Times are aware UTC datetimes from the caller, so tests can drive it tick by tick; the
    worker passes the wall clock.
    """

    def __init__(self, jobs: dict[str, PeriodicJob], using: str) -> None:
        self.jobs = dict(jobs)
        self.using = using
        #: When each schedule must next be looked at (its next tick, or now).
        self.next_at: dict[str, dt.datetime] = {}

    def register(self, now: dt.datetime) -> None:
        """Create the rows of schedules seen for the first time (starting after the latest
        tick, so a new schedule does not fire for the past) and look at every schedule at
        once (a tick missed while no worker ran is enqueued)."""
        if not self.jobs:
            return
        Schedule.objects.using(self.using).bulk_create(
            [
                Schedule(
                    name=job.name,
                    cron=job.cron.expression,
                    queue_name=job.queue,
                    last_tick=job.cron.latest(now),
                )
                for job in self.jobs.values()
            ],
            ignore_conflicts=True,
        )
        self.next_at = dict.fromkeys(self.jobs, now)

    def seconds_until_due(self, now: dt.datetime) -> float | None:
        """Seconds until a schedule is due (0 when one is), or None without schedules."""
        if not self.next_at:
            return None
        return max(0.0, (min(self.next_at.values()) - now).total_seconds())

    def run_due(self, now: dt.datetime) -> list[Message]:
        """Enqueue the latest tick of every due schedule; the messages this call enqueued.
        A database error propagates, and the schedules not done yet stay due."""
        sent = []
        for name, at in list(self.next_at.items()):
            if at > now:
                continue
            job = self.jobs[name]
            tick = job.cron.latest(now)
            try:
                msg = enqueue_tick(job, tick, self.using)
            except QueueNotFound:
                logger.error(
                    "periodic job %s: queue %r does not exist; tick %s skipped",
                    name,
                    job.queue,
                    tick.isoformat(),
                )
                msg = None
            self.next_at[name] = job.cron.next_after(now)
            if msg is not None:
                logger.info("periodic job %s: enqueued message %s for %s", name, msg.id, tick)
                sent.append(msg)
        return sent
