"""The queues a worker serves (:class:`ServedQueue`), one held message from claim to
settlement (:class:`Job`), and how a job's handler runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from ..consumer import Consumer
from ..context import JobContext, running
from ..exceptions import PayloadError
from ..models import Message, Queue
from ..registry import Handler
from ..validation import serialize_payload
from .options import MIN_LOCK_TIME

logger = logging.getLogger(__name__)

#: Longest result representation stored when a result is not JSON (characters).
MAX_RESULT_REPR = 1000


class ServedQueue:
    """A queue this worker serves: its row, handler, consumer and claim state."""

    def __init__(self, row: Queue, handler: Handler, consumer: Consumer, lock: float | None):
        self.row = row
        self.handler = handler
        self.consumer = consumer
        self.fixed_lock = lock
        self.max_attempts = row.max_attempts
        self.visibility_timeout = row.visibility_timeout
        #: Whether a claim may find something (after a notify, a poll, a full batch).
        self.maybe_ready = True

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def lock_time(self) -> float:
        lock = self.fixed_lock if self.fixed_lock is not None else self.visibility_timeout
        return max(MIN_LOCK_TIME, lock)


class Job:
    """One held message, from claim to settlement."""

    __slots__ = ("duration", "error", "lease_end", "lost", "msg", "queue", "result", "skipped")

    def __init__(self, msg: Message, served: ServedQueue, lease_end: float) -> None:
        self.msg = msg
        self.queue = served
        #: Local (monotonic) estimate of when the lease ends; kept on the early side.
        self.lease_end = lease_end
        self.lost = False
        self.skipped = False
        self.result: Any = None
        self.error: BaseException | str | None = None
        self.duration: float | None = None

    def context(self) -> JobContext:
        """What ``current_job()`` returns while this job's handler runs."""
        return JobContext(self.msg, self.queue.name, self.queue.consumer.worker_name)

    def must_skip(self) -> bool:
        """Whether a lane must not start this job: its lease was lost, or may be gone (the
        database was away and it could not be extended). Running it could run it twice."""
        if self.lost or self.lease_end - time.monotonic() <= self.queue.lock_time / 4:
            self.skipped = True
            logger.warning("message %s waited too long to start; releasing it", self.msg.id)
        return self.skipped

    def run(self) -> None:
        """Run a sync handler (on a lane thread)."""
        if self.must_skip():
            return
        started = time.perf_counter()
        try:
            with running(self.context()):
                result = self.queue.handler.func(self.msg)
            self.result = storable_result(result, self.msg.id)
        except BaseException as exc:  # a handler's SystemExit must not kill the lane
            self.error = exc
        self.duration = time.perf_counter() - started

    async def run_async(self) -> None:
        """Run an async handler (on the event loop thread)."""
        if self.must_skip():
            return
        started = time.perf_counter()
        try:
            with running(self.context()):
                result = await self.queue.handler.func(self.msg)
            self.result = storable_result(result, self.msg.id)
        except BaseException as exc:  # CancelledError included: the job did not finish
            self.error = exc
        self.duration = time.perf_counter() - started


def by_queue(jobs: Iterable[Job]) -> dict[ServedQueue, list[Job]]:
    """``jobs`` grouped by queue (settle statements are per queue), in order."""
    groups: dict[ServedQueue, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.queue, []).append(job)
    return groups


def storable_result(result: Any, msg_id: int) -> Any:
    """``result`` if it can be stored as the archive's JSON result; else its (shortened)
    repr, logged, so a bad return value never blocks the archive."""
    if result is None:
        return None
    try:
        serialize_payload(result)
    except PayloadError as exc:
        logger.warning(
            "result of message %s cannot be stored as JSON (%s); storing its repr", msg_id, exc
        )
        text = repr(result)
        if len(text) > MAX_RESULT_REPR:
            text = text[: MAX_RESULT_REPR - 3] + "..."
        try:
            serialize_payload(text)
        except PayloadError:
            return None
        return text
    return result
