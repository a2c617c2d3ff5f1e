"""Periodic jobs: registration, the scheduler driven tick by tick with an explicit clock,
missed ticks, and exactly one message for every tick with two real worker processes that
take over from each other."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

import pgqrs_django
from pgqrs_django import PgqrsAdmin, conf, registry, scheduling
from pgqrs_django.exceptions import InvalidInput
from pgqrs_django.models import Archive, Message, Schedule, Worker
from tests.worker_support import WorkerProcess, wait_until

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def schedules() -> Iterator[Callable[..., scheduling.PeriodicJob]]:
    """``scheduling.schedule`` that forgets its schedules (and handlers) after the test."""
    names: list[str] = []

    def add(name: str, cron: str, **kwargs: Any) -> scheduling.PeriodicJob:
        job = scheduling.schedule(name, cron, **kwargs)
        names.append(name)
        return job

    yield add
    for name in names:
        scheduling.unschedule(name)


@pytest.mark.django_db
def test_ticks_are_enqueued_once_the_first_past_one_is_not_and_missed_ones_collapse(
    admin: PgqrsAdmin, schedules: Callable[..., scheduling.PeriodicJob]
) -> None:
    admin.create_queue("reports")
    job = schedules("reports", "*/5 * * * *", queue="reports", payload={"kind": "summary"})
    a = scheduling.Scheduler({"reports": job}, conf.database())  # two workers
    b = scheduling.Scheduler({"reports": job}, conf.database())
    a.register(at("2026-01-01 10:03:00"))
    b.register(at("2026-01-01 10:04:00"))
    assert Schedule.objects.get().last_tick == at("2026-01-01 10:00:00")
    # A schedule seen for the first time does not fire for the tick before it was seen.
    assert a.run_due(at("2026-01-01 10:03:00")) == b.run_due(at("2026-01-01 10:04:00")) == []
    assert a.seconds_until_due(at("2026-01-01 10:04:59")) == 1.0

    sent = a.run_due(at("2026-01-01 10:05:00"))
    assert b.run_due(at("2026-01-01 10:05:02")) == []  # the other worker: already done
    assert [m.payload for m in sent] == [{"kind": "summary"}]
    assert sent[0].dedupe_key == "reports@2026-01-01T10:05:00+00:00"
    row = Schedule.objects.get()
    assert (row.last_tick, row.last_message_id) == (at("2026-01-01 10:05:00"), sent[0].id)

    # No worker ran from 10:06 to 11:02: only the latest missed tick (11:00) is enqueued.
    assert b.seconds_until_due(at("2026-01-01 11:02:00")) == 0
    late = b.run_due(at("2026-01-01 11:02:00")) + a.run_due(at("2026-01-01 11:02:30"))
    assert [m.dedupe_key for m in late] == ["reports@2026-01-01T11:00:00+00:00"]
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_a_missing_queue_is_logged_and_changes_nothing(
    schedules: Callable[..., scheduling.PeriodicJob], caplog: pytest.LogCaptureFixture
) -> None:
    job = schedules("orphan", "* * * * *", queue="nowhere")
    scheduler = scheduling.Scheduler({"orphan": job}, conf.database())
    scheduler.register(at("2026-01-01 10:00:30"))
    assert scheduler.run_due(at("2026-01-01 10:01:00")) == []
    assert "queue 'nowhere' does not exist" in caplog.text
    # The tick was rolled back with the failed enqueue; the next tick is the next chance.
    assert Schedule.objects.get().last_tick == at("2026-01-01 10:00:00")
    assert scheduler.seconds_until_due(at("2026-01-01 10:01:00")) == 60


@pytest.mark.django_db(transaction=True)
def test_two_connections_racing_for_one_tick_enqueue_it_once(
    admin: PgqrsAdmin, schedules: Callable[..., scheduling.PeriodicJob]
) -> None:
    admin.create_queue("reports")
    job = schedules("race", "* * * * * *", queue="reports")
    scheduling.Scheduler({"race": job}, conf.database()).register(at("2026-01-01 10:00:00"))
    tick = at("2026-01-01 10:00:01")
    start = threading.Barrier(8)
    results: list[Message | None] = []

    def race() -> None:
        try:
            start.wait()
            results.append(scheduling.enqueue_tick(job, tick, conf.database()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len([r for r in results if r is not None]) == 1
    assert Message.objects.count() == 1


def test_registration_validates_and_registers_the_handler() -> None:
    with pytest.raises(InvalidInput, match="must have 5 fields"):
        pgqrs_django.periodic("every minute", queue="reports")
    with pytest.raises(InvalidInput, match="queue name"):
        pgqrs_django.periodic("* * * * *", queue="bad name!")

    @pgqrs_django.periodic("0 * * * *", queue="hourly-q", payload={"n": 1})
    def hourly(message: Message) -> None:
        return None

    try:
        job = scheduling.registered()[f"{__name__}.{hourly.__qualname__}"]
        assert (job.queue, job.payload, job.cron.expression) == ("hourly-q", {"n": 1}, "0 * * * *")
        assert registry.get("hourly-q").func is hourly  # type: ignore[union-attr]
        with pytest.raises(InvalidInput, match="already registered"):
            scheduling.schedule(job.name, "5 * * * *", queue="hourly-q")
        with pytest.raises(InvalidInput, match="JSON"):
            scheduling.schedule("bad-payload", "* * * * *", queue="q", payload={"x": object()})
    finally:
        scheduling.unschedule(f"{__name__}.{hourly.__qualname__}")
        registry.unregister("hourly-q")


@pytest.mark.django_db(transaction=True)
def test_the_worker_enqueues_a_missed_tick_unless_no_periodic(
    admin: PgqrsAdmin, schedules: Callable[..., scheduling.PeriodicJob]
) -> None:
    admin.create_queue("minutely")
    schedules("minutely", "* * * * *", queue="minutely", payload={"m": 1})
    Schedule.objects.create(
        name="minutely", cron="* * * * *", queue_name="minutely", last_tick=at("2020-01-01")
    )
    handler = ["--handler", "minutely=builtins.repr", "--log-level", "error"]
    call_command("pgqrs_worker", "--burst", "--no-periodic", *handler)
    assert not Archive.objects.exists()
    call_command("pgqrs_worker", "--burst", *handler)
    (row,) = Archive.objects.all()
    assert row.payload == {"m": 1} and row.dedupe_key.startswith("minutely@")
    assert Schedule.objects.get().last_tick > at("2020-01-01")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_enqueue_every_tick_exactly_once_and_take_over_from_each_other(
    admin: PgqrsAdmin, subprocess_env: dict[str, str], tmp_path: Any
) -> None:
    """Two pgqrs_worker processes run the per-second schedule of tests/testapp/
    periodic_jobs.py: A alone, then A and B together, then B alone once A has stopped.
    Every second from the first tick to the last gave exactly one message, and each worker
    enqueued some of them."""
    admin.create_queue("ticks")
    args = ["--handler", "tests.testapp.periodic_jobs", "--queue", "ticks", "--log-level", "info"]
    workers: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(args, subprocess_env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    def enqueued(worker: WorkerProcess) -> int:
        return worker.log().count("periodic job tick: enqueued")

    def ticks() -> int:
        return Message.objects.count() + Archive.objects.count()

    try:
        a = start()
        wait_until(lambda: enqueued(a) >= 3, timeout=120, what="3 ticks from A alone")
        b = start()
        wait_until(lambda: Worker.objects.filter(pid=b.pid).exists(), timeout=120, what="B")
        together = ticks()
        wait_until(lambda: ticks() >= together + 3, timeout=60, what="3 ticks from A and B")
        assert a.stop() == 0, a.log()
        wait_until(lambda: enqueued(b) >= 3, timeout=60, what="3 ticks from B alone")
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], [w.log() for w in workers]
    keys = list(Archive.objects.values_list("dedupe_key", flat=True))
    keys += list(Message.objects.values_list("dedupe_key", flat=True))
    seen = sorted(dt.datetime.fromisoformat(key.removeprefix("tick@")) for key in keys)
    assert len(seen) == len(set(seen))  # never twice for one tick
    # No tick skipped: one message for every second from the first tick to the last.
    first, last = seen[0], seen[-1]
    span = int((last - first).total_seconds())
    every = [first + dt.timedelta(seconds=s) for s in range(span + 1)]
    assert seen == every, sorted(set(every) - set(seen))
    assert Schedule.objects.get(name="tick").last_tick == last
    # Both took part, and the log accounts for every message.
    by_worker = [enqueued(w) for w in workers]
    assert min(by_worker) >= 3 and sum(by_worker) == len(seen), by_worker
