"""Only collected under `make test-pgbouncer`: proves the suite really runs through PgBouncer
in transaction pooling mode."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf
from pgqrs_django.testing import pytest_plugin

pytestmark = [pytest.mark.pgbouncer, pytest.mark.django_db(transaction=True)]


def _clients_of(database: str) -> int:
    bouncer = pytest_plugin.bouncer
    assert bouncer is not None
    rows = bouncer.admin("SHOW CLIENTS")
    # SHOW CLIENTS columns: type, user, database, ...
    return sum(1 for row in rows if row[2] == database)


def test_django_connects_through_pgbouncer_in_transaction_mode() -> None:
    bouncer = pytest_plugin.bouncer
    assert bouncer is not None
    assert int(connection.settings_dict["PORT"]) == bouncer.port
    connection.ensure_connection()
    assert _clients_of(connection.settings_dict["NAME"]) >= 1
    pools = {row[0]: row for row in bouncer.admin("SHOW POOLS")}
    assert connection.settings_dict["NAME"] in pools
    config = dict((row[0], row[1]) for row in bouncer.admin("SHOW CONFIG"))
    assert config["pool_mode"] == "transaction"


def test_queue_round_trip_and_transactions_through_pgbouncer() -> None:
    PgqrsAdmin().create_queue("bounced")
    producer = Producer("bounced")
    with pytest.raises(RuntimeError), transaction.atomic(using=conf.database()):
        producer.enqueue({"rolled": "back"})
        raise RuntimeError
    with transaction.atomic(using=conf.database()):
        sent = producer.batch_enqueue([{"i": i} for i in range(20)])
    consumer = Consumer("bounced")
    got = consumer.dequeue_batch(50)
    assert sorted(m.id for m in got) == sorted(m.id for m in sent)
    assert consumer.archive_batch(got) == [True] * 20
    assert PgqrsAdmin().queue_metrics("bounced").succeeded == 20
