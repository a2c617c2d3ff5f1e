"""Signals: sent with the right arguments, only after commit, never breaking the operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.dispatch import Signal

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf, signals
from pgqrs_django.models import Queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def received() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    log: list[tuple[str, Any, dict[str, Any]]] = []
    hooked: list[tuple[Signal, Any]] = []
    for name in (
        "message_enqueued",
        "message_claimed",
        "message_archived",
        "message_failed",
        "message_dead",
    ):
        signal = getattr(signals, name)

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal")
            log.append((_name, sender, kwargs))

        signal.connect(receiver)
        hooked.append((signal, receiver))
    yield log
    for signal, receiver in hooked:
        signal.disconnect(receiver)


def test_life_cycle_signals(
    queue: Queue, received: list, django_capture_on_commit_callbacks
) -> None:
    Queue.objects.filter(pk=queue.pk).update(max_attempts=1)
    producer, consumer = Producer("jobs"), Consumer("jobs")
    with django_capture_on_commit_callbacks(using=conf.database(), execute=True):
        sent = producer.batch_enqueue([{"i": 0}, {"i": 1}])
    name, sender, kwargs = received[-1]
    assert (name, sender, kwargs["queue"]) == ("message_enqueued", Producer, "jobs")
    assert [m.id for m in kwargs["messages"]] == [m.id for m in sent]

    with django_capture_on_commit_callbacks(using=conf.database(), execute=True):
        got = consumer.dequeue_batch(2)
    assert received[-1][0] == "message_claimed"
    assert [m.id for m in received[-1][2]["messages"]] == [m.id for m in got]
    assert received[-1][2]["worker"] is None

    with django_capture_on_commit_callbacks(using=conf.database(), execute=True):
        assert consumer.archive_batch([got[0], 999]) == [True, False]
    assert received[-1][:2] == ("message_archived", Consumer)
    assert received[-1][2] == {"queue": "jobs", "msg_ids": [got[0].id]}

    with django_capture_on_commit_callbacks(using=conf.database(), execute=True):
        assert consumer.fail(got[1], "broken")
    failed, dead = received[-2], received[-1]
    assert failed[0] == "message_failed" and failed[2]["retry_in"] is None
    assert failed[2]["msg_id"] == got[1].id and failed[2]["error"] == "broken"
    assert dead[0] == "message_dead" and dead[2]["dead_letter_queue"] is None


def test_retry_and_dead_letter_queue_arguments(
    admin: PgqrsAdmin, received: list, django_capture_on_commit_callbacks
) -> None:
    admin.create_queue("dlq")
    admin.create_queue("work", max_attempts=2, dead_letter_queue="dlq")
    Producer("work").enqueue({})
    consumer = Consumer("work")
    with django_capture_on_commit_callbacks(using=conf.database(), execute=True):
        msg = consumer.dequeue()
        assert msg is not None and consumer.fail(msg, "first")
    assert received[-1][0] == "message_failed" and received[-1][2]["retry_in"] > 0
    assert not [r for r in received if r[0] == "message_dead"]
    from django.db.models.functions import Now

    from pgqrs_django.models import Message

    Message.objects.filter(pk=msg.id).update(vt=Now())  # the retry is due now
    with django_capture_on_commit_callbacks(using=conf.database(), execute=True):
        again = consumer.dequeue()
        assert again is not None and consumer.fail(again, "second")
    assert received[-1][0] == "message_dead"
    assert received[-1][2]["dead_letter_queue"] == "dlq"


@pytest.mark.django_db(transaction=True)
def test_signals_wait_for_commit_and_skip_rollbacks(received: list) -> None:
    PgqrsAdmin().create_queue("tx")
    producer = Producer("tx")
    with transaction.atomic(using=conf.database()):
        producer.enqueue({"kept": True})
        assert received == []  # not before commit
    assert [r[0] for r in received] == ["message_enqueued"]
    with pytest.raises(RuntimeError), transaction.atomic(using=conf.database()):
        producer.enqueue({"dropped": True})
        raise RuntimeError
    assert [r[0] for r in received] == ["message_enqueued"]


def test_a_failing_receiver_is_logged_not_raised(
    queue: Queue, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise ValueError("receiver bug")

    signals.message_enqueued.connect(broken)
    try:
        with django_capture_on_commit_callbacks(using=conf.database(), execute=True):
            msg = Producer("jobs").enqueue({})
    finally:
        signals.message_enqueued.disconnect(broken)
    assert msg.id
    assert "receiver" in caplog.text and "failed" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_worker_started_and_stopped_and_the_worker_path_sends_message_signals(
    received: list,
) -> None:
    from pgqrs_django.worker import WorkerOptions, WorkerRuntime

    events: list[tuple[str, Any]] = []

    def on_started(sender: Any, worker: Any, **kwargs: Any) -> None:
        events.append(("started", worker.status))

    def on_stopped(sender: Any, worker: Any, **kwargs: Any) -> None:
        events.append(("stopped", worker.pk))

    signals.worker_started.connect(on_started)
    signals.worker_stopped.connect(on_stopped)
    try:
        PgqrsAdmin().create_queue("work")  # tests/testapp/jobs.py handles it
        sent = Producer("work").batch_enqueue([{"n": i} for i in range(5)])
        runtime = WorkerRuntime(WorkerOptions(queues=["work"], burst=True, poll_interval=0.2))
        assert runtime.run() == 0
    finally:
        signals.worker_started.disconnect(on_started)
        signals.worker_stopped.disconnect(on_stopped)
    assert events == [("started", "ready"), ("stopped", runtime.worker.pk)]
    archived = [i for name, _, kw in received if name == "message_archived" for i in kw["msg_ids"]]
    assert sorted(archived) == sorted(m.id for m in sent)
    claimed = [
        m.id for name, _, kw in received if name == "message_claimed" for m in kw["messages"]
    ]
    assert sorted(claimed) == sorted(m.id for m in sent)


@pytest.mark.django_db(transaction=True)
def test_claim_archive_and_fail_signals_wait_for_commit_and_skip_rollbacks(
    received: list,
) -> None:
    PgqrsAdmin().create_queue("tx", max_attempts=1)
    Producer("tx").batch_enqueue([{"n": 1}, {"n": 2}])
    received.clear()
    consumer = Consumer("tx")
    with pytest.raises(RuntimeError), transaction.atomic(using=conf.database()):
        first, second = consumer.dequeue_batch(2)
        assert consumer.archive(first) and consumer.fail(second, "boom")
        assert received == []  # not before commit
        raise RuntimeError
    assert received == []  # rolled back: nothing happened, nothing sent
    with transaction.atomic(using=conf.database()):
        first, second = consumer.dequeue_batch(2)
        assert consumer.archive(first) and consumer.fail(second, "boom")
        assert received == []
    names = [name for name, _, _ in received]
    assert names == ["message_claimed", "message_archived", "message_failed", "message_dead"]
