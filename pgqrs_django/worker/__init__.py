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

Where each part lives:

- ``options.py``: :class:`WorkerOptions`, the checked settings, the shared timings;
- ``runtime.py``: :class:`WorkerRuntime`, the loop of the main thread: events, sleeping,
  start-up and stopping;
- ``claims.py``: which queue to claim from, how many, when to look again;
- ``ledger.py``: the held jobs: archiving, recording failures, releasing, extending leases;
- ``control.py``: the ``Worker`` row: registration, heartbeat, operator requests, reclaim;
- ``retry.py``: the main thread's connection and its calls, retried with backoff;
- ``executor.py``: the threads and the event loop the handlers run on, each job wrapped as
  Django wraps a request (``close_old_connections()`` before and after);
- ``jobs.py``: one held message (:class:`~pgqrs_django.worker.jobs.Job`) and how its handler
  runs.
"""

from .jobs import storable_result
from .options import DEFAULT_CONCURRENCY, DEFAULT_GRACE, MIN_LOCK_TIME, WorkerOptions
from .runtime import WorkerRuntime

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_GRACE",
    "MIN_LOCK_TIME",
    "WorkerOptions",
    "WorkerRuntime",
    "storable_result",
]
