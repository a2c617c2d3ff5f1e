"""One benchmark process: ``python -m bench.runner '<json spec>'`` (started by the harness).

The spec names a ``system`` (worker, consumer, floor, pgqueuer, procrastinate, djtasks) and
an ``action``:

- ``drain``: set up (imports, connection), print ``ready``, wait for ``go`` on stdin, consume
  the queue until it is empty, print ``{"count": handled, "end": wall clock}``;
- ``setup``, ``fill``, ``enqueue``, ``verify`` (peers only): install the peer's schema, fill a
  backlog, time enqueues, count what the peer processed; each prints one JSON line.

Every handler does nothing but count: the benchmark measures the queues, not the jobs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

HANDLED = 0
#: Wall clock when the last handler ran: the end of a drain (its last acknowledgement, one
#: batch at most, follows; every system is timed the same way, and its exit is not counted).
LAST = 0.0


def count(*args: Any, **kwargs: Any) -> None:
    """The trivial handler of every system."""
    global HANDLED, LAST
    HANDLED += 1
    LAST = time.time()


def finished() -> None:
    """A drain's answer: how many messages this process handled, when the last ran, and the
    CPU seconds this process used since the release."""
    done({"count": HANDLED, "end": LAST or time.time(), "cpu": time.process_time() - CPU_AT_GO})


#: This process's CPU time (all threads) when released.
CPU_AT_GO = 0.0


def wait_for_go() -> None:
    global CPU_AT_GO
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    CPU_AT_GO = time.process_time()


def done(value: Any) -> None:
    print(json.dumps(value), flush=True)


# -- pgqrs: the pgqrs_worker runtime, the Consumer API ------------------------------------------


def _pgqrs(spec: dict[str, Any]) -> None:
    from bench.common import setup_django

    setup_django(spec["db"])


def worker_drain(spec: dict[str, Any]) -> None:
    _pgqrs(spec)
    from pgqrs_django.worker import WorkerOptions, WorkerRuntime

    runtime = WorkerRuntime(
        WorkerOptions(
            queues=[spec["queue"]],
            concurrency=1,
            batch_size=spec["batch"],
            lock_time=60,
            burst=True,
            listen=False,
            async_commit=spec.get("async_commit", False),
        )
    )
    runtime.prepare()
    wait_for_go()
    code = runtime.run()
    if code != 0 or runtime.succeeded != HANDLED:
        raise SystemExit(f"worker exited with {code}, {runtime.succeeded} of {HANDLED} archived")
    finished()


def consumer_drain(spec: dict[str, Any]) -> None:
    _pgqrs(spec)
    from django.db import connection

    from pgqrs_django import Consumer

    consumer = Consumer(spec["queue"])
    consumer.queue  # noqa: B018 (look the queue up before the clock starts)
    connection.ensure_connection()
    batch = spec["batch"]
    wait_for_go()
    while messages := consumer.dequeue_batch(batch, lock_time=60):
        for message in messages:
            count(message)
        if not all(consumer.archive_batch(messages)):
            raise SystemExit("a message held by this consumer could not be archived")
    finished()


# -- the SQL floor ------------------------------------------------------------------------------


def floor_drain(spec: dict[str, Any]) -> None:
    import psycopg

    from bench import floor

    with psycopg.connect(spec["db"], autocommit=True) as conn:
        floor.prepare(conn)
        wait_for_go()
        floor.consume(conn, spec["queue_id"], spec["batch"], count)
    finished()


# -- PGQueuer -----------------------------------------------------------------------------------


def pgqueuer_main(spec: dict[str, Any]) -> None:
    import asyncio

    asyncio.run(_pgqueuer(spec))


async def _pgqueuer(spec: dict[str, Any]) -> None:
    from datetime import timedelta

    import asyncpg
    from pgqueuer import QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    # asyncpg: PGQueuer's own first choice of driver, and its fastest.
    conn = await asyncpg.connect(spec["db"])
    queries = Queries(AsyncpgDriver(conn))
    action = spec["action"]
    if action == "setup":
        await queries.install()
        done({})
    elif action == "fill":
        total = spec["messages"]
        for start in range(0, total, 5000):
            n = min(5000, total - start)
            await queries.enqueue(["bench"] * n, [b"{}"] * n, [0] * n)
        done({})
    elif action == "enqueue":
        out = {}
        n = spec["single"]
        started = time.perf_counter()
        for _ in range(n):
            await queries.enqueue("bench", b"{}")
        out["single"] = n / (time.perf_counter() - started)
        for size in (100, 1000):
            calls = max(1, spec["batched"] // size)
            started = time.perf_counter()
            for _ in range(calls):
                await queries.enqueue(["bench"] * size, [b"{}"] * size, [0] * size)
            out[f"batch_{size}"] = calls * size / (time.perf_counter() - started)
        await queries.clear_queue("bench")
        done(out)
    elif action == "verify":
        left = await queries.queue_size()
        done({"left": sum(row.count for row in left)})
    elif action == "drain":
        manager = QueueManager(queries)

        @manager.entrypoint("bench")
        async def bench(job: Any) -> None:
            count(job)

        wait_for_go()
        await manager.run(
            batch_size=spec["batch"],
            mode=QueueExecutionMode.drain,
            dequeue_timeout=timedelta(seconds=1),
        )
        finished()


# -- procrastinate ------------------------------------------------------------------------------


def procrastinate_main(spec: dict[str, Any]) -> None:
    import asyncio

    asyncio.run(_procrastinate(spec))


async def _procrastinate(spec: dict[str, Any]) -> None:
    import logging

    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=spec["db"]))

    @app.task(name="bench", queue="bench")
    async def bench(n: int = 0) -> None:
        count(n)

    action = spec["action"]
    async with app.open_async():
        if action == "setup":
            await app.schema_manager.apply_schema_async()
            done({})
        elif action == "fill":
            total = spec["messages"]
            for start in range(0, total, 5000):
                stop = min(total, start + 5000)
                await bench.batch_defer_async(*({"n": i} for i in range(start, stop)))
            done({})
        elif action == "enqueue":
            out = {}
            n = spec["single"]
            started = time.perf_counter()
            for i in range(n):
                await bench.defer_async(n=i)
            out["single"] = n / (time.perf_counter() - started)
            for size in (100, 1000):
                calls = max(1, spec["batched"] // size)
                started = time.perf_counter()
                for _ in range(calls):
                    await bench.batch_defer_async(*({"n": i} for i in range(size)))
                out[f"batch_{size}"] = calls * size / (time.perf_counter() - started)
            await app.connector.execute_query_async("DELETE FROM procrastinate_jobs")
            done(out)
        elif action == "verify":
            rows = await app.connector.execute_query_all_async(
                "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY 1"
            )
            by_status = {row["status"]: row["n"] for row in rows}
            await app.connector.execute_query_async("DELETE FROM procrastinate_jobs")
            done(by_status)
        elif action == "drain":
            wait_for_go()
            await app.run_worker_async(
                queues=["bench"],
                wait=False,
                concurrency=spec["batch"],
                install_signal_handlers=False,
            )
            finished()


# -- django-tasks-db ----------------------------------------------------------------------------


def djtasks_main(spec: dict[str, Any]) -> None:
    import os

    os.environ["DATABASE_URL"] = spec["db"]
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.djtasks_settings"
    import django
    from django.core.management import call_command

    django.setup()
    from bench.djtasks import DBTaskResult, bench

    action = spec["action"]
    if action == "setup":
        call_command("migrate", verbosity=0)
        done({})
    elif action == "fill":
        from django.db import transaction

        with transaction.atomic():
            for i in range(spec["messages"]):
                bench.enqueue(n=i)
        done({})
    elif action == "enqueue":
        n = spec["single"]
        started = time.perf_counter()
        for i in range(n):
            bench.enqueue(n=i)
        rate = n / (time.perf_counter() - started)
        DBTaskResult.objects.all().delete()
        done({"single": rate})
    elif action == "verify":
        from django.db.models import Count

        rows = DBTaskResult.objects.values_list("status").annotate(n=Count("id"))
        by_status = dict(rows)
        DBTaskResult.objects.all().delete()
        done(by_status)
    elif action == "drain":
        from django.db import connection

        connection.ensure_connection()
        wait_for_go()
        call_command(
            "db_worker",
            "--batch",
            "--queue-name",
            "default",
            "--interval",
            "0.1",
            "--no-startup-delay",
            "--no-reload",
            verbosity=0,
        )
        finished()


SYSTEMS: dict[str, Callable[[dict[str, Any]], None]] = {
    "worker": worker_drain,
    "consumer": consumer_drain,
    "floor": floor_drain,
    "pgqueuer": pgqueuer_main,
    "procrastinate": procrastinate_main,
    "djtasks": djtasks_main,
}


def main() -> None:
    # The django-tasks-db task counts through ``bench.runner.count``: make that this module.
    sys.modules.setdefault("bench.runner", sys.modules[__name__])
    spec = json.loads(sys.argv[1])
    SYSTEMS[spec["system"]](spec)


if __name__ == "__main__":
    main()
