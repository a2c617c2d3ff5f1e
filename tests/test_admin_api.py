from __future__ import annotations

import datetime as dt
import os

import pytest
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext, override_settings

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf, schema
from pgqrs_django.exceptions import (
    DuplicateMessage,
    InvalidInput,
    InvalidQueueName,
    MessageNotFound,
    QueueAlreadyExists,
    QueueNotFound,
    WorkerNotFound,
)
from pgqrs_django.models import Archive, Message, Queue, Worker
from tests.databases import pgqrs_connection
from tests.factories import ArchiveFactory, QueueFactory, WorkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.pgbouncer]


def test_create_get_list_delete_queue(admin: PgqrsAdmin) -> None:
    q = admin.create_queue("emails", visibility_timeout=12.5, max_attempts=7)
    assert (q.name, q.visibility_timeout, q.max_attempts, q.paused) == ("emails", 12.5, 7, False)
    assert admin.get_queue("emails").pk == q.pk
    admin.create_queue("a.b-c_9")
    assert [x.name for x in admin.list_queues()] == ["a.b-c_9", "emails"]
    Producer("emails").batch_enqueue([{}, {}])
    assert admin.delete_queue("emails") == {"messages": 2, "archived": 0}
    with pytest.raises(QueueNotFound):
        admin.get_queue("emails")


def test_queue_defaults_come_from_settings(admin: PgqrsAdmin) -> None:
    with override_settings(PGQRS={**settings.PGQRS, "DEFAULT_LOCK_TIME": 42, "MAX_ATTEMPTS": 9}):
        q = admin.create_queue("defaults")
    assert (q.visibility_timeout, q.max_attempts) == (42.0, 9)


def test_create_queue_rejects_duplicates_and_bad_input(admin: PgqrsAdmin) -> None:
    admin.create_queue("once")
    with pytest.raises(QueueAlreadyExists):
        admin.create_queue("once")
    for bad in ["", " ", "semi;colon", "a" * 129, "tab\t", "é", "x'--"]:
        with pytest.raises(InvalidQueueName):
            admin.create_queue(bad)
    with pytest.raises(InvalidInput):
        admin.create_queue("neg", visibility_timeout=-1)
    with pytest.raises(InvalidInput):
        admin.create_queue("zero", max_attempts=0)
    with pytest.raises(QueueNotFound):
        admin.create_queue("orphan", dead_letter_queue="missing")
    with pytest.raises(InvalidInput):
        admin.create_queue("self", dead_letter_queue="self")
    assert [q.name for q in admin.list_queues()] == ["once"]


def test_database_rejects_invalid_names_from_any_writer(db: None) -> None:
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic(using=conf.database()):
        Queue.objects.create(name="bad name")


def test_purge_queue_and_archive(admin: PgqrsAdmin, queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{}] * 5)
    consumer = Consumer("jobs")
    consumer.archive_batch(consumer.dequeue_batch(2))
    old = ArchiveFactory(queue=queue)
    Archive.objects.filter(pk=old.pk).update(archived_at=Now() - dt.timedelta(days=10))
    assert admin.purge_queue("jobs") == 3
    assert not Message.objects.exists() and Archive.objects.count() == 3
    assert admin.purge_archive("jobs", older_than=dt.timedelta(days=1)) == 1
    assert admin.purge_archive("jobs", older_than=3600) == 0
    assert admin.purge_archive("jobs") == 2
    assert not Archive.objects.exists()


def test_metrics_count_exactly(admin: PgqrsAdmin, queue: Queue, shift_time) -> None:
    producer = Producer("jobs")
    ready = producer.batch_enqueue([{"r": i} for i in range(3)])
    producer.batch_enqueue([{"d": i} for i in range(2)], delay=600)
    producer.batch_enqueue([{"f": i} for i in range(4)], priority=5)
    consumer = Consumer("jobs")
    in_flight = consumer.dequeue_batch(4)
    assert all(m.payload.get("f") is not None for m in in_flight)
    for outcome, n in [("succeeded", 5), ("failed", 1), ("dead", 2), ("cancelled", 1)]:
        ArchiveFactory.create_batch(n, queue=queue, outcome=outcome)
    ArchiveFactory.create_batch(3, queue=QueueFactory(name="elsewhere"))
    shift_time(ready[0].id, seconds=100)
    worker = WorkerFactory()
    worker.queues.add(queue)
    WorkerFactory(status=Worker.Status.STOPPED).queues.add(queue)

    m = admin.queue_metrics("jobs")
    assert (m.ready, m.delayed, m.in_flight, m.pending) == (3, 2, 4, 9)
    assert (m.archived, m.succeeded, m.failed, m.dead, m.cancelled) == (9, 5, 1, 2, 1)
    assert m.oldest_ready_age is not None and 100 <= m.oldest_ready_age < 110
    assert m.workers == 1 and m.paused is False
    assert m.as_dict()["pending"] == 9

    # A retried message counts as delayed, a lease that ran out as ready.
    assert consumer.fail(in_flight[0], "x")
    shift_time(in_flight[1].id, seconds=10_000)
    m = admin.queue_metrics("jobs")
    assert (m.ready, m.delayed, m.in_flight) == (4, 3, 2)


def test_metrics_for_an_empty_queue(admin: PgqrsAdmin, queue: Queue) -> None:
    m = admin.queue_metrics("jobs")
    assert (m.ready, m.delayed, m.in_flight, m.archived, m.oldest_ready_age) == (0, 0, 0, 0, None)


def test_all_queues_metrics_use_a_bounded_number_of_queries(admin: PgqrsAdmin) -> None:
    for i in range(3):
        admin.create_queue(f"q{i}")
        Producer(f"q{i}").batch_enqueue([{}] * (i + 1))
    with CaptureQueriesContext(pgqrs_connection()) as few:
        metrics = admin.all_queues_metrics()
    assert [(m.name, m.ready) for m in metrics] == [("q0", 1), ("q1", 2), ("q2", 3)]
    for i in range(3, 20):
        admin.create_queue(f"q{i}")
    with CaptureQueriesContext(pgqrs_connection()) as many:
        assert len(admin.all_queues_metrics()) == 20
    assert len(few.captured_queries) == len(many.captured_queries) <= 4


def test_system_stats(admin: PgqrsAdmin, queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{}] * 3)
    WorkerFactory()
    WorkerFactory(status=Worker.Status.SUSPENDED)
    stats = admin.system_stats()
    assert stats.queues == 1 and stats.ready == 3
    assert stats.workers == {"ready": 1, "suspended": 1, "stopped": 0}
    with pgqrs_connection().cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('pgqrs_message')")
        assert stats.table_bytes["pgqrs_message"] == cursor.fetchone()[0] > 0
    assert set(stats.as_dict()) >= {"queues", "workers", "ready", "table_bytes"}


def test_get_delete_cancel_messages(admin: PgqrsAdmin, queue: Queue) -> None:
    msgs = Producer("jobs").batch_enqueue([{"i": i} for i in range(4)])
    assert admin.get_message("jobs", msgs[0].id).payload == {"i": 0}
    with pytest.raises(MessageNotFound):
        admin.get_message("jobs", 999_999)
    assert admin.delete_messages("jobs", [msgs[0].id, 999_999]) == 1
    held = Consumer("jobs").dequeue()
    assert held is not None
    assert admin.cancel_messages("jobs", [msgs[1].id, msgs[2].id], reason="operator") == 2
    row = admin.get_message("jobs", msgs[2].id, archived=True)
    assert isinstance(row, Archive) and row.outcome == "cancelled" and row.error == "operator"
    with pytest.raises(MessageNotFound):
        admin.get_message("jobs", msgs[0].id, archived=True)


def test_replay_dead_errors(admin: PgqrsAdmin, queue: Queue) -> None:
    ok = ArchiveFactory(queue=queue, outcome="succeeded")
    with pytest.raises(MessageNotFound):
        admin.replay_dead("jobs", ok.id)  # only dead or failed messages replay
    dead = ArchiveFactory(queue=queue, outcome="dead", dedupe_key="taken")
    Producer("jobs").enqueue({}, dedupe_key="taken")
    with pytest.raises(DuplicateMessage):
        admin.replay_dead("jobs", dead.id)
    assert Archive.objects.filter(pk=dead.id).exists()


def test_worker_lifecycle(admin: PgqrsAdmin, queue: Queue) -> None:
    admin.create_queue("second")
    worker = admin.register_worker(["jobs", "second"])
    assert worker.status == "ready" and worker.pid == os.getpid()
    assert sorted(q.name for q in worker.queues.all()) == ["jobs", "second"]
    assert admin.get_worker(worker.name).pk == worker.pk
    assert admin.get_worker(worker.pk).pk == worker.pk
    assert [w.pk for w in admin.list_workers("second")] == [worker.pk]

    assert admin.suspend_worker(worker.pk).status == "suspended"
    assert admin.heartbeat(worker).status == "suspended"
    assert admin.resume_worker(worker.name).status == "ready"
    assert admin.shutdown_worker(worker.pk).shutdown_requested
    assert admin.heartbeat(worker).shutdown_requested

    Producer("jobs").batch_enqueue([{}, {}])
    consumer = Consumer("jobs", worker=worker)
    assert len(consumer.dequeue_batch(2)) == 2
    assert admin.stop_worker(worker) == 2
    assert Message.objects.ready().count() == 2
    worker.refresh_from_db()
    assert worker.status == "stopped" and worker.stopped_at is not None
    with pytest.raises(InvalidInput):
        admin.suspend_worker(worker.pk)
    with pytest.raises(WorkerNotFound):
        admin.get_worker("nobody")


def test_reclaim_releases_messages_of_stale_workers(admin: PgqrsAdmin, queue: Queue) -> None:
    alive = admin.register_worker(["jobs"])
    dead = admin.register_worker(["jobs"])
    Producer("jobs").batch_enqueue([{}] * 4)
    held_by_dead = Consumer("jobs", worker=dead).dequeue_batch(3, lock_time=3600)
    Consumer("jobs", worker=alive).dequeue_batch(1, lock_time=3600)
    Worker.objects.filter(pk=dead.pk).update(heartbeat_at=Now() - dt.timedelta(minutes=5))
    assert list(Message.objects.stale()) == held_by_dead

    result = admin.reclaim()
    assert (result.workers, result.messages) == (1, 3)
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == "stopped" and alive.status == "ready"
    assert Message.objects.ready().count() == 3 and Message.objects.in_flight().count() == 1
    assert admin.reclaim().as_dict() == {"workers": 0, "messages": 0}


def test_reclaim_timeout_argument(admin: PgqrsAdmin, queue: Queue) -> None:
    worker = admin.register_worker(["jobs"])
    Worker.objects.filter(pk=worker.pk).update(
        heartbeat_at=F("heartbeat_at") - dt.timedelta(seconds=30)
    )
    assert admin.reclaim().workers == 0  # default timeout is 60 s
    assert admin.reclaim(timeout=10).workers == 1


def test_purge_old_workers(admin: PgqrsAdmin) -> None:
    old = WorkerFactory(status="stopped")
    Worker.objects.filter(pk=old.pk).update(stopped_at=Now() - dt.timedelta(days=30))
    recent = WorkerFactory(status="stopped", stopped_at=dt.datetime.now(dt.UTC))
    running = WorkerFactory()
    assert admin.purge_old_workers() == 1
    assert set(Worker.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert admin.purge_old_workers(older_than=0) == 1


def test_verify_reports_ok(admin: PgqrsAdmin) -> None:
    report = admin.verify()
    assert report.ok, report.problems
    assert report.checked == ["connection", "postgresql", "migrations", "tables", "indexes"]


def test_verify_reports_a_missing_index(admin: PgqrsAdmin) -> None:
    with pgqrs_connection().cursor() as cursor:
        cursor.execute("DROP INDEX pgqrs_msg_claim_idx")
    report = admin.verify()
    assert not report.ok and report.problems == ["missing index pgqrs_msg_claim_idx"]


def test_verify_reports_a_missing_schedule_table(admin: PgqrsAdmin) -> None:
    with pgqrs_connection().cursor() as cursor:
        cursor.execute("DROP TABLE pgqrs_schedule")
    # One problem for the table, none more for the index it held.
    assert admin.verify().problems == ["missing table pgqrs_schedule"]


def test_the_checked_tables_and_indexes_are_those_the_migrations_create() -> None:
    """Read from the models' _meta: every table and every index (primary keys aside) that
    the migrations made on the pgqrs database is on the lists verify() checks."""
    connection = pgqrs_connection()
    with connection.cursor() as cursor:
        created = {
            t for t in connection.introspection.table_names(cursor) if t.startswith("pgqrs_")
        }
        assert set(schema.tables()) == created
        specs = schema.indexes()
        for table in created:
            for name, found in connection.introspection.get_constraints(cursor, table).items():
                if found["primary_key"] or not (found["index"] or found["unique"]):
                    continue
                if name.endswith("_like"):
                    # Django's PostgreSQL backend adds a varchar_pattern_ops twin to each
                    # indexed CharField, for prefix LIKE queries, which pgqrs never makes.
                    continue
                covering = [s for s in specs if s.table == table and s.found_in({name: found})]
                assert covering, f"{table}: index {name} on {found['columns']} is not checked"
    assert "pgqrs_schedule" in created and len(specs) >= 13


def test_verify_reports_each_missing_index() -> None:
    """Drop each index the models declare in turn (named or not, the unique one on
    pgqrs_schedule.name among them): verify() names exactly that one."""
    connection = pgqrs_connection()
    quote = connection.ops.quote_name
    reported = []
    for spec in schema.indexes():
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, spec.table)
            name = next(n for n, found in constraints.items() if spec.found_in({n: found}))
            if constraints[name]["index"]:
                cursor.execute(f"DROP INDEX {quote(name)}")
            else:
                cursor.execute(f"ALTER TABLE {quote(spec.table)} DROP CONSTRAINT {quote(name)}")
            problems = PgqrsAdmin(connection.alias).verify().problems
            transaction.set_rollback(True, using=connection.alias)
        assert problems == [f"missing {spec}"]
        reported.append(problems[0])
    assert "missing unique index on pgqrs_schedule (name)" in reported


@pytest.mark.django_db(transaction=True)
def test_uninstall_then_install(admin: PgqrsAdmin) -> None:
    from pgqrs_django.exceptions import NotInstalled

    admin.create_queue("before")
    try:
        admin.uninstall()
        report = admin.verify()
        assert not report.ok and "missing table pgqrs_message" in report.problems
        with pytest.raises(NotInstalled):
            Producer("before").enqueue({})
    finally:
        admin.install()
    assert admin.verify().ok
    assert admin.list_queues() == []


def test_list_archive_pages_newest_first(admin: PgqrsAdmin, queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{"n": i} for i in range(5)])
    consumer = Consumer("jobs")
    for message in consumer.dequeue_batch(5):
        consumer.archive(message)
    newest_first = list(
        Archive.objects.order_by("-archived_at", "-id").values_list("id", flat=True)
    )
    assert [r.id for r in admin.list_archive("jobs", limit=2, offset=1)] == newest_first[1:3]
    assert len(admin.list_archive("jobs")) == 5
    for bad in ({"limit": 0}, {"limit": 10_001}, {"offset": -1}, {"offset": 1.5}):
        with pytest.raises(InvalidInput):
            admin.list_archive("jobs", **bad)  # type: ignore[arg-type]
    with pytest.raises(QueueNotFound):
        admin.list_archive("nope")


def test_stale_workers_and_health(admin: PgqrsAdmin, queue: Queue) -> None:
    assert admin.health().ok
    Producer("jobs").enqueue({"n": 1})
    report = admin.health()
    assert not report.ok and report.unserved_queues == ["jobs"] and report.stale_workers == []
    live = admin.register_worker(["jobs"], name="live")
    assert admin.health().as_dict() == {
        "ok": True,
        "stale_workers": [],
        "unserved_queues": [],
        "running_workers": 1,
    }
    Worker.objects.filter(pk=live.pk).update(heartbeat_at=Now() - dt.timedelta(minutes=5))
    assert [w.name for w in admin.stale_workers()] == ["live"]
    assert admin.stale_workers(timeout=600) == []
    report = admin.health()
    assert report.stale_workers == ["live"] and report.unserved_queues == ["jobs"]
    assert admin.health(timeout=600).ok
    admin.pause_queue("jobs")  # a paused queue needs no worker
    assert admin.health(timeout=600).ok and admin.health().unserved_queues == []
    with pytest.raises(InvalidInput):
        admin.stale_workers(timeout=-1)


def test_purge_old_workers_counts_workers_not_their_queue_links(
    admin: PgqrsAdmin, queue: Queue
) -> None:
    old = admin.register_worker(["jobs"], name="old")
    admin.stop_worker(old)
    Worker.objects.filter(pk=old.pk).update(stopped_at=Now() - dt.timedelta(days=30))
    assert admin.purge_old_workers() == 1
