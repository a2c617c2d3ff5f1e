"""The worker runtime in this process (``WorkerRuntime``), the NOTIFY trigger, the consumer
methods the worker relies on, and the command's argument checks.

Multi-process behaviour (signals, crashes, database outages) is in test_worker_processes.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf, notify
from pgqrs_django.models import Archive, Message, Queue, Worker
from pgqrs_django.worker import WorkerOptions, WorkerRuntime, storable_result
from tests.conftest import ROOT
from tests.databases import pgqrs_connection
from tests.testapp.models import Execution
from tests.worker_support import database_clock, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def run(**options: Any) -> WorkerRuntime:
    """Run a burst worker here until the queues have nothing ready."""
    options.setdefault("burst", True)
    options.setdefault("poll_interval", 0.2)
    runtime = WorkerRuntime(WorkerOptions(**options))
    assert runtime.run() == 0
    return runtime


def test_burst_runs_sync_and_async_handlers_and_archives_their_results(
    admin: PgqrsAdmin,
) -> None:
    admin.create_queue("work")
    admin.create_queue("work-async")
    sync_ids = [m.id for m in Producer("work").batch_enqueue([{"n": i} for i in range(30)])]
    async_ids = [m.id for m in Producer("work-async").batch_enqueue([{"n": i} for i in range(30)])]
    runtime = run(queues=["work", "work-async"], concurrency=4, batch_size=7)

    assert runtime.processed == runtime.succeeded == 60
    assert not Message.objects.exists()
    rows = {a.id: a for a in Archive.objects.all()}
    assert set(rows) == {*sync_ids, *async_ids}
    assert all(a.outcome == "succeeded" and a.duration is not None for a in rows.values())
    assert all(a.worker_name == runtime.worker.name for a in rows.values())  # type: ignore[union-attr]
    assert sorted(rows[i].result["n"] for i in sync_ids) == list(range(30))
    assert all(rows[i].result["async"] is True for i in async_ids)
    assert sorted(Execution.objects.values_list("msg_id", flat=True)) == sorted(rows)
    worker = Worker.objects.get()
    assert worker.status == Worker.Status.STOPPED and worker.stopped_at is not None
    assert set(worker.queues.values_list("name", flat=True)) == {"work", "work-async"}


def test_a_result_that_is_not_json_is_archived_as_its_repr(admin: PgqrsAdmin) -> None:
    admin.create_queue("odd-result")
    msg = Producer("odd-result").enqueue({})
    run(queues=["odd-result"])
    row = Archive.objects.get(pk=msg.id)
    assert (row.outcome, row.result) == ("succeeded", "{1, 2, 3}")
    assert storable_result(float("nan"), 1) == "nan"
    assert storable_result("x" * 10, 1) == "x" * 10


def test_a_message_delivered_more_than_max_attempts_is_dead_without_running(
    admin: PgqrsAdmin,
) -> None:
    admin.create_queue("work", max_attempts=2)
    crashed, fine = Producer("work").batch_enqueue([{"n": 1}, {"n": 2}])
    # Two deliveries whose workers died: the next claim is delivery 3 of at most 2.
    Message.objects.filter(pk=crashed.id).update(read_ct=2)
    runtime = run(queues=["work"])
    dead = Archive.objects.get(pk=crashed.id)
    assert dead.outcome == "dead" and dead.read_ct == 3
    assert "over max_attempts=2" in dead.error and "without running" in dead.error
    assert list(Execution.objects.values_list("msg_id", flat=True)) == [fine.id]
    assert (runtime.succeeded, runtime.failed) == (1, 1)


def test_a_failing_handler_is_recorded_with_its_traceback(admin: PgqrsAdmin) -> None:
    admin.create_queue("fail-sync", max_attempts=1)
    msg = Producer("fail-sync").enqueue({})
    run(queues=["fail-sync"])
    row = Archive.objects.get(pk=msg.id)
    assert row.outcome == "dead" and row.read_ct == 1
    assert "Traceback" in row.error and f"ValueError: sync handler failed on message {msg.id}" in (
        row.error
    )


def test_max_messages_stops_after_that_many_and_holds_nothing(admin: PgqrsAdmin) -> None:
    admin.create_queue("work")
    Producer("work").batch_enqueue([{"n": i} for i in range(10)])
    runtime = run(queues=["work"], batch_size=3, max_messages=4, burst=False)
    assert runtime.processed == 4 and Archive.objects.count() == 4
    assert Message.objects.ready().count() == 6  # the rest untouched, claimable now


def test_the_lease_of_a_long_job_is_extended_so_it_runs_once(admin: PgqrsAdmin) -> None:
    # A 1 s lease and a 2.5 s job: without extensions the lease would run out mid-job and
    # the worker itself (it polls every 0.2 s with a free lane) would claim and run it again.
    admin.create_queue("work", visibility_timeout=1)
    msg = Producer("work").enqueue({"sleep": 2.5})
    run(queues=["work"], concurrency=2, batch_size=1)
    row = Archive.objects.get(pk=msg.id)
    assert (row.outcome, row.read_ct) == ("succeeded", 1)
    assert Execution.objects.filter(msg_id=msg.id).count() == 1
    assert row.duration is not None and row.duration >= 2.5


def test_a_paused_queue_hands_nothing_to_a_burst_worker(admin: PgqrsAdmin) -> None:
    admin.create_queue("work")
    Producer("work").enqueue({})
    admin.pause_queue("work")
    assert run(queues=["work"]).processed == 0
    assert Message.objects.ready().count() == 1


def test_handlers_from_the_command_line(admin: PgqrsAdmin) -> None:
    admin.create_queue("adhoc")
    msg = Producer("adhoc").enqueue({})
    run(queues=["adhoc"], handlers=["tests.testapp.jobs.record"])
    assert Archive.objects.get(pk=msg.id).result == "recorded"


def test_a_fixed_name_can_be_reused_once_its_worker_stopped(admin: PgqrsAdmin) -> None:
    admin.create_queue("work")
    run(queues=["work"], name="fixed")
    run(queues=["work"], name="fixed")
    assert list(Worker.objects.values_list("name", "status")) == [("fixed", "stopped")]
    admin.register_worker(["work"], name="busy")
    with pytest.raises(CommandError, match="a worker named 'busy' is running"):
        call_command("pgqrs_worker", "--queue", "work", "--name", "busy", "--burst")


# -- the NOTIFY trigger ------------------------------------------------------------------


def _notifications(conn: psycopg.Connection[Any], wait: float = 0.5) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=wait)]


@pytest.fixture
def listening() -> Any:
    params = notify.connection_params(pgqrs_connection().alias)
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"LISTEN {notify.CHANNEL}")
        yield conn


def test_enqueues_notify_once_per_statement_and_only_when_committed(
    admin: PgqrsAdmin, listening: psycopg.Connection[Any]
) -> None:
    from django.db import transaction

    queue = admin.create_queue("notified")
    with transaction.atomic(using=conf.database()):
        Producer("notified").batch_enqueue([{"n": i} for i in range(100)])
        assert _notifications(listening, 0.3) == []  # not committed yet
    assert _notifications(listening) == [str(queue.pk)]

    with transaction.atomic(using=conf.database()):
        Producer("notified").enqueue({}, delay=3600)  # a delayed message notifies too
        transaction.set_rollback(True, using=conf.database())
    assert _notifications(listening, 0.3) == []  # rolled back: nobody woken
    Producer("notified").enqueue({}, delay=3600)
    assert _notifications(listening) == [str(queue.pk)]


def test_leases_ending_early_and_resumed_queues_notify(
    admin: PgqrsAdmin, listening: psycopg.Connection[Any]
) -> None:
    queue = admin.create_queue("notified")
    Producer("notified").batch_enqueue([{}, {}, {}])
    _notifications(listening)
    consumer = Consumer("notified")
    a, b, c = consumer.dequeue_batch(3)
    assert _notifications(listening, 0.3) == []  # claiming wakes nobody
    consumer.release(a)
    assert _notifications(listening) == [str(queue.pk)]
    consumer.fail(b, "retry later")  # a retry: idle workers learn its due time
    assert _notifications(listening) == [str(queue.pk)]
    consumer.archive(c)
    assert _notifications(listening, 0.3) == []
    admin.pause_queue("notified")
    admin.resume_queue("notified")
    assert _notifications(listening) == [str(queue.pk)]


# -- consumer methods the worker uses ------------------------------------------------------


def test_archive_and_dequeue_batch_settles_and_claims_in_one_call(queue: Queue) -> None:
    Producer(queue).batch_enqueue([{"n": i} for i in range(6)])
    consumer, other = Consumer(queue), Consumer(queue)
    first = consumer.dequeue_batch(2)
    stored, claimed = consumer.archive_and_dequeue_batch(
        first, results=[{"ok": 1}, None], durations=[0.5, None], n=3
    )
    assert stored == [True, True]
    assert [m.payload["n"] for m in claimed] == [2, 3, 4]
    assert Archive.objects.get(pk=first[0].id).result == {"ok": 1}
    assert Archive.objects.get(pk=first[0].id).duration == 0.5

    # A lost lease reports False; an empty claim still reports what was archived.
    lost, kept = claimed[0], claimed[1]
    PgqrsAdmin().release_messages(queue.name, [lost.id])
    assert other.dequeue_batch(10)  # takes the released one and the last one
    stored, nothing = consumer.archive_and_dequeue_batch([lost, kept], n=5)
    assert (stored, nothing) == ([False, True], [])


def test_archive_and_dequeue_never_reclaims_what_it_archives(queue: Queue, shift_time) -> None:
    msg = Producer(queue).enqueue({})
    consumer = Consumer(queue)
    held = consumer.dequeue()
    assert held is not None
    shift_time(msg.id)  # the lease ran out, nobody else claimed it
    stored, claimed = consumer.archive_and_dequeue_batch([held], n=5)
    assert stored == [True] and claimed == []
    assert Archive.objects.get().id == msg.id


def test_extend_visibility_batch(queue: Queue, shift_time: Callable[..., None]) -> None:
    Producer(queue).batch_enqueue([{}, {}, {}])
    consumer = Consumer(queue)
    live, lost, ran_out = consumer.dequeue_batch(3, lock_time=3600)
    PgqrsAdmin().release_messages(queue.name, [lost.id])
    shift_time(ran_out.id, seconds=7200)  # its lease ended an hour ago; nobody took it
    before = Message.objects.get(pk=live.id).vt
    earliest = database_clock()
    assert consumer.extend_visibility_batch([live, lost, ran_out], 100) == [True, False, True]
    latest = database_clock()
    # A lease still running gets 100 s more than it had; one that ran out, 100 s from the
    # statement's time (between the two clock readings). Database clocks only: exact.
    assert Message.objects.get(pk=live.id).vt - before == timedelta(seconds=100)
    renewed = Message.objects.get(pk=ran_out.id).vt - timedelta(seconds=100)
    assert earliest <= renewed <= latest
    assert consumer.holds(live) and not consumer.holds(lost) and consumer.holds(ran_out)


def test_claimed_messages_equal_what_the_orm_loads(queue: Queue) -> None:
    Producer(queue).batch_enqueue([{"n": i, "s": "é"} for i in range(3)], priority=2)
    claimed = Consumer(queue).dequeue_batch(3)
    loaded = {m.id: m for m in Message.objects.all()}
    for message in claimed:
        assert message.as_dict() == loaded[message.id].as_dict()
        assert message.enqueued_at.tzinfo is not None
        assert message._state.db == conf.database() and not message._state.adding


# -- the command's arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "argument --concurrency/-c: 0 is not between 1 and 10000"),
        (["--concurrency", "many"], "'many' is not a whole number"),
        (["--batch-size", "100000"], "100000 is not between 1 and 10000"),
        (["--lock-time", "-1"], "argument --lock-time: '-1' must be a number of seconds > 0"),
        (["--lock-time", "0.1"], "'0.1' is under the minimum of 0.5 s"),
        (["--poll-interval", "0"], "'0' must be a number of seconds > 0"),
        (["--grace", "nan"], "'nan' must be a number of seconds >= 0"),
        (["--max-messages", "0"], "0 is not between 1"),
        (["--queue", "bad name"], "invalid queue name 'bad name'"),
        (["--name", ""], "a worker name has 1-200 characters"),
        (["--log-level", "loud"], "invalid choice: 'loud'"),
    ],
)
def test_bad_arguments_are_refused_with_exit_code_2(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message) as caught:
        call_command("pgqrs_worker", *args)
    assert caught.value.returncode == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue", "missing"], "no handler for queue 'missing'"),
        (["--queue", "work"], "queue 'work' does not exist"),
        (["--handler", "nowhere.at.all"], "cannot import 'nowhere.at.all'"),
    ],
)
def test_unusable_queues_and_handlers_are_refused_before_anything_runs(
    args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message) as caught:
        call_command("pgqrs_worker", "--burst", *args)
    assert caught.value.returncode == 2
    assert not Worker.objects.exists()


def test_bad_input_from_the_shell_is_one_line_on_stderr(subprocess_env: dict[str, str]) -> None:
    for args in (["--concurrency", "-3"], ["--queue", "work", "--burst"]):
        done = subprocess.run(
            [sys.executable, "-m", "django", "pgqrs_worker", *args],
            cwd=ROOT,
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "concurrency" in lines[0] or "does not exist" in lines[0]


def test_an_unreachable_database_is_one_line_and_exit_code_1(
    subprocess_env: dict[str, str],
) -> None:
    nowhere = "postgresql://nobody@127.0.0.1:1/none"
    env = dict(subprocess_env, DATABASE_URL=nowhere, PGQRS_TEST_QUEUE_URL=nowhere)
    done = subprocess.run(
        [sys.executable, "-m", "django", "pgqrs_worker", "--queue", "work", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot use database {conf.database()!r}" in lines[0], done.stderr


def test_request_stop_from_another_thread(admin: PgqrsAdmin) -> None:
    admin.create_queue("work")
    runtime = WorkerRuntime(WorkerOptions(queues=["work"], poll_interval=0.1))
    timer = threading.Timer(0.5, runtime.request_stop)
    timer.start()
    started = time.monotonic()
    assert runtime.run() == 0
    assert time.monotonic() - started < 30
    assert Worker.objects.get().status == Worker.Status.STOPPED


def test_session_settings_of_the_workers_own_connection(admin: PgqrsAdmin) -> None:
    admin.create_queue("work")
    msg = Producer("work").enqueue({})
    call_command("pgqrs_worker", "--queue", "work", "--burst", "--async-commit")
    assert Archive.objects.get().id == msg.id
    for async_commit, expected in ((True, "off"), (False, "on")):
        pgqrs_connection().close()
        runtime = WorkerRuntime(WorkerOptions(queues=["work"], async_commit=async_commit))
        runtime.db.prepare_session()  # what every database call of the runtime goes through
        with pgqrs_connection().cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == expected
            cursor.execute("SHOW enable_bitmapscan")
            assert cursor.fetchone()[0] == "off"
    pgqrs_connection().close()  # the rest of the suite gets a fresh session


def test_a_failing_loop_releases_what_it_holds_and_marks_the_worker_stopped(
    admin: PgqrsAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin.create_queue("work")
    Producer("work").batch_enqueue([{"n": i} for i in range(6)])

    def broken(self: Consumer, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the claim path")

    # The second claim (which carries the first batch's acknowledgements) hits a bug.
    monkeypatch.setattr(Consumer, "archive_and_dequeue_batch", broken)
    runtime = WorkerRuntime(WorkerOptions(queues=["work"], batch_size=2, concurrency=1))
    with pytest.raises(RuntimeError, match="a bug in the claim path"):
        runtime.run()
    assert Worker.objects.get().status == Worker.Status.STOPPED
    assert not Message.objects.filter(claimed_at__isnull=False).exists()
    assert Archive.objects.count() + Message.objects.count() == 6


@pytest.mark.parametrize("why", ["suspended", "waiting list full"])
def test_a_worker_that_may_not_claim_sleeps_instead_of_spinning(
    admin: PgqrsAdmin, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Its poll deadline passes while it may not claim: it must sleep until something changes
    # (a resume, a free lane), not loop at once. Measured as the CPU time of its main thread.
    admin.create_queue("work")
    runtime = WorkerRuntime(
        WorkerOptions(
            queues=["work"], concurrency=1, batch_size=10, poll_interval=0.05, listen=False
        )
    )
    cpu: dict[str, float] = {}

    def serve() -> None:
        started = time.thread_time()
        runtime.run()
        cpu["used"] = time.thread_time() - started

    if why == "waiting list full":
        # One lane: the first job runs 1.5 s while the other 9 wait (over half a batch).
        Producer("work").batch_enqueue([{"sleep": 1.5}] + [{}] * 9)
    thread = threading.Thread(target=serve)
    began = time.monotonic()
    thread.start()
    if why == "suspended":
        name = wait_until(lambda: runtime.worker and runtime.worker.name)
        admin.suspend_worker(name)
        wait_until(lambda: f"worker {name} suspended" in caplog.text, what="the suspension")
        Producer("work").batch_enqueue([{}] * 10)
        time.sleep(1.5)
        assert not Execution.objects.exists()
        admin.resume_worker(name)
    wait_until(lambda: Archive.objects.count() == 10, what="the ten jobs")
    runtime.request_stop()
    thread.join(30)
    assert not thread.is_alive()
    # A spinning loop uses about a second of CPU per second (less on a loaded machine, but
    # far more than this); a sleeping one wakes some 20 times a second.
    assert cpu["used"] < 0.15 * (time.monotonic() - began), cpu
