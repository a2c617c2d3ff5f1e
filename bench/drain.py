"""Drain throughput: N trivial messages through ``pgqrs_worker`` processes.

    python -m bench.drain [--messages 20000] [--workers 2] [--batch 1 10 50] [--concurrency 1]
                          [--floor]

The workers start first on an empty queue; the whole backlog is then inserted in one
transaction, and the time runs from its commit to the last ``archived_at``, both read from
the database clock. Every message must be archived exactly
once (succeeded), or the run fails. With ``--floor`` the same backlog is also drained by the
hand-written SQL floor (``bench/floor.py``) right after, and the ratio is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from bench.common import scratch_database, start_worker, stop_workers, wait_for_workers


def drain(
    queue: str, messages: int, workers: int, batch: int, concurrency: int, *extra: str
) -> float:
    from django.db.models import Max

    from pgqrs_django import PgqrsAdmin, Producer
    from pgqrs_django.models import Archive, Message, Worker

    admin = PgqrsAdmin()
    admin.purge_queue(queue)
    admin.purge_archive(queue)
    Worker.objects.all().delete()
    from django.db import connection

    with connection.cursor() as cursor:  # the same starting state as the floor's run
        cursor.execute("VACUUM ANALYZE pgqrs_message")
    procs = [
        start_worker(
            "--queue",
            queue,
            "--batch-size",
            str(batch),
            "--concurrency",
            str(concurrency),
            "--lock-time",
            "60",
            *extra,
        )
        for _ in range(workers)
    ]
    try:
        wait_for_workers(workers)
        producer = Producer(queue)
        from django.db import transaction

        with transaction.atomic():
            for start in range(0, messages, 5000):
                producer.batch_enqueue(
                    [{"n": i} for i in range(start, min(messages, start + 5000))]
                )
        with connection.cursor() as cursor:  # the backlog became visible about now
            cursor.execute("SELECT clock_timestamp()")
            committed = cursor.fetchone()[0]
        deadline = time.monotonic() + 600
        while Message.objects.for_queue(queue).exists():
            if time.monotonic() > deadline:
                raise SystemExit("drain did not finish within 600 s")
            time.sleep(0.1)
    finally:
        stop_workers(procs)
    rows = Archive.objects.for_queue(queue)
    stats = rows.aggregate(last=Max("archived_at"))
    total = rows.count()
    ok = rows.succeeded().count()
    if total != messages or ok != messages:
        raise SystemExit(
            f"lost or failed messages: {ok} succeeded of {total} archived, {messages} sent"
        )
    elapsed = (stats["last"] - committed).total_seconds()
    return messages / elapsed


def floor(queue: str, messages: int, workers: int, batch: int) -> float:
    from django.db import connection

    from bench import floor as sql_floor
    from pgqrs_django import PgqrsAdmin, Producer

    PgqrsAdmin().purge_queue(queue)
    PgqrsAdmin().purge_archive(queue)
    producer = Producer(queue)
    for start in range(0, messages, 5000):
        producer.batch_enqueue([{"n": i} for i in range(start, min(messages, start + 5000))])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE pgqrs_message")
    queue_id = PgqrsAdmin().get_queue(queue).pk
    elapsed, done = sql_floor.drain(os.environ["DATABASE_URL"], queue_id, batch, workers)
    if done != messages:
        raise SystemExit(f"the floor drained {done} of {messages}")
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--async", dest="use_async", action="store_true", help="use an async def handler"
    )
    parser.add_argument("--floor", action="store_true", help="also drain with the SQL floor")
    parser.add_argument(
        "--async-commit", action="store_true", help="run the workers with --async-commit"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line per run")
    args = parser.parse_args()
    with scratch_database():
        from pgqrs_django import PgqrsAdmin

        queue = "bench-drain-async" if args.use_async else "bench-drain"
        PgqrsAdmin().create_queue(queue, visibility_timeout=60)
        for batch in args.batch:
            extra = ["--async-commit"] if args.async_commit else []
            rate = drain(queue, args.messages, args.workers, batch, args.concurrency, *extra)
            row: dict[str, object] = {
                "messages": args.messages,
                "workers": args.workers,
                "batch": batch,
                "concurrency": args.concurrency,
                "async": args.use_async,
                "async_commit": args.async_commit,
                "msg_per_s": round(rate),
            }
            line = (
                f"batch {batch:>3}: pgqrs_worker {rate:>8.0f} msg/s  ({args.messages} "
                f"messages, {args.workers} workers, concurrency {args.concurrency})"
            )
            if args.floor:
                base = floor(queue, args.messages, args.workers, batch)
                row["floor_msg_per_s"] = round(base)
                line += f"  | SQL floor {base:>8.0f} msg/s  ratio {rate / base:.2f}"
            print(json.dumps(row) if args.json else line, flush=True)


if __name__ == "__main__":
    main()
