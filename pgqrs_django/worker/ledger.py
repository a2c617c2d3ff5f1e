"""Every message a worker holds, from claim to settlement: successes archived in batches,
failures recorded one by one, what will not run released, and the leases of all of them
extended while they are held."""

from __future__ import annotations

import collections
import logging

from ..exceptions import one_line
from ..models import Message
from .executor import Executor
from .jobs import Job, ServedQueue, by_queue
from .options import ACK_BUFFER, ACK_DELAY
from .retry import DatabaseRetry

logger = logging.getLogger(__name__)


class Ledger:
    """The held jobs of one worker and what is still owed to the database about them.

    Nothing here blocks: each settle step goes through ``db`` and keeps its work when the
    database is away. The counters (``processed``, ``succeeded``, ``failed``) are the
    worker's totals.
    """

    def __init__(self, db: DatabaseRetry, executor: Executor, batch_size: int) -> None:
        self.db = db
        self.executor = executor
        self.batch_size = batch_size
        #: Every held job by message id: waiting, running, or finished and not settled.
        self.held: dict[int, Job] = {}
        #: Successes waiting for their archive statement, and since when (monotonic).
        self.acks: list[Job] = []
        self.acks_since = 0.0
        self.failures: collections.deque[Job] = collections.deque()
        #: Jobs that will not run (skipped, or not started when the worker stopped).
        self.to_release: list[Job] = []
        self.next_extend = 0.0
        self.processed = self.succeeded = self.failed = 0

    def hold(self, served: ServedQueue, messages: list[Message], lease_end: float) -> list[Job]:
        """Hold claimed messages; returns the jobs to run. A message delivered more than its
        queue's ``max_attempts`` times is dead-lettered without running."""
        runnable = []
        for msg in messages:
            job = Job(msg, served, lease_end)
            self.held[msg.id] = job
            if msg.read_ct > served.max_attempts:
                job.error = (
                    f"delivered {msg.read_ct} times, over max_attempts={served.max_attempts}, "
                    "without completing (its earlier workers probably crashed or were killed): "
                    "dead-lettered without running it again"
                )
                self.failures.append(job)
            else:
                runnable.append(job)
        return runnable

    def collect(self, now: float) -> None:
        """Take the jobs the lanes finished: successes wait for the next archive statement,
        failures for fail(), skipped ones are released."""
        for job in self.executor.collect():
            if job.skipped:
                self.to_release.append(job)
                continue
            self.processed += 1
            if job.error is None:
                if not self.acks:
                    self.acks_since = now
                self.acks.append(job)
            else:
                self.failures.append(job)

    def unsettled(self) -> bool:
        """Whether something finished (or will not run) and is not settled yet."""
        return bool(self.acks or self.failures or self.to_release)

    def acks_of(self, served: ServedQueue) -> list[Job]:
        return [job for job in self.acks if job.queue is served]

    # -- settling ------------------------------------------------------------------------

    def flush(self, now: float, *, force: bool = False) -> None:
        """Archive finished messages, one statement per queue, once they are due: when
        nothing else runs, when enough have finished, or ``ACK_DELAY`` after the first."""
        if not self.acks:
            return
        due = (
            force
            or not self.executor.busy()
            or len(self.acks) >= max(self.batch_size, ACK_BUFFER)
            or now - self.acks_since >= ACK_DELAY
        )
        if not due:
            return
        for served, jobs in by_queue(self.acks).items():
            ok, archived = self.db.call(
                "archiving",
                served.consumer.archive_batch,
                [job.msg for job in jobs],
                [job.result for job in jobs],
                [job.duration for job in jobs],
            )
            if not ok:
                return
            self.archived(jobs, archived, now)

    def archived(self, jobs: list[Job], stored: list[bool], now: float) -> None:
        """Bookkeeping after an archive statement settled ``jobs``."""
        done = {id(job) for job in jobs}
        self.acks = [job for job in self.acks if id(job) not in done]
        self.acks_since = now
        for job, ok in zip(jobs, stored, strict=True):
            self._forget(job)
            if ok:
                self.succeeded += 1
            else:
                logger.warning(
                    "message %s finished but its lease was lost before it was archived; "
                    "it will be delivered again",
                    job.msg.id,
                )

    def settle_failures(self) -> None:
        while self.failures and self.db.ready():
            job = self.failures[0]
            assert job.error is not None
            ok, held = self.db.call(
                "recording a failure", job.queue.consumer.fail, job.msg, job.error
            )
            if not ok:
                return
            self.failures.popleft()
            self._forget(job)
            self.failed += 1
            # A retry is due after its backoff: look at the queue again so an empty claim
            # plans the wake-up for it (without LISTEN nothing else would before the poll).
            job.queue.maybe_ready = True
            msg = job.msg
            if not held:
                logger.warning("message %s failed after its lease was lost", msg.id)
            elif isinstance(job.error, str):
                logger.error("message %s on %s: %s", msg.id, job.queue.name, job.error)
            else:
                logger.warning(
                    "message %s on %s failed (delivery %d of %d): %s",
                    msg.id,
                    job.queue.name,
                    msg.read_ct,
                    job.queue.max_attempts,
                    one_line(job.error, with_type=True),
                )

    def release_dropped(self) -> None:
        if not self.to_release or not self.db.ready():
            return
        for served, jobs in by_queue(self.to_release).items():
            ok, _ = self.db.call("releasing", served.consumer.release_batch, [j.msg for j in jobs])
            if not ok:
                return
            released = {id(job) for job in jobs}
            self.to_release = [job for job in self.to_release if id(job) not in released]
            for job in jobs:
                self._forget(job)

    def _forget(self, job: Job) -> None:
        self.held.pop(job.msg.id, None)

    # -- leases --------------------------------------------------------------------------

    def extend(self, now: float) -> None:
        """Extend every held lease that is half used (running, waiting or finished but not
        yet archived)."""
        if now < self.next_extend or not self.held or not self.db.ready():
            return
        shortest = min(job.queue.lock_time for job in self.held.values())
        self.next_extend = now + min(0.5, shortest / 4)
        due = [j for j in self.held.values() if j.lease_end - now <= j.queue.lock_time / 2]
        for served, jobs in by_queue(due).items():
            extra = served.lock_time / 2
            ok, kept = self.db.call(
                "extending leases",
                served.consumer.extend_visibility_batch,
                [j.msg for j in jobs],
                extra,
            )
            if not ok:
                return
            for job, alive in zip(jobs, kept, strict=True):
                if alive:
                    job.lease_end += extra
                elif not job.lost:
                    job.lost = True
                    self._lose(job)

    def _lose(self, job: Job) -> None:
        """Our lease on ``job`` is gone (another worker or an operator took the message)."""
        if self.executor.withdraw(job):
            self._forget(job)
            logger.warning("lost the lease of waiting message %s; not running it", job.msg.id)
        else:
            logger.warning(
                "lost the lease of message %s while it ran; another worker may run it again",
                job.msg.id,
            )
