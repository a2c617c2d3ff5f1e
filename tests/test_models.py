"""Models, QuerySets (pgqrs's Table APIs) and migrations."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models.functions import Now

from pgqrs_django import Consumer, Producer, sql
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
