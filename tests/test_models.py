"""Models, QuerySets (pgqrs's Table APIs) and migrations."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models.functions import Now

from pgqrs_django import Consumer, Producer, conf, sql
from pgqrs_django.models import Archive, Message, Queue, Worker
from tests.factories import ArchiveFactory, MessageFactory, QueueFactory, WorkerFactory


# With database routers, makemigrations checks the migration history of every alias that
# may hold tables (tests.databases.SqliteHoldsNothing keeps "sqlite" out).
@pytest.mark.django_db(databases=[alias for alias in settings.DATABASES if alias != "sqlite"])
def test_no_missing_migrations() -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # makemigrations --check exits 1 when a migration is missing
        pytest.fail(f"models changed without a migration:\n{out.getvalue()} ({exc})")


def test_table_names_and_raw_sql_columns_match_the_models() -> None:
    assert [m._meta.db_table for m in (Queue, Worker, Message, Archive)] == [
        "pgqrs_queue",
        "pgqrs_worker",
        "pgqrs_message",
        "pgqrs_archive",
    ]
    assert tuple(f.column for f in Message._meta.concrete_fields) == sql.MESSAGE_COLUMNS
    returning = "RETURNING " + ", ".join(f"m.{c}" for c in sql.MESSAGE_COLUMNS)
    for statement in (sql.CLAIM, sql.REPLAY, sql.ARCHIVE_AND_CLAIM):
        assert returning in " ".join(statement.split()), statement


@pytest.mark.django_db
def test_table_api_querysets() -> None:
    emails, sms = QueueFactory(name="emails"), QueueFactory(name="sms")
    MessageFactory.create_batch(3, queue=emails)
    MessageFactory.create_batch(2, queue=sms)
    Producer("emails").enqueue({}, delay=60)
    Consumer("emails").dequeue()
    assert Message.objects.count() == 6
    assert Message.objects.for_queue("emails").count() == 4  # count_by_fk
    assert Message.objects.for_queue(sms).count() == 2
    assert Message.objects.for_queue("emails").ready().count() == 2
    assert Message.objects.for_queue("emails").in_flight().count() == 1
    assert Message.objects.for_queue("emails").delayed().count() == 1
    assert list(emails.messages.all()) == list(Message.objects.for_queue(emails))  # filter_by_fk

    ArchiveFactory.create_batch(2, queue=emails, outcome="dead")
    ArchiveFactory(queue=emails)
    old = ArchiveFactory(queue=sms, outcome="failed")
    Archive.objects.filter(pk=old.pk).update(archived_at=Now() - dt.timedelta(days=2))
    assert Archive.objects.for_queue("emails").dead().count() == 2
    assert Archive.objects.for_queue(emails).succeeded().count() == 1
    assert Archive.objects.failed().older_than(dt.timedelta(days=1)).get() == old
    assert Archive.objects.cancelled().count() == 0

    worker = WorkerFactory()
    worker.queues.add(emails)
    WorkerFactory(status="stopped").queues.add(emails)
    assert Worker.objects.for_queue("emails").count() == 2
    assert Worker.objects.for_queue(emails).running().get() == worker
    assert Worker.objects.stale().count() == 0
    Worker.objects.filter(pk=worker.pk).update(heartbeat_at=Now() - dt.timedelta(hours=1))
    assert Worker.objects.stale().get() == worker
    assert Queue.objects.named("sms") == sms
    assert Queue.objects.active().count() == 2 and not Queue.objects.paused().exists()


@pytest.mark.django_db
def test_as_dict_and_str() -> None:
    msg = MessageFactory(queue=QueueFactory(name="d"), payload={"a": 1})
    data = msg.as_dict()
    assert data["payload"] == {"a": 1} and data["queue_id"] == msg.queue_id
    assert set(data) == set(sql.MESSAGE_COLUMNS)
    assert str(msg.queue) == "d" and "message" in str(msg)
    assert msg.attempts == 0


TRACEBACK = """Traceback (most recent call last):
  File "app.py", line 3, in handler
    raise KeyError("inner")
KeyError: 'inner'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "app.py", line 5, in handler
    raise ReportError("outer")
app.errors.ReportError: outer
second line: with colon
"""


@pytest.mark.django_db(
    transaction=True, databases=[alias for alias in settings.DATABASES if alias != "sqlite"]
)
def test_migration_0006_reads_the_class_of_errors_recorded_before_it() -> None:
    """Errors stored before 0006 kept their class only in the traceback: the migration reads
    it from there once (the last traceback's exception line; builtins qualified)."""
    connection = connections[conf.database()]
    before, after = [("pgqrs", "0005_schedule")], [("pgqrs", "0006_error_class")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        queue = old.get_model("pgqrs", "Queue").objects.create(name="old")
        errors = {1: TRACEBACK, 2: "Traceback (most recent call last):\nOSError: disk", 3: "x"}
        for pk, text in errors.items():
            fields = {"queue_id": queue.pk, "payload": {}, "enqueued_at": Now(), "vt": Now()}
            old.get_model("pgqrs", "Message").objects.create(id=pk, last_error=text, **fields)
            old.get_model("pgqrs", "Archive").objects.create(
                id=pk + 10, error=text, outcome="dead", **fields
            )
        MigrationExecutor(connection).migrate(after)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("pgqrs"))
    expected = {1: "app.errors.ReportError", 2: "builtins.OSError", 3: ""}
    messages = dict(Message.objects.values_list("pk", "last_error_class"))
    archived = dict(Archive.objects.values_list("pk", "error_class"))
    assert messages == expected
    assert archived == {pk + 10: path for pk, path in expected.items()}
