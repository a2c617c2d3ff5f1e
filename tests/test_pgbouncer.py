"""Only run under `make test-pgbouncer` (skipped otherwise): proves the suite really runs
through PgBouncer in transaction pooling mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection, transaction

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf
from pgqrs_django.models import Archive, Worker
from pgqrs_django.testing import pytest_plugin
from tests.testapp.models import Execution
from tests.worker_support import WorkerProcess, wait_until

pytestmark = [
    pytest.mark.skipif(
        pytest_plugin.bouncer is None, reason="runs under `make test-pgbouncer` only"
    ),
    pytest.mark.pgbouncer,
    pytest.mark.django_db(transaction=True),
]


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


@pytest.mark.slow
def test_worker_subprocesses_run_through_the_bouncer(
    start_worker: Callable[..., WorkerProcess], subprocess_env: dict[str, str]
) -> None:
    bouncer = pytest_plugin.bouncer
    assert bouncer is not None
    assert f":{bouncer.port}/" in subprocess_env["DATABASE_URL"]
    database = connection.settings_dict["NAME"]
    PgqrsAdmin().create_queue("work")
    before = _clients_of(database)
    workers = [start_worker("--queue", "work", "--poll-interval", "0.2") for _ in range(2)]
    wait_until(lambda: Worker.objects.running().count() == 2, what="two workers")
    # Each worker holds a client connection to the bouncer (the test's own is one more).
    assert _clients_of(database) >= before + 2
    sent = {m.id for m in Producer("work").batch_enqueue([{"n": n} for n in range(200)])}
    wait_until(lambda: Archive.objects.count() == 200, what="every message")
    assert [w.stop() for w in workers] == [0, 0]
    assert set(Archive.objects.values_list("id", flat=True)) == sent
    assert set(Execution.objects.values_list("pid", flat=True)) <= {w.pid for w in workers}
    for worker in workers:
        assert "LISTEN" not in worker.log() and "polling every 0.2s" in worker.log()


@pytest.mark.slow
def test_a_listening_worker_behind_the_bouncer_says_so_and_polls(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """Without --no-listen, LISTEN through transaction pooling would silently hear nothing:
    the worker's probe notification never comes back, so it logs one clear error and polls."""
    PgqrsAdmin().create_queue("work")
    worker = WorkerProcess(
        ["--queue", "work", "--poll-interval", "0.5"], subprocess_env, tmp_path / "w.log"
    )
    try:
        wait_until(
            lambda: "LISTEN does not work on this connection" in worker.log(),
            timeout=60,
            what="the LISTEN error",
        )
        sent = {m.id for m in Producer("work").batch_enqueue([{"n": n} for n in range(20)])}
        wait_until(lambda: Archive.objects.count() == 20, what="every message, by polling")
        assert worker.stop() == 0
    finally:
        worker.kill()
    assert set(Archive.objects.values_list("id", flat=True)) == sent
    log = worker.log()
    assert log.count("LISTEN does not work") == 1 and "--no-listen" in log
    assert "Traceback" not in log
