"""The worker runtime behind ``manage.py pgqrs_worker``, as a plain class.

One process serves one or more queues. The main thread owns the database work (claiming,
acknowledging, failing, extending leases, heartbeats) and never runs a handler; handlers run
on a pool of threads (sync functions, each thread with its own Django connections) or on an
asyncio event loop in its own thread (``async def`` handlers). Finished messages come back to
the main thread through one event queue, together with NOTIFY wake-ups and signals.

How it stays fast: messages are claimed ``batch_size`` at a time, the next batch is claimed
while the current one runs (when fewer than ``concurrency`` are waiting), and successes are
archived in one statement per queue for everything finished within a few milliseconds
(``ACK_DELAY``), long before any lease could end.

How it stays correct:

- a message is run only while this worker holds its lease: waiting and running messages get
  their lease extended once half of it is used, a waiting message whose lease was lost is
  dropped without running, and every settle statement checks the lease token;
- a message delivered more than ``max_attempts`` times (its earlier holders died without
  finishing it) is dead-lettered without running;
- every database call is retried with backoff after a database error: results wait in
  memory until the database is back, so a restart loses nothing;
- on SIGTERM/SIGINT (or an operator's shutdown request) it stops claiming, releases the
  messages it has not started (claimable at once), lets running ones finish within the grace
  period, archives what finished and marks its ``Worker`` row stopped (releasing anything it
  still holds). A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import os
import queue as queue_module
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from asgiref.sync import sync_to_async
from django.db import Error as DjangoDatabaseError
from django.db import InterfaceError, OperationalError, connections
from django.db.models import DurationField, ExpressionWrapper, Min
from django.db.models.functions import Now
from django.utils import timezone

from . import conf, registry, scheduling
from .admin_api import PgqrsAdmin
from .consumer import Consumer
from .exceptions import InvalidInput, PayloadError, WorkerNotFound, one_line
from .models import Message, Queue, Worker
from .notify import Listener
from .queues import resolve
from .registry import Handler
from .signals import send_on_commit, worker_started, worker_stopped
from .validation import positive_int, seconds, serialize_payload

logger = logging.getLogger(__name__)

#: Longest a finished message waits for its (batched) archive statement, in seconds.
ACK_DELAY = 0.005
#: Finished messages that trigger an archive statement at once, whatever their age.
ACK_BUFFER = 100
#: Backoff between attempts while the database is unreachable (seconds).
DB_RETRY_MIN, DB_RETRY_MAX = 0.1, 5.0
#: Shortest lease the worker takes (a shorter one would end before a job could start).
MIN_LOCK_TIME = 0.5
#: Shortest wait before looking again for a message that is due now but was not claimed.
DUE_RECHECK = 0.02
#: Default grace period for running jobs after SIGTERM (seconds).
DEFAULT_GRACE = 30.0
#: Default number of handlers running at once.
DEFAULT_CONCURRENCY = 4
#: Longest result representation stored when a result is not JSON (characters).
MAX_RESULT_REPR = 1000

_WAKE, _NOTIFY, _SIGNAL = "wake", "notify", "signal"


@dataclasses.dataclass
class WorkerOptions:
    """What ``pgqrs_worker`` was asked to do; ``None`` means "the setting's default"."""

    queues: list[str] = dataclasses.field(default_factory=list)
    handlers: list[str] = dataclasses.field(default_factory=list)
    concurrency: int = DEFAULT_CONCURRENCY
    batch_size: int | None = None
    lock_time: float | None = None
    burst: bool = False
    max_messages: int | None = None
    poll_interval: float | None = None
    listen: bool = True
    grace: float = DEFAULT_GRACE
    name: str | None = None
    using: str | None = None
    #: The worker's claims and acknowledgements do not wait for the WAL flush.
    async_commit: bool = False
    #: Enqueue the registered periodic jobs (@pgqrs_django.periodic) at their ticks.
    periodic: bool = True


class _ServedQueue:
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


class _Job:
    """One held message, from claim to settlement."""

    __slots__ = ("duration", "error", "lease_end", "lost", "msg", "queue", "result", "skipped")

    def __init__(self, msg: Message, served: _ServedQueue, lease_end: float) -> None:
        self.msg = msg
        self.queue = served
        #: Local (monotonic) estimate of when the lease ends; kept on the early side.
        self.lease_end = lease_end
        self.lost = False
        self.skipped = False
        self.result: Any = None
        self.error: BaseException | str | None = None
        self.duration: float | None = None


def reset_broken_connections() -> None:
    """Close this thread's Django connections that failed and no longer work, so the next
    query reconnects (Django only does this between requests)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or not conn.errors_occurred or conn.in_atomic_block:
            continue
        if conn.is_usable():
            conn.errors_occurred = False
        else:
            conn.close()


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


class _Runner:
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
        execute_sync: Callable[[_Job], None],
        execute_async: Callable[[_Job], Any],
    ) -> None:
        self.concurrency = concurrency
        self.low_water = low_water
        self.wake = wake
        self._execute_sync = execute_sync
        self._execute_async = execute_async
        self.lock = threading.Lock()
        self._ready = threading.Condition(self.lock)
        self._sync_waiting: collections.deque[_Job] = collections.deque()
        self._async_waiting: collections.deque[_Job] = collections.deque()
        #: Jobs handed over and not finished yet (waiting or running).
        self.inflight = 0
        self.done: collections.deque[_Job] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._idle_threads = 0
        self._closing = False
        self._low_signalled = False
        self._wake_on_done = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._async_running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def busy(self) -> int:
        """Jobs handed over whose results the main thread has not collected yet."""
        with self.lock:
            return self.inflight + len(self.done)

    def waiting(self) -> int:
        """Jobs handed over that no lane has started yet."""
        return len(self._sync_waiting) + len(self._async_waiting)

    # -- main thread side -----------------------------------------------------------------

    def submit(self, jobs: list[_Job]) -> None:
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

    def take_waiting(self) -> list[_Job]:
        """Remove and return every job not started yet (to release it)."""
        with self.lock:
            jobs = [*self._sync_waiting, *self._async_waiting]
            self._sync_waiting.clear()
            self._async_waiting.clear()
            self.inflight -= len(jobs)
        return jobs

    def withdraw(self, job: _Job) -> bool:
        """Take back one job if it has not started; False when it is running or done."""
        with self.lock:
            for waiting in (self._sync_waiting, self._async_waiting):
                if job in waiting:
                    waiting.remove(job)
                    self.inflight -= 1
                    return True
        return False

    def collect(self) -> list[_Job]:
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

    def _finished(self, job: _Job) -> None:
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
                    while not self._sync_waiting and not self._closing:
                        self._ready.wait()
                    if not self._sync_waiting:
                        return
                    job = self._sync_waiting.popleft()
                    self._idle_threads -= 1
                    wake = self._started()
                if wake:
                    self.wake()
                self._execute_sync(job)
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

    def _fill_async(self) -> None:
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
            task = self._loop.create_task(self._run_async(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_async(self, job: _Job) -> None:
        try:
            await self._execute_async(job)
        finally:
            with self.lock:
                self._async_running -= 1
            self._finished(job)
            self._fill_async()

    def _cancel_and_stop(self) -> None:
        assert self._loop is not None
        for task in self._tasks:
            task.cancel()
        # One more turn of the loop delivers the cancellations before it stops.
        self._loop.call_soon(self._loop.stop)


class WorkerRuntime:
    """Runs the handlers of one or more queues until stopped; see the module docstring.

    ``WorkerRuntime(WorkerOptions(queues=["emails"])).run()`` blocks until a signal (when
    ``install_signal_handlers``), an operator's shutdown request, ``burst`` running dry or
    ``max_messages`` being reached, and returns the process exit code.
    """

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.using = options.using or conf.database()
        self.concurrency = positive_int(options.concurrency, "concurrency", maximum=10_000)
        self.batch_size = positive_int(
            options.batch_size
            if options.batch_size is not None
            else int(conf.get("DEFAULT_BATCH_SIZE")),
            "batch size",
            maximum=10_000,
        )
        self.lock_time = (
            None
            if options.lock_time is None
            else seconds(options.lock_time, "lock time", allow_zero=False)
        )
        self.poll_interval = seconds(
            options.poll_interval
            if options.poll_interval is not None
            else float(conf.get("POLL_INTERVAL")),
            "poll interval",
            allow_zero=False,
        )
        self.grace = seconds(options.grace, "grace period")
        self.max_messages = (
            None
            if options.max_messages is None
            else positive_int(options.max_messages, "max messages")
        )
        self.heartbeat_interval = float(conf.get("HEARTBEAT_INTERVAL"))
        self.admin = PgqrsAdmin(using=self.using)
        self.worker: Worker | None = None
        self.processed = self.succeeded = self.failed = 0

        self._queues: dict[int, _ServedQueue] = {}
        self._order: list[_ServedQueue] = []
        self._next_queue = 0
        self._events: queue_module.SimpleQueue[tuple[str, Any]] = queue_module.SimpleQueue()
        self._held: dict[int, _Job] = {}
        self._acks: list[_Job] = []
        self._acks_since = 0.0
        self._failures: collections.deque[_Job] = collections.deque()
        self._to_release: list[_Job] = []
        self._claimed = 0
        self._suspended = False
        self._stopping = False
        self._stop_reason = ""
        self._grace_deadline = 0.0
        self._signals = 0
        self._db_retry_at = 0.0
        self._db_backoff = DB_RETRY_MIN
        self._db_down_since: float | None = None
        self._next_due: float | None = None
        self._next_heartbeat = self._next_status = self._next_poll = 0.0
        self._next_reclaim = self._next_extend = 0.0
        self._listener: Listener | None = None
        self._scheduler: scheduling.Scheduler | None = None
        self._session: Any = None
        self._runner = _Runner(
            self.concurrency,
            # Claim the next batch while this one runs (half a batch left, or fewer jobs
            # waiting than lanes).
            max(self.concurrency, self.batch_size // 2),
            self._wake,
            self._execute_sync,
            self._execute_async,
        )

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
        name = self.options.name
        if name is not None:
            self._take_over_name(name)
        self.worker = self.admin.register_worker(rows, name=name)
        for row in rows:
            consumer = Consumer(row, self.worker, using=self.using)
            served = _ServedQueue(row, handlers[row.name], consumer, self.lock_time)
            self._queues[row.pk] = served
            self._order.append(served)
        if self.options.listen:
            self._listener = Listener(
                self.using, self._on_notify, application_name=f"pgqrs-listen {self.worker.name}"
            )
            self._listener.start()
        send_on_commit(worker_started, WorkerRuntime, self.using, worker=self.worker)
        logger.info(
            "worker %s serving %s (concurrency %d, batch %d, %s)",
            self.worker.name,
            ", ".join(f"{s.name} -> {s.handler.path}" for s in self._order),
            self.concurrency,
            self.batch_size,
            f"{'LISTEN + ' if self._listener else ''}polling every {self.poll_interval:g}s",
        )

    def _take_over_name(self, name: str) -> None:
        """A fixed ``--name`` may be reused once its previous holder stopped or went stale."""
        if not name.strip() or len(name) > 200:
            raise InvalidInput("worker name must be 1-200 characters")
        old = Worker.objects.using(self.using).filter(name=name).first()
        if old is None:
            return
        stale = Worker.objects.using(self.using).stale().filter(pk=old.pk).exists()
        if old.status != Worker.Status.STOPPED and not stale:
            raise InvalidInput(
                f"a worker named {name!r} is running (pid {old.pid} on {old.hostname}); "
                "choose another --name"
            )
        self.admin.stop_worker(old)
        old.delete(using=self.using)

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
            self._next_heartbeat = now + self.heartbeat_interval
            self._next_status = self._next_poll = now + self.poll_interval
            self._next_reclaim = now  # release dead workers' messages before the first claim
            self._next_extend = now
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
            self._collect(now)
            self._settle_failures()
            self._release_dropped()
            self._control(now)
            self._run_schedules()
            self._extend(now)
            self._claim(now)
            self._flush(now)
            if self._finished(now):
                return
            timeout = self._runner.before_sleep(self._timeout(now))

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

    def _collect(self, now: float) -> None:
        """Take the jobs the lanes finished: successes wait for the next archive statement,
        failures for fail(), skipped ones are released."""
        for job in self._runner.collect():
            if job.skipped:
                self._to_release.append(job)
                continue
            self.processed += 1
            if job.error is None:
                if not self._acks:
                    self._acks_since = now
                self._acks.append(job)
            else:
                self._failures.append(job)

    def _wake(self) -> None:
        self._events.put((_WAKE, None))

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, value = item
        if kind == _NOTIFY:
            if value is None:
                for served in self._order:
                    served.maybe_ready = True
            elif value in self._queues:
                self._queues[value].maybe_ready = True
        elif kind == _SIGNAL:
            reason = value if isinstance(value, str) else f"{signal.Signals(value).name} received"
            self._begin_stop(reason, time.monotonic())

    def _on_notify(self, queue_id: int | None) -> None:
        self._events.put((_NOTIFY, queue_id))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os.write(2, b"pgqrs_worker: second signal, exiting at once\n")
            os._exit(128 + signum)
        self._events.put((_SIGNAL, signum))

    # -- database calls ------------------------------------------------------------------

    def _close_connection(self) -> None:
        wrapper = connections[self.using]
        if wrapper.in_atomic_block:  # run inside a caller's transaction: not ours to close
            return
        with contextlib.suppress(DjangoDatabaseError):
            wrapper.close()

    def _db_ok(self) -> bool:
        return time.monotonic() >= self._db_retry_at

    def _prepare_session(self) -> None:
        """Session settings of the worker's own connection, set once per (re)connection.

        The claim must walk the claim index in order and stop after ``batch_size`` rows.
        Right after a burst of inserts the table statistics are stale, and the planner may
        then pick a bitmap scan that sorts every ready row on each claim (a cost that grows
        with the backlog). This connection runs only pgqrs statements, none of which needs
        a bitmap scan.

        With ``async_commit``, its commits do not wait for the WAL flush
        (``synchronous_commit = off``): a PostgreSQL crash may then forget the last fraction
        of a second of claims and acknowledgements, and those jobs run again. Enqueues, on
        other connections, keep their durability.
        """
        wrapper = connections[self.using]
        if wrapper.connection is None or wrapper.connection is not self._session:
            wrapper.ensure_connection()
            with wrapper.cursor() as cursor:
                cursor.execute("SET enable_bitmapscan = off")
                if self.options.async_commit:
                    cursor.execute("SET synchronous_commit = off")
            self._session = wrapper.connection

    def _db(self, what: str, call: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """Run one database call; on a database error log it, drop a broken connection and
        back off (every caller keeps its work for the next attempt)."""
        if not self._db_ok():
            return False, None
        try:
            self._prepare_session()
            value = call(*args)
        except DjangoDatabaseError as exc:  # DatabaseError and InterfaceError
            now = time.monotonic()
            if self._db_down_since is None:
                self._db_down_since = now
                logger.warning(
                    "database error while %s: %s; retrying", what, one_line(exc, with_type=True)
                )
            else:
                logger.debug("database still failing (%s): %s", what, one_line(exc, with_type=True))
            if isinstance(exc, OperationalError | InterfaceError):
                self._close_connection()
            self._db_retry_at = now + self._db_backoff
            self._db_backoff = min(DB_RETRY_MAX, self._db_backoff * 2)
            return False, None
        if self._db_down_since is not None:
            logger.warning(
                "database reachable again after %.1fs", time.monotonic() - self._db_down_since
            )
            self._db_down_since = None
            self._db_backoff = DB_RETRY_MIN
            # Notifications may have been missed while the database was away.
            for served in self._order:
                served.maybe_ready = True
        return True, value

    # -- claiming and running ------------------------------------------------------------

    def _may_claim(self) -> bool:
        return (
            not self._stopping
            and not self._suspended
            and self._runner.waiting() < self._runner.low_water
            and (self.max_messages is None or self._claimed < self.max_messages)
        )

    def _claim(self, now: float) -> None:
        if not self._may_claim() or not self._db_ok():
            return
        wanted = self.batch_size
        if self.max_messages is not None:
            wanted = min(wanted, self.max_messages - self._claimed)
        if now >= self._next_poll:
            self._next_poll = now + self.poll_interval
            for served in self._order:
                served.maybe_ready = True
        if self._next_due is not None and now >= self._next_due:
            self._next_due = None
            for served in self._order:
                served.maybe_ready = True
        count = len(self._order)
        tried = False
        for step in range(count):
            served = self._order[(self._next_queue + step) % count]
            if not served.maybe_ready:
                continue
            tried = True
            started = time.monotonic()
            acks = [job for job in self._acks if job.queue is served]
            if acks:
                # Carry this queue's finished messages on the claim: one round trip, one
                # commit for both.
                ok, outcome = self._db(
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
                self._archived(acks, outcome[0], now)
                messages = outcome[1]
            else:
                ok, messages = self._db(
                    "claiming", served.consumer.dequeue_batch, wanted, served.lock_time
                )
                if not ok:
                    return
            served.maybe_ready = len(messages) >= wanted
            if messages:
                self._accept(served, messages, started)
                self._next_queue = (self._next_queue + step + 1) % count
                return
        if tried:
            self._plan_next_due(now)

    def _accept(self, served: _ServedQueue, messages: list[Message], started: float) -> None:
        lease_end = started + served.lock_time
        runnable = []
        for msg in messages:
            job = _Job(msg, served, lease_end)
            self._held[msg.id] = job
            self._claimed += 1
            if msg.read_ct > served.max_attempts:
                job.error = (
                    f"delivered {msg.read_ct} times, over max_attempts={served.max_attempts}, "
                    "without completing (its earlier workers probably crashed or were killed): "
                    "dead-lettered without running it again"
                )
                self._failures.append(job)
            else:
                runnable.append(job)
        if runnable:
            self._runner.submit(runnable)

    def _plan_next_due(self, now: float) -> None:
        """Every queue came back empty: learn when the earliest waiting message is due (it
        may be due already: it became visible since the claim)."""
        ok, until = self._db("reading the next due time", self._seconds_until_due)
        if not ok:
            return
        # Something visible that the claim missed (claimed by another worker meanwhile, or
        # visible since): look again shortly, not at once, so this cannot spin.
        self._next_due = None if until is None else now + max(DUE_RECHECK, until)

    def _seconds_until_due(self) -> float | None:
        """Seconds until the earliest unleased message of our queues is visible (<= 0 when
        one is visible now), or None."""
        found = (
            Message.objects.using(self.using)
            .filter(queue_id__in=list(self._queues), claimed_at__isnull=True)
            .exclude(queue__paused=True)
            .aggregate(until=ExpressionWrapper(Min("vt") - Now(), output_field=DurationField()))
        )["until"]
        return None if found is None else found.total_seconds()

    def _skip(self, job: _Job) -> bool:
        """Whether a lane must not start ``job``: its lease was lost, or may be gone (the
        database was away and it could not be extended). Running it could run it twice."""
        if job.lost or job.lease_end - time.monotonic() <= job.queue.lock_time / 4:
            job.skipped = True
            logger.warning("message %s waited too long to start; releasing it", job.msg.id)
        return job.skipped

    def _execute_sync(self, job: _Job) -> None:
        """Run a sync handler (on a lane thread)."""
        if self._skip(job):
            return
        started = time.perf_counter()
        try:
            job.result = storable_result(job.queue.handler.func(job.msg), job.msg.id)
        except BaseException as exc:  # a handler's SystemExit must not kill the lane
            job.error = exc
        finally:
            job.duration = time.perf_counter() - started
            if job.error is not None:  # a failed query may have broken a connection
                reset_broken_connections()

    async def _execute_async(self, job: _Job) -> None:
        """Run an async handler (on the event loop thread)."""
        if self._skip(job):
            return
        started = time.perf_counter()
        try:
            job.result = storable_result(await job.queue.handler.func(job.msg), job.msg.id)
        except BaseException as exc:  # CancelledError included: the job did not finish
            job.error = exc
        job.duration = time.perf_counter() - started
        if job.error is not None:
            try:
                await sync_to_async(reset_broken_connections)()
            except Exception:  # never let clean-up hide the job's own result
                logger.exception("could not reset database connections")

    # -- settling ------------------------------------------------------------------------

    def _by_queue(self, jobs: Iterable[_Job]) -> dict[_ServedQueue, list[_Job]]:
        groups: dict[_ServedQueue, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.queue, []).append(job)
        return groups

    def _flush(self, now: float, *, force: bool = False) -> None:
        """Archive finished messages: one statement per queue."""
        if not self._acks:
            return
        idle = not self._runner.busy()
        due = (
            force
            or idle
            or self._stopping
            or len(self._acks) >= max(self.batch_size, ACK_BUFFER)
            or now - self._acks_since >= ACK_DELAY
        )
        if not due:
            return
        for served, jobs in self._by_queue(self._acks).items():
            ok, archived = self._db(
                "archiving",
                served.consumer.archive_batch,
                [job.msg for job in jobs],
                [job.result for job in jobs],
                [job.duration for job in jobs],
            )
            if not ok:
                return
            self._archived(jobs, archived, now)

    def _archived(self, jobs: list[_Job], stored: list[bool], now: float) -> None:
        """Bookkeeping after an archive statement settled ``jobs``."""
        done = {id(job) for job in jobs}
        self._acks = [job for job in self._acks if id(job) not in done]
        self._acks_since = now
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

    def _settle_failures(self) -> None:
        while self._failures and self._db_ok():
            job = self._failures[0]
            assert job.error is not None
            ok, held = self._db("recording a failure", job.queue.consumer.fail, job.msg, job.error)
            if not ok:
                return
            self._failures.popleft()
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

    def _release_dropped(self) -> None:
        if not self._to_release or not self._db_ok():
            return
        for served, jobs in self._by_queue(self._to_release).items():
            ok, _ = self._db("releasing", served.consumer.release_batch, [j.msg for j in jobs])
            if not ok:
                return
            released = {id(job) for job in jobs}
            self._to_release = [job for job in self._to_release if id(job) not in released]
            for job in jobs:
                self._forget(job)

    def _forget(self, job: _Job) -> None:
        self._held.pop(job.msg.id, None)

    # -- leases --------------------------------------------------------------------------

    def _extend(self, now: float) -> None:
        """Extend every held lease that is half used (running, waiting or finished but not
        yet archived)."""
        if now < self._next_extend or not self._held or not self._db_ok():
            return
        shortest = min(job.queue.lock_time for job in self._held.values())
        self._next_extend = now + min(0.5, shortest / 4)
        due = [j for j in self._held.values() if j.lease_end - now <= j.queue.lock_time / 2]
        for served, jobs in self._by_queue(due).items():
            extra = served.lock_time / 2
            ok, kept = self._db(
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

    def _lose(self, job: _Job) -> None:
        """Our lease on ``job`` is gone (another worker or an operator took the message)."""
        if self._runner.withdraw(job):
            self._forget(job)
            logger.warning("lost the lease of waiting message %s; not running it", job.msg.id)
        else:
            logger.warning(
                "lost the lease of message %s while it ran; another worker may run it again",
                job.msg.id,
            )

    # -- control: heartbeat, operator requests, reclaim ----------------------------------

    def _control(self, now: float) -> None:
        if not self._db_ok():
            return
        if now >= self._next_heartbeat:
            ok, row = self._db("sending a heartbeat", self._heartbeat)
            if not ok:
                return
            self._next_heartbeat = now + self.heartbeat_interval
            self._next_status = now + self.poll_interval
            self._apply(row)
        elif now >= self._next_status:
            ok, row = self._db("reading the worker status", self._status)
            if not ok:
                return
            self._next_status = now + self.poll_interval
            self._apply(row)
        if now >= self._next_reclaim:
            ok, result = self._db("reclaiming", self._reclaim)
            if ok:
                self._next_reclaim = now + self.heartbeat_interval
                if result.workers or result.messages:
                    logger.warning(
                        "reclaimed %d message(s) of %d stale worker(s)",
                        result.messages,
                        result.workers,
                    )

    def _heartbeat(self) -> Worker:
        assert self.worker is not None
        try:
            return self.admin.heartbeat(self.worker)
        except WorkerNotFound:
            logger.warning("worker row %s was deleted; registering again", self.worker.name)
            rows = [served.row for served in self._order]
            self.worker = self.admin.register_worker(rows, name=self.worker.name)
            for served in self._order:
                served.consumer.worker = self.worker
            return self.worker

    def _status(self) -> Worker:
        assert self.worker is not None
        row = Worker.objects.using(self.using).filter(pk=self.worker.pk).first()
        return row if row is not None else self._heartbeat()

    def _reclaim(self) -> Any:
        result = self.admin.reclaim()
        for pk, timeout, attempts in (
            Queue.objects.using(self.using)
            .filter(pk__in=list(self._queues))
            .values_list("pk", "visibility_timeout", "max_attempts")
        ):
            served = self._queues[pk]
            served.visibility_timeout, served.max_attempts = timeout, attempts
        return result

    def _apply(self, row: Worker) -> None:
        """Act on what operators set on our row."""
        self.worker = row
        if row.status == Worker.Status.STOPPED:
            # Our heartbeat went stale (a long database outage) and someone reclaimed our
            # messages: we are alive, so come back; the leases we lost report False.
            logger.warning("worker %s was marked stopped while alive; resuming", row.name)
            Worker.objects.using(self.using).filter(pk=row.pk).update(
                status=Worker.Status.READY, stopped_at=None, heartbeat_at=Now()
            )
            row.status = Worker.Status.READY
        suspended = row.status == Worker.Status.SUSPENDED
        if suspended != self._suspended:
            self._suspended = suspended
            logger.warning("worker %s %s", row.name, "suspended" if suspended else "resumed")
        if row.shutdown_requested:
            self._begin_stop("shutdown requested by an operator", time.monotonic())

    def _run_schedules(self) -> None:
        """Enqueue the periodic jobs whose tick has come (each once, whatever the number
        of workers: see scheduling.py)."""
        if self._scheduler is None or self._stopping or self._suspended or not self._db_ok():
            return
        wall = timezone.now()
        if self._scheduler.seconds_until_due(wall) == 0:
            self._db("enqueueing periodic jobs", self._scheduler.run_due, wall)

    # -- stopping ------------------------------------------------------------------------

    def _begin_stop(self, reason: str, now: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._stop_reason = reason
        self._grace_deadline = now + self.grace
        unstarted = self._runner.take_waiting()
        self._to_release.extend(unstarted)
        logger.info(
            "stopping (%s): releasing %d waiting message(s), waiting up to %gs for %d running",
            reason,
            len(unstarted),
            self.grace,
            self._runner.inflight,
        )

    def _finished(self, now: float) -> bool:
        if self._stopping:
            running = self._runner.busy()
            if not (running or self._acks or self._failures or self._to_release):
                return True
            if now >= self._grace_deadline:
                if running:
                    logger.warning(
                        "grace period over with %d job(s) still running; releasing them",
                        running,
                    )
                return True
            return False
        if self._held:
            return False
        if self.max_messages is not None and self._claimed >= self.max_messages:
            self._stop_reason = f"processed {self._claimed} message(s) (--max-messages)"
            return True
        if self.options.burst and not any(s.maybe_ready for s in self._order):
            self._stop_reason = "no message ready (--burst)"
            return True
        return False

    def _timeout(self, now: float) -> float:
        """How long the loop may sleep before it has something to do."""
        db_ok = self._db_ok()
        if db_ok and (self._failures or self._to_release):
            return 0.0
        may_claim = self._may_claim()
        if db_ok and may_claim and any(s.maybe_ready for s in self._order):
            return 0.0
        if self._acks and not self._runner.busy():
            return 0.0 if db_ok else max(0.0, self._db_retry_at - now)
        # Database work. A poll or a due message matters only to a worker that may claim:
        # one that is suspended or has enough waiting would otherwise wake at once, forever.
        deadlines = [self._next_heartbeat, self._next_status, self._next_reclaim]
        if may_claim:
            deadlines.append(self._next_poll)
            if self._next_due is not None:
                deadlines.append(self._next_due)
        if not self._stopping and self._scheduler is not None and not self._suspended:
            until = self._scheduler.seconds_until_due(timezone.now())
            if until is not None:
                deadlines.append(now + until)
        if self._held:
            deadlines.append(self._next_extend)
        if self._acks:
            deadlines.append(self._acks_since + ACK_DELAY)
        wake = min(deadlines)
        if not db_ok:  # none of it can happen before the next attempt
            wake = max(wake, self._db_retry_at)
        if self._stopping:
            wake = min(wake, self._grace_deadline)
        return max(0.0, wake - now)

    def _finish(self) -> int:
        """Archive what finished, give back the rest, mark the worker stopped."""
        self._db_retry_at = 0.0  # one more try for each, whatever the backoff says
        self._flush(time.monotonic(), force=True)
        self._settle_failures()
        self._release_dropped()
        code = 0
        if self.worker is not None:
            self._db_retry_at = 0.0
            ok, released = self._db(
                "marking the worker stopped", self.admin.stop_worker, self.worker
            )
            if not ok:
                logger.error(
                    "could not mark worker %s stopped; its messages return when its leases "
                    "end or when another worker reclaims it",
                    self.worker.name,
                )
                code = 1
            elif released:
                logger.warning("released %d message(s) still held", released)
            if ok:
                send_on_commit(worker_stopped, WorkerRuntime, self.using, worker=self.worker)
        if self._listener is not None:
            self._listener.stop()
        self._runner.close()
        self._close_connection()
        logger.info(
            "worker %s stopped (%s): %d processed, %d succeeded, %d failed",
            self.worker.name if self.worker else "?",
            self._stop_reason or "done",
            self.processed,
            self.succeeded,
            self.failed,
        )
        return code
