"""The chaos monkey of tests/test_chaos.py, a process of its own.

Starts ``--workers`` ``pgqrs_worker`` processes on QUEUE, then every ``--every`` seconds
SIGKILLs a random one and starts a replacement, until TOTAL messages of the queue are in the
archive. Once, when half of them are, it terminates every other backend connection to the
database (``pg_terminate_backend``). Then it stops the survivors with SIGTERM and prints one
JSON line: the pids it started and killed, how many backends it terminated, the survivors'
exit codes and the elapsed time.

    python -m tests.scripts.chaos QUEUE TOTAL LOGDIR [--workers 4] [--every 1] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from pgqrs_django.models import Archive, Worker  # noqa: E402
from tests.worker_support import WorkerProcess, terminate_other_backends  # noqa: E402

WORKER_ARGS = ["--concurrency", "4", "--batch-size", "50", "--poll-interval", "0.2"]
# Failed deliveries (a handler whose connection was terminated) come back quickly.
WORKER_ENV = {
    "PGQRS_RETRY_BACKOFF_BASE": "0.05",
    "PGQRS_RETRY_BACKOFF_MAX": "0.2",
    "PGQRS_RETRY_JITTER": "0",
}
TIME_LIMIT = 900.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("queue")
    parser.add_argument("total", type=int)
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, **WORKER_ENV}
    started: list[int] = []

    def start() -> WorkerProcess:
        log = args.logdir / f"worker-{len(started)}.log"
        worker = WorkerProcess(["--queue", args.queue, *WORKER_ARGS], env, log)
        started.append(worker.pid)
        return worker

    began = time.monotonic()
    alive = [start() for _ in range(args.workers)]
    killed: list[int] = []
    terminated: int | None = None
    archived = 0
    while True:
        time.sleep(args.every)
        archived = Archive.objects.filter(queue__name=args.queue).count()
        if archived >= args.total or time.monotonic() - began > TIME_LIMIT:
            break
        victim = rng.choice(alive)
        victim.kill()
        killed.append(victim.pid)
        alive[alive.index(victim)] = start()
        if terminated is None and archived >= args.total // 2:
            terminated = terminate_other_backends()
    # Stop the survivors once each has started serving (a worker still importing Django has
    # no signal handler yet and would die of the SIGTERM).
    wait_until = time.monotonic() + 120
    while time.monotonic() < wait_until and Worker.objects.running().filter(
        pid__in=[w.pid for w in alive]
    ).count() < len(alive):
        time.sleep(0.2)
    for worker in alive:
        worker.signal(signal.SIGTERM)
    codes = [worker.wait(120) for worker in alive]
    report = {
        "started": started,
        "killed": killed,
        "terminated_backends": terminated,
        "survivor_exit_codes": codes,
        "archived": archived,
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(report), flush=True)
    return 0 if archived >= args.total else 1


if __name__ == "__main__":
    sys.exit(main())
