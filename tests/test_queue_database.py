"""`make test-queue-db`: the pgqrs tables live on a second database ("queue") while the
business data stays on "default". Proves the data really lands there, and what a transaction
on each alias covers. (Skipped in every other run; see conftest.py.)"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections, transaction

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf
from pgqrs_django.models import Archive, Message
from tests.cli_support import call_json
from tests.testapp.models import Order

pytestmark = [
    pytest.mark.skipif(settings.QUEUE_DB is None, reason="runs under `make test-queue-db` only"),
    pytest.mark.django_db(transaction=True),
]


def count(alias: str, table: str) -> int | None:
    """Rows of ``table`` on ``alias`` by raw SQL, or None when the table is not there."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if table not in connection.introspection.table_names(cursor):
            return None
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
        return int(cursor.fetchone()[0])


def test_the_suite_runs_with_pgqrs_on_its_own_database() -> None:
    assert conf.database() == "queue"
    queue_db = connections["queue"].settings_dict["NAME"]
    assert queue_db != connections["default"].settings_dict["NAME"]
    # migrate put the pgqrs tables on the queue database only (PgqrsRouter.allow_migrate).
    assert count("default", "pgqrs_message") is None
    assert count("queue", "pgqrs_message") == 0


def test_api_cli_and_worker_write_to_the_queue_database(capsys: pytest.CaptureFixture) -> None:
    PgqrsAdmin().create_queue("work")
    Producer("work").batch_enqueue([{"n": 1}, {"n": 2}])
    assert count("queue", "pgqrs_message") == 2
    assert Message.objects.count() == 2 and Message.objects.first()._state.db == "queue"
    msg = Consumer("work").dequeue()
    assert msg is not None and Consumer("work").release(msg) is True
    call_command("pgqrs", "message", "send", "work", json.dumps({"n": 3}))
    assert count("queue", "pgqrs_message") == 3
    assert [q["name"] for q in call_json("queue", "list")] == ["work"]
    assert call_json("stats")["database"] == "queue"
    call_command("pgqrs_worker", "--queue", "work", "--burst", "--handler", "builtins.repr")
    capsys.readouterr()
    assert count("queue", "pgqrs_archive") == 3 == Archive.objects.count()
    assert count("queue", "pgqrs_message") == 0
    assert count("default", "pgqrs_archive") is None


def test_a_transaction_covers_the_alias_it_is_opened_on() -> None:
    PgqrsAdmin().create_queue("work")
    producer = Producer("work")
    with pytest.raises(RuntimeError), transaction.atomic(using="queue"):
        producer.enqueue({"rolled": "back"})
        raise RuntimeError
    assert count("queue", "pgqrs_message") == 0
    # A transaction on "default" does not hold back the queue database's writes.
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(reference="A-1")
        producer.enqueue({"committed": "anyway"})
        raise RuntimeError
    assert not Order.objects.exists()
    assert count("queue", "pgqrs_message") == 1
    # Both together: the documented way to make business data and its job one unit.
    with pytest.raises(RuntimeError), transaction.atomic(), transaction.atomic(using="queue"):
        Order.objects.create(reference="A-2")
        producer.enqueue({"both": "rolled back"})
        raise RuntimeError
    assert not Order.objects.exists() and count("queue", "pgqrs_message") == 1
