"""Where claimed jobs wait for a free slot and run: threads for sync handlers, an asyncio
event loop in its own thread for async ones. The main thread (runtime.py) never runs a
handler; it hands over whole batches and collects finished jobs.

Each job is wrapped as Django wraps a request: ``close_old_connections()`` runs before and
after it in the thread whose connections its handler uses (a lane's own; for async handlers,
asgiref's sync thread, where their ORM calls run), so ``CONN_MAX_AGE`` and
``CONN_HEALTH_CHECKS`` apply to jobs as they do to requests."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django import db
from django.db import connections

from .jobs import Job
from .options import ACK_DELAY

logger = logging.getLogger(__name__)


class Executor:
    """Where claimed messages wait for a free slot and run: up to ``concurrency`` threads for
    sync handlers, and an asyncio event loop (its own thread) running up to ``concurrency``
    async handlers at once.

    The main thread hands over whole batches; lanes take the next waiting job themselves and
    leave finished ones in ``done``. They wake the main thread (``wake()``) only when it has
    something to do at once: the waiting list ran low (claim the next batch), nothing is in
    flight any more (archive now), or it sleeps longer than ``ACK_DELAY`` with results due.
    """

    def __init__(
        self,
        concurrency: int,
        low_water: int,
        wake: Callable[[], None],
    ) -> None:
        self.concurrency = concurrency
        self.low_water = low_water
        self.wake = wake
        self.lock = threading.Lock()
        self._ready = threading.Condition(self.lock)
        self._sync_waiting: collections.deque[Job] = collections.deque()
        self._async_waiting: collections.deque[Job] = collections.deque()
        #: Jobs handed over and not finished yet (waiting or running).
        self.inflight = 0
        self.done: collections.deque[Job] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._idle_threads = 0
        self._closing = False
        self._low_signalled = False
        self._wake_on_done = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._async_running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._tidying: asyncio.Future[None] | None = None

    def busy(self) -> int:
        """Jobs handed over whose results the main thread has not collected yet."""
        with self.lock:
            return self.inflight + len(self.done)

    def waiting(self) -> int:
        """Jobs handed over that no lane has started yet."""
        return len(self._sync_waiting) + len(self._async_waiting)

    # -- main thread side -----------------------------------------------------------------

    def submit(self, jobs: list[Job]) -> None:
        has_async = False
        with self.lock:
            for job in jobs:
                if job.queue.handler.is_async:
                    self._async_waiting.append(job)
                    has_async = True
                else:
                    self._sync_waiting.append(job)
            self.inflight += len(jobs)
            self._low_signalled = False
            while self._idle_threads < len(self._sync_waiting) and (
                len(self._threads) < self.concurrency
            ):
                self._start_thread()
                self._idle_threads += 1  # idle until it takes a job
            self._ready.notify(len(self._sync_waiting))
        if has_async:
            self._event_loop().call_soon_threadsafe(self._fill_async)

    def take_waiting(self) -> list[Job]:
        """Remove and return every job not started yet (to release it)."""
        with self.lock:
            jobs = [*self._sync_waiting, *self._async_waiting]
            self._sync_waiting.clear()
            self._async_waiting.clear()
            self.inflight -= len(jobs)
        return jobs

    def withdraw(self, job: Job) -> bool:
        """Take back one job if it has not started; False when it is running or done."""
        with self.lock:
            for waiting in (self._sync_waiting, self._async_waiting):
                if job in waiting:
                    waiting.remove(job)
                    self.inflight -= 1
                    return True
        return False

    def collect(self) -> list[Job]:
        """Finished jobs since the last call."""
        out = []
        while self.done:
            out.append(self.done.popleft())
        return out

    def before_sleep(self, timeout: float) -> float:
        """Arm the wake-up on the next finished job when the main thread sleeps longer than
        ``ACK_DELAY``; returns 0 when results arrived meanwhile."""
        with self.lock:
            if self.done:
                return 0.0
            self._wake_on_done = timeout > ACK_DELAY
        return timeout

    def close(self, timeout: float = 1.0) -> None:
        """Stop idle lanes (they close their connections) and the event loop. A handler
        still running after the grace period is left behind in its daemon thread."""
        with self.lock:
            self._closing = True
            self._ready.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._loop is not None and self._loop_thread is not None:
            # Async handlers' ORM calls ran on asgiref's sync thread: close its connections.
            closing = asyncio.run_coroutine_threadsafe(
                sync_to_async(connections.close_all)(), self._loop
            )
            with contextlib.suppress(Exception):
                closing.result(max(0.1, deadline - time.monotonic()))
            self._loop.call_soon_threadsafe(self._cancel_and_stop)
            self._loop_thread.join(max(0.1, deadline - time.monotonic()))
            if not self._loop_thread.is_alive():
                self._loop.close()

    # -- lanes ----------------------------------------------------------------------------

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._lane, name=f"pgqrs-handler-{len(self._threads) + 1}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _started(self) -> bool:
        """Called with the lock held when a lane takes a job: wake the main thread once
        when the waiting list runs low, so the next batch is claimed while this one runs."""
        if not self._low_signalled and self.waiting() < self.low_water:
            self._low_signalled = True
            return True
        return False

    def _finished(self, job: Job) -> None:
        with self.lock:
            if not job.queue.handler.is_async:
                self._idle_threads += 1
            self.inflight -= 1
            self.done.append(job)
            wake = self._wake_on_done or self.inflight == 0
            if wake:
                self._wake_on_done = False
        if wake:
            self.wake()

    def _lane(self) -> None:
        try:
            while True:
                with self._ready:
                    idled = False
                    while not self._sync_waiting and not self._closing:
                        idled = True
                        self._ready.wait()
                    if not self._sync_waiting:
                        return
                    job = self._sync_waiting.popleft()
                    self._idle_threads -= 1
                    wake = self._started()
                if wake:
                    self.wake()
                # Before: only after a wait; back to back, the previous job's call serves.
                if idled:
                    close_old_connections()
                job.run()
                close_old_connections()
                self._finished(job)
        finally:
            connections.close_all()  # this thread's connections only

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._loop_thread = threading.Thread(
                target=self._run_loop, args=(loop,), name="pgqrs-async", daemon=True
            )
            self._loop_thread.start()
        return self._loop

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def _fill_async(self, checked: bool = False) -> None:
        """Start waiting async jobs while slots are free. ``checked``: a job's connections
        were just looked at after it, which serves as the "before" of the next one."""
        assert self._loop is not None
        while True:
            with self.lock:
                if self._async_running >= self.concurrency or not self._async_waiting:
                    return
                job = self._async_waiting.popleft()
                self._async_running += 1
                wake = self._started()
            if wake:
                self.wake()
            task = self._loop.create_task(self._run_async(job, check_first=not checked))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            checked = False

    async def _run_async(self, job: Job, *, check_first: bool) -> None:
        started = checked = False
        try:
            if check_first:
                await self._close_old_connections()
            started = True
            await job.run_async()  # catches whatever its handler raises
            await self._close_old_connections()
            checked = True
        except BaseException as exc:  # around the job: cancelled at shutdown, or asgiref
            if not started:
                job.error = exc  # it never ran: a failed delivery, retried as usual
            elif not isinstance(exc, asyncio.CancelledError):
                logger.exception("could not close old database connections")
        finally:
            with self.lock:
                self._async_running -= 1
            self._finished(job)
            self._fill_async(checked)

    async def _close_old_connections(self) -> None:
        """``close_old_connections()`` on asgiref's sync thread. Jobs that ask while a call
        is outstanding share it: that thread runs one call at a time, in order, so the
        outstanding call runs after everything they did there."""
        if self._tidying is None or self._tidying.done():
            self._tidying = asyncio.ensure_future(sync_to_async(close_old_connections)())
        await asyncio.shield(self._tidying)

    def _cancel_and_stop(self) -> None:
        assert self._loop is not None
        for task in self._tasks:
            task.cancel()
        # One more turn of the loop delivers the cancellations before it stops.
        self._loop.call_soon(self._loop.stop)


def close_old_connections() -> None:
    """Django's ``close_old_connections()`` for this thread, as around a request: close each
    connection that outlived ``CONN_MAX_AGE``, broke, or was left outside autocommit, and
    have ``CONN_HEALTH_CHECKS`` check the others before their next query. An error here is
    logged, never charged to a job."""
    try:
        db.close_old_connections()
    except Exception:
        logger.exception("could not close old database connections")
