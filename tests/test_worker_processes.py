"""``manage.py pgqrs_worker`` as real OS processes: many workers, crashes, signals, database
outages, failing handlers, LISTEN/NOTIFY wake-ups and operator requests.

Handlers are in tests/testapp/jobs.py; each records an ``Execution`` row when it starts.
No assertion depends on tight timings: waits are generous, and the only time comparisons
are lower bounds the code guarantees (retry backoff) or margins of many seconds.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import pytest
from django.db import transaction

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf
from pgqrs_django.models import Archive, Message, Worker
from tests.databases import pgqrs_connection
from tests.testapp.models import Execution
from tests.worker_support import (
    WorkerProcess,
    database_clock,
    terminate_other_backends,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Under `make test-pgbouncer` the tests marked `pgbouncer` run with their workers connected
# through PgBouncer in transaction pooling mode (the subprocesses inherit its DATABASE_URL),
# polling only (the start_worker fixture of conftest.py adds --no-listen there).


def listening(worker: WorkerProcess) -> bool:
    """Whether the worker's LISTEN connection is up."""
    with pgqrs_connection().cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'pgqrs-listen%%' AND query LIKE 'LISTEN%%'"
        )
        return bool(cursor.fetchone()[0])


def heartbeat_after(name: str, moment: datetime) -> datetime | None:
    """The worker's last heartbeat if it is later than ``moment`` (database clock)."""
    beat = Worker.objects.filter(name=name).values_list("heartbeat_at", flat=True).get()
    return beat if beat > moment else None


def registered(count: int = 1) -> Callable[[], bool]:
    return lambda: Worker.objects.running().count() == count


# -- acceptance 1: many workers, every message once ----------------------------------------


@pytest.mark.pgbouncer
def test_four_workers_process_5000_messages_exactly_once(admin: PgqrsAdmin, start_worker) -> None:
    admin.create_queue("work", visibility_timeout=120)
    workers = [
        start_worker("--queue", "work", "--concurrency", "4", "--batch-size", batch)
        for batch in ("1", "10", "25", "50")
    ]
    wait_until(registered(4), what="4 registered workers")
    with transaction.atomic(using=conf.database()):
        sent = {m.id for m in Producer("work").batch_enqueue([{"n": i} for i in range(5000)])}
    wait_until(lambda: not Message.objects.exists(), timeout=300, what="an empty queue")
    assert [w.stop() for w in workers] == [0, 0, 0, 0]

    archived = list(Archive.objects.values_list("id", "outcome", "worker_name"))
    assert len(archived) == 5000 and {a[0] for a in archived} == sent
    assert {a[1] for a in archived} == {"succeeded"}
    executions = Counter(Execution.objects.values_list("msg_id", flat=True))
    assert set(executions) == sent and max(executions.values()) == 1  # executions == messages
    # Every worker took part, and each archive row names the worker that ran it.
    assert set(Execution.objects.values_list("pid", flat=True)) == {w.pid for w in workers}
    names = {w.row().name for w in workers}
    assert {a[2] for a in archived} == names
    assert set(Worker.objects.values_list("status", flat=True)) == {"stopped"}


# -- acceptance 2: SIGKILL -------------------------------------------------------------------


@pytest.mark.pgbouncer
def test_the_messages_of_a_killed_worker_are_processed_by_another(
    admin: PgqrsAdmin, start_worker
) -> None:
    admin.create_queue("work", visibility_timeout=3)
    sent = {m.id for m in Producer("work").batch_enqueue([{"n": i} for i in range(6)])}
    fast = {"PGQRS_HEARTBEAT_INTERVAL": "0.5", "PGQRS_STALE_WORKER_TIMEOUT": "2"}
    victim = start_worker(
        "--queue", "work", "--concurrency", "2", "--batch-size", "4", TESTAPP_SLEEP="600", **fast
    )
    wait_until(lambda: Execution.objects.count() == 2, what="two running jobs")
    held = set(Message.objects.filter(consumer=victim.row()).values_list("pk", flat=True))
    assert len(held) == 4  # two running, two waiting in the worker
    victim.proc.kill()
    assert victim.wait() == -signal.SIGKILL

    rescuer = start_worker("--queue", "work", "--poll-interval", "0.2", **fast)
    wait_until(lambda: Archive.objects.count() == 6, what="every message archived")
    wait_until(lambda: victim.row().status == "stopped", what="the victim marked stopped")
    assert rescuer.stop() == 0

    rows = Archive.objects.all()
    assert {r.id for r in rows} == sent and {r.outcome for r in rows} == {"succeeded"}
    assert {r.worker_name for r in rows} == {rescuer.row().name}
    assert {r.id: r.read_ct for r in rows if r.id in held} == dict.fromkeys(held, 2)
    rescued = Counter(Execution.objects.filter(pid=rescuer.pid).values_list("msg_id", flat=True))
    assert rescued == Counter(sent)  # each message run once by the rescuer
    assert victim.row().stopped_at is not None


# -- acceptance 3: SIGTERM -------------------------------------------------------------------


@pytest.mark.pgbouncer
def test_sigterm_finishes_running_jobs_and_releases_the_rest_at_once(
    admin: PgqrsAdmin, start_worker
) -> None:
    admin.create_queue("work", visibility_timeout=300)
    Producer("work").batch_enqueue([{"sleep": 2} for _ in range(10)])
    worker = start_worker("--queue", "work", "--concurrency", "2", "--batch-size", "10")
    wait_until(lambda: Execution.objects.count() == 2, what="two running jobs")
    assert Message.objects.filter(consumer__isnull=False).count() == 10
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0

    running = set(Execution.objects.values_list("msg_id", flat=True))
    finished = Archive.objects.all()
    assert {a.id for a in finished} == running and {a.outcome for a in finished} == {"succeeded"}
    rest = set(Message.objects.values_list("pk", flat=True))
    assert len(rest) == 8
    # Claimable now, not after their 300 s lease.
    assert {m.id for m in Consumer("work").dequeue_batch(100)} == rest
    assert worker.row().status == "stopped"
    assert "releasing 8 waiting message(s)" in worker.log()


@pytest.mark.pgbouncer
def test_running_jobs_past_the_grace_period_are_released(admin: PgqrsAdmin, start_worker) -> None:
    admin.create_queue("work", visibility_timeout=300)
    Producer("work").batch_enqueue([{"sleep": 600}, {"sleep": 600}])
    worker = start_worker("--queue", "work", "--concurrency", "2", "--grace", "0.5")
    wait_until(lambda: Execution.objects.count() == 2, what="two running jobs")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert not Archive.objects.exists()
    assert len(Consumer("work").dequeue_batch(10)) == 2  # claimable at once
    assert worker.row().status == "stopped"
    assert "grace period over with 2 job(s) still running" in worker.log()


@pytest.mark.pgbouncer
def test_a_second_signal_exits_at_once(admin: PgqrsAdmin, start_worker) -> None:
    admin.create_queue("work", visibility_timeout=300)
    Producer("work").enqueue({"sleep": 600})
    worker = start_worker("--queue", "work", "--grace", "600")
    wait_until(lambda: Execution.objects.exists(), what="a running job")
    worker.signal(signal.SIGINT)
    wait_until(lambda: "stopping (SIGINT received)" in worker.log(), what="the first signal")
    worker.signal(signal.SIGINT)
    assert worker.wait(30) == 128 + signal.SIGINT
    assert "second signal" in worker.log()
    assert Message.objects.get().claimed_at is not None  # its lease runs out on its own


# -- acceptance 4: the database goes away ----------------------------------------------------


def test_a_worker_survives_its_connections_being_killed(admin: PgqrsAdmin, start_worker) -> None:
    admin.create_queue("work", visibility_timeout=60, max_attempts=50)
    sent = {m.id for m in Producer("work").batch_enqueue([{"sleep": 0.005}] * 1200)}
    worker = start_worker(
        "--queue",
        "work",
        "--concurrency",
        "2",
        "--batch-size",
        "5",
        "--poll-interval",
        "0.2",
        PGQRS_RETRY_BACKOFF_BASE="0.05",
        PGQRS_RETRY_BACKOFF_MAX="0.2",
    )
    progress = 100
    for _ in range(3):
        wait_until(lambda p=progress: Archive.objects.count() >= p, what="progress")
        assert terminate_other_backends() >= 2  # at least its main and LISTEN connections
        progress = Archive.objects.count() + 100
    wait_until(lambda: Archive.objects.count() == 1200, timeout=180, what="every message")
    assert worker.stop() == 0

    rows = Archive.objects.all()
    assert {r.id for r in rows} == sent and {r.outcome for r in rows} == {"succeeded"}
    assert set(Execution.objects.values_list("msg_id", flat=True)) == sent
    assert not Message.objects.exists()
    log = worker.log()
    assert "database error" in log and "database reachable again" in log
    assert "LISTEN connection lost" in log and "LISTEN connection restored" in log


# -- acceptance 6: failing handlers ------------------------------------------------------------


@pytest.mark.pgbouncer
def test_failing_handlers_retry_with_growing_delays_then_die(
    admin: PgqrsAdmin, start_worker
) -> None:
    admin.create_queue("fail-sync", max_attempts=3)
    admin.create_queue("fail-async", max_attempts=3)
    sync_msg = Producer("fail-sync").enqueue({})
    async_msg = Producer("fail-async").enqueue({})
    # A 30 s poll: only the worker's own due-time wake-ups can bring the retries back soon.
    worker = start_worker(
        "--queue",
        "fail-sync",
        "--queue",
        "fail-async",
        "--poll-interval",
        "30",
        PGQRS_RETRY_BACKOFF_BASE="1",
        PGQRS_RETRY_JITTER="0",
    )
    wait_until(lambda: Archive.objects.count() == 2, timeout=90, what="both dead")
    assert worker.stop() == 0

    for msg, error in (
        (sync_msg, f"ValueError: sync handler failed on message {sync_msg.id}"),
        (async_msg, f"RuntimeError: async handler failed on message {async_msg.id}"),
    ):
        row = Archive.objects.get(pk=msg.id)
        assert (row.outcome, row.read_ct) == ("dead", 3)
        assert row.error.startswith("Traceback (most recent call last)") and error in row.error
        starts = list(
            Execution.objects.filter(msg_id=msg.id)
            .order_by("created_at")
            .values_list("created_at", flat=True)
        )
        assert len(starts) == 3
        first, second = ((b - a).total_seconds() for a, b in itertools.pairwise(starts))
        assert first >= 1.0 and second >= 2.0 and second > first  # 1 s, then 2 s backoff
        # Well before the 30 s poll: the worker woke itself for the retry, with or without
        # LISTEN (make test-pgbouncer runs this with --no-listen).
        assert second < 20, (first, second)


# -- waking up ----------------------------------------------------------------------------


def test_notify_wakes_an_idle_worker_long_before_its_poll(admin: PgqrsAdmin, start_worker) -> None:
    admin.create_queue("work")
    worker = start_worker("--queue", "work", "--poll-interval", "30")
    wait_until(lambda: listening(worker), what="the LISTEN connection")
    time.sleep(0.5)  # past the worker's first (start-up) claim
    started = time.monotonic()
    msg = Producer("work").enqueue({})
    wait_until(lambda: Archive.objects.filter(pk=msg.id).exists(), timeout=20, what="the job")
    # The next poll is 30 s after start; the job ran well within 20 s of the enqueue.
    assert time.monotonic() - started < 20
    assert worker.stop() == 0
    assert "LISTEN does not work" not in worker.log()  # the probe came back


def test_a_delayed_message_runs_when_due_without_polling(admin: PgqrsAdmin, start_worker) -> None:
    admin.create_queue("work")
    worker = start_worker("--queue", "work", "--poll-interval", "30")
    wait_until(lambda: listening(worker), what="the LISTEN connection")
    msg = Producer("work").enqueue({}, delay=2)
    wait_until(lambda: Archive.objects.filter(pk=msg.id).exists(), timeout=20, what="the job")
    row = Archive.objects.get(pk=msg.id)
    assert row.dequeued_at is not None and row.dequeued_at >= msg.vt  # not before it was due
    assert worker.stop() == 0


@pytest.mark.pgbouncer
def test_no_listen_polls_without_a_listen_connection(admin: PgqrsAdmin, start_worker) -> None:
    admin.create_queue("work")
    worker = start_worker("--queue", "work", "--no-listen", "--poll-interval", "0.2")
    wait_until(registered(), what="the worker")
    msg = Producer("work").enqueue({})
    wait_until(lambda: Archive.objects.filter(pk=msg.id).exists(), timeout=20, what="the job")
    assert not listening(worker)
    assert worker.stop() == 0
    assert "polling every 0.2s" in worker.log() and "LISTEN" not in worker.log()


# -- operator requests --------------------------------------------------------------------


@pytest.mark.pgbouncer
def test_suspend_resume_and_shutdown_from_the_admin_api(admin: PgqrsAdmin, start_worker) -> None:
    admin.create_queue("work")
    # Heartbeats every 0.5 s: more than a poll interval apart, so they show when it had its
    # chance to claim.
    worker = start_worker(
        "--queue", "work", "--poll-interval", "0.2", PGQRS_HEARTBEAT_INTERVAL="0.5"
    )
    name = wait_until(lambda: Worker.objects.running().values_list("name", flat=True).first())
    admin.suspend_worker(name)
    wait_until(lambda: f"worker {name} suspended" in worker.log(), what="the suspension")
    msg = Producer("work").enqueue({})
    enqueued = database_clock()
    # Two heartbeats after the enqueue: between them the loop passed a poll deadline, where an
    # active worker (woken by NOTIFY or not) would have claimed the message.
    first = wait_until(lambda: heartbeat_after(name, enqueued), what="a heartbeat")
    wait_until(lambda: heartbeat_after(name, first), what="a second heartbeat")
    assert not Archive.objects.exists() and Message.objects.get().claimed_at is None
    admin.resume_worker(name)
    wait_until(lambda: Archive.objects.filter(pk=msg.id).exists(), timeout=20, what="the job")
    admin.shutdown_worker(name)
    assert worker.wait(30) == 0
    assert worker.row().status == "stopped"
    assert "shutdown requested by an operator" in worker.log()
