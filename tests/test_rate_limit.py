"""A rate-limited Producer shared by many threads obeys its token bucket (SPEC §4).

The bucket starts full (``burst`` tokens) and gains ``rate`` tokens per second, so over any
interval of ``t`` seconds at most ``burst + rate * t`` enqueues can be admitted. The tests
record when each enqueue call started and returned and check that bound for every interval
the calls span: a slow or loaded machine only makes the bound easier to meet, so nothing
here depends on how fast the machine is. Lower bounds are counts the bucket guarantees
whatever the timing (the first ``burst`` attempts always get a token).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection

from pgqrs_django import PgqrsAdmin, Producer
from pgqrs_django.exceptions import RateLimitExceeded
from pgqrs_django.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

RATE, BURST = 40.0, 8
# Float rounding in the bucket's arithmetic; far below one token.
EPSILON = 1e-6


def in_threads(count: int, target: Callable[[int], None]) -> None:
    def run(number: int) -> None:
        try:
            target(number)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def assert_obeys_bucket(calls: list[tuple[float, float]], created: float) -> None:
    """``calls``: (start, end) of every admitted enqueue. A call's token was taken between
    its start and end, so the calls lying inside an interval took their tokens in it."""
    calls = sorted(calls)
    ends = sorted(end for _, end in calls)
    # From the bucket's creation: admitted by time t <= burst + rate * (t - created).
    for admitted, end in enumerate(ends, 1):
        assert admitted <= BURST + RATE * (end - created) + EPSILON, (admitted, end - created)
    # Any interval [start of call i, end of call j]: the calls inside it.
    for i, (start, _) in enumerate(calls):
        for j_end in ends:
            if j_end < start:
                continue
            inside = sum(1 for s, e in calls[i:] if s >= start and e <= j_end)
            assert inside <= BURST + RATE * (j_end - start) + EPSILON, (inside, j_end - start)


def test_blocking_producer_shared_by_threads_admits_at_the_bucket_rate() -> None:
    PgqrsAdmin().create_queue("limited")
    threads, each = 6, 15
    created = time.monotonic()
    producer = Producer("limited", rate_limit=RATE, burst=BURST)
    calls: list[tuple[float, float]] = []
    lock = threading.Lock()

    def send(number: int) -> None:
        for i in range(each):
            start = time.monotonic()
            producer.enqueue({"thread": number, "i": i})
            with lock:
                calls.append((start, time.monotonic()))

    in_threads(threads, send)
    total = threads * each
    assert len(calls) == total == Message.objects.count()  # blocking: every one admitted
    assert_obeys_bucket(calls, created)
    # So the last one could not return before (total - burst) / rate seconds had passed.
    assert max(end for _, end in calls) - created >= (total - BURST) / RATE - EPSILON


def test_non_blocking_producer_shared_by_threads_refuses_beyond_the_bucket() -> None:
    PgqrsAdmin().create_queue("limited")
    threads, window = 8, 1.5
    created = time.monotonic()
    producer = Producer("limited", rate_limit=RATE, burst=BURST, block=False)
    admitted: list[tuple[float, float]] = []
    refused: list[str] = []
    lock = threading.Lock()

    def hammer(number: int) -> None:
        while time.monotonic() - created < window:
            start = time.monotonic()
            try:
                producer.enqueue({"thread": number})
            except RateLimitExceeded as exc:
                with lock:
                    refused.append(str(exc))
                continue
            with lock:
                admitted.append((start, time.monotonic()))

    in_threads(threads, hammer)
    # Each admitted enqueue wrote exactly one row; a refused one wrote nothing.
    assert Message.objects.count() == len(admitted)
    assert len(admitted) >= BURST  # the first BURST attempts find a full bucket
    assert refused, "8 threads for 1.5 s must exhaust a 40/s bucket of 8"
    assert all(text.startswith("rate limit of 40 messages/s exceeded") for text in refused)
    assert_obeys_bucket(admitted, created)


def test_batches_take_one_token_per_message_under_threads() -> None:
    PgqrsAdmin().create_queue("limited")
    created = time.monotonic()
    producer = Producer("limited", rate_limit=RATE, burst=BURST)
    calls: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def send(number: int) -> None:
        for size in (3, 5, 12):  # 12 > BURST: served in bucket-size steps
            start = time.monotonic()
            producer.batch_enqueue([{"thread": number}] * size)
            with lock:
                calls.append((start, time.monotonic(), size))

    in_threads(4, send)
    total = sum(size for _, _, size in calls)
    assert total == 4 * 20 == Message.objects.count()
    # Messages admitted by time t (counting a batch when it returns) obey the bucket.
    done = 0
    for _, end, size in sorted(calls, key=lambda c: c[1]):
        done += size
        assert done <= BURST + RATE * (end - created) + EPSILON
