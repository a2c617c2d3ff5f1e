from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext, override_settings

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.consumer import backoff_delay, error_text
from pgqrs_django.exceptions import InvalidInput, PayloadNotSerializable
from pgqrs_django.models import Archive, Message, Queue
from tests.databases import pgqrs_connection, server_now
from tests.factories import WorkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.pgbouncer]


def test_enqueue_dequeue_archive_round_trip(queue: Queue) -> None:
    sent = Producer("jobs").enqueue({"hello": "world"})
    consumer = Consumer("jobs")
    got = consumer.dequeue()
    assert got is not None
    assert (got.id, got.payload, got.read_ct) == (sent.id, {"hello": "world"}, 1)
    assert got.claimed_at is not None and got.dequeued_at is not None
    before = server_now()
    assert consumer.archive(got.id, result={"sent": True})
    after = server_now()
    assert not Message.objects.filter(pk=sent.id).exists()
    row = Archive.objects.get(pk=sent.id)
    assert row.outcome == Archive.Outcome.SUCCEEDED
    assert row.payload == {"hello": "world"} and row.result == {"sent": True}
    assert row.read_ct == 1 and row.enqueued_at == sent.enqueued_at
    # Without a duration from the caller: from the claim to the archive statement.
    assert row.duration is not None
    assert (before - got.claimed_at).total_seconds() <= row.duration
    assert row.duration <= (after - got.claimed_at).total_seconds()
    assert consumer.dequeue() is None


def test_enqueue_dequeue_delete_round_trip(queue: Queue) -> None:
    sent = Producer("jobs").enqueue({})
    consumer = Consumer("jobs")
    got = consumer.dequeue()
    assert got is not None and got.id == sent.id and consumer.delete(got.id)
    assert not Message.objects.exists() and not Archive.objects.exists()


def test_batch_round_trip(queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{"i": i} for i in range(30)])
    consumer = Consumer("jobs")
    assert consumer.queue == queue  # the one-time lookup, outside the measured calls
    with CaptureQueriesContext(pgqrs_connection()) as ctx:
        batch = consumer.dequeue_batch(20)
    assert len(ctx.captured_queries) == 1 and len(batch) == 20
    assert [m.payload["i"] for m in batch] == list(range(20))
    rest = consumer.dequeue_batch(20)
    assert len(rest) == 10
    with CaptureQueriesContext(pgqrs_connection()) as ctx:
        assert (
            consumer.archive_batch(batch[:10], results=[{"r": i} for i in range(10)]) == [True] * 10
        )
        assert consumer.delete_batch([m.id for m in batch[10:]]) == [True] * 10
    assert len(ctx.captured_queries) == 2
    assert consumer.archive_batch([m.id for m in rest] + [424242]) == [True] * 10 + [False]
    assert Archive.objects.count() == 20 and not Message.objects.exists()
    assert Archive.objects.get(pk=batch[3].id).result == {"r": 3}


def test_duration_given_by_caller_is_stored(queue: Queue) -> None:
    Producer("jobs").enqueue({})
    consumer = Consumer("jobs")
    msg = consumer.dequeue()
    assert msg is not None and consumer.archive(msg, duration=1.25)
    assert Archive.objects.get(pk=msg.id).duration == 1.25


def test_unserialisable_result_raises_and_keeps_the_lease(queue: Queue) -> None:
    Producer("jobs").enqueue({})
    consumer = Consumer("jobs")
    msg = consumer.dequeue()
    assert msg is not None
    with pytest.raises(PayloadNotSerializable):
        consumer.archive(msg, result=object())
    assert consumer.archive(msg, result="fine")


def test_claimed_message_is_invisible_until_its_lease_ends(queue: Queue, shift_time) -> None:
    msg = Producer("jobs").enqueue({})
    first, second = Consumer("jobs"), Consumer("jobs")
    got = first.dequeue(lock_time=60)
    assert got is not None
    assert Message.objects.in_flight().filter(pk=msg.id).exists()
    assert second.dequeue() is None
    shift_time(msg.id, seconds=61)
    again = second.dequeue()
    assert again is not None and again.id == msg.id and again.read_ct == 2


def test_lease_expiry_in_real_time(queue: Queue) -> None:
    """The one lease test that waits for the clock instead of shifting vt. It polls, and
    judges each poll by the server's clock, so a slow machine only makes it wait longer:
    a poll that ended before the lease end must find nothing, and the message comes back
    once the lease has ended."""
    Producer("jobs").enqueue({})
    first, second = Consumer("jobs"), Consumer("jobs")
    held = first.dequeue(lock_time=1)
    assert held is not None
    lease_end = held.vt
    deadline = time.monotonic() + 30
    while (got := second.dequeue()) is None:
        assert time.monotonic() < deadline, "the lease never ended"
        time.sleep(0.05)
    # This poll claimed the message: it ran after the lease end (the next statement's
    # time is later still).
    assert server_now() >= lease_end
    assert got.id == held.id and got.read_ct == 2
    assert not first.archive(got.id)
    assert second.archive(got.id)


def test_extend_visibility_keeps_it_hidden(queue: Queue, shift_time) -> None:
    msg = Producer("jobs").enqueue({})
    holder, other = Consumer("jobs"), Consumer("jobs")
    got = holder.dequeue(lock_time=10)
    assert got is not None
    assert holder.extend_visibility(got.id, seconds=100)
    shift_time(msg.id, seconds=50)  # the original lease would have ended
    assert other.dequeue() is None
    row = Message.objects.get(pk=msg.id)
    assert row.claimed_at is not None
    assert holder.archive(got.id)


def test_lost_lease_calls_return_false(queue: Queue, shift_time) -> None:
    Producer("jobs").batch_enqueue([{"i": i} for i in range(4)])
    slow, fast = Consumer("jobs"), Consumer("jobs")
    held = slow.dequeue_batch(4, lock_time=5)
    shift_time(*[m.id for m in held], seconds=10)
    taken = fast.dequeue_batch(4)
    assert {m.id for m in taken} == {m.id for m in held}
    a, b, c, d = held
    assert slow.archive(a.id) is False
    assert slow.delete(b.id) is False
    assert slow.fail(c.id, "late") is False
    assert slow.extend_visibility(d.id, 30) is False
    assert slow.release(d.id) is False
    assert slow.archive_batch([m.id for m in held]) == [False] * 4
    # The new holder is unaffected.
    assert Message.objects.filter(read_ct=2, last_error="").count() == 4
    assert fast.archive_batch(taken) == [True] * 4


def test_expired_lease_not_yet_reclaimed_can_still_be_settled(queue: Queue, shift_time) -> None:
    msg = Producer("jobs").enqueue({})
    consumer = Consumer("jobs")
    got = consumer.dequeue(lock_time=1)
    assert got is not None
    shift_time(msg.id, seconds=5)
    # Nobody else claimed it, so the lease is still ours: no duplicate processing.
    assert consumer.archive(got.id)


def test_calls_on_messages_never_claimed_return_false(queue: Queue) -> None:
    msg = Producer("jobs").enqueue({})
    consumer = Consumer("jobs")
    assert consumer.archive(msg.id) is False
    assert consumer.delete(msg.id) is False
    assert consumer.fail(msg.id, "x") is False
    assert consumer.release(msg.id) is False
    assert consumer.extend_visibility(msg.id, 5) is False
    assert consumer.delete_batch([msg.id, 123]) == [False, False]
    assert Message.objects.filter(pk=msg.id, read_ct=0).exists()


def test_operator_release_revokes_the_lease(queue: Queue, admin: PgqrsAdmin) -> None:
    Producer("jobs").enqueue({})
    consumer = Consumer("jobs")
    got = consumer.dequeue()
    assert got is not None
    assert admin.release_messages("jobs", [got.id]) == 1
    assert consumer.archive(got.id) is False
    again = Consumer("jobs").dequeue()
    assert again is not None and again.id == got.id


def test_lease_token_travels_with_the_message_object(queue: Queue) -> None:
    Producer("jobs").enqueue({})
    msg = Consumer("jobs").dequeue()
    assert msg is not None
    assert Consumer("jobs").archive(msg)  # another instance, same lease token


def test_release_makes_it_claimable_at_once(queue: Queue) -> None:
    Producer("jobs").batch_enqueue([{}, {}])
    consumer = Consumer("jobs")
    batch = consumer.dequeue_batch(2, lock_time=300)
    assert consumer.release_batch(batch) == [True, True]
    again = Consumer("jobs").dequeue_batch(5)
    assert sorted(m.id for m in again) == sorted(m.id for m in batch)
    assert all(m.read_ct == 2 for m in again)


def test_priorities_order_claims(queue: Queue) -> None:
    producer = Producer("jobs")
    low = producer.enqueue({"p": "low"}, priority=-5)
    normal = producer.batch_enqueue([{"p": "n1"}, {"p": "n2"}])
    high = producer.enqueue({"p": "high"}, priority=10)
    consumer = Consumer("jobs")
    order = [consumer.dequeue() for _ in range(4)]
    assert [m.id for m in order if m] == [high.id, normal[0].id, normal[1].id, low.id]
    producer.batch_enqueue([{"p": 1}], priority=1)
    producer.batch_enqueue([{"p": 9}], priority=9)
    batch = consumer.dequeue_batch(2)
    assert [m.payload["p"] for m in batch] == [9, 1]


def test_fail_backs_off_then_dead_letters_at_max_attempts(queue: Queue, shift_time) -> None:
    msg = Producer("jobs").enqueue({"flaky": True})
    consumer = Consumer("jobs")
    delays = []
    with override_settings(PGQRS={**settings.PGQRS, "RETRY_BACKOFF_BASE": 10, "RETRY_JITTER": 0}):
        for attempt in (1, 2):
            got = consumer.dequeue()
            assert got is not None and got.read_ct == attempt
            # The retry time is the failure's time plus the backoff, by the server's clock:
            # bracket the failure with two readings of it instead of allowing slack.
            before = server_now()
            assert consumer.fail(got.id, RuntimeError(f"boom {attempt}"))
            after = server_now()
            row = Message.objects.get(pk=msg.id)
            assert row.claimed_at is None and f"boom {attempt}" in row.last_error
            assert "Traceback" in row.last_error or "RuntimeError" in row.last_error
            delays.append(((row.vt - after).total_seconds(), (row.vt - before).total_seconds()))
            assert Message.objects.delayed().filter(pk=msg.id).exists()
            assert consumer.dequeue() is None  # backing off
            shift_time(msg.id, seconds=10_000)
        got = consumer.dequeue()
        assert got is not None and got.read_ct == 3  # == max_attempts
        assert consumer.fail(got.id, "final straw")
    # 10 s, then 20 s, after the failure.
    assert delays[0][0] <= 10 <= delays[0][1] and delays[1][0] <= 20 <= delays[1][1], delays
    assert not Message.objects.filter(pk=msg.id).exists()
    dead = Archive.objects.get(pk=msg.id)
    assert dead.outcome == Archive.Outcome.DEAD and dead.error == "final straw"
    assert dead.read_ct == 3


def test_fail_keeps_the_traceback(queue: Queue) -> None:
    Producer("jobs").enqueue({})
    consumer = Consumer("jobs")
    got = consumer.dequeue()
    assert got is not None

    def handler() -> None:
        raise ValueError("bad input in handler")

    try:
        handler()
    except ValueError as exc:
        assert consumer.fail(got, exc)
    error = Message.objects.get(pk=got.id).last_error
    assert "Traceback (most recent call last)" in error
    assert "in handler" in error and "ValueError: bad input in handler" in error


def test_fail_without_retry_archives_as_failed(queue: Queue) -> None:
    Producer("jobs").enqueue({})
    consumer = Consumer("jobs")
    got = consumer.dequeue()
    assert got is not None and consumer.fail(got, "permanent", retry=False)
    row = Archive.objects.get(pk=got.id)
    assert row.outcome == Archive.Outcome.FAILED and row.error == "permanent"


def test_dead_letter_queue_receives_the_message(admin: PgqrsAdmin) -> None:
    admin.create_queue("dlq")
    admin.create_queue("work", max_attempts=1, dead_letter_queue="dlq")
    sent = Producer("work").enqueue({"doomed": True}, dedupe_key="d1")
    consumer = Consumer("work")
    got = consumer.dequeue()
    assert got is not None and consumer.fail(got, "nope")
    moved = Message.objects.get(pk=sent.id)
    assert moved.queue.name == "dlq" and moved.read_ct == 0 and moved.last_error == "nope"
    assert moved.dedupe_key == "d1"
    assert not Archive.objects.exists()
    from_dlq = Consumer("dlq").dequeue()
    assert from_dlq is not None and from_dlq.payload == {"doomed": True}


def test_dead_letter_move_drops_a_clashing_dedupe_key(admin: PgqrsAdmin) -> None:
    admin.create_queue("dlq")
    admin.create_queue("work", max_attempts=1, dead_letter_queue="dlq")
    Producer("dlq").enqueue({"already": True}, dedupe_key="k")
    sent = Producer("work").enqueue({}, dedupe_key="k")
    consumer = Consumer("work")
    got = consumer.dequeue()
    assert got is not None and consumer.fail(got, "nope")
    moved = Message.objects.get(pk=sent.id)
    assert moved.queue.name == "dlq" and moved.dedupe_key is None


def test_replay_dead_restores_the_message(queue: Queue, admin: PgqrsAdmin) -> None:
    Queue.objects.filter(pk=queue.pk).update(max_attempts=1)
    sent = Producer("jobs").enqueue({"again": True}, dedupe_key="r")
    consumer = Consumer("jobs")
    got = consumer.dequeue()
    assert got is not None and consumer.fail(got, "boom")
    assert Archive.objects.dead().filter(pk=sent.id).exists()
    restored = admin.replay_dead("jobs", sent.id)
    assert restored.id == sent.id and restored.read_ct == 0 and restored.last_error == "boom"
    assert not Archive.objects.filter(pk=sent.id).exists()
    again = consumer.dequeue()
    assert again is not None and again.id == sent.id and again.payload == {"again": True}
    assert consumer.archive(again)
    assert Archive.objects.get(pk=sent.id).outcome == Archive.Outcome.SUCCEEDED


class Boom(Exception):
    """A handler's own exception, stored by its class path."""


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        raise exc from cause
    except BaseException as caught:
        return caught


def test_the_exception_class_travels_with_the_error(admin: PgqrsAdmin) -> None:
    """Stored by fail() beside the text: on the message while it waits for a retry and in
    the dead-letter queue, in the archive once it leaves, back on the message on replay; an
    error given as text has none, and success clears it."""
    boom = f"{__name__}.Boom"
    admin.create_queue("dlq", max_attempts=1)
    admin.create_queue("work", max_attempts=2, dead_letter_queue="dlq")
    first, second = Producer("work").batch_enqueue([{"n": 1}, {"n": 2}])
    work = Consumer("work")
    got = work.dequeue_batch(2)
    assert work.fail(got[0], _raised(KeyError("k")))
    assert work.fail(got[1], _raised(Boom("no retry"), KeyError("cause")), retry=False)
    waiting = Message.objects.get(pk=first.id)
    assert waiting.last_error_class == "builtins.KeyError" and "KeyError" in waiting.last_error
    failed = Archive.objects.get(pk=second.id)
    assert failed.outcome == Archive.Outcome.FAILED and failed.error_class == boom
    assert admin.replay_dead("work", second.id).last_error_class == boom

    Message.objects.filter(pk=first.id).update(vt=Now())
    again, replayed = sorted(work.dequeue_batch(2), key=lambda m: m.id)
    # The claim returns the class with the error.
    assert (again.id, again.last_error_class) == (first.id, "builtins.KeyError")
    assert (replayed.id, replayed.last_error_class) == (second.id, boom)
    assert work.archive(replayed)
    done = Archive.objects.get(pk=second.id)
    assert (done.outcome, done.error, done.error_class) == ("succeeded", "", "")

    assert work.fail(again, _raised(Boom("last try")))  # attempts used up: to the DLQ
    moved = Message.objects.get(pk=first.id)
    assert (moved.queue.name, moved.last_error_class) == ("dlq", boom)
    dlq = Consumer("dlq")
    assert dlq.fail(dlq.dequeue(), "given up")  # type: ignore[arg-type]
    dead = Archive.objects.get(pk=first.id)
    assert (dead.outcome, dead.error, dead.error_class) == ("dead", "given up", "")


def test_paused_queue_hands_out_nothing(queue: Queue, admin: PgqrsAdmin) -> None:
    Producer("jobs").enqueue({})
    admin.pause_queue("jobs")
    consumer = Consumer("jobs")
    assert consumer.dequeue() is None
    admin.resume_queue("jobs")
    assert consumer.dequeue() is not None


def test_worker_consumer_records_the_holder(queue: Queue) -> None:
    worker = WorkerFactory()
    Producer("jobs").enqueue({})
    consumer = Consumer("jobs", worker=worker)
    got = consumer.dequeue()
    assert got is not None and got.consumer_id == worker.pk
    assert consumer.archive(got)
    assert Archive.objects.get(pk=got.id).worker_name == worker.name


def test_queues_are_isolated(queue: Queue, admin: PgqrsAdmin) -> None:
    admin.create_queue("other")
    Producer("other").enqueue({})
    assert Consumer("jobs").dequeue() is None
    msg = Consumer("other").dequeue()
    assert msg is not None
    assert Consumer("jobs").archive(msg) is False  # wrong queue


@pytest.mark.parametrize("n", [0, -1, 10_001, 1.5, "3", True])
def test_bad_batch_sizes(queue: Queue, n: object) -> None:
    with pytest.raises(InvalidInput):
        Consumer("jobs").dequeue_batch(n)  # type: ignore[arg-type]


@pytest.mark.parametrize("lock", [0, -1, float("nan"), 10**12])
def test_bad_lock_times(queue: Queue, lock: float) -> None:
    Producer("jobs").enqueue({})
    with pytest.raises(InvalidInput):
        Consumer("jobs").dequeue(lock_time=lock)
    assert Message.objects.filter(read_ct=0).count() == 1


def test_bad_message_refs(queue: Queue) -> None:
    with pytest.raises(InvalidInput):
        Consumer("jobs").archive("12")  # type: ignore[arg-type]


def test_backoff_grows_exponentially_with_cap_and_jitter() -> None:
    with override_settings(
        PGQRS={
            **settings.PGQRS,
            "RETRY_BACKOFF_BASE": 2,
            "RETRY_BACKOFF_MAX": 100,
            "RETRY_JITTER": 0,
        }
    ):
        assert [backoff_delay(a) for a in (1, 2, 3, 4)] == [2, 4, 8, 16]
        assert backoff_delay(50) == 100
        assert backoff_delay(10**9) == 100
    with override_settings(PGQRS={**settings.PGQRS, "RETRY_BACKOFF_BASE": 10, "RETRY_JITTER": 0.5}):
        values = {backoff_delay(1) for _ in range(50)}
        assert all(5 <= v <= 15 for v in values) and len(values) > 1


def test_error_text_truncates_huge_errors() -> None:
    text = error_text("x" * 1_000_000)
    assert len(text) <= 65_536 and "[truncated]" in text
    assert error_text("a\x00b") == "a\\x00b"
