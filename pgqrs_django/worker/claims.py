"""Claiming: which queue to claim from next, how many messages, and when to look again (a
notification, the poll, or the due time of the earliest waiting message)."""

from __future__ import annotations

import functools
import time

from django.db.models import DurationField, ExpressionWrapper, Min
from django.db.models.functions import Now

from ..models import Message
from .jobs import ServedQueue
from .ledger import Ledger
from .options import DUE_RECHECK, Settings


class Claims:
    """The served queues and the claim state of one worker. Queues take turns: a claim
    tries each queue that may have something ready, from the one after the last that gave
    messages, and stops at the first that gives some."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger
        # Claims go through the ledger's database calls and feed its executor.
        self.db = ledger.db
        self.executor = ledger.executor
        #: The served queues by primary key, and in the order they take turns.
        self.queues: dict[int, ServedQueue] = {}
        self.order: list[ServedQueue] = []
        self._next_queue = 0
        #: Messages claimed so far (for ``max_messages``).
        self.claimed = 0
        self.next_poll = 0.0
        #: When the earliest waiting message of our queues is due (monotonic), if known.
        self.next_due: float | None = None

    def serve(self, served: ServedQueue) -> None:
        self.queues[served.row.pk] = served
        self.order.append(served)

    def wake(self, queue_id: int | None = None) -> None:
        """Something may be ready in ``queue_id`` (every queue when None)."""
        if queue_id is None:
            for served in self.order:
                served.maybe_ready = True
        elif queue_id in self.queues:
            self.queues[queue_id].maybe_ready = True

    def maybe_ready(self) -> bool:
        return any(served.maybe_ready for served in self.order)

    def has_room(self) -> bool:
        """Whether another batch is wanted: few enough wait for a lane (the next batch is
        claimed while this one runs) and ``max_messages`` is not reached."""
        limit = self.settings.max_messages
        return self.executor.waiting() < self.executor.low_water and (
            limit is None or self.claimed < limit
        )

    def exhausted(self) -> bool:
        limit = self.settings.max_messages
        return limit is not None and self.claimed >= limit

    def deadlines(self) -> list[float]:
        """When a worker that may claim must look again even if nothing wakes it."""
        return [self.next_poll] if self.next_due is None else [self.next_poll, self.next_due]

    def claim(self, now: float) -> None:
        """Claim one batch from the next queue that has something (the caller checked that
        the worker may claim). Successes finished on that queue ride on the claim."""
        wanted = self.settings.batch_size
        if self.settings.max_messages is not None:
            wanted = min(wanted, self.settings.max_messages - self.claimed)
        if now >= self.next_poll:
            self.next_poll = now + self.settings.poll_interval
            self.wake()
        if self.next_due is not None and now >= self.next_due:
            self.next_due = None
            self.wake()
        count = len(self.order)
        tried = False
        for step in range(count):
            served = self.order[(self._next_queue + step) % count]
            if not served.maybe_ready:
                continue
            tried = True
            started = time.monotonic()
            acks = self.ledger.acks_of(served)
            if acks:
                # Carry this queue's finished messages on the claim: one round trip, one
                # commit for both.
                ok, outcome = self.db.call(
                    "archiving and claiming",
                    functools.partial(
                        served.consumer.archive_and_dequeue_batch,
                        [job.msg for job in acks],
                        [job.result for job in acks],
                        [job.duration for job in acks],
                        n=wanted,
                        lock_time=served.lock_time,
                    ),
                )
                if not ok:
                    return
                self.ledger.archived(acks, outcome[0], now)
                messages = outcome[1]
            else:
                ok, messages = self.db.call(
                    "claiming", served.consumer.dequeue_batch, wanted, served.lock_time
                )
                if not ok:
                    return
            served.maybe_ready = len(messages) >= wanted
            if messages:
                self.claimed += len(messages)
                runnable = self.ledger.hold(served, messages, started + served.lock_time)
                if runnable:
                    self.executor.submit(runnable)
                self._next_queue = (self._next_queue + step + 1) % count
                return
        if tried:
            self._plan_next_due(now)

    def _plan_next_due(self, now: float) -> None:
        """Every queue came back empty: learn when the earliest waiting message is due (it
        may be due already: it became visible since the claim)."""
        ok, until = self.db.call("reading the next due time", self._seconds_until_due)
        if not ok:
            return
        # Something visible that the claim missed (claimed by another worker meanwhile, or
        # visible since): look again shortly, not at once, so this cannot spin.
        self.next_due = None if until is None else now + max(DUE_RECHECK, until)

    def _seconds_until_due(self) -> float | None:
        """Seconds until the earliest unleased message of our queues is visible (<= 0 when
        one is visible now), or None."""
        found = (
            Message.objects.using(self.settings.using)
            .filter(queue_id__in=list(self.queues), claimed_at__isnull=True)
            .exclude(queue__paused=True)
            .aggregate(until=ExpressionWrapper(Min("vt") - Now(), output_field=DurationField()))
        )["until"]
        return None if found is None else found.total_seconds()
