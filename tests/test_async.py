"""The async twins: every public API method has one, and they work on the same database."""

from __future__ import annotations

import asyncio
import inspect
import os

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import SynchronousOnlyOperation
from django.test import AsyncClient

from pgqrs_django import Consumer, PgqrsAdmin, Producer
from pgqrs_django.models import Archive, Queue

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


def test_django_async_safety_checks_are_on_here_and_in_worker_processes(
    subprocess_env: dict[str, str],
) -> None:
    """Only the browser tests (tests/e2e) may set DJANGO_ALLOW_ASYNC_UNSAFE, and only while
    their browser is open: a sync ORM call on an event loop fails everywhere else, in this
    process and in the worker processes the tests start."""
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in subprocess_env

    async def sync_orm_call_on_the_event_loop() -> int:
        return Queue.objects.count()

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(sync_orm_call_on_the_event_loop())


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


def twins(cls: type) -> list[str]:
    """The async twins of ``cls``: ``a<name>`` coroutine functions of a sync ``<name>``."""
    return sorted(
        f"{cls.__name__}.{name}"
        for name, member in vars(cls).items()
        if name.startswith("a") and inspect.iscoroutinefunction(member) and name[1:] in vars(cls)
    )


# transaction=True: the tour uninstalls and reinstalls the tables.
@pytest.mark.django_db(transaction=True)
def test_every_async_twin_works_inside_an_async_view() -> None:
    """tests/testapp/views.py awaits every twin in an async view, served by Django's async
    handler through AsyncClient; adding a method without a twin in the tour fails here."""
    response = async_to_sync(AsyncClient().get)("/async-api-tour/")
    assert response.status_code == 200, response.content[:2000]
    data = response.json()
    every = twins(Producer) + twins(Consumer) + twins(PgqrsAdmin)
    assert sorted(set(data["awaited"])) == sorted(every)
    assert data["seen"] == {
        "verify": True,
        "queue": "tour",
        "queues": ["tour", "tour-scratch"],
        "producer_extend": True,
        "first_claimed": True,  # priority 9 first
        "extend": True,
        "archive": True,
        "extend_batch": [True, True],
        "archive_batch": [True, True],
        "archive_and_dequeue": [[], 4],
        "delete": True,
        "delete_batch": [True],
        "release": True,
        "release_batch": [True],
        "fail": True,
        "workers": ["tour-worker"],
        "shutdown": True,
        "stale": 0,
        "health": 1,
        "released_by_stop": 0,
        "purged_workers": 1,
        "metrics": {"ready": 2, "archived": 4},  # ready: the two released ones
        "all_metrics": 2,
        "stats": 2,
        "archived_first": {"n": 1},
        "archive_list": 4,
        "released": 0,
        "cancelled": 1,  # the delayed message
        "replayed": True,  # the failed one, back in the queue...
        "deleted": 1,  # ...and deleted
        "purged": 3,  # the two released ones and the one due tomorrow
        "purged_archive": 4,
        "dropped": {"messages": 0, "archived": 0},
    }
    assert [q.name for q in PgqrsAdmin().list_queues()] == ["tour"]
