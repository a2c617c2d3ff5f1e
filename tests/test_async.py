"""The async twins: every public API method has one, and they work on the same database."""

from __future__ import annotations

import inspect

import pytest
from asgiref.sync import async_to_sync

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.models import Archive

pytestmark = [pytest.mark.django_db, pytest.mark.pgbouncer]

LOCAL_ONLY = {"holds", "worker_name", "set_paused"}


@pytest.mark.parametrize("cls", [Producer, Consumer, PgqrsAdmin])
def test_every_public_method_has_an_async_twin(cls: type) -> None:
    public = {
        name
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_") and not name.startswith("a")
    }
    # Names that start with "a" (archive, archive_batch, ...) are checked explicitly below.
    public |= {name for name in vars(cls) if name in {"archive", "archive_batch"}}
    for name in sorted(public - LOCAL_ONLY):
        twin = getattr(cls, f"a{name}", None)
        assert twin is not None, f"{cls.__name__}.{name} has no async twin"
        assert inspect.iscoroutinefunction(twin), f"{cls.__name__}.a{name} is not async"


def test_async_round_trip() -> None:
    async def scenario() -> tuple[int, bool, int]:
        admin = PgqrsAdmin()
        await admin.acreate_queue("async-q")
        producer = Producer("async-q")
        sent = await producer.abatch_enqueue([{"i": i} for i in range(3)])
        one = await producer.aenqueue({"single": True}, priority=9)
        consumer = Consumer("async-q")
        first = await consumer.adequeue()
        assert first is not None and first.id == one.id
        batch = await consumer.adequeue_batch(10)
        archived = await consumer.aarchive_batch(batch)
        assert archived == [True] * len(sent)
        ok = await consumer.aarchive(first, result={"async": True})
        metrics = await admin.aqueue_metrics("async-q")
        return len(batch), ok, metrics.archived

    assert async_to_sync(scenario)() == (3, True, 4)
    assert Archive.objects.get(result={"async": True}).outcome == "succeeded"


def test_async_twin_keeps_errors() -> None:
    from pgqrs_django.exceptions import QueueNotFound

    async def scenario() -> None:
        await PgqrsAdmin().aget_queue("missing")

    with pytest.raises(QueueNotFound):
        async_to_sync(scenario)()
