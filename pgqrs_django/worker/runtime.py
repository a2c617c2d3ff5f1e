"""The worker's loop (:class:`WorkerRuntime`): the main thread waits for an event or its
next deadline, then settles, heartbeats, extends leases and claims, and never runs a
handler itself."""

from __future__ import annotations

import logging
import os
import queue as queue_module
import signal
import threading
import time
from types import FrameType
from typing import Any

from django.utils import timezone

from .. import registry, scheduling
from ..consumer import Consumer
from ..models import Worker
from ..notify import Listener
from ..queues import resolve
from ..signals import send_on_commit, worker_started, worker_stopped
from .claims import Claims
from .control import Control
from .executor import Executor
from .jobs import ServedQueue
from .ledger import Ledger
from .options import ACK_DELAY, Settings, WorkerOptions
from .retry import DatabaseRetry

logger = logging.getLogger(__name__)

_WAKE, _NOTIFY, _SIGNAL = "wake", "notify", "signal"


class WorkerRuntime:
    """Runs the handlers of one or more queues until stopped; see :mod:`pgqrs_django.worker`.

    ``WorkerRuntime(WorkerOptions(queues=["emails"])).run()`` blocks until a signal (when
    ``install_signal_handlers``), an operator's shutdown request, ``burst`` running dry or
    ``max_messages`` being reached, and returns the process exit code.
    """

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.settings = settings = Settings.of(options)
        self.using = settings.using
        self._events: queue_module.SimpleQueue[tuple[str, Any]] = queue_module.SimpleQueue()
        self._stopping = False
        self._stop_reason = ""
        self._grace_deadline = 0.0
        self._signals = 0
        self._listener: Listener | None = None
        self._scheduler: scheduling.Scheduler | None = None
        self.db = DatabaseRetry(
            self.using, async_commit=options.async_commit, on_recovery=self._on_recovery
        )
        self.executor = Executor(
            settings.concurrency,
            # Claim the next batch while this one runs (half a batch left, or fewer jobs
            # waiting than lanes).
            max(settings.concurrency, settings.batch_size // 2),
            self._wake,
        )
        self.ledger = Ledger(self.db, self.executor, settings.batch_size)
        self.claims = Claims(settings, self.ledger)
        self.control = Control(settings, self.db, self.claims.queues, self._request_shutdown)

    @property
    def worker(self) -> Worker | None:
        """The ``Worker`` row, once :meth:`prepare` registered it."""
        return self.control.worker

    @property
    def processed(self) -> int:
        return self.ledger.processed

    @property
    def succeeded(self) -> int:
        return self.ledger.succeeded

    @property
    def failed(self) -> int:
        return self.ledger.failed

    # -- start-up ------------------------------------------------------------------------

    def prepare(self) -> None:
        """Resolve handlers and queues and register the worker row. Raises InvalidInput,
        QueueNotFound, NotInstalled, or a DatabaseError when the database is unreachable."""
        if self.worker is not None:
            return
        handlers = registry.resolve(self.options.queues, self.options.handlers)
        rows = [resolve(name, self.using) for name in handlers]
        # After resolve(): --handler modules register their schedules. A worker enqueues the
        # schedules of the queues it serves.
        schedules = {
            name: job
            for name, job in scheduling.registered().items()
            if self.options.periodic and job.queue in handlers
        }
        if schedules:
            self._scheduler = scheduling.Scheduler(schedules, self.using)
            self._scheduler.register(timezone.now())
        worker = self.control.register(rows, self.options.name)
        for row in rows:
            consumer = Consumer(row, worker, using=self.using)
            self.claims.serve(
                ServedQueue(row, handlers[row.name], consumer, self.settings.lock_time)
            )
        if self.options.listen:
            self._listener = Listener(
                self.using, self._on_notify, application_name=f"pgqrs-listen {worker.name}"
            )
            self._listener.start()
        send_on_commit(worker_started, WorkerRuntime, self.using, worker=worker)
        logger.info(
            "worker %s serving %s (concurrency %d, batch %d, %s)",
            worker.name,
            ", ".join(f"{s.name} -> {s.handler.path}" for s in self.claims.order),
            self.settings.concurrency,
            self.settings.batch_size,
            f"{'LISTEN + ' if self._listener else ''}"
            f"polling every {self.settings.poll_interval:g}s",
        )

    # -- main loop -----------------------------------------------------------------------

    def run(self, *, install_signal_handlers: bool = False) -> int:
        """Serve until stopped; returns the exit code (0 after a graceful stop)."""
        self.prepare()
        previous: dict[int, Any] = {}
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            now = time.monotonic()
            self.control.start(now)
            self.claims.next_poll = now + self.settings.poll_interval
            self.ledger.next_extend = now
            try:
                self._loop()
            except BaseException:
                # A bug or an interrupt: give back what we hold and mark ourselves stopped
                # rather than leave messages leased to a row that claims to be alive.
                logger.exception("worker loop failed; releasing what it holds")
                self._stop_reason = "loop failed"
                self._finish()
                raise
            return self._finish()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to stop gracefully (thread-safe)."""
        self._events.put((_SIGNAL, reason))

    def _loop(self) -> None:
        timeout = 0.0
        while True:
            self._wait(timeout)
            now = time.monotonic()
            self.ledger.collect(now)
            self.ledger.settle_failures()
            self.ledger.release_dropped()
            self.control.tick(now)
            self._run_schedules()
            self.ledger.extend(now)
            if self._may_claim() and self.db.ready():
                self.claims.claim(now)
            self.ledger.flush(now, force=self._stopping)
            if self._finished(now):
                return
            timeout = self.executor.before_sleep(self._timeout(now))

    def _may_claim(self) -> bool:
        return not self._stopping and not self.control.suspended and self.claims.has_room()

    def _run_schedules(self) -> None:
        """Enqueue the periodic jobs whose tick has come (each once, whatever the number
        of workers: see scheduling.py)."""
        if (
            self._scheduler is None
            or self._stopping
            or self.control.suspended
            or not self.db.ready()
        ):
            return
        wall = timezone.now()
        if self._scheduler.seconds_until_due(wall) == 0:
            self.db.call("enqueueing periodic jobs", self._scheduler.run_due, wall)

    # -- events: wake-ups, notifications, signals ----------------------------------------

    def _wait(self, timeout: float) -> None:
        try:
            item = self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
        except queue_module.Empty:
            return
        while True:
            self._handle(item)
            try:
                item = self._events.get_nowait()
            except queue_module.Empty:
                return

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, value = item
        if kind == _NOTIFY:
            self.claims.wake(value)
        elif kind == _SIGNAL:
            reason = value if isinstance(value, str) else f"{signal.Signals(value).name} received"
            self._begin_stop(reason, time.monotonic())

    def _wake(self) -> None:
        self._events.put((_WAKE, None))

    def _on_notify(self, queue_id: int | None) -> None:
        self._events.put((_NOTIFY, queue_id))

    def _on_recovery(self) -> None:
        self.claims.wake()  # notifications may have been missed while the database was away

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os.write(2, b"pgqrs_worker: second signal, exiting at once\n")
            os._exit(128 + signum)
        self._events.put((_SIGNAL, signum))

    def _request_shutdown(self, reason: str) -> None:
        self._begin_stop(reason, time.monotonic())

    # -- sleeping and stopping -----------------------------------------------------------

    def _timeout(self, now: float) -> float:
        """How long the loop may sleep before it has something to do."""
        db_ok = self.db.ready()
        ledger = self.ledger
        if db_ok and (ledger.failures or ledger.to_release):
            return 0.0
        may_claim = self._may_claim()
        if db_ok and may_claim and self.claims.maybe_ready():
            return 0.0
        if ledger.acks and not self.executor.busy():
            return 0.0 if db_ok else max(0.0, self.db.retry_at - now)
        # Database work. A poll or a due message matters only to a worker that may claim:
        # one that is suspended or has enough waiting would otherwise wake at once, forever.
        deadlines = self.control.deadlines()
        if may_claim:
            deadlines += self.claims.deadlines()
        if not self._stopping and self._scheduler is not None and not self.control.suspended:
            until = self._scheduler.seconds_until_due(timezone.now())
            if until is not None:
                deadlines.append(now + until)
        if ledger.held:
            deadlines.append(ledger.next_extend)
        if ledger.acks:
            deadlines.append(ledger.acks_since + ACK_DELAY)
        wake = min(deadlines)
        if not db_ok:  # none of it can happen before the next attempt
            wake = max(wake, self.db.retry_at)
        if self._stopping:
            wake = min(wake, self._grace_deadline)
        return max(0.0, wake - now)

    def _begin_stop(self, reason: str, now: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._stop_reason = reason
        self._grace_deadline = now + self.settings.grace
        unstarted = self.executor.take_waiting()
        self.ledger.to_release.extend(unstarted)
        logger.info(
            "stopping (%s): releasing %d waiting message(s), waiting up to %gs for %d running",
            reason,
            len(unstarted),
            self.settings.grace,
            self.executor.inflight,
        )

    def _finished(self, now: float) -> bool:
        if self._stopping:
            running = self.executor.busy()
            if not (running or self.ledger.unsettled()):
                return True
            if now >= self._grace_deadline:
                if running:
                    logger.warning(
                        "grace period over with %d job(s) still running; releasing them",
                        running,
                    )
                return True
            return False
        if self.ledger.held:
            return False
        if self.claims.exhausted():
            self._stop_reason = f"processed {self.claims.claimed} message(s) (--max-messages)"
            return True
        if self.options.burst and not self.claims.maybe_ready():
            self._stop_reason = "no message ready (--burst)"
            return True
        return False

    def _finish(self) -> int:
        """Archive what finished, give back the rest, mark the worker stopped."""
        self.db.try_now()  # one more try for each, whatever the backoff says
        self.ledger.flush(time.monotonic(), force=True)
        self.ledger.settle_failures()
        self.ledger.release_dropped()
        code = 0
        worker = self.worker
        if worker is not None:
            self.db.try_now()
            ok, released = self.control.stop()
            if not ok:
                logger.error(
                    "could not mark worker %s stopped; its messages return when its leases "
                    "end or when another worker reclaims it",
                    worker.name,
                )
                code = 1
            elif released:
                logger.warning("released %d message(s) still held", released)
            if ok:
                send_on_commit(worker_stopped, WorkerRuntime, self.using, worker=worker)
        if self._listener is not None:
            self._listener.stop()
        self.executor.close()
        self.db.close()
        logger.info(
            "worker %s stopped (%s): %d processed, %d succeeded, %d failed",
            worker.name if worker else "?",
            self._stop_reason or "done",
            self.processed,
            self.succeeded,
            self.failed,
        )
        return code
