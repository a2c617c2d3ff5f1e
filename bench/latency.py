"""Enqueue-to-handler-start latency of an idle ``pgqrs_worker``, with LISTEN/NOTIFY and with
polling only (part of ``python -m bench``).

For each sample the harness waits a random 20-60 ms (so the worker is idle; with polling, up
to a poll interval more), notes the wall clock, enqueues one message and waits for its
archive row; the handler (bench/jobs.py) returned the wall clock at which it started. Both
clocks are this machine's.
"""

from __future__ import annotations

import random
import statistics
import time

from bench.common import BenchError, start_worker, stop_workers, wait_for_workers

QUEUE = "bench-latency"


def _listening() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'pgqrs-listen%%' AND query LIKE 'LISTEN%%'"
        )
        return bool(cursor.fetchone()[0])


def measure(samples: int, *worker_args: str, poll_interval: float = 1.0) -> list[float]:
    """Latencies in milliseconds."""
    from pgqrs_django import PgqrsAdmin, Producer
    from pgqrs_django.models import Archive, Worker

    PgqrsAdmin().purge_archive(QUEUE)
    Worker.objects.all().delete()
    proc = start_worker("--queue", QUEUE, "--concurrency", "1", "--batch-size", "1", *worker_args)
    try:
        wait_for_workers(1)
        if "--no-listen" not in worker_args:
            deadline = time.monotonic() + 30
            while not _listening():
                if time.monotonic() > deadline:
                    raise BenchError("the worker did not LISTEN within 30 s")
                time.sleep(0.01)
        producer = Producer(QUEUE)
        # Idle pauses spread over a whole poll interval, so a polling worker's phase does not
        # line up with the samples.
        spread = 0.04 + (poll_interval if "--no-listen" in worker_args else 0.0)
        out = []
        for _ in range(samples):
            time.sleep(random.uniform(0.02, 0.02 + spread))
            sent = time.time()
            msg = producer.enqueue({})
            deadline = time.monotonic() + 60
            while not (row := Archive.objects.filter(pk=msg.id).values_list("result").first()):
                if time.monotonic() > deadline:
                    raise BenchError(f"message {msg.id} was not processed within 60 s")
                time.sleep(0.001)
            out.append((row[0]["started"] - sent) * 1000)
        return out
    finally:
        stop_workers([proc])


def summary(label: str, values: list[float]) -> dict[str, float | str]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "mode": label,
        "samples": len(values),
        "p50_ms": round(pct(50), 2),
        "p95_ms": round(pct(95), 2),
        "p99_ms": round(pct(99), 2),
        "mean_ms": round(statistics.fmean(values), 2),
        "max_ms": round(ordered[-1], 2),
    }
