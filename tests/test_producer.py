from __future__ import annotations

import datetime as dt
import math
import threading
import time

import pytest
from django.conf import settings
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from pgqrs_django import Consumer, PgqrsAdmin, Producer, conf
from pgqrs_django.exceptions import (
    DuplicateMessage,
    InvalidInput,
    InvalidQueueName,
    PayloadNotSerializable,
    PayloadTooDeep,
    PayloadTooLarge,
    QueueNotFound,
    RateLimitExceeded,
)
from pgqrs_django.models import Message, Queue
from pgqrs_django.producer import TokenBucket
from tests.databases import pgqrs_connection

pytestmark = [pytest.mark.django_db, pytest.mark.pgbouncer]


def test_enqueue_stores_payload_and_is_ready_now(queue: Queue) -> None:
    msg = Producer("jobs").enqueue({"to": "a@example.com", "n": [1, 2.5, None, True]})
    row = Message.objects.get(pk=msg.id)
    assert row.payload == {"to": "a@example.com", "n": [1, 2.5, None, True]}
    assert row.queue_id == queue.pk
    assert row.read_ct == 0 and row.claimed_at is None and row.dequeued_at is None
    assert list(Message.objects.ready().values_list("pk", flat=True)) == [msg.id]
    assert msg.payload == row.payload and msg.vt == row.vt


@pytest.mark.parametrize(
    "payload", [None, 0, "text", [1, "two"], {"nested": {"a": [{}]}}, "unicode: é ✓ 🎉"]
)
def test_any_json_value_round_trips(queue: Queue, payload: object) -> None:
    msg = Producer("jobs").enqueue(payload)
    assert Message.objects.get(pk=msg.id).payload == payload


def test_batch_enqueue_is_one_round_trip_and_keeps_order(queue: Queue) -> None:
    producer = Producer("jobs")
    assert producer.queue == queue  # the one-time lookup, outside the measured call
    with CaptureQueriesContext(pgqrs_connection()) as ctx:
        msgs = producer.batch_enqueue([{"i": i} for i in range(500)], priority=2)
    assert len(ctx.captured_queries) == 1
    assert [m.payload["i"] for m in msgs] == list(range(500))
    assert [m.id for m in msgs] == sorted(m.id for m in msgs)
    assert Message.objects.filter(queue=queue, priority=2).count() == 500


def test_batch_enqueue_empty_does_nothing(queue: Queue) -> None:
    producer = Producer("jobs")
    with CaptureQueriesContext(pgqrs_connection()) as ctx:
        assert producer.batch_enqueue([]) == []
    assert len(ctx.captured_queries) == 0


def test_delayed_message_is_invisible_until_due(queue: Queue, shift_time) -> None:
    producer = Producer("jobs")
    msg = producer.enqueue_delayed({"later": True}, 600)
    assert Message.objects.delayed().filter(pk=msg.id).exists()
    consumer = Consumer("jobs")
    assert consumer.dequeue() is None
    shift_time(msg.id, seconds=601)
    got = consumer.dequeue()
    assert got is not None and got.id == msg.id


def test_delay_accepts_timedelta(queue: Queue) -> None:
    msg = Producer("jobs").enqueue({}, delay=dt.timedelta(minutes=5))
    assert 295 <= (msg.vt - msg.enqueued_at).total_seconds() <= 305


def test_enqueue_at(queue: Queue, shift_time) -> None:
    when = timezone.now() + dt.timedelta(hours=1)
    msg = Producer("jobs").enqueue_at({"x": 1}, when)
    assert abs((msg.vt - when).total_seconds()) < 0.001
    assert Consumer("jobs").dequeue() is None
    past = Producer("jobs").enqueue_at({"x": 2}, timezone.now() - dt.timedelta(days=1))
    got = Consumer("jobs").dequeue()
    assert got is not None and got.id == past.id


def test_enqueue_at_requires_aware_datetime(queue: Queue) -> None:
    with pytest.raises(InvalidInput):
        Producer("jobs").enqueue_at({}, dt.datetime(2030, 1, 1))
    assert Message.objects.count() == 0


@pytest.mark.parametrize("delay", [-1, -0.001, math.nan, math.inf, "5", True, 10**12])
def test_bad_delays_are_rejected_and_nothing_is_written(queue: Queue, delay: object) -> None:
    with pytest.raises(InvalidInput):
        Producer("jobs").enqueue({}, delay=delay)  # type: ignore[arg-type]
    assert Message.objects.count() == 0


def test_dedupe_key_rejects_duplicate_active_message(queue: Queue) -> None:
    producer = Producer("jobs")
    first = producer.enqueue({"v": 1}, dedupe_key="user-7")
    with pytest.raises(DuplicateMessage, match="user-7"):
        producer.enqueue({"v": 2}, dedupe_key="user-7")
    assert Message.objects.filter(dedupe_key="user-7").count() == 1
    # Once the first is archived the key is free again: unique among *active* messages.
    consumer = Consumer("jobs")
    got = consumer.dequeue()
    assert got is not None and got.id == first.id and consumer.archive(got)
    again = producer.enqueue({"v": 3}, dedupe_key="user-7")
    assert again.id != first.id


def test_dedupe_key_is_per_queue(queue: Queue, admin: PgqrsAdmin) -> None:
    admin.create_queue("other")
    Producer("jobs").enqueue({}, dedupe_key="k")
    Producer("other").enqueue({}, dedupe_key="k")
    assert Message.objects.filter(dedupe_key="k").count() == 2


def test_duplicate_does_not_break_the_surrounding_transaction(queue: Queue) -> None:
    from django.db import transaction

    producer = Producer("jobs")
    with transaction.atomic(using=conf.database()):
        producer.enqueue({}, dedupe_key="k")
        with pytest.raises(DuplicateMessage):
            producer.enqueue({}, dedupe_key="k")
        producer.enqueue({"after": True})  # the transaction is still usable
    assert Message.objects.count() == 2


def test_batch_enqueue_skips_duplicates(queue: Queue) -> None:
    producer = Producer("jobs")
    producer.enqueue({"old": True}, dedupe_key="a")
    msgs = producer.batch_enqueue(
        [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}], dedupe_keys=["a", "b", "b", None]
    )
    assert [m.payload for m in msgs] == [{"i": 1}, {"i": 3}]
    assert Message.objects.count() == 3


def test_batch_enqueue_dedupe_keys_length_must_match(queue: Queue) -> None:
    with pytest.raises(InvalidInput):
        Producer("jobs").batch_enqueue([{}, {}], dedupe_keys=["a"])
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"x": object()}, PayloadNotSerializable),
        ({"x": math.nan}, PayloadNotSerializable),
        ([math.inf], PayloadNotSerializable),
        ({"x": "nul\x00char"}, PayloadNotSerializable),
        ({"k\x00": 1}, PayloadNotSerializable),
        ({1, 2}, PayloadNotSerializable),
        (b"bytes", PayloadNotSerializable),
    ],
)
def test_bad_payloads_raise_clear_errors(queue: Queue, payload: object, error: type) -> None:
    with pytest.raises(error):
        Producer("jobs").enqueue(payload)
    assert Message.objects.count() == 0


def test_payload_depth_limit(queue: Queue) -> None:
    deep: object = "leaf"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(PayloadTooDeep):
        Producer("jobs").enqueue(deep)
    with override_settings(PGQRS={**settings.PGQRS, "MAX_PAYLOAD_DEPTH": 3}):
        Producer("jobs").enqueue({"a": {"b": [1]}})  # three levels of containers
        with pytest.raises(PayloadTooDeep):
            Producer("jobs").enqueue({"a": {"b": [[1]]}})
    assert Message.objects.count() == 1


def test_payload_size_limit_read_at_use_time(queue: Queue) -> None:
    producer = Producer("jobs")
    with override_settings(PGQRS={**settings.PGQRS, "MAX_PAYLOAD_BYTES": 100}):
        producer.enqueue("x" * 90)
        with pytest.raises(PayloadTooLarge, match="MAX_PAYLOAD_BYTES=100"):
            producer.enqueue("x" * 100)
    producer.enqueue("x" * 100)  # default limit again
    assert Message.objects.count() == 2


def test_bad_payload_in_batch_writes_nothing(queue: Queue) -> None:
    with pytest.raises(PayloadNotSerializable):
        Producer("jobs").batch_enqueue([{"ok": 1}, {"bad": object()}])
    assert Message.objects.count() == 0


@pytest.mark.parametrize("priority", [1.5, "1", None, 2**31])
def test_bad_priority(queue: Queue, priority: object) -> None:
    with pytest.raises(InvalidInput):
        Producer("jobs").enqueue({}, priority=priority)  # type: ignore[arg-type]


def test_unknown_and_invalid_queue_names(db: None) -> None:
    producer = Producer("missing")  # looked up on first use
    with pytest.raises(QueueNotFound):
        producer.enqueue({})
    for bad in ["", "a b", "x'; DROP TABLE pgqrs_queue; --", "q" * 129, "ünï", 'quote"d']:
        with pytest.raises(InvalidQueueName):
            Producer(bad)


def test_producer_extend_visibility(queue: Queue) -> None:
    producer = Producer("jobs")
    msg = producer.enqueue({})
    assert producer.extend_visibility(msg.id, seconds=dt.timedelta(minutes=2))
    row = Message.objects.get(pk=msg.id)
    assert 115 <= (row.vt - msg.vt).total_seconds() <= 125
    assert Consumer("jobs").dequeue() is None
    assert not producer.extend_visibility(999_999_999, 10)
    with pytest.raises(InvalidInput):
        producer.extend_visibility(msg.id, -5)


def test_token_bucket_blocks_to_the_configured_rate(queue: Queue) -> None:
    producer = Producer("jobs", rate_limit=50, burst=5)
    start = time.monotonic()
    for i in range(15):
        producer.enqueue({"i": i})
    elapsed = time.monotonic() - start
    # 5 from the burst, 10 more at 50/s need at least 0.2 s.
    assert elapsed >= 0.19
    assert Message.objects.count() == 15


def test_token_bucket_non_blocking_raises(queue: Queue) -> None:
    producer = Producer("jobs", rate_limit=1, burst=2, block=False)
    producer.enqueue({})
    producer.enqueue({})
    with pytest.raises(RateLimitExceeded):
        producer.enqueue({})
    assert Message.objects.count() == 2


def test_rate_limit_from_settings(queue: Queue) -> None:
    with override_settings(PGQRS={**settings.PGQRS, "RATE_LIMIT": 1, "RATE_LIMIT_BURST": 1}):
        producer = Producer("jobs", block=False)
    producer.enqueue({})
    with pytest.raises(RateLimitExceeded):
        producer.enqueue({})


def test_token_bucket_under_threads() -> None:
    bucket = TokenBucket(rate=200, burst=10)
    taken: list[float] = []
    lock = threading.Lock()

    def take(n: int) -> None:
        for _ in range(n):
            bucket.take()
            with lock:
                taken.append(time.monotonic())

    start = time.monotonic()
    threads = [threading.Thread(target=take, args=(25,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 100 tokens: 10 from the burst, 90 at 200/s => at least 0.45 s, whatever the threads.
    assert len(taken) == 100
    assert max(taken) - start >= 0.44


def test_token_bucket_rejects_bad_rates() -> None:
    with pytest.raises(InvalidInput):
        TokenBucket(0)
    with pytest.raises(InvalidInput):
        TokenBucket(5, burst=0.5)


@pytest.mark.slow
def test_huge_batch_in_one_statement(queue: Queue) -> None:
    producer = Producer("jobs")
    assert producer.queue == queue
    with CaptureQueriesContext(pgqrs_connection()) as ctx:
        msgs = producer.batch_enqueue([{"n": n} for n in range(100_000)])
    assert len(ctx.captured_queries) == 1
    assert len(msgs) == 100_000 and msgs[-1].payload == {"n": 99_999}
    assert Message.objects.filter(queue=queue).count() == 100_000


def test_batch_dedupe_keys_map_back_to_their_payloads(queue: Queue) -> None:
    producer = Producer("jobs")
    producer.enqueue({"old": "x"}, dedupe_key="x")
    msgs = producer.batch_enqueue(
        [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}, {"i": 4}],
        dedupe_keys=["x", "x", None, "y", "y"],
    )
    assert [(m.payload, m.dedupe_key) for m in msgs] == [({"i": 2}, None), ({"i": 3}, "y")]
    stored = dict(Message.objects.filter(pk__in=[m.id for m in msgs]).values_list("id", "payload"))
    assert stored == {m.id: m.payload for m in msgs}


def test_returned_message_matches_the_stored_row(queue: Queue) -> None:
    sent = Producer("jobs").enqueue({"t": (1, 2), 3: "int key"}, priority=4, delay=30)
    row = Message.objects.get(pk=sent.id)
    assert sent.payload == row.payload == {"t": [1, 2], "3": "int key"}
    assert (sent.priority, sent.vt, sent.enqueued_at, sent.read_ct) == (
        row.priority,
        row.vt,
        row.enqueued_at,
        row.read_ct,
    )
    assert sent.queue_id == queue.pk and sent.queue == queue
